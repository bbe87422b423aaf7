"""A role's last use, as AWS reports it: status.roleLastUsed and the unused-role finding.

Covers: RoleLastUsed and CreateDate from GetRole/GetAccountAuthorizationDetails become the
role's usage facts (never compared, so they never cause an update); the kind reports them for
status (`roleLastUsed: {lastUsedDate, region}`, the same text from either read, so status does
not flap) and for RK-UNUSED-001; the CRD's status schema accepts what is written; a snapshot
file keeps them, and one without them still loads.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

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
    assert ROLE.status_fields(seen, ()) == {
        "roleLastUsed": {"lastUsedDate": "2026-08-23T00:00:00Z", "region": "eu-west-1"}}
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


# GetRole's answer as botocore parses it (the shape of AWS's GetRole API reference example):
# RoleLastUsed.LastUsedDate a datetime, Region a string. moto 5.2.5 fills LastUsedDate (with
# microseconds, local time zone) once the role's credentials are used, and never Region.
GET_ROLE = {"Role": {
    "RoleName": "r", "Path": "/", "Arn": "arn:aws:iam::123456789012:role/r", "RoleId": "AROA1",
    "AssumeRolePolicyDocument": EC2_TRUST, "CreateDate": datetime(2025, 1, 1, tzinfo=UTC),
    "MaxSessionDuration": 3600,
    "RoleLastUsed": {"LastUsedDate": datetime(2026, 11, 30, 9, 15, 2, 123456, tzinfo=UTC),
                     "Region": "us-west-2"}}}


def test_get_role_and_the_snapshot_give_the_same_status() -> None:
    from controller.kinds.role import _from_raw
    read = _from_raw(GET_ROLE["Role"], attached=(), inline={}, profiles=())
    detail = {**GET_ROLE["Role"], "RoleLastUsed": {
        # the same instant, as another client may parse it: another zone, no microseconds lost
        "LastUsedDate": datetime(2026, 11, 30, 10, 15, 2, 123456,
                                 tzinfo=timezone(timedelta(hours=1))),
        "Region": "us-west-2"}}
    swept = ROLE.from_snapshot(RawSnapshot(details={"RoleDetailList": [detail]}))["r"]
    want = {"roleLastUsed": {"lastUsedDate": "2026-11-30T09:15:02Z", "region": "us-west-2"}}
    assert ROLE.status_fields(read, ()) == want
    assert ROLE.status_fields(swept, ()) == want
    # ... and through a `rolekeeper snapshot` file (plan --snapshot, import)
    assert ROLE.status_fields(ROLE.from_json(ROLE.to_json(swept)), ()) == want


def test_no_region_no_region_field() -> None:
    seen = ROLE.from_snapshot(RawSnapshot(details={"RoleDetailList": [{
        **GET_ROLE["Role"], "RoleLastUsed": {"LastUsedDate": NOW}}]}))["r"]
    assert ROLE.status_fields(seen, ()) == {"roleLastUsed": {"lastUsedDate": "2026-12-01T00:00:00Z"}}


def test_the_crd_accepts_what_is_written() -> None:
    from tests.unit.test_crds import node_at, violations
    seen = ROLE.from_snapshot(raw(NOW - timedelta(days=3)))["r"]
    written = ROLE.status_fields(seen, ())["roleLastUsed"]
    node = node_at("IAMRole", "status.roleLastUsed")
    assert violations(node, written, "status.roleLastUsed") == []
    assert set(node["properties"]) == {"lastUsedDate", "region"}
    assert node["properties"]["lastUsedDate"]["format"] == "date-time"
    assert violations(node, "2026-01-01T00:00:00Z") != []  # the old string form is not the schema
