"""What every kind shares: the Kind protocol, the object reference, and field parsers and planners.

A kind (`kinds.role`, `kinds.user`, ...) implements `Kind`; the engine, the operator and
`rolekeeper plan` only ever talk to that protocol, so adding a kind never touches them. Field
parsers append every broken rule to `errors` (so a user sees all of them at once) and return a
usable value; planners return the exact, minimal `Action`s, nothing for what already matches.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol

from controller.aws import calls
from controller.core import policy
from controller.core.actions import (
    CLUSTER_TAG,
    OWNER_TAG,
    OWNERSHIP_TAGS,
    RESERVED_TAG_PREFIX,
    UID_TAG,
    Action,
    act,
)
from controller.core.errors import AWSError, SpecError
from controller.core.foreigntags import (
    MAX_PATTERNS,
    TAG_CHARACTERS,
    TAG_PATTERN,
    ForeignTags,
    matches,
    pattern_problem,
)
from controller.core.podidentity import PodIdentity, TrustContext
from controller.core.view import EntityView
from controller.settings import DEFAULT_LIMITS, Limits

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

    from controller.aws.snapshot import RawSnapshot
    from controller.kinds.accesskeys import AccessKeySpec

__all__ = ["DEFAULT_LIMITS", "Desired", "Entity", "Kind", "Limits", "ObjectRef", "SpecError"]

# Patterns are used with fullmatch: a `$` would also accept a trailing newline (YAML `|` blocks).
NAME_PATTERN = re.compile(r"[\w+=,.@-]+", re.ASCII)
# botocore's pathType: "/" or "/" + at least one printable ASCII character + "/" ("//" is invalid).
PATH_PATTERN = re.compile(r"/([\x21-\x7e]+/)?")
POLICY_ARN_PATTERN = re.compile(r"arn:aws(-cn|-us-gov|-iso|-iso-b)?:iam::(aws|\d{12}):policy/.+")
# IAM's own character class for descriptions (CreateRole API reference).
DESCRIPTION_PATTERN = re.compile(r"[\t\n\r\x20-\x7e\xa1-\xff]*")
# TAG_PATTERN (IAM's class for tag keys and values) and TAG_CHARACTERS: core/foreigntags.py.
COMMON_FIELDS = frozenset({"deletionPolicy", "adopt", "managementPolicy", "ignoreTags"})
NO_FOREIGN_TAGS = ForeignTags()  # only aws: keys are left alone
# Fields naming an IAMPolicy object instead of an ARN (roles and users).
REFERENCE_FIELDS = frozenset({"managedPolicyRefs", "permissionsBoundaryRef"})

DeletionPolicy = Literal["Delete", "Retain"]
# Observe: read AWS and report the differences, never write (not even a tag); see engine.reconcile.
ManagementPolicy = Literal["Manage", "Observe"]


@dataclass(frozen=True)
class ObjectRef:
    """Which Kubernetes object a desired entity comes from; the source of ownership tags."""

    kind: str
    namespace: str
    name: str
    uid: str
    cluster: str = ""  # the operator's cluster identity ("" where none is known)

    @property
    def owner(self) -> str:
        return f"{self.namespace}/{self.name}"

    def ownership_tags(self) -> dict[str, str]:
        tags = {OWNER_TAG: self.owner, UID_TAG: self.uid}
        if self.cluster:
            tags[CLUSTER_TAG] = self.cluster
        return tags


class Entity(Protocol):
    """What every kind's entity dataclass offers (desired and observed alike)."""

    @property
    def name(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def tags(self) -> Mapping[str, str]: ...
    @property
    def arn(self) -> str: ...
    @property
    def entity_id(self) -> str: ...


@dataclass(frozen=True)
class Usage:
    """When an entity was last used and made (ISO 8601, "" unknown), for unused-identity findings;
    `field` is the status field that shows the last use."""

    field: str
    last_used: str
    created: str


@dataclass(frozen=True)
class PolicyRef:
    """An IAMPolicy object a role or user attaches (`managedPolicyRefs`) or is bounded by
    (`permissionsBoundaryRef`), by namespace and name; resolved to the policy's ARN once that
    object is Ready."""

    field: Literal["managedPolicyRefs", "permissionsBoundaryRef"]
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"IAMPolicy {self.namespace}/{self.name}"


@dataclass(frozen=True)
class Desired:
    """What one custom resource asks for: the entity plus how Rolekeeper may treat AWS."""

    ref: ObjectRef
    entity: Entity
    generation: int = 0
    adopt: bool = False
    deletion_policy: DeletionPolicy = "Delete"
    management_policy: ManagementPolicy = "Manage"
    references: tuple[PolicyRef, ...] = ()  # unresolved IAMPolicy references
    # A user's spec.accessKey (kinds/accesskeys.py): one key, delivered as a Secret, rotated.
    access_key: AccessKeySpec | None = None
    # A role's spec.serviceAccounts (core/podidentity.py): generated trust, annotated accounts.
    pod_identity: PodIdentity | None = None
    # Tag keys others own (spec.ignoreTags + the operator's --ignore-tags): left alone.
    foreign_tags: ForeignTags = NO_FOREIGN_TAGS

    @property
    def observe_only(self) -> bool:
        return self.management_policy == "Observe"

    @property
    def aws_name(self) -> str:
        return self.entity.name

    def tags(self) -> dict[str, str]:
        """The full tag set AWS should hold: the spec's tags plus our ownership tags."""
        return {**self.entity.tags, **self.ref.ownership_tags()}

    def in_cluster(self, cluster: str) -> Desired:
        """The same object as the operator of cluster `cluster` manages it."""
        return replace(self, ref=replace(self.ref, cluster=cluster))


class Kind(Protocol):
    """One IAM kind. Pure methods plan; `read*`, `refine`, `cleanup_orphans` and `tolerate` may
    read AWS through the client they are given (never write: writes are Actions)."""

    name: str  # Kubernetes kind: "IAMRole"
    plural: str  # "iamroles"
    noun: str  # "role", for messages
    name_field: str  # spec field holding the AWS name: "roleName"
    id_field: str  # status field holding AWS's id: "roleId"
    snapshot_key: str  # key of this kind's list in a `rolekeeper snapshot` file: "roles"
    # CloudTrail request parameters whose value names this kind's entity ("roleName"; an ...Arn
    # parameter by its ARN): an IAM event carrying one triggers a check (core/cloudtrail.py).
    cloudtrail_keys: frozenset[str]

    def parse(self, obj: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> Desired: ...
    def view(self, desired: Desired) -> EntityView: ...
    def bind_trust(self, desired: Desired, context: TrustContext) -> Desired: ...
    def placeholder(self, name: str) -> Entity: ...
    def read(
        self,
        iam: IAMClient,
        name: str,
        *,
        for_delete: bool = False,
        rare: bool = False,
        arn: str = "",
    ) -> Entity | None: ...
    def from_snapshot(self, raw: RawSnapshot) -> dict[str, Entity]: ...
    def to_json(self, entity: Entity) -> dict[str, Any]: ...
    def from_json(self, data: Mapping[str, Any]) -> Entity: ...
    def plan(
        self, desired: Desired, observed: Entity | None, partition: str
    ) -> tuple[Action, ...]: ...
    def plan_delete(self, observed: Entity) -> tuple[Action, ...]: ...
    def plan_release(self, observed: Entity) -> tuple[Action, ...]: ...
    def documents(self, entity: Entity) -> dict[str, Mapping[str, Any]]: ...
    def document_field(self, action: Action) -> str | None: ...
    def created(self, action: Action, response: Mapping[str, Any]) -> tuple[str, str] | None: ...
    def refine(
        self, iam: IAMClient, desired: Desired, actions: tuple[Action, ...]
    ) -> tuple[Action, ...]: ...
    def cleanup_orphans(
        self, iam: IAMClient, desired: Desired, observed: Entity | None
    ) -> tuple[Action, ...]: ...
    def tolerate(self, iam: IAMClient, action: Action, error: AWSError) -> bool: ...
    def offline_notes(self, entity: Entity | None, actions: tuple[Action, ...]) -> list[str]: ...
    def to_manifest(self, entity: Entity, namespace: str, name: str) -> dict[str, Any]: ...
    def status_fields(
        self, observed: Entity | None, applied: Sequence[tuple[Action, Mapping[str, Any]]]
    ) -> dict[str, Any]: ...
    def usage(self, observed: Entity) -> Usage | None: ...


class KindDefaults:
    """What a kind without AWS-only refinements inherits: nothing to refine, no orphans to clean
    up, no answer to tolerate, no usage facts (a role has its own of all four); no CloudTrail
    parameter names its entities (no event-driven checks)."""

    cloudtrail_keys: frozenset[str] = frozenset()

    def refine(
        self, iam: IAMClient, desired: Desired, actions: tuple[Action, ...]
    ) -> tuple[Action, ...]:
        return actions

    def bind_trust(self, desired: Desired, context: TrustContext) -> Desired:
        return desired  # only a role has a trust policy to generate statements into

    def cleanup_orphans(
        self, iam: IAMClient, desired: Desired, observed: Entity | None
    ) -> tuple[Action, ...]:
        return ()

    def tolerate(self, iam: IAMClient, action: Action, error: AWSError) -> bool:
        return False

    def usage(self, observed: Entity) -> Usage | None:
        return None


# --- object parsing: shared by every kind ----------------------------------------------------


def start(
    obj: Mapping[str, Any], kind: str, known: frozenset[str]
) -> tuple[ObjectRef, Mapping[str, Any], list[str]]:
    """The object's reference, its spec (an empty one when absent) and unknown-field errors."""
    meta = obj.get("metadata") or {}
    if not isinstance(meta, Mapping):
        meta = {}
    ref = ObjectRef(
        kind=kind,
        namespace=str(meta.get("namespace") or "default"),
        name=str(meta.get("name") or ""),
        uid=str(meta.get("uid") or ""),
    )
    errors: list[str] = []
    spec = obj.get("spec")
    if spec is None:
        spec = {}
    if not isinstance(spec, Mapping):
        errors.append(f"spec: must be an object, got {type(spec).__name__}")
        spec = {}
    unknown = [key for key in spec if key not in known and key not in COMMON_FIELDS]
    errors.extend(f"spec.{key}: unknown field" for key in sorted(map(str, unknown)))
    return ref, spec, errors


def finish(
    obj: Mapping[str, Any],
    ref: ObjectRef,
    entity: Entity,
    spec: Mapping[str, Any],
    errors: list[str],
    references: tuple[PolicyRef, ...] = (),
    limits: Limits = DEFAULT_LIMITS,
) -> Desired:
    """The Desired for a parsed entity, or SpecError naming every broken rule."""
    foreign = ignore_tags_field(spec, limits, entity.tags, errors)
    deletion_policy = spec.get("deletionPolicy", "Delete")
    if deletion_policy not in ("Delete", "Retain"):
        errors.append(f"spec.deletionPolicy: must be Delete or Retain, got {deletion_policy!r}")
        deletion_policy = "Delete"
    adopt = spec.get("adopt", False)
    if not isinstance(adopt, bool):
        errors.append(f"spec.adopt: must be true or false, got {adopt!r}")
    management = spec.get("managementPolicy", "Manage")
    if management not in ("Manage", "Observe"):
        errors.append(f"spec.managementPolicy: must be Manage or Observe, got {management!r}")
        management = "Manage"
    if errors:
        raise SpecError(errors)
    meta = obj.get("metadata") or {}
    generation = meta.get("generation") if isinstance(meta, Mapping) else 0
    return Desired(
        ref=ref,
        entity=entity,
        generation=generation if isinstance(generation, int) and is_int(generation) else 0,
        adopt=adopt is True,
        deletion_policy=deletion_policy,
        management_policy=management,
        references=references,
        foreign_tags=foreign,
    )


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def string_field(spec: Mapping[str, Any], key: str, default: str, errors: list[str]) -> str:
    value = spec.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        errors.append(f"spec.{key}: must be a string, got {type(value).__name__}")
        return default
    return value


def name_field(spec: Mapping[str, Any], key: str, fallback: str, errors: list[str]) -> str:
    name = string_field(spec, key, fallback, errors) or fallback
    # A long metadata.name is valid in Kubernetes: say where the name came from and what to do.
    origin = "" if spec.get(key) else f" (defaulted from metadata.name; set spec.{key})"
    if not name:
        errors.append(f"spec.{key}: required (metadata.name is empty)")
    elif len(name) > 64:
        errors.append(f"spec.{key}: {name!r} is {len(name)} characters, the maximum is 64{origin}")
    elif not NAME_PATTERN.fullmatch(name):
        errors.append(
            f"spec.{key}: {name!r} may only contain ASCII letters, digits and +=,.@_-{origin}"
        )
    return name


def path_field(spec: Mapping[str, Any], errors: list[str]) -> str:
    path = string_field(spec, "path", "/", errors)
    if len(path) > 512:
        errors.append(f"spec.path: {len(path)} characters exceeds 512")
    elif not PATH_PATTERN.fullmatch(path):
        errors.append(
            f"spec.path: {path!r} must be / or start and end with / with printable ASCII "
            "and no spaces in between (e.g. /apps/)"
        )
    return path


def string_list(spec: Mapping[str, Any], key: str, errors: list[str]) -> list[str]:
    value = spec.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors.append(f"spec.{key}: must be a list of strings")
        return []
    counts = Counter(value)
    for duplicate in sorted(v for v, n in counts.items() if n > 1):
        errors.append(f"spec.{key}: {duplicate!r} is listed more than once")
    return list(value)


def managed_policies_field(
    spec: Mapping[str, Any], limits: Limits, errors: list[str]
) -> frozenset[str]:
    arns = string_list(spec, "managedPolicies", errors)
    for i, arn in enumerate(arns):
        if not POLICY_ARN_PATTERN.fullmatch(arn):
            errors.append(
                f"spec.managedPolicies[{i}]: {arn!r} is not a policy ARN "
                "(arn:aws:iam::<account id or aws>:policy/<name>)"
            )
    if len(set(arns)) > limits.managed_policy_count:
        errors.append(
            f"spec.managedPolicies: {len(set(arns))} policies exceeds the limit "
            f"{limits.managed_policy_count}"
        )
    return frozenset(arns)


def boundary_field(spec: Mapping[str, Any], errors: list[str]) -> str | None:
    arn = string_field(spec, "permissionsBoundary", "", errors)
    if not arn:
        return None
    if not POLICY_ARN_PATTERN.fullmatch(arn):
        errors.append(
            f"spec.permissionsBoundary: {arn!r} is not a policy ARN "
            "(arn:aws:iam::<account id or aws>:policy/<name>)"
        )
    return arn


def groups_field(spec: Mapping[str, Any], errors: list[str]) -> frozenset[str]:
    groups = string_list(spec, "groups", errors)
    for i, group in enumerate(groups):
        if len(group) > 128 or not NAME_PATTERN.fullmatch(group):
            errors.append(
                f"spec.groups[{i}]: {group!r} is not a group name "
                "(1-128 ASCII letters, digits and +=,.@_-)"
            )
    if len(groups) > 10:
        errors.append(f"spec.groups: {len(groups)} groups exceeds the limit 10")
    return frozenset(groups)


def policy_document(
    doc: object, kind: Literal["trust", "identity"], field_path: str, errors: list[str]
) -> dict[str, Any]:
    if not isinstance(doc, Mapping):
        errors.append(
            f"{field_path}: must be a policy document object, got {type(doc).__name__}"
            + (
                " (write the document as YAML, not as a JSON string)"
                if isinstance(doc, str)
                else ""
            )
        )
        return {}
    try:
        problems = policy.validate(doc, kind, field_path)
    except policy.PolicyError as exc:
        problems = [f"{field_path}: {exc}"]
    errors.extend(problems)
    return {} if problems else dict(doc)


def inline_policies_field(
    spec: Mapping[str, Any], total_limit: int, errors: list[str]
) -> dict[str, Mapping[str, Any]]:
    value = spec.get("inlinePolicies") or {}
    if not isinstance(value, Mapping):
        errors.append("spec.inlinePolicies: must be a map of policy name to policy document")
        return {}
    docs: dict[str, Mapping[str, Any]] = {}
    for name, doc in value.items():
        where = f"spec.inlinePolicies.{name}"
        if not isinstance(name, str) or len(name) > 128 or not NAME_PATTERN.fullmatch(name):
            errors.append(f"{where}: policy name must be 1-128 ASCII letters, digits and +=,.@_-")
            continue
        parsed = policy_document(doc, "identity", where, errors)
        if parsed:
            docs[name] = parsed
    total = sum(policy.size(doc) for doc in docs.values())
    if total > total_limit:
        errors.append(
            f"spec.inlinePolicies: {total} characters in total exceeds the limit {total_limit} "
            "(whitespace not counted); move some statements to a managed policy"
        )
    return docs


def tags_field(spec: Mapping[str, Any], limits: Limits, errors: list[str]) -> dict[str, str]:
    value = spec.get("tags") or {}
    if not isinstance(value, Mapping):
        errors.append("spec.tags: must be a map of string to string")
        return {}
    tags: dict[str, str] = {}
    folded: dict[str, str] = {}
    for key, val in value.items():
        where = f"spec.tags.{key}"
        if not isinstance(key, str):
            errors.append(f"{where}: key must be a string, got {type(key).__name__} (quote it)")
            continue
        if key.lower() in folded:
            # IAM keeps the case of a user's or role's tag keys but compares them ignoring case.
            errors.append(f"{where}: same key as {folded[key.lower()]!r} (IAM ignores case)")
        folded.setdefault(key.lower(), key)
        if not isinstance(val, str):
            errors.append(f"{where}: value must be a string, got {type(val).__name__}")
            continue
        if not key or len(key) > 128:
            errors.append(f"{where}: key must be 1-128 characters")
        elif key.lower().startswith("aws:"):
            errors.append(f"{where}: keys starting with aws: are reserved by AWS")
        elif key.lower().startswith(RESERVED_TAG_PREFIX):
            errors.append(
                f"{where}: keys starting with {RESERVED_TAG_PREFIX} are set by Rolekeeper"
            )
        elif not TAG_PATTERN.fullmatch(key):
            errors.append(f"{where}: key may only contain {TAG_CHARACTERS}")
        elif len(val) > 256:
            errors.append(f"{where}: value is {len(val)} characters, the maximum is 256")
        elif not TAG_PATTERN.fullmatch(val):
            errors.append(f"{where}: value may only contain {TAG_CHARACTERS}")
        else:
            tags[key] = val
    # Our two ownership tags count against the same quota.
    if len(value) + len(OWNERSHIP_TAGS) > limits.tag_count:
        errors.append(
            f"spec.tags: {len(value)} tags exceeds the limit "
            f"{limits.tag_count - len(OWNERSHIP_TAGS)} "
            f"(IAM allows {limits.tag_count}; Rolekeeper uses {len(OWNERSHIP_TAGS)} for ownership)"
        )
    return tags


def ignore_tags_field(
    spec: Mapping[str, Any], limits: Limits, tags: Mapping[str, str], errors: list[str]
) -> ForeignTags:
    """`spec.ignoreTags` with the operator's `limits.ignore_tags`: the tag keys others own.
    A key of `tags` (the spec's) that one of them names is an error: a tag is either the spec's
    to set or others' to leave alone, never both (docs/tags.md)."""
    value = spec.get("ignoreTags") or []
    if not isinstance(value, list):
        errors.append("spec.ignoreTags: must be a list of tag keys or key prefixes ending in *")
        value = []
    if len(value) > MAX_PATTERNS:
        errors.append(f"spec.ignoreTags: {len(value)} patterns exceeds the limit {MAX_PATTERNS}")
    own: list[str] = []
    for i, pattern in enumerate(value):
        problem = pattern_problem(pattern)
        if problem is not None:
            errors.append(f"spec.ignoreTags[{i}]: {problem}")
        elif pattern in own:
            errors.append(f"spec.ignoreTags[{i}]: {pattern!r} is listed more than once")
        else:
            own.append(pattern)
    for key in tags:
        mine = next((p for p in own if matches(p, key)), None)
        theirs = next((p for p in limits.ignore_tags if matches(p, key)), None)
        if mine is not None:
            errors.append(
                f"spec.tags.{key}: matches {mine!r} of spec.ignoreTags; a tag is either set by "
                "this spec or left to others: remove it from one of the two"
            )
        elif theirs is not None:
            errors.append(
                f"spec.tags.{key}: matches {theirs!r}, a tag the operator leaves to others "
                "(rolekeeper run --ignore-tags); remove it from spec.tags"
            )
    patterns = tuple(dict.fromkeys((*limits.ignore_tags, *own)))
    return ForeignTags(patterns, quota=limits.tag_count)


# --- planning: shared by every kind ----------------------------------------------------------


def check_immutable(noun: str, desired: Desired, want: str, have: str) -> None:
    if want != have:
        raise SpecError(
            [
                f"spec.path: {want!r} differs from the existing path {have!r} of IAM "
                f"{noun} {desired.aws_name!r}; a path cannot change "
                "in place (create a new object instead)"
            ]
        )


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": tags[k]} for k in sorted(tags)]


def attach(kind: str, name: str, arns: Iterable[str]) -> list[Action]:
    return [
        act(f"Attach{kind}Policy", f"Attached {arn}", **{f"{kind}Name": name, "PolicyArn": arn})
        for arn in sorted(arns)
    ]


def detach(kind: str, name: str, arns: Iterable[str]) -> list[Action]:
    return [
        act(f"Detach{kind}Policy", f"Detached {arn}", **{f"{kind}Name": name, "PolicyArn": arn})
        for arn in sorted(arns)
    ]


def put_inline(
    kind: str,
    name: str,
    want: Mapping[str, Mapping[str, Any]],
    have: Mapping[str, Mapping[str, Any]],
    partition: str,
) -> list[Action]:
    actions = []
    for policy_name in sorted(want):
        doc = want[policy_name]
        old = have.get(policy_name)
        if old is not None and policy.equivalent(doc, old):
            continue
        if old is None:
            summary = f"Put inline policy {policy_name}"
        else:
            summary = f"Updated inline policy {policy_name}: " + "; ".join(
                policy.describe_diff(old, doc)
            )
        actions.append(
            act(
                f"Put{kind}Policy",
                summary,
                **{
                    f"{kind}Name": name,
                    "PolicyName": policy_name,
                    "PolicyDocument": policy.to_json(doc, partition=partition),
                },
            )
        )
    return actions


def delete_inline(kind: str, name: str, policy_names: Iterable[str]) -> list[Action]:
    return [
        act(
            f"Delete{kind}Policy",
            f"Deleted inline policy {p}",
            **{f"{kind}Name": name, "PolicyName": p},
        )
        for p in sorted(policy_names)
    ]


def boundary_actions(
    kind: str, name: str, want: str | None, have: str | None, first: bool
) -> list[Action]:
    """Setting a boundary goes first (it only narrows); removing it goes last."""
    if want == have:
        return []
    if want and first:
        return [
            act(
                f"Put{kind}PermissionsBoundary",
                f"Set permissions boundary {want}",
                **{f"{kind}Name": name, "PermissionsBoundary": want},
            )
        ]
    if not want and not first:
        return [
            act(
                f"Delete{kind}PermissionsBoundary",
                f"Removed permissions boundary {have}",
                **{f"{kind}Name": name},
            )
        ]
    return []


def tag_actions(
    kind: str,
    name: str,
    want: Mapping[str, str],
    have: Mapping[str, str],
    others: ForeignTags,
    target: Mapping[str, str] | None = None,
) -> list[Action]:
    """Tag{kind}/Untag{kind} making `have` hold exactly `want`, apart from the tags `others`
    own (never set, never removed: aws: keys and the ignored ones). The call names the entity
    by `{kind}Name` unless `target` gives its parameters (a policy: PolicyArn)."""
    changed, extra = tag_changes(kind.lower(), name, want, have, others)
    params = dict(target) if target is not None else {f"{kind}Name": name}
    tag = act(
        f"Tag{kind}", "Set tags " + ", ".join(sorted(changed)), **params, Tags=tag_list(changed)
    )
    untag = act(f"Untag{kind}", "Removed tags " + ", ".join(extra), **params, TagKeys=extra)
    added = sum(1 for k in changed if k not in have)
    # Tag before untag (never a moment with neither the old nor the new tag), unless the added
    # keys would first push the entity over IAM's quota: then make room first.
    first, second = (untag, tag) if len(have) + added > others.quota else (tag, untag)
    return [a for a in (first, second) if a.params.get("Tags") or a.params.get("TagKeys")]


def tag_changes(
    noun: str, name: str, want: Mapping[str, str], have: Mapping[str, str], others: ForeignTags
) -> tuple[dict[str, str], list[str]]:
    """(tags to set, keys to remove) so the entity holds `want` besides the tags others own;
    SpecError when `want` and those tags together exceed the quota (AWS would refuse the
    TagX call with LimitExceeded, after the plan's other calls had run)."""
    ours = others.ours(have)
    changed = {k: v for k, v in want.items() if ours.get(k) != v}
    extra = sorted(set(ours) - set(want))
    # aws: keys (CloudFormation, Service Catalog) are AWS's own: UntagRole refuses them, and
    # asking on every reconcile would turn one adopted role into a permanent failure.
    kept = sorted(others.theirs(have))
    if changed and len(want) + len(kept) > others.quota:
        shown = ", ".join(kept[:5]) + (", ..." if len(kept) > 5 else "")
        raise SpecError(
            [
                f"spec.tags: this object's {len(want)} tags (ownership tags included) and the "
                f"{len(kept)} tags others own on IAM {noun} {name!r} ({shown}) make "
                f"{len(want) + len(kept)}, over IAM's limit of {others.quota} tags: remove "
                "tags from spec.tags or from the entity"
            ]
        )
    return changed, extra


def release(api_noun: str, observed: Entity) -> tuple[Action, ...]:
    """deletionPolicy: Retain: leave the entity, drop our ownership tags so it is nobody's."""
    keys = sorted(k for k in OWNERSHIP_TAGS if k in observed.tags)
    if not keys:
        return ()
    return (
        act(
            f"Untag{api_noun}",
            f"Released {api_noun.lower()} {observed.name}",
            **{f"{api_noun}Name": observed.name, "TagKeys": keys},
        ),
    )


def claim_first(actions: tuple[Action, ...], observed: Entity, tag_api: str) -> tuple[Action, ...]:
    """Adopting: claim the entity first, so an AWS policy that scopes writes by our owner tag
    (docs/aws-policy.json) allows every call after it. sorted() is stable."""
    if OWNER_TAG in observed.tags:
        return actions
    return tuple(sorted(actions, key=lambda a: a.api != tag_api))


def read_policies(
    iam: IAMClient, api_noun: str, name: str
) -> tuple[list[str], dict[str, Mapping[str, Any]]]:
    """Attached policy ARNs and inline documents of a role or user, paginated."""
    lower = api_noun.lower()
    key = {f"{api_noun}Name": name}
    attached = calls.pages(iam, f"list_attached_{lower}_policies", "AttachedPolicies", **key)
    inline_names = calls.pages(iam, f"list_{lower}_policies", "PolicyNames", **key)
    get_inline = getattr(iam, f"get_{lower}_policy")
    inline = {}
    for policy_name in inline_names:
        with calls.classified(f"Get{api_noun}Policy"):
            raw = get_inline(**key, PolicyName=policy_name)["PolicyDocument"]
        inline[policy_name] = calls.document(raw)
    return [p["PolicyArn"] for p in attached], inline


def inline_diff_field(action: Action, put_api: str) -> str | None:
    """The spec field of an inline policy document a Put*Policy call sends."""
    if action.api == put_api:
        return f"spec.inlinePolicies.{action.params['PolicyName']}"
    return None


def entity_json(entity: Entity) -> dict[str, Any]:
    """A dataclass entity as the snapshot file stores it (sets sorted, credentials left out)."""
    data: dict[str, Any] = {}
    for key, value in vars(entity).items():
        if isinstance(value, frozenset):
            data[key] = sorted(value)
        elif key != "credentials":
            data[key] = value
    return data


# --- import: an observed entity as the object a person would write ----------------------------


def policies_spec(
    boundary: str | None,
    managed: Iterable[str],
    inline: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """spec.permissionsBoundary, managedPolicies (sorted) and inlinePolicies (canonical
    documents, by name) of an observed role or user, each only when set."""
    spec: dict[str, Any] = {}
    if boundary:
        spec["permissionsBoundary"] = boundary
    if arns := sorted(managed):
        spec["managedPolicies"] = arns
    if inline:
        spec["inlinePolicies"] = {k: policy.canonical(inline[k]) for k in sorted(inline)}
    return spec


def importable_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """The tags a spec may declare: AWS's own (aws:) and ours (rolekeeper.dev/) left out."""
    return {
        k: tags[k] for k in sorted(tags) if not k.lower().startswith(("aws:", RESERVED_TAG_PREFIX))
    }


def manifest(
    kind: str, namespace: str, name: str, spec: Mapping[str, Any], observed: Entity
) -> dict[str, Any]:
    """`rolekeeper import`'s object for an observed entity: the kind's `spec` fields (in the
    examples' order), then its tags, `managementPolicy: Observe`, and `adopt: true` unless the
    entity already carries this object's owner tag (Manage must adopt an untagged entity)."""
    from controller.kinds.registry import API_VERSION  # noqa: PLC0415  (it imports every kind)

    full = dict(spec)
    if tags := importable_tags(observed.tags):
        full["tags"] = tags
    full["managementPolicy"] = "Observe"
    if observed.tags.get(OWNER_TAG) != f"{namespace}/{name}":
        full["adopt"] = True
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": full,
    }


def references_field(
    spec: Mapping[str, Any], namespace: str, limits: Limits, errors: list[str]
) -> tuple[PolicyRef, ...]:
    """`managedPolicyRefs` and `permissionsBoundaryRef`: IAMPolicy objects by name (the same
    namespace unless `namespace` is given). The quota counts them with the literal ARNs."""
    found: list[PolicyRef] = []
    items = spec.get("managedPolicyRefs") or []
    if not isinstance(items, list):
        errors.append("spec.managedPolicyRefs: must be a list of {name, namespace}")
        items = []
    for i, item in enumerate(items):
        parsed = _policy_ref(item, f"spec.managedPolicyRefs[{i}]", "managedPolicyRefs",
                             namespace, errors)  # fmt: skip
        if parsed is not None:
            if parsed in found:
                errors.append(f"spec.managedPolicyRefs[{i}]: {parsed} is listed more than once")
            found.append(parsed)
    literal = spec.get("managedPolicies") or []
    strings = {v for v in literal if isinstance(v, str)} if isinstance(literal, list) else set()
    total = len(found) + len(strings)
    if found and total > limits.managed_policy_count:
        errors.append(
            f"spec.managedPolicyRefs: {total} policies with spec.managedPolicies exceeds the "
            f"limit {limits.managed_policy_count}"
        )
    boundary = spec.get("permissionsBoundaryRef")
    if boundary is not None:
        if spec.get("permissionsBoundary"):
            errors.append(
                "spec.permissionsBoundaryRef: give either permissionsBoundary (an ARN) or "
                "permissionsBoundaryRef (an IAMPolicy), not both"
            )
        parsed = _policy_ref(boundary, "spec.permissionsBoundaryRef", "permissionsBoundaryRef",
                             namespace, errors)  # fmt: skip
        if parsed is not None:
            found.append(parsed)
    return tuple(found)


def _policy_ref(
    item: object,
    where: str,
    field: Literal["managedPolicyRefs", "permissionsBoundaryRef"],
    namespace: str,
    errors: list[str],
) -> PolicyRef | None:
    if not isinstance(item, Mapping) or not isinstance(item.get("name"), str) or not item["name"]:
        errors.append(f"{where}: must be {{name: <IAMPolicy name>}} (namespace optional)")
        return None
    other = item.get("namespace", namespace)
    if not isinstance(other, str) or not other:
        errors.append(f"{where}.namespace: must be a namespace name")
        return None
    unknown = sorted(str(k) for k in item if k not in ("name", "namespace"))
    if unknown:
        errors.append(f"{where}: unknown field {unknown[0]}")
    return PolicyRef(field, other, str(item["name"]))


def resolve_references(desired: Desired, arns: Mapping[PolicyRef, str]) -> Desired:
    """`desired` with every reference replaced by its policy's ARN (all must be in `arns`)."""
    if not desired.references:
        return desired
    entity: Any = desired.entity
    managed = {arns[r] for r in desired.references if r.field == "managedPolicyRefs"}
    boundary = [arns[r] for r in desired.references if r.field == "permissionsBoundaryRef"]
    entity = replace(
        entity,
        managed_policies=frozenset(entity.managed_policies) | managed,
        permissions_boundary=boundary[0] if boundary else entity.permissions_boundary,
    )
    return replace(desired, entity=entity, references=())
