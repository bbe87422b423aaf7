"""The IAM model: frozen Role and User shapes shared by desired and observed state, parsed from CRs.

The same dataclass describes what the spec asks for and what AWS holds, so `plan` compares like
with like. Parsing validates everything IAM would reject *before* any AWS call, so a bad spec
costs no API call and gets a message that names the field and the rule it broke.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from controller import policy

OWNER_TAG = "rolekeeper.dev/owner"
UID_TAG = "rolekeeper.dev/uid"
OWNERSHIP_TAGS = (OWNER_TAG, UID_TAG)
RESERVED_TAG_PREFIX = "rolekeeper.dev/"

# Patterns are used with fullmatch: a `$` would also accept a trailing newline (YAML `|` blocks).
NAME_PATTERN = re.compile(r"[\w+=,.@-]+", re.ASCII)
# botocore's pathType: "/" or "/" + at least one printable ASCII character + "/" ("//" is invalid).
PATH_PATTERN = re.compile(r"/([\x21-\x7e]+/)?")
POLICY_ARN_PATTERN = re.compile(r"arn:aws(-cn|-us-gov|-iso|-iso-b)?:iam::(aws|\d{12}):policy/.+")
# IAM's own character class for descriptions (CreateRole API reference).
DESCRIPTION_PATTERN = re.compile(r"[\t\n\r\x20-\x7e\xa1-\xff]*")
# IAM's class for tag keys and values, [\p{L}\p{Z}\p{N}_.:/=+\-@]: \w is letters, digits and _;
# \p{Z} is the Unicode space separators spelled out (\s would also let tabs and newlines through).
TAG_PATTERN = re.compile(r"[\w.:/=+\-@ \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*")
TAG_CHARACTERS = "letters, digits, spaces and _.:/=+-@"

DeletionPolicy = Literal["Delete", "Retain"]


@dataclass(frozen=True)
class Limits:
    """IAM quotas the parser enforces; the defaults are AWS's defaults."""

    trust_policy_size: int = 2048  # adjustable by AWS quota increase up to 4096
    role_inline_total: int = 10240
    user_inline_total: int = 2048
    managed_policy_count: int = 20  # 10 by default in AWS; 20 is the raised hard limit
    tag_count: int = 50


DEFAULT_LIMITS = Limits()


class SpecError(ValueError):
    """A spec that IAM would reject; `errors` lists every broken rule, each naming its field."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class ObjectRef:
    """Which Kubernetes object a desired entity comes from; the source of ownership tags."""

    kind: str
    namespace: str
    name: str
    uid: str

    @property
    def owner(self) -> str:
        return f"{self.namespace}/{self.name}"

    def ownership_tags(self) -> dict[str, str]:
        return {OWNER_TAG: self.owner, UID_TAG: self.uid}


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


@dataclass(frozen=True)
class Credentials:
    """What a user carries that blocks DeleteUser; only read before a delete."""

    access_keys: tuple[str, ...] = ()
    login_profile: bool = False
    mfa_devices: tuple[str, ...] = ()
    signing_certificates: tuple[str, ...] = ()
    ssh_public_keys: tuple[str, ...] = ()
    service_specific_credentials: tuple[str, ...] = ()


@dataclass(frozen=True)
class User:
    """An IAM user as Rolekeeper manages it; `arn`/`user_id` are only known once observed."""

    name: str
    path: str = "/"
    managed_policies: frozenset[str] = frozenset()
    inline_policies: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    permissions_boundary: str | None = None
    groups: frozenset[str] = frozenset()
    tags: Mapping[str, str] = field(default_factory=dict)
    credentials: Credentials | None = None  # None: not read (only finalize needs them)
    arn: str = ""
    user_id: str = ""


Entity = Role | User


@dataclass(frozen=True)
class Desired:
    """What one custom resource asks for: the entity plus how Rolekeeper may treat AWS."""

    ref: ObjectRef
    entity: Entity
    generation: int = 0
    adopt: bool = False
    deletion_policy: DeletionPolicy = "Delete"

    @property
    def aws_name(self) -> str:
        return self.entity.name

    def tags(self) -> dict[str, str]:
        """The full tag set AWS should hold: the spec's tags plus our ownership tags."""
        return {**self.entity.tags, **self.ref.ownership_tags()}


def owner_of(entity: Entity) -> tuple[str, str] | None:
    """The (owner, uid) recorded in an observed entity's tags, or None when nobody claims it."""
    owner = entity.tags.get(OWNER_TAG)
    if owner is None:
        return None
    return owner, entity.tags.get(UID_TAG, "")


def parse_role(obj: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> Desired:
    """Parse and validate a whole IAMRole object (metadata + spec); raises SpecError."""
    ref, spec, errors = _start(obj, "IAMRole")
    name = _name(spec, "roleName", ref.name, errors)
    trust = spec.get("assumeRolePolicy")
    if trust is None:
        errors.append("spec.assumeRolePolicy: required")
        trust = {}
    else:
        trust = _document(trust, "trust", "spec.assumeRolePolicy", errors)
        if trust and (n := policy.size(trust)) > limits.trust_policy_size:
            errors.append(
                f"spec.assumeRolePolicy: {n} characters exceeds the limit "
                f"{limits.trust_policy_size} (whitespace not counted)"
            )
    max_session = spec.get("maxSessionDuration", 3600)
    if not _is_int(max_session):
        errors.append(f"spec.maxSessionDuration: must be an integer, got {max_session!r}")
    elif max_session < 3600:
        errors.append(f"spec.maxSessionDuration: {max_session} is below the minimum 3600")
    elif max_session > 43200:
        errors.append(f"spec.maxSessionDuration: {max_session} is above the maximum 43200")
    description = _string(spec, "description", "", errors)
    if len(description) > 1000:
        errors.append(f"spec.description: {len(description)} characters exceeds 1000")
    elif not DESCRIPTION_PATTERN.fullmatch(description):
        bad = next(c for c in description if not DESCRIPTION_PATTERN.fullmatch(c))
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
        path=_path(spec, errors),
        description=description,
        max_session_duration=max_session if _is_int(max_session) else 3600,
        managed_policies=_managed_policies(spec, limits, errors),
        inline_policies=_inline_policies(spec, limits.role_inline_total, errors),
        permissions_boundary=_boundary(spec, errors),
        tags=_tags(spec, limits, errors),
        instance_profiles=frozenset({name}) if instance_profile is True else frozenset(),
    )
    return _finish(obj, ref, role, spec, errors)


def parse_user(obj: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> Desired:
    """Parse and validate a whole IAMUser object (metadata + spec); raises SpecError."""
    ref, spec, errors = _start(obj, "IAMUser")
    name = _name(spec, "userName", ref.name, errors)
    user = User(
        name=name,
        path=_path(spec, errors),
        managed_policies=_managed_policies(spec, limits, errors),
        inline_policies=_inline_policies(spec, limits.user_inline_total, errors),
        permissions_boundary=_boundary(spec, errors),
        groups=_groups(spec, errors),
        tags=_tags(spec, limits, errors),
    )
    return _finish(obj, ref, user, spec, errors)


def parse(obj: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> Desired:
    """Parse an IAMRole or IAMUser by its kind."""
    kind = obj.get("kind")
    if kind == "IAMRole":
        return parse_role(obj, limits)
    if kind == "IAMUser":
        return parse_user(obj, limits)
    raise SpecError([f"kind: expected IAMRole or IAMUser, got {kind!r}"])


# --- field parsers: each appends messages to `errors` and returns a usable value -----------------

ROLE_FIELDS = frozenset(
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
        "deletionPolicy",
        "adopt",
    }
)
USER_FIELDS = frozenset(
    {
        "userName",
        "path",
        "managedPolicies",
        "inlinePolicies",
        "permissionsBoundary",
        "groups",
        "tags",
        "deletionPolicy",
        "adopt",
    }
)


def _start(obj: Mapping[str, Any], kind: str) -> tuple[ObjectRef, Mapping[str, Any], list[str]]:
    meta = obj.get("metadata") or {}
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
    known = ROLE_FIELDS if kind == "IAMRole" else USER_FIELDS
    errors.extend(f"spec.{key}: unknown field" for key in sorted(set(spec) - known))
    return ref, spec, errors


def _finish(
    obj: Mapping[str, Any],
    ref: ObjectRef,
    entity: Entity,
    spec: Mapping[str, Any],
    errors: list[str],
) -> Desired:
    deletion_policy = spec.get("deletionPolicy", "Delete")
    if deletion_policy not in ("Delete", "Retain"):
        errors.append(f"spec.deletionPolicy: must be Delete or Retain, got {deletion_policy!r}")
        deletion_policy = "Delete"
    adopt = spec.get("adopt", False)
    if not isinstance(adopt, bool):
        errors.append(f"spec.adopt: must be true or false, got {adopt!r}")
    if errors:
        raise SpecError(errors)
    generation = (obj.get("metadata") or {}).get("generation") or 0
    return Desired(
        ref=ref,
        entity=entity,
        generation=int(generation),
        adopt=adopt is True,
        deletion_policy=deletion_policy,
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _string(spec: Mapping[str, Any], key: str, default: str, errors: list[str]) -> str:
    value = spec.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        errors.append(f"spec.{key}: must be a string, got {type(value).__name__}")
        return default
    return value


def _name(spec: Mapping[str, Any], key: str, fallback: str, errors: list[str]) -> str:
    name = _string(spec, key, fallback, errors) or fallback
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


def _path(spec: Mapping[str, Any], errors: list[str]) -> str:
    path = _string(spec, "path", "/", errors)
    if len(path) > 512:
        errors.append(f"spec.path: {len(path)} characters exceeds 512")
    elif not PATH_PATTERN.fullmatch(path):
        errors.append(
            f"spec.path: {path!r} must be / or start and end with / with printable ASCII "
            "and no spaces in between (e.g. /apps/)"
        )
    return path


def _string_list(spec: Mapping[str, Any], key: str, errors: list[str]) -> list[str]:
    value = spec.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors.append(f"spec.{key}: must be a list of strings")
        return []
    for duplicate in sorted({v for v in value if value.count(v) > 1}):
        errors.append(f"spec.{key}: {duplicate!r} is listed more than once")
    return list(value)


def _managed_policies(spec: Mapping[str, Any], limits: Limits, errors: list[str]) -> frozenset[str]:
    arns = _string_list(spec, "managedPolicies", errors)
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


def _boundary(spec: Mapping[str, Any], errors: list[str]) -> str | None:
    arn = _string(spec, "permissionsBoundary", "", errors)
    if not arn:
        return None
    if not POLICY_ARN_PATTERN.fullmatch(arn):
        errors.append(
            f"spec.permissionsBoundary: {arn!r} is not a policy ARN "
            "(arn:aws:iam::<account id or aws>:policy/<name>)"
        )
    return arn


def _groups(spec: Mapping[str, Any], errors: list[str]) -> frozenset[str]:
    groups = _string_list(spec, "groups", errors)
    for i, group in enumerate(groups):
        if len(group) > 128 or not NAME_PATTERN.fullmatch(group):
            errors.append(
                f"spec.groups[{i}]: {group!r} is not a group name "
                "(1-128 ASCII letters, digits and +=,.@_-)"
            )
    if len(groups) > 10:
        errors.append(f"spec.groups: {len(groups)} groups exceeds the limit 10")
    return frozenset(groups)


def _document(
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


def _inline_policies(
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
        parsed = _document(doc, "identity", where, errors)
        if parsed:
            docs[name] = parsed
    total = sum(policy.size(doc) for doc in docs.values())
    if total > total_limit:
        errors.append(
            f"spec.inlinePolicies: {total} characters in total exceeds the limit {total_limit} "
            "(whitespace not counted); move some statements to a managed policy"
        )
    return docs


def _tags(spec: Mapping[str, Any], limits: Limits, errors: list[str]) -> dict[str, str]:
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
