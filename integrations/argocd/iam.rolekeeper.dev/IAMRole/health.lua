-- Argo CD health of a Rolekeeper object (iam.rolekeeper.dev), from the conditions its operator
-- writes (kstatus's abnormal-true Reconciling and Stalled, and Ready; Rolekeeper's
-- docs/status.md is the contract):
--   Stalled=True      -> Degraded     nothing changes until a person acts
--   Reconciling=True  -> Progressing  the operator gets there by itself
--   Ready=True        -> Healthy
-- Only Lua 5.1's base library is used, so it runs without useOpenLibs.
local hs = {}

local function explain(condition)
  if condition.reason ~= nil and condition.message ~= nil and condition.message ~= "" then
    return condition.reason .. ": " .. condition.message
  end
  return condition.message or condition.reason or ""
end

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Pending deletion"
  return hs
end

if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Rolekeeper operator"
  return hs
end

local generation = obj.metadata and obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and observed ~= nil and observed ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to see generation " .. generation
    .. " (the status describes generation " .. observed .. ")"
  return hs
end

local ready = nil
for _, condition in ipairs(obj.status.conditions) do
  if condition.status == "True" and condition.type == "Stalled" then
    hs.status = "Degraded"
    hs.message = explain(condition)
    return hs
  end
  if condition.status == "True" and condition.type == "Reconciling" then
    hs.status = "Progressing"
    hs.message = explain(condition)
    return hs
  end
  if condition.type == "Ready" then
    ready = condition
  end
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or ""
  return hs
end

-- Ready=False without Stalled or Reconciling: an operator older than those conditions.
hs.status = "Progressing"
if ready ~= nil then
  hs.message = explain(ready)
else
  hs.message = "Waiting for the Rolekeeper operator"
end
return hs
