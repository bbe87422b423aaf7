"""IAMRole: an IAM role with its trust, managed and inline policies, boundary, tags and profile.

Where a role's trust policy is compared, planned and sent: `_update` compares it by meaning
(`policy.equivalent`), plans `UpdateAssumeRolePolicy` only when the meaning differs, and the
engine sends the Action. Instance profiles are the one role-only resource: their rules (keep a
profile we did not create, delete our orphaned one, the idempotent answers of a retried call)
live here too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from controller.aws import calls
from controller.core import podidentity, policy
from controller.core.actions import OWNER_TAG, Action, act
from controller.core.errors import AWSError, SpecError, TerminalError
from controller.core.view import EntityView
from controller.kinds import base
from controller.kinds.base import DEFAULT_LIMITS, Desired, Entity, Limits

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

    from controller.aws.snapshot import RawSnapshot

FIELDS = base.REFERENCE_FIELDS | frozenset(
    {
        "roleName",
        "path",
        "description",
        "maxSessionDuration",
        "assumeRolePolicy",
        "managedPolicies",
        "inlinePolicies",
        "permissionsBoundary",
        "tags",
        "instanceProfile",
        "serviceAccounts",
        "podIdentity",
    }
)
TRUST_FIELD = "spec.assumeRolePolicy"
# Why a role's generated trust statements are missing before `bind_trust` ran (a tool that
# plans without binding would otherwise create the role without them).
UNBOUND = (
    "spec.serviceAccounts: the trust statements were not generated (no account and OIDC issuer "
    "given to this planner)"
)
_NONE = podidentity.PodIdentity(())
PROFILE_UNKNOWN = (
    "the snapshot does not say who created instance profile {}: the operator deletes it "
    "only if Rolekeeper created it (else it only removes the role from it)"
)


@dataclass(frozen=True)
class Role:
    """An IAM role as Rolekeeper manages it; `arn`/`role_id` are only known once observed."""

    name: str
    assume_role_policy: Mapping[str, Any]
    path: str = "/"
    description: str = ""
    max_session_duration: int = 3600
    managed_policies: frozenset[str] = frozenset()
    inline_policies: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    permissions_boundary: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    # Desired: {name} when spec.instanceProfile. Observed: every profile that holds the role.
    instance_profiles: frozenset[str] = frozenset()
    arn: str = ""
    role_id: str = ""
    # Facts AWS reports, not state to reconcile: never compared, never planned.
    last_used: str = field(default="", compare=False)  # RoleLastUsed.LastUsedDate, RFC 3339
    last_used_region: str = field(default="", compare=False)  # RoleLastUsed.Region
    created: str = field(default="", compare=False)  # CreateDate, ISO 8601
    # Desired only: why the statements spec.serviceAccounts asks for are not in
    # assume_role_policy yet ("" once `bind_trust` put them there, or when none are asked for).
    trust_pending: str = field(default="", compare=False)

    @property
    def entity_id(self) -> str:
        return self.role_id


def _role(entity: Entity) -> Role:
    assert isinstance(entity, Role), f"expected a Role, got {type(entity).__name__}"
    return entity


class RoleKind:
    """The IAMRole kind."""

    name = "IAMRole"
    plural = "iamroles"
    noun = "role"
    name_field = "roleName"
    id_field = "roleId"
    snapshot_key = "roles"
    # instanceProfileName too: the profile a role keeps has the role's name, so an event on a
    # profile of that name (deleted, another role added, tags) is a check of the role.
    cloudtrail_keys = frozenset({"roleName", "instanceProfileName"})

    # --- parse ---------------------------------------------------------------------------------

    def parse(self, obj: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> Desired:
        """Parse and validate a whole IAMRole object (metadata + spec); raises SpecError."""
        ref, spec, errors = base.start(obj, self.name, FIELDS)
        name = base.name_field(spec, "roleName", ref.name, errors)
        trust = spec.get("assumeRolePolicy")
        identity = _pod_identity(spec, ref.namespace, errors)
        if trust is None:
            if identity is None:
                errors.append("spec.assumeRolePolicy: required (or spec.serviceAccounts)")
            trust = {}
        else:
            trust = base.policy_document(trust, "trust", TRUST_FIELD, errors)
            if trust and (n := policy.size(trust)) > limits.trust_policy_size:
                errors.append(
                    f"spec.assumeRolePolicy: {n} characters exceeds the limit "
                    f"{limits.trust_policy_size} (whitespace not counted)"
                )
        max_session = spec.get("maxSessionDuration", 3600)
        if not base.is_int(max_session):
            errors.append(f"spec.maxSessionDuration: must be an integer, got {max_session!r}")
        elif max_session < 3600:
            errors.append(f"spec.maxSessionDuration: {max_session} is below the minimum 3600")
        elif max_session > 43200:
            errors.append(f"spec.maxSessionDuration: {max_session} is above the maximum 43200")
        description = base.string_field(spec, "description", "", errors)
        if len(description) > 1000:
            errors.append(f"spec.description: {len(description)} characters exceeds 1000")
        elif not base.DESCRIPTION_PATTERN.fullmatch(description):
            bad = next(c for c in description if not base.DESCRIPTION_PATTERN.fullmatch(c))
            errors.append(
                f"spec.description: character {bad!r} is not allowed (IAM allows tab, newline "
                "and the characters U+0020-U+007E and U+00A1-U+00FF)"
            )
        instance_profile = spec.get("instanceProfile", False)
        if not isinstance(instance_profile, bool):
            errors.append(f"spec.instanceProfile: must be true or false, got {instance_profile!r}")
        role = Role(
            name=name,
            assume_role_policy=trust,
            path=base.path_field(spec, errors),
            description=description,
            max_session_duration=max_session if base.is_int(max_session) else 3600,
            managed_policies=base.managed_policies_field(spec, limits, errors),
            inline_policies=base.inline_policies_field(spec, limits.role_inline_total, errors),
            permissions_boundary=base.boundary_field(spec, errors),
            tags=base.tags_field(spec, limits, errors),
            instance_profiles=frozenset({name}) if instance_profile is True else frozenset(),
        )
        if identity is not None:
            errors.extend(podidentity.reserved_sids(trust, TRUST_FIELD))
            role = replace(role, trust_pending=UNBOUND)
        refs = base.references_field(spec, ref.namespace, limits, errors)
        desired = base.finish(obj, ref, role, spec, errors, refs, limits=limits)
        return replace(desired, pod_identity=identity) if identity is not None else desired

    def bind_trust(self, desired: Desired, context: podidentity.TrustContext) -> Desired:
        """`desired` with the statements spec.serviceAccounts asks for in its trust policy (the
        spec's own statements first), generated for the account and issuer of `context`; without
        a needed issuer, or over the size limit, `plan` then refuses and says why. Binding twice
        changes nothing."""
        role = _role(desired.entity)
        identity = desired.pod_identity
        if identity is None or not role.trust_pending:
            return desired
        if identity.irsa and context.issuer is None:
            return replace(desired, entity=replace(role, trust_pending=context.missing_issuer))
        generated = podidentity.statements(
            identity, context.issuer, context.account_id, context.partition
        )
        merged = podidentity.merge(role.assume_role_policy, generated)
        if (n := policy.size(merged)) > context.trust_policy_size:
            message = (
                f"spec.assumeRolePolicy: {n} characters with the statements generated for "
                f"spec.serviceAccounts exceeds the limit {context.trust_policy_size} (whitespace "
                "not counted); list fewer ServiceAccounts, or ask AWS to raise the quota"
            )
            return replace(desired, entity=replace(role, trust_pending=message))
        bound = replace(role, assume_role_policy=merged, trust_pending="")
        return replace(desired, entity=bound)

    def view(self, desired: Desired) -> EntityView:
        role = _role(desired.entity)
        return EntityView(
            kind=self.name,
            namespace=desired.ref.namespace,
            name=role.name,
            path=role.path,
            trust_policy=role.assume_role_policy,
            documents={f"spec.inlinePolicies.{k}": v for k, v in role.inline_policies.items()},
            managed_policies=role.managed_policies,
            permissions_boundary=role.permissions_boundary,
            max_session_duration=role.max_session_duration,
            adopt=desired.adopt,
            service_accounts=tuple(
                (a.namespace, a.name) for a in (desired.pod_identity or _NONE).service_accounts
            ),
        )

    def placeholder(self, name: str) -> Role:
        return Role(name=name, assume_role_policy={})

    # --- read ----------------------------------------------------------------------------------

    def read(
        self,
        iam: IAMClient,
        name: str,
        *,
        for_delete: bool = False,
        rare: bool = False,
        arn: str = "",
    ) -> Role | None:
        """GetRole + attached, inline (each document), instance profiles; None when absent."""
        found = calls.get_or_none("GetRole", lambda: iam.get_role(RoleName=name))
        if found is None:
            return None
        attached, inline = base.read_policies(iam, "Role", name)
        profiles = calls.pages(
            iam, "list_instance_profiles_for_role", "InstanceProfiles", RoleName=name
        )
        return _from_raw(
            found["Role"],
            attached=attached,
            inline=inline,
            profiles=(p["InstanceProfileName"] for p in profiles),
        )

    def from_snapshot(self, raw: RawSnapshot) -> dict[str, Entity]:
        roles: dict[str, Entity] = {}
        for detail in raw.details.get("RoleDetailList", []):
            merged = {**raw.listed_roles.get(detail["RoleName"], {}), **detail}
            roles[detail["RoleName"]] = _from_raw(
                merged,
                attached=(p["PolicyArn"] for p in detail.get("AttachedManagedPolicies", [])),
                inline={
                    p["PolicyName"]: calls.document(p["PolicyDocument"])
                    for p in detail.get("RolePolicyList", [])
                },
                profiles=(p["InstanceProfileName"] for p in detail.get("InstanceProfileList", [])),
            )
        return roles

    def to_json(self, entity: Entity) -> dict[str, Any]:
        data = base.entity_json(entity)
        data.pop("trust_pending", None)  # desired-only: never in a snapshot file
        return data

    def from_json(self, data: Mapping[str, Any]) -> Role:
        return Role(
            name=data["name"],
            assume_role_policy=data["assume_role_policy"],
            path=data["path"],
            description=data["description"],
            max_session_duration=data["max_session_duration"],
            managed_policies=frozenset(data["managed_policies"]),
            inline_policies=data["inline_policies"],
            permissions_boundary=data["permissions_boundary"],
            tags=data["tags"],
            instance_profiles=frozenset(data["instance_profiles"]),
            arn=data["arn"],
            role_id=data["role_id"],
            last_used=data.get("last_used", ""),  # absent from older snapshot files
            last_used_region=data.get("last_used_region", ""),
            created=data.get("created", ""),
        )

    # --- plan ----------------------------------------------------------------------------------

    def plan(self, desired: Desired, observed: Entity | None, partition: str) -> tuple[Action, ...]:
        """Calls that make `observed` (None: absent) equal to `desired`; an immutable
        difference (path) raises SpecError."""
        role = _role(desired.entity)
        if role.trust_pending:
            raise SpecError([role.trust_pending])
        if observed is None:
            return _create(desired, role, partition)
        seen = _role(observed)
        return base.claim_first(_update(desired, role, seen, partition), seen, "TagRole")

    def plan_delete(self, observed: Entity) -> tuple[Action, ...]:
        """Calls that delete the role in the order IAM demands (every DeleteConflict cause)."""
        role = _role(observed)
        actions: list[Action] = []
        for profile in sorted(role.instance_profiles):
            actions += _remove_instance_profile(role.name, profile, delete=profile == role.name)
        actions += base.detach("Role", role.name, role.managed_policies)
        actions += base.delete_inline("Role", role.name, set(role.inline_policies))
        actions.append(act("DeleteRole", f"Deleted role {role.name}", RoleName=role.name))
        return tuple(actions)

    def plan_release(self, observed: Entity) -> tuple[Action, ...]:
        return base.release("Role", observed)

    def documents(self, entity: Entity) -> dict[str, Mapping[str, Any]]:
        role = _role(entity)
        docs = {f"spec.inlinePolicies.{k}": v for k, v in role.inline_policies.items()}
        docs[TRUST_FIELD] = role.assume_role_policy
        return docs

    def document_field(self, action: Action) -> str | None:
        if action.api in ("CreateRole", "UpdateAssumeRolePolicy"):
            return TRUST_FIELD
        return base.inline_diff_field(action, "PutRolePolicy")

    def created(self, action: Action, response: Mapping[str, Any]) -> tuple[str, str] | None:
        made = response.get("Role") if action.api == "CreateRole" else None
        return (str(made["Arn"]), str(made.get("RoleId", ""))) if made else None

    # --- what only AWS can tell ----------------------------------------------------------------

    def refine(
        self, iam: IAMClient, desired: Desired, actions: tuple[Action, ...]
    ) -> tuple[Action, ...]:
        """Drop DeleteInstanceProfile for a profile we did not create (e.g. the console's
        same-named profile of an adopted EC2 role): the role leaves it, the profile stays."""
        kept = []
        for action in actions:
            if action.api == "DeleteInstanceProfile":
                found = _instance_profile(iam, action.params["InstanceProfileName"])
                if found is None or found[0].get(OWNER_TAG) != desired.ref.owner:
                    continue
            kept.append(action)
        return tuple(kept)

    def cleanup_orphans(
        self, iam: IAMClient, desired: Desired, observed: Entity | None
    ) -> tuple[Action, ...]:
        """DeleteInstanceProfile for our same-named profile once no role is in it: an attempt
        stopped between RemoveRoleFromInstanceProfile and DeleteInstanceProfile (a crash, a lost
        answer) leaves it behind, and the role's own listing no longer leads to it. One extra
        read, only for roles whose spec asks for a profile the role no longer lists."""
        name = desired.aws_name
        if name not in _role(desired.entity).instance_profiles:
            return ()
        if observed is not None and name in _role(observed).instance_profiles:
            return ()  # still holds the role: plan_delete removes and deletes it
        found = _instance_profile(iam, name)
        if found is None or found[1] or found[0].get(OWNER_TAG) != desired.ref.owner:
            return ()
        return (
            act(
                "DeleteInstanceProfile",
                f"Deleted instance profile {name}",
                InstanceProfileName=name,
            ),
        )

    def tolerate(self, iam: IAMClient, action: Action, error: AWSError) -> bool:
        """Answers that mean a retried or interrupted call already did its work: our own
        profile exists already; the one role a profile holds is ours. A same-named profile
        someone else made is not ours to fill."""
        if error.code == "EntityAlreadyExists" and action.api == "CreateInstanceProfile":
            wanted = {t["Key"]: t["Value"] for t in action.params.get("Tags", [])}.get(OWNER_TAG)
            name = action.params["InstanceProfileName"]
            found = _instance_profile(iam, name)
            if wanted is not None and found is not None and found[0].get(OWNER_TAG) == wanted:
                return True
            raise TerminalError(
                action.api,
                error.code,
                f"instance profile {name} already exists and was not created by Rolekeeper for "
                "this object; Rolekeeper will not put its role into it: delete or rename that "
                "profile, or set spec.instanceProfile: false",
            ) from error
        if error.code == "LimitExceeded" and action.api == "AddRoleToInstanceProfile":
            try:
                found = _instance_profile(iam, action.params["InstanceProfileName"])
            except AWSError:
                return False  # cannot tell: report AWS's LimitExceeded as it is
            return found is not None and action.params["RoleName"] in found[1]
        return False

    def offline_notes(self, entity: Entity | None, actions: tuple[Action, ...]) -> list[str]:
        return [
            PROFILE_UNKNOWN.format(a.params["InstanceProfileName"])
            for a in actions
            if a.api == "DeleteInstanceProfile"
        ]

    def status_fields(
        self, observed: Entity | None, applied: Sequence[tuple[Action, Mapping[str, Any]]]
    ) -> dict[str, Any]:
        """status.roleLastUsed: what AWS reported with the role it was read with (GetRole, or
        the snapshot's RoleLastUsed): no call of its own. Left as it was when AWS says nothing
        (a never-used role; a create)."""
        role = _role(observed) if observed is not None else None
        if role is None or not role.last_used:
            return {}
        used = {"lastUsedDate": role.last_used}
        if role.last_used_region:
            used["region"] = role.last_used_region
        return {"roleLastUsed": used}

    def usage(self, observed: Entity) -> base.Usage | None:
        role = _role(observed)
        return base.Usage("status.roleLastUsed", role.last_used, role.created)

    def to_manifest(self, entity: Entity, namespace: str, name: str) -> dict[str, Any]:
        """The IAMRole a person would write for an observed role (`rolekeeper import`): AWS's
        defaults left out, documents in canonical form, sets sorted, the examples' key order.
        instanceProfile only for a same-named profile: the only one the spec can express."""
        role = _role(entity)
        spec: dict[str, Any] = {"roleName": role.name}
        if role.path != "/":
            spec["path"] = role.path
        if role.description:
            spec["description"] = role.description
        if role.max_session_duration != 3600:
            spec["maxSessionDuration"] = role.max_session_duration
        spec["assumeRolePolicy"] = policy.canonical(role.assume_role_policy)
        spec.update(
            base.policies_spec(
                role.permissions_boundary, role.managed_policies, role.inline_policies
            )
        )
        if role.name in role.instance_profiles:
            spec["instanceProfile"] = True
        return base.manifest(self.name, namespace, name, spec, role)


KIND = RoleKind()


# --- planning ---------------------------------------------------------------------------------


def _create(desired: Desired, role: Role, partition: str) -> tuple[Action, ...]:
    params: dict[str, Any] = {
        "RoleName": role.name,
        "Path": role.path,
        "AssumeRolePolicyDocument": policy.to_json(role.assume_role_policy, partition=partition),
        "MaxSessionDuration": role.max_session_duration,
        "Tags": base.tag_list(desired.tags()),
    }
    if role.description:
        params["Description"] = role.description
    if role.permissions_boundary:
        params["PermissionsBoundary"] = role.permissions_boundary
    actions = [Action("CreateRole", params, f"Created role {role.name}")]
    actions += base.attach("Role", role.name, role.managed_policies)
    actions += base.put_inline("Role", role.name, role.inline_policies, {}, partition)
    for profile in sorted(role.instance_profiles):
        actions += _add_instance_profile(desired, role, profile)
    return tuple(actions)


def _update(desired: Desired, role: Role, seen: Role, partition: str) -> tuple[Action, ...]:
    base.check_immutable("role", desired, role.path, seen.path)
    actions: list[Action] = []
    if (role.description, role.max_session_duration) != (
        seen.description,
        seen.max_session_duration,
    ):
        changed = []
        if role.description != seen.description:
            changed.append("description")
        if role.max_session_duration != seen.max_session_duration:
            changed.append(
                f"max session {seen.max_session_duration}s -> {role.max_session_duration}s"
            )
        actions.append(
            act(
                "UpdateRole",
                f"Updated role {role.name}: {', '.join(changed)}",
                RoleName=role.name,
                Description=role.description,
                MaxSessionDuration=role.max_session_duration,
            )
        )
    if not policy.equivalent(role.assume_role_policy, seen.assume_role_policy):
        detail = "; ".join(policy.describe_diff(seen.assume_role_policy, role.assume_role_policy))
        actions.append(
            act(
                "UpdateAssumeRolePolicy",
                f"Updated trust policy of role {role.name}: {detail}",
                RoleName=role.name,
                PolicyDocument=policy.to_json(role.assume_role_policy, partition=partition),
            )
        )
    actions += base.boundary_actions(
        "Role", role.name, role.permissions_boundary, seen.permissions_boundary, first=True
    )
    # Grant before revoke, so a change never leaves a window with fewer permissions than either.
    actions += base.attach("Role", role.name, role.managed_policies - seen.managed_policies)
    actions += base.put_inline(
        "Role", role.name, role.inline_policies, seen.inline_policies, partition
    )
    actions += base.detach("Role", role.name, seen.managed_policies - role.managed_policies)
    actions += base.delete_inline(
        "Role", role.name, set(seen.inline_policies) - set(role.inline_policies)
    )
    actions += base.boundary_actions(
        "Role", role.name, role.permissions_boundary, seen.permissions_boundary, first=False
    )
    actions += base.tag_actions("Role", role.name, desired.tags(), seen.tags, desired.foreign_tags)
    for profile in sorted(role.instance_profiles - seen.instance_profiles):
        actions += _add_instance_profile(desired, role, profile)
    # Only the same-named profile is ours; a profile someone else put the role in is left alone.
    for profile in sorted((seen.instance_profiles - role.instance_profiles) & {role.name}):
        actions += _remove_instance_profile(role.name, profile, delete=True)
    return tuple(actions)


def _add_instance_profile(desired: Desired, role: Role, profile: str) -> list[Action]:
    return [
        act(
            "CreateInstanceProfile",
            f"Created instance profile {profile}",
            InstanceProfileName=profile,
            Path=role.path,
            Tags=base.tag_list(desired.ref.ownership_tags()),
        ),
        act(
            "AddRoleToInstanceProfile",
            f"Added role {role.name} to instance profile {profile}",
            InstanceProfileName=profile,
            RoleName=role.name,
        ),
    ]


def _remove_instance_profile(role_name: str, profile: str, delete: bool) -> list[Action]:
    actions = [
        act(
            "RemoveRoleFromInstanceProfile",
            f"Removed role {role_name} from instance profile {profile}",
            InstanceProfileName=profile,
            RoleName=role_name,
        )
    ]
    if delete:
        actions.append(
            act(
                "DeleteInstanceProfile",
                f"Deleted instance profile {profile}",
                InstanceProfileName=profile,
            )
        )
    return actions


# --- spec.serviceAccounts --------------------------------------------------------------------


def _pod_identity(
    spec: Mapping[str, Any], namespace: str, errors: list[str]
) -> podidentity.PodIdentity | None:
    """spec.serviceAccounts (each namespace defaulting to the role's own) and spec.podIdentity;
    None when no ServiceAccount is named."""
    items = spec.get("serviceAccounts")
    extra = spec.get("podIdentity")
    if items is None or items == []:
        if extra is not None:
            errors.append("spec.podIdentity: needs spec.serviceAccounts (the accounts it trusts)")
        return None
    if not isinstance(items, list):
        errors.append("spec.serviceAccounts: must be a list of {name, namespace}")
        return None
    if len(items) > podidentity.MAX_SERVICE_ACCOUNTS:
        errors.append(
            f"spec.serviceAccounts: {len(items)} ServiceAccounts exceeds the limit "
            f"{podidentity.MAX_SERVICE_ACCOUNTS}"
        )
    found: list[podidentity.ServiceAccountRef] = []
    for i, item in enumerate(items):
        where = f"spec.serviceAccounts[{i}]"
        if not isinstance(item, Mapping):
            errors.append(f"{where}: must be {{name: <ServiceAccount>}} (namespace optional)")
            continue
        unknown = sorted(str(k) for k in item if k not in ("name", "namespace"))
        if unknown:
            errors.append(f"{where}: unknown field {unknown[0]}")
        name, other = item.get("name"), item.get("namespace", namespace)
        if not isinstance(name, str) or not _dns_subdomain(name):
            errors.append(
                f"{where}.name: {name!r} is not a ServiceAccount name (lower-case letters, "
                "digits, - and ., up to 253 characters)"
            )
            continue
        if not isinstance(other, str) or not podidentity.DNS_LABEL.fullmatch(other):
            errors.append(
                f"{where}.namespace: {other!r} is not a namespace name (lower-case letters, "
                "digits and -, up to 63 characters)"
            )
            continue
        account = podidentity.ServiceAccountRef(other, name)
        if account in found:
            errors.append(f"{where}: ServiceAccount {account} is listed more than once")
        found.append(account)
    eks, irsa, cluster = False, True, ""
    if extra is not None:
        if not isinstance(extra, Mapping):
            errors.append("spec.podIdentity: must be an object {clusterName, irsa}")
            extra = {}
        unknown = sorted(str(k) for k in extra if k not in ("clusterName", "irsa"))
        if unknown:
            errors.append(f"spec.podIdentity: unknown field {unknown[0]}")
        eks, irsa, cluster = True, extra.get("irsa", False), extra.get("clusterName", "")
        if not isinstance(irsa, bool):
            errors.append(f"spec.podIdentity.irsa: must be true or false, got {irsa!r}")
        if not isinstance(cluster, str) or (
            cluster and not podidentity.CLUSTER_NAME.fullmatch(cluster)
        ):
            errors.append(
                f"spec.podIdentity.clusterName: {cluster!r} is not an EKS cluster name (1-100 "
                "letters, digits, - and _, starting with a letter or digit)"
            )
            cluster = ""
    return podidentity.PodIdentity(
        tuple(sorted(set(found))), irsa=irsa is True, eks=eks, cluster_name=cluster
    )


def _dns_subdomain(name: str) -> bool:
    return len(name) <= 253 and podidentity.DNS_SUBDOMAIN.fullmatch(name) is not None


# --- reading ----------------------------------------------------------------------------------


def _instance_profile(iam: IAMClient, name: str) -> tuple[dict[str, str], frozenset[str]] | None:
    """Tags and role names of an instance profile (None when it does not exist)."""
    found = calls.get_or_none(
        "GetInstanceProfile", lambda: iam.get_instance_profile(InstanceProfileName=name)
    )
    if found is None:
        return None
    profile = found["InstanceProfile"]
    return calls.tags(profile.get("Tags")), frozenset(r["RoleName"] for r in profile["Roles"])


def _from_raw(
    raw: Mapping[str, Any],
    attached: Iterable[str],
    inline: Mapping[str, Mapping[str, Any]],
    profiles: Iterable[str],
) -> Role:
    return Role(
        name=raw["RoleName"],
        assume_role_policy=calls.document(raw.get("AssumeRolePolicyDocument") or {}),
        path=raw.get("Path", "/"),
        description=raw.get("Description", "") or "",
        max_session_duration=int(raw.get("MaxSessionDuration", 3600)),
        managed_policies=frozenset(attached),
        inline_policies=dict(inline),
        permissions_boundary=calls.boundary(raw),
        tags=calls.tags(raw.get("Tags")),
        instance_profiles=frozenset(profiles),
        arn=raw["Arn"],
        role_id=raw["RoleId"],
        last_used=_iso((raw.get("RoleLastUsed") or {}).get("LastUsedDate")),
        last_used_region=str((raw.get("RoleLastUsed") or {}).get("Region") or ""),
        created=_iso(raw.get("CreateDate")),
    )


def _iso(value: Any) -> str:
    """A date AWS returned (botocore: a datetime; a snapshot file: the string this made) as
    RFC 3339 in UTC to the second, "2026-01-02T03:04:05Z": GetRole and the snapshot then give
    the same text, so a status written from either does not flap."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value or "")
