"""A role's last use, as AWS reports it: status.roleLastUsed and the unused-role finding.

Covers: RoleLastUsed and CreateDate from GetRole/GetAccountAuthorizationDetails become the
role's usage facts (never compared, so they never cause an update); the kind reports them for
status and for RK-UNUSED-001; a snapshot file without them still loads.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from controller.aws.snapshot import RawSnapshot
from controller.core.findings import usage_findings
from controller.kinds import registry
from controller.kinds.role import Role
from tests.helpers import EC2_TRUST

ROLE = registry.get("IAMRole")
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def raw(last_used: datetime | None) -> RawSnapshot:
    detail = {"RoleName": "r", "Path": "/", "Arn": "arn:aws:iam::123456789012:role/r", "RoleId": "AROA1",
              "AssumeRolePolicyDocument": EC2_TRUST, "CreateDate": NOW - timedelta(days=400)}
    if last_used is not None:
        detail["RoleLastUsed"] = {"LastUsedDate": last_used, "Region": "eu-west-1"}
    return RawSnapshot(details={"RoleDetailList": [detail]})


def test_last_use_reaches_status_and_usage() -> None:
    seen = ROLE.from_snapshot(raw(NOW - timedelta(days=100)))["r"]
    assert ROLE.status_fields(seen, ()) == {"roleLastUsed": (NOW - timedelta(days=100)).isoformat()}
    usage = ROLE.usage(seen)
    assert usage is not None and usage.field == "status.roleLastUsed"
    [finding] = usage_findings("role", usage.field, last_used=datetime.fromisoformat(usage.last_used),
                               created=datetime.fromisoformat(usage.created), now=NOW)
    assert finding.id == "RK-UNUSED-001" and "100 days" in finding.message


def test_a_never_used_role_counts_from_its_creation() -> None:
    seen = ROLE.from_snapshot(raw(None))["r"]
    assert ROLE.status_fields(seen, ()) == {}
    usage = ROLE.usage(seen)
    assert usage is not None and usage.last_used == ""
    [finding] = usage_findings("role", usage.field, last_used=None,
                               created=datetime.fromisoformat(usage.created), now=NOW)
    assert "since it was created" in finding.message


def test_usage_facts_never_make_two_roles_differ() -> None:
    base = Role(name="r", assume_role_policy=EC2_TRUST)
    assert base == Role(name="r", assume_role_policy=EC2_TRUST, last_used="2026-01-01T00:00:00+00:00")


def test_an_older_snapshot_file_without_them_loads() -> None:
    data = ROLE.to_json(Role(name="r", assume_role_policy=EC2_TRUST))
    del data["last_used"], data["created"]
    assert ROLE.from_json(data).last_used == ""  # type: ignore[attr-defined]
