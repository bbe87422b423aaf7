"""IAMPolicy: a customer-managed IAM policy — its default version's document, versions, tags.

**Finding the policy.** IAM addresses a managed policy only by ARN
(`arn:<partition>:iam::<account>:policy<path><name>`), and `Kind.read` is given a name: not the
account, not the path. Policy names are unique in an account whatever the path, so `read`
finds the ARN with `ListPolicies(Scope=Local)` — one call per 1,000 customer-managed policies
(usually one) — unless the caller passes `arn=` (status.arn, or the snapshot's entry): then
`GetPolicy` goes straight to it, and only a `NoSuchEntity` falls back to the listing. Computing
the ARN from the account id would save the listing but not the path (the spec's path may
differ from AWS's: that is a refusal, not an absence), so the listing is the cheapest read that
is always right. A fresh read of an in-sync policy costs `ListPolicies`, `GetPolicy` (it carries
the description and the tags, so no `ListPolicyTags`), `ListPolicyVersions` and one
`GetPolicyVersion` per version (`ListPolicyVersions` carries no documents on real AWS; moto's
does, and is not relied on): 4 calls for a policy with one version.

**The snapshot.** `GetAccountAuthorizationDetails` with `LocalManagedPolicy` returns every
customer-managed policy with all its versions and documents, but *no tags* (its
`ManagedPolicyDetail` has none, unlike its roles and users; `ListPolicies` has none either).
`aws.snapshot.read_raw` therefore adds one `ListPolicyTags` per policy whose tags it is asked
for (all by default), so ownership and tag drift are decided from the snapshot like every
other field.

**Updates** compare the default version's document by meaning (`policy.equivalent`). A change
is `SetDefaultPolicyVersion` when an existing version already holds the spec's document (someone
made another version the default: one call puts it back), else `CreatePolicyVersion(SetAsDefault)`,
preceded at IAM's limit of 5 versions by `DeletePolicyVersion` of the oldest non-default version
by CreateDate (not list order; ties broken by version number). `description` cannot change in
IAM: a difference is InvalidSpec, like a path.

**Deletion** (IAM refuses to delete an attached policy, and a policy with non-default versions):
detach it from every role and user a Rolekeeper object owns (their `rolekeeper.dev/owner` tag,
read with one `GetRole`/`GetUser` each, only before a delete), delete the non-default versions,
then the policy. Anything else holding it — an untagged role or user, any group (groups carry
no tags, Rolekeeper manages none), any entity using it as a permissions boundary (removing a
boundary widens permissions: never done) — stops the delete before any call with a
`TerminalError` naming them: the finalizer stays, `Ready=False`, retried slowly. So a pull
request that removes a policy and the roles using it converges in any order: if the policy's
finalizer runs first it detaches itself from those roles (they are being deleted too); if the
roles go first the policy is then free. A role that still declares the policy fails its next
attach with NoSuchEntity (its own Ready=False), which is what removing a declared policy means.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

from controller.aws import calls
from controller.core import policy
from controller.core.actions import OWNER_TAG, OWNERSHIP_TAGS, Action, act
from controller.core.awspolicy import MANAGED_POLICY_MAX_SIZE
from controller.core.errors import SpecError, TerminalError
from controller.core.view import EntityView
from controller.kinds import base
from controller.kinds.base import DEFAULT_LIMITS, Desired, Entity, Limits

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

    from controller.aws.snapshot import RawSnapshot

FIELDS = frozenset({"policyName", "path", "description", "document", "tags"})
DOCUMENT_FIELD = "spec.document"
MAX_NAME = 128
MAX_DESCRIPTION = 1000
MAX_DOCUMENT = MANAGED_POLICY_MAX_SIZE  # characters, whitespace not counted (a fixed quota)
MAX_VERSIONS = 5  # versions IAM keeps of one managed policy
ATTACHMENTS_UNKNOWN = (
    "the snapshot does not list what holds policy {}: the operator detaches it from roles and "
    "users Rolekeeper owns, and refuses to delete it (Ready=False, finalizer kept) while anything "
    "else holds it"
)


class Version(NamedTuple):
    """One stored version of a managed policy."""

    version_id: str  # "v3"
    create_date: str  # ISO 8601, as AWS reports it
    is_default: bool
    document: Mapping[str, Any] | None  # None: not read


class Attachment(NamedTuple):
    """An entity that holds the policy (read only before a delete)."""

    kind: str  # "Role" | "User" | "Group": IAM's API noun
    name: str
    owned: bool  # carries a rolekeeper.dev/owner tag (groups never: they have no tags)
    boundary: bool = False  # holds it as its permissions boundary, not as a permission policy


@dataclass(frozen=True)
class Policy:
    """A customer-managed policy as Rolekeeper manages it; AWS's fields only once observed."""

    name: str
    document: Mapping[str, Any]  # desired: the spec's; observed: the default version's
    path: str = "/"
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    arn: str = ""
    policy_id: str = ""
    default_version_id: str = ""
    versions: tuple[Version, ...] = ()
    attachment_count: int = 0
    attachments: tuple[Attachment, ...] | None = None  # None: not read (only finalize needs it)

    @property
    def entity_id(self) -> str:
        return self.policy_id


def _policy(entity: Entity) -> Policy:
    assert isinstance(entity, Policy), f"expected a Policy, got {type(entity).__name__}"
    return entity


class PolicyError(TerminalError):
    """The policy cannot be deleted yet: something Rolekeeper may not touch still holds it."""


class PolicyKind(base.KindDefaults):
    """The IAMPolicy kind."""

    name = "IAMPolicy"
    plural = "iampolicies"
    noun = "policy"
    name_field = "policyName"
    id_field = "policyId"
    snapshot_key = "policies"
    # Not policyName: in PutRolePolicy and its kin that names an inline policy. (CreatePolicy
    # names only policyName; a policy created by hand under a managed name waits for the sweep.)
    cloudtrail_keys = frozenset({"policyArn"})

    # --- parse ---------------------------------------------------------------------------------

    def parse(self, obj: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> Desired:
        """Parse and validate a whole IAMPolicy object (metadata + spec); raises SpecError."""
        ref, spec, errors = base.start(obj, self.name, FIELDS)
        name = _name_field(spec, ref.name, errors)
        doc = spec.get("document")
        if doc is None:
            errors.append(f"{DOCUMENT_FIELD}: required")
            doc = {}
        else:
            doc = base.policy_document(doc, "identity", DOCUMENT_FIELD, errors)
            if doc and (n := policy.size(doc)) > MAX_DOCUMENT:
                errors.append(
                    f"{DOCUMENT_FIELD}: {n} characters exceeds the limit {MAX_DOCUMENT} "
                    "(whitespace not counted); split it into two policies"
                )
        description = base.string_field(spec, "description", "", errors)
        if len(description) > MAX_DESCRIPTION:
            errors.append(
                f"spec.description: {len(description)} characters exceeds {MAX_DESCRIPTION}"
            )
        elif not base.DESCRIPTION_PATTERN.fullmatch(description):
            bad = next(c for c in description if not base.DESCRIPTION_PATTERN.fullmatch(c))
            errors.append(
                f"spec.description: character {bad!r} is not allowed (IAM allows tab, newline "
                "and the characters U+0020-U+007E and U+00A1-U+00FF)"
            )
        entity = Policy(
            name=name,
            document=doc,
            path=base.path_field(spec, errors),
            description=description,
            tags=base.tags_field(spec, limits, errors),
        )
        return base.finish(obj, ref, entity, spec, errors, limits=limits)

    def view(self, desired: Desired) -> EntityView:
        found = _policy(desired.entity)
        return EntityView(
            kind=self.name,
            namespace=desired.ref.namespace,
            name=found.name,
            path=found.path,
            documents={DOCUMENT_FIELD: found.document},
            adopt=desired.adopt,
        )

    def placeholder(self, name: str) -> Policy:
        return Policy(name=name, document={})

    # --- read ----------------------------------------------------------------------------------

    def read(
        self,
        iam: IAMClient,
        name: str,
        *,
        for_delete: bool = False,
        rare: bool = False,
        arn: str = "",
    ) -> Policy | None:
        """GetPolicy + every version's document; `for_delete` adds what holds the policy (and
        `rare`, after a DeleteConflict, lists it even when AttachmentCount says 0). `arn` (when
        known) saves the ListPolicies that finds it. None when absent."""
        raw = _get_policy(iam, arn) if arn else None
        if raw is not None and raw["PolicyName"].lower() != name.lower():
            raw = None  # the ARN given names another policy: find this one
        if raw is None:
            arn = _find_arn(iam, name)
            raw = _get_policy(iam, arn) if arn else None
        if raw is None:
            return None
        listed = calls.pages(iam, "list_policy_versions", "Versions", PolicyArn=raw["Arn"])
        versions = []
        for version in listed:
            got = calls.get_or_none(
                "GetPolicyVersion",
                partial(
                    iam.get_policy_version, PolicyArn=raw["Arn"], VersionId=version["VersionId"]
                ),
            )
            if got is not None:  # else deleted since the listing: it is not there
                versions.append({**version, "Document": got["PolicyVersion"]["Document"]})
        attachments = _read_attachments(iam, raw, rare) if for_delete else None
        return _from_raw(raw, versions, calls.tags(raw.get("Tags")), attachments)

    def from_snapshot(self, raw: RawSnapshot) -> dict[str, Entity]:
        found: dict[str, Entity] = {}
        for detail in raw.details.get("Policies", []):
            # Real AWS names every entry; moto 5.2 gives only the ARN (its last part is the name).
            entry = {"PolicyName": detail["Arn"].rsplit("/", 1)[-1], **detail}
            tags = raw.policy_tags.get(detail["Arn"], {})
            entity = _from_raw(entry, detail.get("PolicyVersionList", []), tags, None)
            found[entity.name] = entity
        return found

    def to_json(self, entity: Entity) -> dict[str, Any]:
        found = _policy(entity)
        data = base.entity_json(found)
        data["versions"] = [v._asdict() for v in found.versions]
        data["attachments"] = (
            None if found.attachments is None else [a._asdict() for a in found.attachments]
        )
        return data

    def from_json(self, data: Mapping[str, Any]) -> Policy:
        attachments = data.get("attachments")
        return Policy(
            name=data["name"],
            document=data["document"],
            path=data["path"],
            description=data["description"],
            tags=data["tags"],
            arn=data["arn"],
            policy_id=data["policy_id"],
            default_version_id=data["default_version_id"],
            versions=tuple(Version(**v) for v in data["versions"]),
            attachment_count=data["attachment_count"],
            attachments=None
            if attachments is None
            else tuple(Attachment(**a) for a in attachments),
        )

    # --- plan ----------------------------------------------------------------------------------

    def plan(self, desired: Desired, observed: Entity | None, partition: str) -> tuple[Action, ...]:
        """Calls that make `observed` (None: absent) equal to `desired`; an immutable
        difference (path, description) raises SpecError."""
        want = _policy(desired.entity)
        if observed is None:
            return (_create(desired, want, partition),)
        seen = _policy(observed)
        return base.claim_first(_update(desired, want, seen, partition), seen, "TagPolicy")

    def plan_delete(self, observed: Entity) -> tuple[Action, ...]:
        """Detach from owned roles/users, delete non-default versions, delete the policy; raises
        PolicyError (nothing planned) while anything Rolekeeper may not touch holds it."""
        seen = _policy(observed)
        held = seen.attachments or ()
        foreign = [a for a in held if a.boundary or not a.owned]
        if foreign:
            raise PolicyError(
                "DeletePolicy",
                "DeleteConflict",
                f"policy {seen.name} is still held by {_describe(foreign)}, which Rolekeeper "
                "does not manage; nothing was detached. Detach it there (or delete those "
                "entities), and the deletion completes on the next retry",
            )
        actions: list[Action] = [
            act(
                f"Detach{a.kind}Policy",
                f"Detached policy {seen.name} from {a.kind.lower()} {a.name}",
                **{f"{a.kind}Name": a.name, "PolicyArn": seen.arn},
            )
            for a in sorted(held, key=lambda a: (a.kind, a.name))
        ]
        for version in _oldest_first(v for v in seen.versions if not v.is_default):
            actions.append(_delete_version(seen, version))
        actions.append(act("DeletePolicy", f"Deleted policy {seen.name}", PolicyArn=seen.arn))
        return tuple(actions)

    def plan_release(self, observed: Entity) -> tuple[Action, ...]:
        """deletionPolicy: Retain: leave the policy, drop our ownership tags."""
        seen = _policy(observed)
        keys = sorted(k for k in OWNERSHIP_TAGS if k in seen.tags)
        if not keys:
            return ()
        return (
            act(
                "UntagPolicy",
                f"Released policy {seen.name}",
                PolicyArn=seen.arn,
                TagKeys=keys,
            ),
        )

    def documents(self, entity: Entity) -> dict[str, Mapping[str, Any]]:
        return {DOCUMENT_FIELD: _policy(entity).document}

    def document_field(self, action: Action) -> str | None:
        return DOCUMENT_FIELD if action.api in ("CreatePolicy", "CreatePolicyVersion") else None

    def created(self, action: Action, response: Mapping[str, Any]) -> tuple[str, str] | None:
        made = response.get("Policy") if action.api == "CreatePolicy" else None
        return (str(made["Arn"]), str(made.get("PolicyId", ""))) if made else None

    # --- what a plan made offline cannot know ---------------------------------------------------

    def offline_notes(self, entity: Entity | None, actions: tuple[Action, ...]) -> list[str]:
        if entity is not None and _policy(entity).attachments is not None:
            return []
        return [
            ATTACHMENTS_UNKNOWN.format(a.params["PolicyArn"])
            for a in actions
            if a.api == "DeletePolicy"
        ]

    def status_fields(
        self, observed: Entity | None, applied: Sequence[tuple[Action, Mapping[str, Any]]]
    ) -> dict[str, Any]:
        """defaultVersionId and attachmentCount: as observed, then as the calls left them."""
        fields: dict[str, Any] = {}
        if observed is not None:
            seen = _policy(observed)
            fields = {"defaultVersionId": seen.default_version_id,
                      "attachmentCount": seen.attachment_count}  # fmt: skip
        for action, response in applied:
            if action.api == "CreatePolicy" and "Policy" in response:
                made = response["Policy"]
                fields = {"defaultVersionId": str(made.get("DefaultVersionId", "v1")),
                          "attachmentCount": int(made.get("AttachmentCount", 0))}  # fmt: skip
            elif action.api == "CreatePolicyVersion" and "PolicyVersion" in response:
                fields["defaultVersionId"] = str(response["PolicyVersion"]["VersionId"])
            elif action.api == "SetDefaultPolicyVersion":
                fields["defaultVersionId"] = str(action.params["VersionId"])
        return fields

    def to_manifest(self, entity: Entity, namespace: str, name: str) -> dict[str, Any]:
        """The IAMPolicy a person would write for an observed policy (`rolekeeper import`):
        the default version's document in canonical form, path and description only when set."""
        found = _policy(entity)
        spec: dict[str, Any] = {"policyName": found.name}
        if found.path != "/":
            spec["path"] = found.path
        if found.description:
            spec["description"] = found.description
        spec["document"] = policy.canonical(found.document)
        return base.manifest(self.name, namespace, name, spec, found)


KIND = PolicyKind()


# --- parsing ----------------------------------------------------------------------------------


def _name_field(spec: Mapping[str, Any], fallback: str, errors: list[str]) -> str:
    """spec.policyName (default metadata.name): 1-128 of IAM's name characters."""
    name = base.string_field(spec, "policyName", fallback, errors) or fallback
    origin = (
        "" if spec.get("policyName") else " (defaulted from metadata.name; set spec.policyName)"
    )
    if not name:
        errors.append("spec.policyName: required (metadata.name is empty)")
    elif len(name) > MAX_NAME:
        errors.append(
            f"spec.policyName: {name!r} is {len(name)} characters, the maximum is {MAX_NAME}"
            + origin
        )
    elif not base.NAME_PATTERN.fullmatch(name):
        errors.append(
            f"spec.policyName: {name!r} may only contain ASCII letters, digits and +=,.@_-" + origin
        )
    return name


# --- planning ---------------------------------------------------------------------------------


def _create(desired: Desired, want: Policy, partition: str) -> Action:
    params: dict[str, Any] = {
        "PolicyName": want.name,
        "Path": want.path,
        "PolicyDocument": policy.to_json(want.document, partition=partition),
        "Tags": base.tag_list(desired.tags()),
    }
    if want.description:
        params["Description"] = want.description
    return Action("CreatePolicy", params, f"Created policy {want.name}")


def _update(desired: Desired, want: Policy, seen: Policy, partition: str) -> tuple[Action, ...]:
    base.check_immutable("policy", desired, want.path, seen.path)
    if want.description != seen.description:
        raise SpecError(
            [
                f"spec.description: {want.description!r} differs from the existing description "
                f"{seen.description!r} of IAM policy {want.name!r}; IAM cannot change a "
                "policy's description (create a new object instead, or set the existing one)"
            ]
        )
    actions = _document_actions(want, seen, partition)
    actions += base.tag_actions(
        "Policy", seen.name, desired.tags(), seen.tags, desired.foreign_tags,
        target={"PolicyArn": seen.arn},
    )  # fmt: skip
    return tuple(actions)


def _document_actions(want: Policy, seen: Policy, partition: str) -> list[Action]:
    if policy.equivalent(want.document, seen.document):
        return []
    detail = "; ".join(policy.describe_diff(seen.document, want.document))
    for version in _oldest_first(v for v in seen.versions if not v.is_default):
        if version.document is not None and policy.equivalent(want.document, version.document):
            return [
                act(
                    "SetDefaultPolicyVersion",
                    f"Set version {version.version_id} of policy {want.name} as default: {detail}",
                    PolicyArn=seen.arn,
                    VersionId=version.version_id,
                )
            ]
    actions = []
    if len(seen.versions) >= MAX_VERSIONS:
        oldest = _oldest_first(v for v in seen.versions if not v.is_default)[0]
        actions.append(_delete_version(seen, oldest))
    actions.append(
        act(
            "CreatePolicyVersion",
            f"Created a new default version of policy {want.name}: {detail}",
            PolicyArn=seen.arn,
            PolicyDocument=policy.to_json(want.document, partition=partition),
            SetAsDefault=True,
        )
    )
    return actions


def _delete_version(seen: Policy, version: Version) -> Action:
    return act(
        "DeletePolicyVersion",
        f"Deleted version {version.version_id} of policy {seen.name} (created "
        f"{version.create_date})",
        PolicyArn=seen.arn,
        VersionId=version.version_id,
    )


def _oldest_first(versions: Iterable[Version]) -> list[Version]:
    """By CreateDate (what IAM's "oldest" means), then by version number for equal dates."""
    return sorted(versions, key=lambda v: (_when(v.create_date), _number(v.version_id)))


def _when(iso: str) -> datetime:
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return datetime.max
    # Naive and aware dates do not compare: read a date without a zone as UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _number(version_id: str) -> int:
    digits = version_id.lstrip("vV")
    return int(digits) if digits.isdigit() else 0


def _describe(attachments: Iterable[Attachment]) -> str:
    parts = []
    for a in sorted(attachments, key=lambda a: (a.kind, a.name)):
        why = (
            "as its permissions boundary"
            if a.boundary
            else ("untagged" if a.kind != "Group" else "groups are not managed")
        )
        parts.append(f"{a.kind.lower()} {a.name} ({why})")
    return ", ".join(parts)


# --- reading ----------------------------------------------------------------------------------


def _find_arn(iam: IAMClient, name: str) -> str:
    """The ARN of the customer-managed policy called `name` ("" when there is none). IAM names
    are unique ignoring case (as GetRole finds a role): an exact match first, then that."""
    listed = calls.pages(iam, "list_policies", "Policies", Scope="Local")
    for wanted in (name, name.lower()):
        for found in listed:
            have = found["PolicyName"] if wanted == name else found["PolicyName"].lower()
            if have == wanted:
                return str(found["Arn"])
    return ""


def _get_policy(iam: IAMClient, arn: str) -> dict[str, Any] | None:
    found = calls.get_or_none("GetPolicy", lambda: iam.get_policy(PolicyArn=arn))
    return None if found is None else dict(found["Policy"])


def _read_attachments(iam: IAMClient, raw: Mapping[str, Any], rare: bool) -> tuple[Attachment, ...]:
    """What holds the policy, each with whether a Rolekeeper object owns it. The counts in
    GetPolicy save the listings when nothing holds it; after a DeleteConflict (`rare`) both
    listings are made whatever the counts say (they are eventually consistent)."""
    arn = raw["Arn"]
    held: list[Attachment] = []
    if rare or raw.get("AttachmentCount", 0):
        held += _entities(iam, arn, boundary=False)
    if rare or raw.get("PermissionsBoundaryUsageCount", 0):
        held += _entities(iam, arn, boundary=True)
    return tuple(held)


def _entities(iam: IAMClient, arn: str, boundary: bool) -> list[Attachment]:
    """The roles, users and groups holding `arn` as a permission policy (or, `boundary`, as
    their boundary); for roles and users, whether a Rolekeeper object owns them (one
    GetRole/GetUser each: listings carry no tags)."""
    listed: list[Any] = []
    with calls.classified("ListEntitiesForPolicy"):
        paginator = iam.get_paginator("list_entities_for_policy")
        for page in paginator.paginate(
            PolicyArn=arn,
            PolicyUsageFilter="PermissionsBoundary" if boundary else "PermissionsPolicy",
            PaginationConfig={"PageSize": calls.PAGE},
        ):
            listed.append(page)
    found: list[Attachment] = []
    for page in listed:
        for role in page.get("PolicyRoles", []):
            found.append(
                Attachment("Role", role["RoleName"], _role_owned(iam, role["RoleName"]), boundary)
            )
        for user in page.get("PolicyUsers", []):
            found.append(
                Attachment("User", user["UserName"], _user_owned(iam, user["UserName"]), boundary)
            )
        for group in page.get("PolicyGroups", []):
            found.append(Attachment("Group", group["GroupName"], False, boundary))
    return found


def _role_owned(iam: IAMClient, name: str) -> bool:
    got = calls.get_or_none("GetRole", partial(iam.get_role, RoleName=name))
    return got is not None and OWNER_TAG in calls.tags(got["Role"].get("Tags"))


def _user_owned(iam: IAMClient, name: str) -> bool:
    got = calls.get_or_none("GetUser", partial(iam.get_user, UserName=name))
    return got is not None and OWNER_TAG in calls.tags(got["User"].get("Tags"))


def _from_raw(
    raw: Mapping[str, Any],
    versions: Iterable[Mapping[str, Any]],
    tags: Mapping[str, str],
    attachments: tuple[Attachment, ...] | None,
) -> Policy:
    stored = tuple(
        Version(
            version_id=str(v["VersionId"]),
            create_date=_iso(v.get("CreateDate")),
            is_default=bool(v.get("IsDefaultVersion")),
            document=calls.document(v["Document"]) if v.get("Document") is not None else None,
        )
        for v in versions
    )
    default = next((v for v in stored if v.is_default), None)
    return Policy(
        name=raw["PolicyName"],
        document=(default.document or {}) if default is not None else {},
        path=raw.get("Path", "/"),
        description=raw.get("Description", "") or "",
        tags=dict(tags),
        arn=raw["Arn"],
        policy_id=raw.get("PolicyId", "") or "",
        default_version_id=str(raw.get("DefaultVersionId", "")),
        versions=stored,
        attachment_count=int(raw.get("AttachmentCount", 0) or 0),
        attachments=attachments,
    )


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return "" if value is None else str(value)
