"""IAMUser: an IAM user with managed and inline policies, boundary, groups and tags.

A user carries credentials (keys, console password, MFA devices, certificates) that IAM refuses
to delete the user over; they are read only before a delete, and deleted first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from controller.aws import calls
from controller.core.actions import Action, act
from controller.core.view import EntityView
from controller.kinds import accesskeys, base
from controller.kinds.base import DEFAULT_LIMITS, Desired, Entity, Limits

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

    from controller.aws.snapshot import RawSnapshot

FIELDS = base.REFERENCE_FIELDS | frozenset(
    {
        "userName",
        "path",
        "managedPolicies",
        "inlinePolicies",
        "permissionsBoundary",
        "groups",
        "tags",
        "accessKey",
    }
)
NO_CREDENTIALS = (
    "the snapshot holds no access keys, login profile, MFA devices or other "
    "credentials: their delete calls, if any, are not listed"
)


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

    @property
    def entity_id(self) -> str:
        return self.user_id


def _user(entity: Entity) -> User:
    assert isinstance(entity, User), f"expected a User, got {type(entity).__name__}"
    return entity


class UserKind(base.KindDefaults):
    """The IAMUser kind."""

    name = "IAMUser"
    plural = "iamusers"
    noun = "user"
    name_field = "userName"
    id_field = "userId"
    snapshot_key = "users"
    # Group membership, access keys and login profiles are named by userName too.
    cloudtrail_keys = frozenset({"userName"})

    def parse(self, obj: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> Desired:
        """Parse and validate a whole IAMUser object (metadata + spec); raises SpecError."""
        ref, spec, errors = base.start(obj, self.name, FIELDS)
        user = User(
            name=base.name_field(spec, "userName", ref.name, errors),
            path=base.path_field(spec, errors),
            managed_policies=base.managed_policies_field(spec, limits, errors),
            inline_policies=base.inline_policies_field(spec, limits.user_inline_total, errors),
            permissions_boundary=base.boundary_field(spec, errors),
            groups=base.groups_field(spec, errors),
            tags=base.tags_field(spec, limits, errors),
        )
        refs = base.references_field(spec, ref.namespace, limits, errors)
        meta = obj.get("metadata") or {}
        key = accesskeys.parse(
            spec, meta if isinstance(meta, Mapping) else {}, f"{ref.name}-aws-credentials", errors
        )
        return replace(
            base.finish(obj, ref, user, spec, errors, refs, limits=limits), access_key=key
        )

    def view(self, desired: Desired) -> EntityView:
        user = _user(desired.entity)
        return EntityView(
            kind=self.name,
            namespace=desired.ref.namespace,
            name=user.name,
            path=user.path,
            documents={f"spec.inlinePolicies.{k}": v for k, v in user.inline_policies.items()},
            managed_policies=user.managed_policies,
            permissions_boundary=user.permissions_boundary,
            groups=user.groups,
            adopt=desired.adopt,
            access_keys=desired.access_key is not None,
        )

    def placeholder(self, name: str) -> User:
        return User(name=name)

    def read(
        self,
        iam: IAMClient,
        name: str,
        *,
        for_delete: bool = False,
        rare: bool = False,
        arn: str = "",
    ) -> User | None:
        """GetUser + attached, inline, groups; `for_delete` adds what blocks DeleteUser, and
        `rare` also lists service-specific credentials (CodeCommit, Keyspaces): few users have
        them, so finalize asks only after a DeleteConflict."""
        found = calls.get_or_none("GetUser", lambda: iam.get_user(UserName=name))
        if found is None:
            return None
        raw = found["User"]
        attached, inline = base.read_policies(iam, "User", name)
        groups = calls.pages(iam, "list_groups_for_user", "Groups", UserName=name)
        return User(
            name=raw["UserName"],
            path=raw.get("Path", "/"),
            managed_policies=frozenset(attached),
            inline_policies=inline,
            permissions_boundary=calls.boundary(raw),
            groups=frozenset(g["GroupName"] for g in groups),
            tags=calls.tags(raw.get("Tags")),
            credentials=read_credentials(iam, name, rare) if for_delete else None,
            arn=raw["Arn"],
            user_id=raw["UserId"],
        )

    def from_snapshot(self, raw: RawSnapshot) -> dict[str, Entity]:
        return {
            detail["UserName"]: User(
                name=detail["UserName"],
                path=detail.get("Path", "/"),
                managed_policies=frozenset(
                    p["PolicyArn"] for p in detail.get("AttachedManagedPolicies", [])
                ),
                inline_policies={
                    p["PolicyName"]: calls.document(p["PolicyDocument"])
                    for p in detail.get("UserPolicyList", [])
                },
                permissions_boundary=calls.boundary(detail),
                groups=frozenset(detail.get("GroupList", [])),
                tags=calls.tags(detail.get("Tags")),
                arn=detail["Arn"],
                user_id=detail["UserId"],
            )
            for detail in raw.details.get("UserDetailList", [])
        }

    def to_json(self, entity: Entity) -> dict[str, Any]:
        return base.entity_json(entity)

    def from_json(self, data: Mapping[str, Any]) -> User:
        return User(
            name=data["name"],
            path=data["path"],
            managed_policies=frozenset(data["managed_policies"]),
            inline_policies=data["inline_policies"],
            permissions_boundary=data["permissions_boundary"],
            groups=frozenset(data["groups"]),
            tags=data["tags"],
            arn=data["arn"],
            user_id=data["user_id"],
        )

    def plan(self, desired: Desired, observed: Entity | None, partition: str) -> tuple[Action, ...]:
        """Calls that make `observed` (None: absent) equal to `desired`; an immutable
        difference (path) raises SpecError."""
        user = _user(desired.entity)
        if observed is None:
            return _create(desired, user, partition)
        seen = _user(observed)
        return base.claim_first(_update(desired, user, seen, partition), seen, "TagUser")

    def plan_delete(self, observed: Entity) -> tuple[Action, ...]:
        return _delete_user(_user(observed))

    def plan_release(self, observed: Entity) -> tuple[Action, ...]:
        return base.release("User", observed)

    def documents(self, entity: Entity) -> dict[str, Mapping[str, Any]]:
        return {f"spec.inlinePolicies.{k}": v for k, v in _user(entity).inline_policies.items()}

    def document_field(self, action: Action) -> str | None:
        return base.inline_diff_field(action, "PutUserPolicy")

    def created(self, action: Action, response: Mapping[str, Any]) -> tuple[str, str] | None:
        made = response.get("User") if action.api == "CreateUser" else None
        return (str(made["Arn"]), str(made.get("UserId", ""))) if made else None

    def offline_notes(self, entity: Entity | None, actions: tuple[Action, ...]) -> list[str]:
        if any(a.api == "DeleteUser" for a in actions) and (
            entity is None or _user(entity).credentials is None
        ):
            return [NO_CREDENTIALS]
        return []

    def status_fields(
        self, observed: Entity | None, applied: Sequence[tuple[Action, Mapping[str, Any]]]
    ) -> dict[str, Any]:
        return {}  # arn and id are all a status needs

    def to_manifest(self, entity: Entity, namespace: str, name: str) -> dict[str, Any]:
        """The IAMUser a person would write for an observed user (`rolekeeper import`), in the
        examples' key order; credentials are never part of it."""
        user = _user(entity)
        spec: dict[str, Any] = {"userName": user.name}
        if user.path != "/":
            spec["path"] = user.path
        if user.groups:
            spec["groups"] = sorted(user.groups)
        spec.update(
            base.policies_spec(
                user.permissions_boundary, user.managed_policies, user.inline_policies
            )
        )
        return base.manifest(self.name, namespace, name, spec, user)


KIND = UserKind()


def read_credentials(iam: IAMClient, name: str, rare: bool = False) -> Credentials:
    """Everything attached to a user that IAM refuses to delete the user over."""
    login = calls.get_or_none("GetLoginProfile", lambda: iam.get_login_profile(UserName=name))
    keys = calls.pages(iam, "list_access_keys", "AccessKeyMetadata", UserName=name)
    mfa = calls.pages(iam, "list_mfa_devices", "MFADevices", UserName=name)
    certs = calls.pages(iam, "list_signing_certificates", "Certificates", UserName=name)
    ssh = calls.pages(iam, "list_ssh_public_keys", "SSHPublicKeys", UserName=name)
    service: list[Any] = []
    if rare:
        with calls.classified("ListServiceSpecificCredentials"):
            service = iam.list_service_specific_credentials(UserName=name).get(
                "ServiceSpecificCredentials", []
            )
    return Credentials(
        access_keys=tuple(k["AccessKeyId"] for k in keys),
        login_profile=login is not None,
        mfa_devices=tuple(d["SerialNumber"] for d in mfa),
        signing_certificates=tuple(c["CertificateId"] for c in certs),
        ssh_public_keys=tuple(k["SSHPublicKeyId"] for k in ssh),
        service_specific_credentials=tuple(c["ServiceSpecificCredentialId"] for c in service),
    )


def _create(desired: Desired, user: User, partition: str) -> tuple[Action, ...]:
    params: dict[str, Any] = {
        "UserName": user.name,
        "Path": user.path,
        "Tags": base.tag_list(desired.tags()),
    }
    if user.permissions_boundary:
        params["PermissionsBoundary"] = user.permissions_boundary
    actions = [Action("CreateUser", params, f"Created user {user.name}")]
    actions += base.attach("User", user.name, user.managed_policies)
    actions += base.put_inline("User", user.name, user.inline_policies, {}, partition)
    actions += _add_groups(user.name, user.groups)
    if desired.access_key is not None and not desired.observe_only:
        # What `plan` shows; the operator runs it in its own step (controller.operator.secrets),
        # announced in the Secret first and written there at once: its answer holds the secret.
        actions.append(
            act("CreateAccessKey", f"Created access key of user {user.name}", UserName=user.name)
        )
    return tuple(actions)


def _update(desired: Desired, user: User, seen: User, partition: str) -> tuple[Action, ...]:
    base.check_immutable("user", desired, user.path, seen.path)
    actions: list[Action] = []
    actions += base.boundary_actions(
        "User", user.name, user.permissions_boundary, seen.permissions_boundary, first=True
    )
    actions += base.attach("User", user.name, user.managed_policies - seen.managed_policies)
    actions += base.put_inline(
        "User", user.name, user.inline_policies, seen.inline_policies, partition
    )
    actions += _add_groups(user.name, user.groups - seen.groups)
    actions += base.detach("User", user.name, seen.managed_policies - user.managed_policies)
    actions += base.delete_inline(
        "User", user.name, set(seen.inline_policies) - set(user.inline_policies)
    )
    actions += _remove_groups(user.name, seen.groups - user.groups)
    actions += base.boundary_actions(
        "User", user.name, user.permissions_boundary, seen.permissions_boundary, first=False
    )
    actions += base.tag_actions("User", user.name, desired.tags(), seen.tags, desired.foreign_tags)
    return tuple(actions)


def _delete_user(user: User) -> tuple[Action, ...]:
    name = user.name
    creds = user.credentials
    actions: list[Action] = []
    if creds is not None:
        if creds.login_profile:
            actions.append(
                act("DeleteLoginProfile", f"Deleted console password of user {name}", UserName=name)
            )
        for key_id in creds.access_keys:
            actions.append(
                act(
                    "DeleteAccessKey",
                    f"Deleted access key {key_id} of user {name}",
                    UserName=name,
                    AccessKeyId=key_id,
                )
            )
        for serial in creds.mfa_devices:
            actions.append(
                act(
                    "DeactivateMFADevice",
                    f"Deactivated MFA device {serial}",
                    UserName=name,
                    SerialNumber=serial,
                )
            )
            if ":mfa/" in serial:  # a virtual device ARN: it would be left orphaned otherwise
                actions.append(
                    act(
                        "DeleteVirtualMFADevice",
                        f"Deleted MFA device {serial}",
                        SerialNumber=serial,
                    )
                )
        for cert in creds.signing_certificates:
            actions.append(
                act(
                    "DeleteSigningCertificate",
                    f"Deleted signing certificate {cert}",
                    UserName=name,
                    CertificateId=cert,
                )
            )
        for key in creds.ssh_public_keys:
            actions.append(
                act(
                    "DeleteSSHPublicKey",
                    f"Deleted SSH public key {key}",
                    UserName=name,
                    SSHPublicKeyId=key,
                )
            )
        for cred in creds.service_specific_credentials:
            actions.append(
                act(
                    "DeleteServiceSpecificCredential",
                    f"Deleted service-specific credential {cred}",
                    UserName=name,
                    ServiceSpecificCredentialId=cred,
                )
            )
    actions += _remove_groups(name, user.groups)
    actions += base.detach("User", name, user.managed_policies)
    actions += base.delete_inline("User", name, set(user.inline_policies))
    actions.append(act("DeleteUser", f"Deleted user {name}", UserName=name))
    return tuple(actions)


def _add_groups(user: str, groups: Iterable[str]) -> list[Action]:
    return [
        act("AddUserToGroup", f"Added user {user} to group {g}", GroupName=g, UserName=user)
        for g in sorted(groups)
    ]


def _remove_groups(user: str, groups: Iterable[str]) -> list[Action]:
    return [
        act(
            "RemoveUserFromGroup", f"Removed user {user} from group {g}", GroupName=g, UserName=user
        )
        for g in sorted(groups)
    ]
