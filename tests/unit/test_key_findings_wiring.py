"""The operator turns status.accessKey's times into key findings (RK-USER-002/003).

Covers: a key older than 90 days and unused for 90 days gets both findings, keyed by its id
(never the secret); a fresh, used key gets none; no managed key, no finding; the object's
suppression annotation applies.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import kopf

from controller.operator.handlers import _key_findings


def body(annotations: dict[str, str] | None = None) -> kopf.Body:
    return kopf.Body({"metadata": {"name": "ci", "namespace": "team-a", "annotations": annotations or {}}})


def stamp(days_ago: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def key(created: int, used: int | None) -> dict[str, Any]:
    found = {"accessKeyId": "AKIAEXAMPLE", "created": stamp(created)}
    if used is not None:
        found["lastUsed"] = stamp(used)
    return found


def test_an_old_idle_key_gets_both_findings() -> None:
    found = _key_findings(body(), key(created=120, used=100))
    assert sorted(f.id for f in found) == ["RK-USER-002", "RK-USER-003"]
    assert all("AKIAEXAMPLE" in f.message for f in found)


def test_a_fresh_used_key_gets_none() -> None:
    assert _key_findings(body(), key(created=10, used=1)) == ()


def test_no_managed_key_no_finding() -> None:
    assert _key_findings(body(), None) == ()


def test_suppression_applies() -> None:
    found = _key_findings(body({"iam.rolekeeper.dev/suppress-findings": "RK-USER-002=rotated by hand"}),
                          key(created=120, used=1))
    [old] = found
    assert old.id == "RK-USER-002" and old.suppressed and old.reason == "rotated by hand"
