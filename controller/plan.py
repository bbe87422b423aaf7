"""Pure planning: the exact, minimal IAM API calls that turn observed state into desired state.

`plan` and `plan_delete` never call AWS. The operator executes their output and `rolekeeper plan`
prints it, so a pull-request review shows precisely what the operator will do. One `Action` is
one IAM API call with the exact boto3 parameters; nothing is emitted for what already matches.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from controller import policy
from controller.model import (
    OWNER_TAG,
    OWNERSHIP_TAGS,
    Desired,
    Entity,
    Role,
    SpecError,
    User,
    owner_of,
)


@dataclass(frozen=True)
class Action:
    """One IAM API call: operation name, exact parameters, and a sentence for events and logs."""

    api: str
    params: Mapping[str, Any]
    summary: str

    @property
    def is_write(self) -> bool:
        return not self.api.startswith(("Get", "List"))


class Ownership(enum.Enum):
    """Whether Rolekeeper may touch the AWS entity a desired object names."""

    ABSENT = "absent"  # nothing there: create it
    OWNED = "owned"  # carries this object's owner tag
    ADOPT = "adopt"  # untagged, and the spec says adopt: true
    REFUSED = "refused"  # untagged and adopt is not set: hands off
    CONFLICT = "conflict"  # tagged as owned by another object

    @property
    def allowed(self) -> bool:
        return self in (Ownership.ABSENT, Ownership.OWNED, Ownership.ADOPT)


def ownership(desired: Desired, observed: Entity | None) -> Ownership:
    """Decide from the observed tags; the same namespace/name keeps ownership across a new uid
    (an object restored from backup is the same Git object), any other owner is a conflict."""
    if observed is None:
        return Ownership.ABSENT
    claim = owner_of(observed)
    if claim is None:
        return Ownership.ADOPT if desired.adopt else Ownership.REFUSED
    return Ownership.OWNED if claim[0] == desired.ref.owner else Ownership.CONFLICT


def refusal_message(desired: Desired, observed: Entity, verdict: Ownership) -> str:
    """The words a user sees when Rolekeeper will not touch an existing entity."""
    kind = "role" if isinstance(observed, Role) else "user"
    if verdict is Ownership.CONFLICT:
        claim = owner_of(observed)
        other = claim[0] if claim else "?"
        return (
            f"IAM {kind} {observed.name!r} is already managed by {other}; "
            f"two objects cannot own one AWS name: choose another spec.{kind}Name"
        )
    return (
        f"IAM {kind} {observed.name!r} already exists and was not created by Rolekeeper; "
        "set spec.adopt: true to take it over (its settings will be replaced by this spec)"
    )


def plan(desired: Desired, observed: Entity | None, partition: str = "aws") -> tuple[Action, ...]:
    """Calls that make `observed` (None: absent) equal to `desired`. Ownership is checked by the
    caller with `ownership()`; immutable differences (path) raise SpecError."""
    entity = desired.entity
    if observed is None:
        if isinstance(entity, Role):
            return _create_role(desired, entity, partition)
        return _create_user(desired, entity, partition)
    if isinstance(entity, Role):
        assert isinstance(observed, Role)
        actions = _update_role(desired, entity, observed, partition)
    else:
        assert isinstance(observed, User)
        actions = _update_user(desired, entity, observed, partition)
    if OWNER_TAG not in observed.tags:
        # Adopting: claim the entity first, so an AWS policy that scopes writes by our owner
        # tag (docs/aws-policy.json) allows every call after it. sorted() is stable.
        actions = tuple(sorted(actions, key=lambda a: a.api not in ("TagRole", "TagUser")))
    return actions


def plan_delete(observed: Entity) -> tuple[Action, ...]:
    """Calls that delete an entity in the order IAM demands (every DeleteConflict cause first)."""
    if isinstance(observed, Role):
        return _delete_role(observed)
    return _delete_user(observed)


def plan_release(observed: Entity) -> tuple[Action, ...]:
    """deletionPolicy: Retain — leave the entity, drop our ownership tags so it is nobody's."""
    keys = sorted(k for k in OWNERSHIP_TAGS if k in observed.tags)
    if not keys:
        return ()
    if isinstance(observed, Role):
        return (
            _act(
                "UntagRole", f"Released role {observed.name}", RoleName=observed.name, TagKeys=keys
            ),
        )
    return (
        _act("UntagUser", f"Released user {observed.name}", UserName=observed.name, TagKeys=keys),
    )


def differences(desired: Desired, observed: Entity) -> list[str]:
    """What differs, in words (used for drift events and the plan output)."""
    return [action.summary for action in plan(desired, observed)]


# --- roles -----------------------------------------------------------------------------------


def _create_role(desired: Desired, role: Role, partition: str) -> tuple[Action, ...]:
    params: dict[str, Any] = {
        "RoleName": role.name,
        "Path": role.path,
        "AssumeRolePolicyDocument": policy.to_json(role.assume_role_policy, partition=partition),
        "MaxSessionDuration": role.max_session_duration,
        "Tags": _tag_list(desired.tags()),
    }
    if role.description:
        params["Description"] = role.description
    if role.permissions_boundary:
        params["PermissionsBoundary"] = role.permissions_boundary
    actions = [Action("CreateRole", params, f"Created role {role.name}")]
    actions += _attach("Role", role.name, role.managed_policies)
    actions += _put_inline("Role", role.name, role.inline_policies, {}, partition)
    for profile in sorted(role.instance_profiles):
        actions += _add_instance_profile(desired, role, profile)
    return tuple(actions)


def _update_role(desired: Desired, role: Role, seen: Role, partition: str) -> tuple[Action, ...]:
    _check_immutable(desired, role.path, seen.path)
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
            _act(
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
            _act(
                "UpdateAssumeRolePolicy",
                f"Updated trust policy of role {role.name}: {detail}",
                RoleName=role.name,
                PolicyDocument=policy.to_json(role.assume_role_policy, partition=partition),
            )
        )
    actions += _boundary(
        "Role", role.name, role.permissions_boundary, seen.permissions_boundary, first=True
    )
    # Grant before revoke, so a change never leaves a window with fewer permissions than either.
    actions += _attach("Role", role.name, role.managed_policies - seen.managed_policies)
    actions += _put_inline("Role", role.name, role.inline_policies, seen.inline_policies, partition)
    actions += _detach("Role", role.name, seen.managed_policies - role.managed_policies)
    actions += _delete_inline(
        "Role", role.name, set(seen.inline_policies) - set(role.inline_policies)
    )
    actions += _boundary(
        "Role", role.name, role.permissions_boundary, seen.permissions_boundary, first=False
    )
    actions += _tags("Role", role.name, desired.tags(), seen.tags)
    for profile in sorted(role.instance_profiles - seen.instance_profiles):
        actions += _add_instance_profile(desired, role, profile)
    # Only the same-named profile is ours; a profile someone else put the role in is left alone.
    for profile in sorted((seen.instance_profiles - role.instance_profiles) & {role.name}):
        actions += _remove_instance_profile(role.name, profile, delete=True)
    return tuple(actions)


def _delete_role(role: Role) -> tuple[Action, ...]:
    actions: list[Action] = []
    for profile in sorted(role.instance_profiles):
        actions += _remove_instance_profile(role.name, profile, delete=profile == role.name)
    actions += _detach("Role", role.name, role.managed_policies)
    actions += _delete_inline("Role", role.name, set(role.inline_policies))
    actions.append(_act("DeleteRole", f"Deleted role {role.name}", RoleName=role.name))
    return tuple(actions)


def _add_instance_profile(desired: Desired, role: Role, profile: str) -> list[Action]:
    return [
        _act(
            "CreateInstanceProfile",
            f"Created instance profile {profile}",
            InstanceProfileName=profile,
            Path=role.path,
            Tags=_tag_list(desired.ref.ownership_tags()),
        ),
        _act(
            "AddRoleToInstanceProfile",
            f"Added role {role.name} to instance profile {profile}",
            InstanceProfileName=profile,
            RoleName=role.name,
        ),
    ]


def _remove_instance_profile(role_name: str, profile: str, delete: bool) -> list[Action]:
    actions = [
        _act(
            "RemoveRoleFromInstanceProfile",
            f"Removed role {role_name} from instance profile {profile}",
            InstanceProfileName=profile,
            RoleName=role_name,
        )
    ]
    if delete:
        actions.append(
            _act(
                "DeleteInstanceProfile",
                f"Deleted instance profile {profile}",
                InstanceProfileName=profile,
            )
        )
    return actions


# --- users -----------------------------------------------------------------------------------


def _create_user(desired: Desired, user: User, partition: str) -> tuple[Action, ...]:
    params: dict[str, Any] = {
        "UserName": user.name,
        "Path": user.path,
        "Tags": _tag_list(desired.tags()),
    }
    if user.permissions_boundary:
        params["PermissionsBoundary"] = user.permissions_boundary
    actions = [Action("CreateUser", params, f"Created user {user.name}")]
    actions += _attach("User", user.name, user.managed_policies)
    actions += _put_inline("User", user.name, user.inline_policies, {}, partition)
    actions += _add_groups(user.name, user.groups)
    return tuple(actions)


def _update_user(desired: Desired, user: User, seen: User, partition: str) -> tuple[Action, ...]:
    _check_immutable(desired, user.path, seen.path)
    actions: list[Action] = []
    actions += _boundary(
        "User", user.name, user.permissions_boundary, seen.permissions_boundary, first=True
    )
    actions += _attach("User", user.name, user.managed_policies - seen.managed_policies)
    actions += _put_inline("User", user.name, user.inline_policies, seen.inline_policies, partition)
    actions += _add_groups(user.name, user.groups - seen.groups)
    actions += _detach("User", user.name, seen.managed_policies - user.managed_policies)
    actions += _delete_inline(
        "User", user.name, set(seen.inline_policies) - set(user.inline_policies)
    )
    actions += _remove_groups(user.name, seen.groups - user.groups)
    actions += _boundary(
        "User", user.name, user.permissions_boundary, seen.permissions_boundary, first=False
    )
    actions += _tags("User", user.name, desired.tags(), seen.tags)
    return tuple(actions)


def _delete_user(user: User) -> tuple[Action, ...]:
    name = user.name
    creds = user.credentials
    actions: list[Action] = []
    if creds is not None:
        if creds.login_profile:
            actions.append(
                _act(
                    "DeleteLoginProfile", f"Deleted console password of user {name}", UserName=name
                )
            )
        for key_id in creds.access_keys:
            actions.append(
                _act(
                    "DeleteAccessKey",
                    f"Deleted access key {key_id} of user {name}",
                    UserName=name,
                    AccessKeyId=key_id,
                )
            )
        for serial in creds.mfa_devices:
            actions.append(
                _act(
                    "DeactivateMFADevice",
                    f"Deactivated MFA device {serial}",
                    UserName=name,
                    SerialNumber=serial,
                )
            )
            if ":mfa/" in serial:  # a virtual device ARN: it would be left orphaned otherwise
                actions.append(
                    _act(
                        "DeleteVirtualMFADevice",
                        f"Deleted MFA device {serial}",
                        SerialNumber=serial,
                    )
                )
        for cert in creds.signing_certificates:
            actions.append(
                _act(
                    "DeleteSigningCertificate",
                    f"Deleted signing certificate {cert}",
                    UserName=name,
                    CertificateId=cert,
                )
            )
        for key in creds.ssh_public_keys:
            actions.append(
                _act(
                    "DeleteSSHPublicKey",
                    f"Deleted SSH public key {key}",
                    UserName=name,
                    SSHPublicKeyId=key,
                )
            )
        for cred in creds.service_specific_credentials:
            actions.append(
                _act(
                    "DeleteServiceSpecificCredential",
                    f"Deleted service-specific credential {cred}",
                    UserName=name,
                    ServiceSpecificCredentialId=cred,
                )
            )
    actions += _remove_groups(name, user.groups)
    actions += _detach("User", name, user.managed_policies)
    actions += _delete_inline("User", name, set(user.inline_policies))
    actions.append(_act("DeleteUser", f"Deleted user {name}", UserName=name))
    return tuple(actions)


def _add_groups(user: str, groups: Iterable[str]) -> list[Action]:
    return [
        _act("AddUserToGroup", f"Added user {user} to group {g}", GroupName=g, UserName=user)
        for g in sorted(groups)
    ]


def _remove_groups(user: str, groups: Iterable[str]) -> list[Action]:
    return [
        _act(
            "RemoveUserFromGroup", f"Removed user {user} from group {g}", GroupName=g, UserName=user
        )
        for g in sorted(groups)
    ]


# --- shared by roles and users ----------------------------------------------------------------


def _act(api: str, summary: str, **params: Any) -> Action:
    return Action(api, params, summary)


def _check_immutable(desired: Desired, want: str, have: str) -> None:
    if want != have:
        raise SpecError(
            [
                f"spec.path: {want!r} differs from the existing path {have!r} of IAM "
                f"{desired.ref.kind[3:].lower()} {desired.aws_name!r}; a path cannot change "
                "in place (create a new object instead)"
            ]
        )


def _tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": tags[k]} for k in sorted(tags)]


def _attach(kind: str, name: str, arns: Iterable[str]) -> list[Action]:
    return [
        _act(f"Attach{kind}Policy", f"Attached {arn}", **{f"{kind}Name": name, "PolicyArn": arn})
        for arn in sorted(arns)
    ]


def _detach(kind: str, name: str, arns: Iterable[str]) -> list[Action]:
    return [
        _act(f"Detach{kind}Policy", f"Detached {arn}", **{f"{kind}Name": name, "PolicyArn": arn})
        for arn in sorted(arns)
    ]


def _put_inline(
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
            _act(
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


def _delete_inline(kind: str, name: str, policy_names: Iterable[str]) -> list[Action]:
    return [
        _act(
            f"Delete{kind}Policy",
            f"Deleted inline policy {p}",
            **{f"{kind}Name": name, "PolicyName": p},
        )
        for p in sorted(policy_names)
    ]


def _boundary(
    kind: str, name: str, want: str | None, have: str | None, first: bool
) -> list[Action]:
    """Setting a boundary goes first (it only narrows); removing it goes last."""
    if want == have:
        return []
    if want and first:
        return [
            _act(
                f"Put{kind}PermissionsBoundary",
                f"Set permissions boundary {want}",
                **{f"{kind}Name": name, "PermissionsBoundary": want},
            )
        ]
    if not want and not first:
        return [
            _act(
                f"Delete{kind}PermissionsBoundary",
                f"Removed permissions boundary {have}",
                **{f"{kind}Name": name},
            )
        ]
    return []


def _tags(kind: str, name: str, want: Mapping[str, str], have: Mapping[str, str]) -> list[Action]:
    actions = []
    changed = {k: v for k, v in want.items() if have.get(k) != v}
    if changed:
        actions.append(
            _act(
                f"Tag{kind}",
                "Set tags " + ", ".join(sorted(changed)),
                **{f"{kind}Name": name, "Tags": _tag_list(changed)},
            )
        )
    # aws: tags are AWS's own (CloudFormation, Service Catalog): UntagRole refuses them, and
    # asking on every reconcile would turn one adopted role into a permanent failure.
    extra = sorted(k for k in set(have) - set(want) if not k.lower().startswith("aws:"))
    if extra:
        actions.append(
            _act(
                f"Untag{kind}",
                "Removed tags " + ", ".join(extra),
                **{f"{kind}Name": name, "TagKeys": extra},
            )
        )
    return actions
