"""Read AWS IAM into the model: one role or user at a time, or the whole account in a few pages.

Only Get*/List* calls live here, so `rolekeeper plan` can run with a read-only policy. Every list
call goes through a paginator (IAM pages at 100 items by default, and truncation is silent).
Policy documents arrive as dicts (botocore URL-decodes and parses them) or, from other sources,
as JSON strings; both are accepted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from botocore.exceptions import ClientError

from controller.model import Credentials, Entity, Role, User

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

# Largest page IAM serves; fewer round trips for the same data.
PAGE = 1000


def read_role(iam: IAMClient, name: str) -> Role | None:
    """GetRole + attached, inline (each document), instance profiles; None when absent."""
    try:
        raw = iam.get_role(RoleName=name)["Role"]
    except ClientError as exc:
        if _code(exc) == "NoSuchEntity":
            return None
        raise
    attached, inline = _policies(iam, "role", RoleName=name)
    profiles = _pages(iam, "list_instance_profiles_for_role", "InstanceProfiles", RoleName=name)
    return _role(
        raw,
        attached=attached,
        inline=inline,
        profiles=(p["InstanceProfileName"] for p in profiles),
    )


def _policies(
    iam: IAMClient, kind: str, **name: str
) -> tuple[list[str], dict[str, Mapping[str, Any]]]:
    """Attached policy ARNs and inline documents of a role or user (`kind`), paginated."""
    attached = _pages(iam, f"list_attached_{kind}_policies", "AttachedPolicies", **name)
    inline_names = _pages(iam, f"list_{kind}_policies", "PolicyNames", **name)
    get_inline = getattr(iam, f"get_{kind}_policy")
    inline = {
        policy_name: _document(get_inline(**name, PolicyName=policy_name)["PolicyDocument"])
        for policy_name in inline_names
    }
    return [p["PolicyArn"] for p in attached], inline


def read_user(
    iam: IAMClient, name: str, credentials: bool = False, rare_credentials: bool = False
) -> User | None:
    """GetUser + attached, inline, groups; with `credentials`, what blocks DeleteUser.

    `rare_credentials` also lists service-specific credentials (CodeCommit, Keyspaces): few users
    have them, so finalize asks only after a DeleteConflict.
    """
    try:
        raw = iam.get_user(UserName=name)["User"]
    except ClientError as exc:
        if _code(exc) == "NoSuchEntity":
            return None
        raise
    attached, inline = _policies(iam, "user", UserName=name)
    groups = _pages(iam, "list_groups_for_user", "Groups", UserName=name)
    return User(
        name=raw["UserName"],
        path=raw.get("Path", "/"),
        managed_policies=frozenset(attached),
        inline_policies=inline,
        permissions_boundary=_boundary(raw),
        groups=frozenset(g["GroupName"] for g in groups),
        tags=_tags(raw.get("Tags")),
        credentials=read_credentials(iam, name, rare_credentials) if credentials else None,
        arn=raw["Arn"],
        user_id=raw["UserId"],
    )


def read_credentials(iam: IAMClient, name: str, rare: bool = False) -> Credentials:
    """Everything attached to a user that IAM refuses to delete the user over."""
    try:
        iam.get_login_profile(UserName=name)
        login_profile = True
    except ClientError as exc:
        if _code(exc) != "NoSuchEntity":
            raise
        login_profile = False
    keys = _pages(iam, "list_access_keys", "AccessKeyMetadata", UserName=name)
    mfa = _pages(iam, "list_mfa_devices", "MFADevices", UserName=name)
    certs = _pages(iam, "list_signing_certificates", "Certificates", UserName=name)
    ssh = _pages(iam, "list_ssh_public_keys", "SSHPublicKeys", UserName=name)
    service = (
        iam.list_service_specific_credentials(UserName=name).get("ServiceSpecificCredentials", [])
        if rare
        else []
    )
    return Credentials(
        access_keys=tuple(k["AccessKeyId"] for k in keys),
        login_profile=login_profile,
        mfa_devices=tuple(d["SerialNumber"] for d in mfa),
        signing_certificates=tuple(c["CertificateId"] for c in certs),
        ssh_public_keys=tuple(k["SSHPublicKeyId"] for k in ssh),
        service_specific_credentials=tuple(c["ServiceSpecificCredentialId"] for c in service),
    )


def instance_profile_tags(iam: IAMClient, name: str) -> dict[str, str] | None:
    """Tags of an instance profile (None when it does not exist)."""
    found = instance_profile(iam, name)
    return None if found is None else found[0]


def instance_profile(iam: IAMClient, name: str) -> tuple[dict[str, str], frozenset[str]] | None:
    """Tags and role names of an instance profile (None when it does not exist)."""
    try:
        profile = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    except ClientError as exc:
        if _code(exc) == "NoSuchEntity":
            return None
        raise
    return _tags(profile.get("Tags")), frozenset(r["RoleName"] for r in profile.get("Roles", []))


def read(
    iam: IAMClient, entity: Entity, credentials: bool = False, rare_credentials: bool = False
) -> Entity | None:
    """Re-read whatever kind `entity` is, by its name."""
    if isinstance(entity, Role):
        return read_role(iam, entity.name)
    return read_user(iam, entity.name, credentials, rare_credentials)


@dataclass(frozen=True)
class AccountSnapshot:
    """Every role and user of an account, read in a handful of paginated calls."""

    roles: Mapping[str, Role] = field(default_factory=dict)
    users: Mapping[str, User] = field(default_factory=dict)
    taken_at: float = 0.0  # time.monotonic() when the read finished
    pages: int = 0  # API calls the read made

    def find(self, entity: Entity) -> Entity | None:
        table: Mapping[str, Entity] = self.roles if isinstance(entity, Role) else self.users
        return table.get(entity.name)

    def to_json(self) -> dict[str, Any]:
        """A serialisable form for `rolekeeper snapshot` (plan without AWS credentials)."""
        return {
            "roles": [_entity_json(r) for r in self.roles.values()],
            "users": [_entity_json(u) for u in self.users.values()],
        }


def snapshot(iam: IAMClient) -> AccountSnapshot:
    """GetAccountAuthorizationDetails (roles, users) plus ListRoles for what it lacks.

    GAAD omits a role's Description and MaxSessionDuration; ListRoles has both at up to 1,000
    roles a page, so two paginated reads cover the whole account.
    """
    pages = 0
    role_details: list[dict[str, Any]] = []
    user_details: list[dict[str, Any]] = []
    for page in iam.get_paginator("get_account_authorization_details").paginate(
        Filter=["Role", "User"], PaginationConfig={"PageSize": PAGE}
    ):
        pages += 1
        role_details.extend(page.get("RoleDetailList", []))  # type: ignore[arg-type]
        user_details.extend(page.get("UserDetailList", []))  # type: ignore[arg-type]
    settings: dict[str, dict[str, Any]] = {}
    if role_details:
        for listed_page in iam.get_paginator("list_roles").paginate(
            PaginationConfig={"PageSize": PAGE}
        ):
            pages += 1
            for listed in listed_page["Roles"]:
                settings[listed["RoleName"]] = dict(listed)
    roles = {}
    for detail in role_details:
        merged = {**settings.get(detail["RoleName"], {}), **detail}
        roles[detail["RoleName"]] = _role(
            merged,
            attached=(p["PolicyArn"] for p in detail.get("AttachedManagedPolicies", [])),
            inline={
                p["PolicyName"]: _document(p["PolicyDocument"])
                for p in detail.get("RolePolicyList", [])
            },
            profiles=(p["InstanceProfileName"] for p in detail.get("InstanceProfileList", [])),
        )
    users = {
        detail["UserName"]: User(
            name=detail["UserName"],
            path=detail.get("Path", "/"),
            managed_policies=frozenset(
                p["PolicyArn"] for p in detail.get("AttachedManagedPolicies", [])
            ),
            inline_policies={
                p["PolicyName"]: _document(p["PolicyDocument"])
                for p in detail.get("UserPolicyList", [])
            },
            permissions_boundary=_boundary(detail),
            groups=frozenset(detail.get("GroupList", [])),
            tags=_tags(detail.get("Tags")),
            arn=detail["Arn"],
            user_id=detail["UserId"],
        )
        for detail in user_details
    }
    return AccountSnapshot(roles=roles, users=users, taken_at=time.monotonic(), pages=pages)


def snapshot_from_json(data: Mapping[str, Any]) -> AccountSnapshot:
    """Inverse of AccountSnapshot.to_json."""
    roles = {}
    for raw in data.get("roles", []):
        role = Role(
            name=raw["name"],
            assume_role_policy=raw["assume_role_policy"],
            path=raw["path"],
            description=raw["description"],
            max_session_duration=raw["max_session_duration"],
            managed_policies=frozenset(raw["managed_policies"]),
            inline_policies=raw["inline_policies"],
            permissions_boundary=raw["permissions_boundary"],
            tags=raw["tags"],
            instance_profiles=frozenset(raw["instance_profiles"]),
            arn=raw["arn"],
            role_id=raw["role_id"],
        )
        roles[role.name] = role
    users = {}
    for raw in data.get("users", []):
        user = User(
            name=raw["name"],
            path=raw["path"],
            managed_policies=frozenset(raw["managed_policies"]),
            inline_policies=raw["inline_policies"],
            permissions_boundary=raw["permissions_boundary"],
            groups=frozenset(raw["groups"]),
            tags=raw["tags"],
            arn=raw["arn"],
            user_id=raw["user_id"],
        )
        users[user.name] = user
    return AccountSnapshot(roles=roles, users=users)


# --- helpers ----------------------------------------------------------------------------------


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _pages(iam: IAMClient, operation: str, key: str, **params: Any) -> list[Any]:
    """Every item of a paginated list call (dicts, or strings for name lists)."""
    items: list[Any] = []
    paginator = iam.get_paginator(operation)  # type: ignore[call-overload]
    for page in paginator.paginate(**params, PaginationConfig={"PageSize": PAGE}):
        items.extend(page.get(key, []))
    return items


def _document(doc: Mapping[str, Any] | str) -> Mapping[str, Any]:
    if isinstance(doc, str):
        text = doc if doc.lstrip().startswith("{") else unquote(doc)
        parsed: Mapping[str, Any] = json.loads(text)
        return parsed
    return doc


def _boundary(raw: Mapping[str, Any]) -> str | None:
    boundary = raw.get("PermissionsBoundary") or {}
    arn = boundary.get("PermissionsBoundaryArn")
    return str(arn) if arn else None


def _tags(raw: Iterable[Any] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in raw or ()}


def _role(
    raw: Mapping[str, Any],
    attached: Iterator[str] | Iterable[str],
    inline: Mapping[str, Mapping[str, Any]],
    profiles: Iterable[str],
) -> Role:
    return Role(
        name=raw["RoleName"],
        assume_role_policy=_document(raw.get("AssumeRolePolicyDocument") or {}),
        path=raw.get("Path", "/"),
        description=raw.get("Description", "") or "",
        max_session_duration=int(raw.get("MaxSessionDuration", 3600)),
        managed_policies=frozenset(attached),
        inline_policies=dict(inline),
        permissions_boundary=_boundary(raw),
        tags=_tags(raw.get("Tags")),
        instance_profiles=frozenset(profiles),
        arn=raw["Arn"],
        role_id=raw["RoleId"],
    )


def _entity_json(entity: Entity) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in vars(entity).items():
        if isinstance(value, frozenset):
            data[key] = sorted(value)
        elif key == "credentials":
            continue
        else:
            data[key] = value
    return data
