"""An IAMUser's access key, delivered as a Kubernetes Secret, rotated crash-safely.

`spec.accessKey` asks Rolekeeper to keep exactly one working key of the user in a Secret, and to
rotate it. The secret half of a key exists once, in CreateAccessKey's answer: a crash between
that call and the Secret write leaves a key nobody can use. So every key creation is announced
first, in the Secret itself (the `pending-create` annotation lists the keys that existed
before), and the key is written into the Secret right after the call. What a crash leaves is
then always recognisable on the next reconcile:

- a key that appeared while a creation was pending and is neither the Secret's key nor the
  recorded previous one is an **orphan**: it is deleted before anything else is created;
- a key that was there before (and is not one Rolekeeper recorded) was **made by hand**: it is
  never deleted; it takes one of IAM's two slots, and when it leaves none free for a rotation
  the object reports it (Ready=False, Conflict) instead;
- the Secret's key is never deleted or deactivated, whatever else is true.

This module is pure apart from the two reads (`list_keys`, `last_used`): `plan` takes what the
Secret records, what IAM holds and the time, and returns the next step; the operator
(`controller.operator.secrets`) executes it and plans again until nothing is left to do.
The secret key itself only ever lives in a `NewKey`, whose repr hides it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from controller.aws import calls
from controller.core.actions import Action, act

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

FIELDS = frozenset({"secretName", "rotateAfter", "gracePeriod"})
DEFAULT_ROTATE_AFTER = 90 * 86400
DEFAULT_GRACE = 3600
# Not under iam.rolekeeper.dev/: Kopf keeps its own state under that prefix and ignores changes
# to it, so a new value there would wait for the next drift check instead of rotating now.
ROTATE_ANNOTATION = "rolekeeper.dev/rotate-key"
DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
MAX_KEYS = 2  # IAM's limit of access keys per user


@dataclass(frozen=True)
class AccessKeySpec:
    """What `spec.accessKey` (and the rotate annotation) ask for."""

    secret_name: str
    rotate_after: int = DEFAULT_ROTATE_AFTER  # seconds; 0: never rotated on a schedule
    grace_period: int = DEFAULT_GRACE  # seconds the previous key stays active after a rotation
    rotate_request: str = ""  # the rotate annotation's value ("" when absent)


@dataclass(frozen=True)
class AwsKey:
    """One access key as ListAccessKeys shows it (never the secret: IAM cannot return it)."""

    key_id: str
    active: bool
    created: datetime


@dataclass(frozen=True)
class Record:
    """What the Secret records (its data's key id and its annotations).

    `exists`: the Secret is there; `ours`: it is this object's (labels), else it is never
    written. `pending`: the key ids that existed when a CreateAccessKey was announced (None: no
    creation in flight).
    """

    exists: bool = False
    ours: bool = True
    current: str = ""
    previous: str = ""
    retire_at: datetime | None = None
    last_rotation: datetime | None = None
    rotate_request: str = ""
    pending: tuple[str, ...] | None = None


@dataclass(frozen=True)
class NewKey:
    """A key CreateAccessKey just made. The secret is never part of its repr or str."""

    key_id: str
    created: datetime
    secret: str = field(repr=False)

    def __str__(self) -> str:
        return f"access key {self.key_id}"


@dataclass(frozen=True)
class Step:
    """The next thing to do for one user's key.

    Exactly one of: `refuse` (a message; nothing is done), `create` (announce, CreateAccessKey,
    write the Secret: `record` is what the Secret records with the new key), `actions` +
    `record` (AWS calls, then the Secret's annotations set to `record`), or neither (done;
    `due` is when something is next due).
    """

    actions: tuple[Action, ...] = ()
    record: Record | None = None
    create: Action | None = None
    refuse: str = ""
    due: datetime | None = None

    @property
    def done(self) -> bool:
        return not (self.actions or self.record or self.create or self.refuse)


# --- parsing ----------------------------------------------------------------------------------


def parse_duration(value: object, where: str, errors: list[str]) -> int | None:
    """Seconds of "90d", "1h30m", "45s" or 0; None (with an error) for anything else."""
    if value in (0, "0"):
        return 0
    if isinstance(value, str) and value:
        match = DURATION.fullmatch(value)
        if match and any(match.groups()):
            days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
            return ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    errors.append(f"{where}: {value!r} is not a duration like 90d, 12h, 30m, 45s or 0")
    return None


def parse(
    spec: Mapping[str, Any], meta: Mapping[str, Any], default_secret: str, errors: list[str]
) -> AccessKeySpec | None:
    """`spec.accessKey` (None when absent: no key is managed)."""
    value = spec.get("accessKey")
    if value is None:
        return None
    if not isinstance(value, Mapping):
        errors.append("spec.accessKey: must be an object")
        return None
    unknown = sorted(str(k) for k in value if k not in FIELDS)
    errors.extend(f"spec.accessKey.{k}: unknown field" for k in unknown)
    name = value.get("secretName", default_secret) or default_secret
    if not isinstance(name, str) or not _secret_name_ok(name):
        errors.append(
            f"spec.accessKey.secretName: {name!r} is not a Secret name (lower-case letters, "
            "digits, - and ., at most 253 characters)"
        )
    rotate = parse_duration(value.get("rotateAfter", "90d"), "spec.accessKey.rotateAfter", errors)
    grace = parse_duration(value.get("gracePeriod", "1h"), "spec.accessKey.gracePeriod", errors)
    annotations = meta.get("annotations") or {}
    request = annotations.get(ROTATE_ANNOTATION, "") if isinstance(annotations, Mapping) else ""
    return AccessKeySpec(
        secret_name=str(name),
        rotate_after=DEFAULT_ROTATE_AFTER if rotate is None else rotate,
        grace_period=DEFAULT_GRACE if grace is None else grace,
        rotate_request=str(request or ""),
    )


def _secret_name_ok(name: str) -> bool:
    return 0 < len(name) <= 253 and bool(
        re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", name)
    )


# --- planning (pure) --------------------------------------------------------------------------


def plan(
    spec: AccessKeySpec,
    record: Record,
    keys: tuple[AwsKey, ...],
    user: str,
    now: datetime,
    known: frozenset[str] = frozenset(),
) -> Step:
    """The next step for `user`'s key. `known`: key ids the object's status records as
    Rolekeeper's (they survive a Secret deleted by hand: such a key is retired, never kept as
    if someone else had made it)."""
    if record.exists and not record.ours:
        return Step(
            refuse=f"Secret {spec.secret_name} exists and was not created by Rolekeeper for this "
            "IAMUser; it is never overwritten: delete it or set spec.accessKey.secretName"
        )
    ids = {k.key_id: k for k in keys}
    recorded = {record.current, record.previous} - {""}
    # 1. Orphans of a creation that crashed before its Secret write: delete them first.
    if record.pending is not None:
        orphans = sorted(set(ids) - set(record.pending) - recorded - known)
        if orphans:
            return Step(
                actions=tuple(
                    _delete(user, k, "orphan of an interrupted creation") for k in orphans
                ),
                record=replace(record, pending=None),
            )
    # 2. The previous key, past its grace period (or a record of one already gone).
    current = ids.get(record.current)
    previous = ids.get(record.previous) if record.previous else None
    if record.previous and (previous is None or record.previous == record.current):
        # Gone already, or a record naming the Secret's own key as previous: forget it.
        return Step(record=replace(record, previous="", retire_at=None))
    wanted = _rotation(spec, record, current, now)
    if previous is not None and (wanted or record.retire_at is None or record.retire_at <= now):
        # A rotation needs the slot now: the older key goes early.
        return Step(
            actions=_retire(user, previous), record=replace(record, previous="", retire_at=None)
        )
    # 3. Keys of this object that the Secret no longer records (the Secret was deleted or
    # edited): the next key replaces them, and they get the grace period.
    lost = sorted(k for k in known - recorded if k in ids)
    foreign = sorted(set(ids) - recorded - set(lost))
    if current is None and not wanted:
        wanted = "the Secret holds no key" if not lost else "the Secret lost the key"
    if wanted:
        keep = [k for k in (record.current, *lost) if k in ids]
        if len(keep) + len(foreign) >= MAX_KEYS:
            if foreign:
                return Step(refuse=_no_slot(user, foreign))
            # Two of our own and no Secret: retire the older now, keep the newer for grace.
            oldest = min(keep, key=lambda k: ids[k].created)
            return Step(actions=_retire(user, ids[oldest]), record=record)
        outgoing = max(keep, key=lambda k: ids[k].created) if keep else ""
        return Step(
            create=act(
                "CreateAccessKey", f"Created access key of user {user} ({wanted})", UserName=user
            ),
            record=replace(
                record,
                exists=True,
                previous=outgoing,
                retire_at=now + timedelta(seconds=spec.grace_period) if outgoing else None,
                last_rotation=now if outgoing or record.current else record.last_rotation,
                rotate_request=spec.rotate_request,
                pending=None,
            ),
        )
    if record.pending is not None:  # an announced creation that never happened
        return Step(record=replace(record, pending=None))
    return Step(due=next_due(spec, record, current))


def _rotation(spec: AccessKeySpec, record: Record, current: AwsKey | None, now: datetime) -> str:
    """Why the Secret's key must be replaced now ("" when it must not)."""
    if current is None:
        return ""
    if spec.rotate_request and spec.rotate_request != record.rotate_request:
        return "rotation requested"
    if spec.rotate_after and current.created + timedelta(seconds=spec.rotate_after) <= now:
        return "scheduled rotation"
    return ""


def next_due(spec: AccessKeySpec, record: Record, current: AwsKey | None) -> datetime | None:
    """When the key is next rotated (None: never on a schedule)."""
    if current is None or not spec.rotate_after:
        return None
    return current.created + timedelta(seconds=spec.rotate_after)


def _no_slot(user: str, foreign: list[str]) -> str:
    return (
        f"IAM user {user} has {len(foreign)} access key(s) Rolekeeper did not create "
        f"({', '.join(foreign)}) and IAM allows {MAX_KEYS}: there is no room for the key "
        "spec.accessKey asks for. Rolekeeper never deletes a key it did not create: delete or "
        "move the key(s) by hand"
    )


def _delete(user: str, key_id: str, why: str) -> Action:
    return act(
        "DeleteAccessKey",
        f"Deleted access key {key_id} of user {user} ({why})",
        UserName=user,
        AccessKeyId=key_id,
    )


def _retire(user: str, key: AwsKey) -> tuple[Action, ...]:
    """Deactivate, then delete: a crash between the two leaves a key nobody can use."""
    actions = []
    if key.active:
        actions.append(
            act(
                "UpdateAccessKey",
                f"Deactivated access key {key.key_id} of user {user} (replaced)",
                UserName=user,
                AccessKeyId=key.key_id,
                Status="Inactive",
            )
        )
    actions.append(_delete(user, key.key_id, "replaced"))
    return tuple(actions)


def guard(actions: tuple[Action, ...], secret_key: str) -> tuple[Action, ...]:
    """The actions, refusing (AssertionError) any that would touch the Secret's own key."""
    for action in actions:
        if secret_key and action.params.get("AccessKeyId") == secret_key:
            raise AssertionError(f"refusing {action.api} on the key the Secret holds")
    return actions


# --- AWS reads and the created key ------------------------------------------------------------


def list_keys(iam: IAMClient, user: str) -> tuple[AwsKey, ...]:
    found = calls.pages(iam, "list_access_keys", "AccessKeyMetadata", UserName=user)
    return tuple(
        AwsKey(k["AccessKeyId"], k.get("Status") == "Active", _utc(k["CreateDate"])) for k in found
    )


def last_used(iam: IAMClient, key_id: str) -> datetime | None:
    with calls.classified("GetAccessKeyLastUsed"):
        found = iam.get_access_key_last_used(AccessKeyId=key_id)
    when = (found.get("AccessKeyLastUsed") or {}).get("LastUsedDate")
    return _utc(when) if when else None


def new_key(response: Mapping[str, Any]) -> NewKey:
    """The key in CreateAccessKey's answer."""
    made = response["AccessKey"]
    return NewKey(
        key_id=str(made["AccessKeyId"]),
        created=_utc(made.get("CreateDate") or datetime.now(UTC)),
        secret=str(made["SecretAccessKey"]),
    )


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --- the Secret's contents --------------------------------------------------------------------


def secret_data(key: NewKey) -> dict[str, str]:
    """The Secret's string data: environment variables and a shared-credentials file."""
    return {
        "AWS_ACCESS_KEY_ID": key.key_id,
        "AWS_SECRET_ACCESS_KEY": key.secret,
        "credentials": (
            f"[default]\naws_access_key_id = {key.key_id}\naws_secret_access_key = {key.secret}\n"
        ),
    }


def timestamp(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return _utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return None
