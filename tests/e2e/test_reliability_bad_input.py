"""Reliability under bad input: the hostile-object catalogue (tests/e2e/badinput.py) applied at once.

Covers, for every case of the catalogue (92: invalid names, wrong types, huge policies, Principal
in an identity policy, NotPrincipal with Allow, unknown fields, characters outside IAM's ranges,
51 tags, aws: and forged ownership tag keys, duplicated and non-existent policy ARNs, trust
naming a non-existent role, JSON strings where objects belong, names of hand-made entities; and
from issue 14: documents nested 600 deep, numbers beyond 2^53, every bound of the policy
schema, bidi and NUL characters, malformed Statement/Action/Resource/Principal/Condition …):
- `rejected`: kubectl apply fails for that object with the catalogue's message, nothing stored;
- `InvalidSpec`: Ready=False/InvalidSpec with the message, and not one AWS call names the entity;
- `Conflict`: Ready=False/Conflict, no write but the create AWS refuses (name taken), the
  hand-made entity unchanged;
- `DependencyNotReady`: a referenced policy, boundary or group is missing: reads, no write;
- `AWSError`: Ready=False/AWSError with AWS's message, after exactly the catalogued writes (each
  successful write once: no retry storm);
and that nothing else in the account changed (roles, users, groups, policies, instance profiles,
compared before and after, and again after every object is deleted), and that the operator's log
holds no traceback (Kopf's own, or ours) for the whole run.

What this cannot prove: where moto accepts what AWS refuses (a trust policy naming a missing
role, a missing boundary policy) the proxy answers as AWS documents it would; the test proves
the operator's reaction to that answer, not that AWS gives it.
"""

from __future__ import annotations

import json
import secrets
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

import pytest

from tests.e2e import badinput
from tests.e2e import reliability as rl
from tests.e2e.conftest import Aws
from tests.harness import kube
from tests.harness.envtest import Cluster
from tests.harness.util import until
from tests.helpers import EC2_TRUST, S3_READ

pytestmark = pytest.mark.e2e

PRINCIPAL_WINDOW = 6.0
HAND_MADE = ("hand-made-role-name", "hand-made-user-name")


def aws_rules(action: str, params: Mapping[str, list[str]]) -> tuple[int, str] | None:
    """Real AWS's answers where moto is lenient (IAM API reference, error codes of CreateRole)."""
    document = (params.get("AssumeRolePolicyDocument") or params.get("PolicyDocument") or [""])[0]
    if action in ("CreateRole", "UpdateAssumeRolePolicy") and badinput.NO_SUCH_ROLE_ARN in document:
        return rl.iam_error(
            "MalformedPolicyDocument", f'Invalid principal in policy: "AWS":"{badinput.NO_SUCH_ROLE_ARN}"'
        )
    if (params.get("PermissionsBoundary") or [""])[0] == badinput.NO_SUCH_BOUNDARY_ARN:
        return rl.iam_error(
            "NoSuchEntity",
            f"Scope ARN: {badinput.NO_SUCH_BOUNDARY_ARN} does not exist or is not attachable.",
            status=404,
        )
    return None


def others_removed(state: dict[tuple[str, str], dict[str, Any]], namespace: str) -> dict[tuple[str, str], dict[str, Any]]:
    """The account minus what other namespaces' objects own (the session operator may be
    correcting drift on them meanwhile); hand-made and our own entities all stay."""
    foreign = {
        name for (kind, name), entity in state.items()
        if kind in ("role", "user")
        and rl.OWNER_TAG in entity["tags"]
        and not entity["tags"][rl.OWNER_TAG].startswith(f"{namespace}/")
    }
    return {key: value for key, value in state.items()
            if not (key[0] in ("role", "user", "instance-profile") and key[1] in foreign)}


def test_bad_input_catalogue(crds: Cluster, namespace: str, aws: Aws) -> None:
    iam = aws.console()
    prefix = f"rk-bad-{secrets.token_hex(3)}"
    cases = badinput.CASES
    stored = [c for c in cases if c.outcome != "rejected"]
    for case in cases:
        if case.id in HAND_MADE:  # the names someone else already uses
            make_by_hand(iam, case, prefix)
    proxy = rl.RecordingProxy.for_server(aws.server)
    proxy.rules.append(aws_rules)
    before = others_removed(rl.whole_account(iam), namespace)
    try:
        with rl.operator(crds.kubeconfig, proxy.env(aws.server), namespace,
                         extra_args=["--principal-window", str(PRINCIPAL_WINDOW)]) as op:
            started = time.monotonic()
            done = apply_json(crds, namespace, [c.obj(prefix) for c in cases])
            check_rejections(done, cases)
            live = wait_for_verdicts(crds, namespace, stored)
            verdict_s = time.monotonic() - started
            for case in stored:
                condition = kube.ready_condition(live[case.id])
                assert condition["status"] == "False", case.id
                assert case.fragment in condition["message"], (case.id, condition["message"])
                check_writes(proxy, case, prefix)
            for case in (c for c in cases if c.outcome == "rejected"):
                assert not proxy.requests(entities=[case.aws_name(prefix)]), case.id
            after = others_removed(rl.whole_account(iam), namespace)
            created = set(after) - set(before)
            expected_new = {rl.aws_key(c.obj(prefix)) for c in stored
                            if c.outcome == "AWSError" and any(ok for _, ok in c.writes)}
            assert created == expected_new, rl.state_diff(before, after)
            for key in expected_new:  # the partial entity is ours, so deleting the object cleans it
                assert after[key]["tags"][rl.OWNER_TAG].startswith(f"{namespace}/")
            unchanged = {k: v for k, v in after.items() if k not in expected_new}
            assert unchanged == before, rl.state_diff(before, unchanged)
            objects = [c.obj(prefix) for c in stored]
            kube.delete_all(crds, namespace, objects)
            rl.wait_converged(crds, namespace, [], gone=objects, timeout=120)
            final = others_removed(rl.whole_account(iam), namespace)
            assert final == before, rl.state_diff(before, final)
            for case in stored:  # deleting an object that never reached AWS costs no call either
                if case.outcome == "InvalidSpec":
                    assert not proxy.requests(entities=[case.aws_name(prefix)]), case.id
            log = op.log_path.read_text(errors="replace")
            assert "Traceback" not in log, op.log_tail(120)
    finally:
        proxy.stop()
        for case in cases:
            if case.id in HAND_MADE:
                remove_by_hand(iam, case, prefix)
    outcomes = Counter(c.outcome for c in cases)
    rl.report("bad-input", {
        "cases": len(cases),
        "by_outcome": dict(sorted(outcomes.items())),
        "all_verdicts_s": round(verdict_s, 1),
        "aws_calls": len(proxy.requests()),
        "aws_writes": sum(1 for r in proxy.requests() if r.is_write),
    })
    assert len(cases) >= 90


def apply_json(cluster: Cluster, namespace: str, objects: list[dict[str, Any]]) -> Any:
    """kube.apply_all, as a stream of JSON objects (kubectl reads them one after another):
    PyYAML's dumper recurses, and the catalogue holds documents nested 600 deep (the point);
    and YAML cannot carry the JSON escapes of NUL or of characters outside the BMP."""
    docs = [{**o, "metadata": {**o["metadata"], "namespace": namespace}} for o in objects]
    stream = "".join(f"{json.dumps(doc)}\n" for doc in docs)
    return cluster.kubectl("apply", "-f", "-", input=stream, check=False, timeout=180)


def check_rejections(done: Any, cases: tuple[badinput.Case, ...]) -> None:
    """kubectl applies in order and prints one error per refused object, in the same order."""
    errors = [e for e in done.stderr.split("Error from server") if e.strip()]
    rejected = [c for c in cases if c.outcome == "rejected"]
    assert len(errors) == len(rejected), done.stderr
    for case, error in zip(rejected, errors, strict=True):
        # Schema errors name the object; a strict-decoding error (unknown field) does not.
        named = f'"{case.obj("")["metadata"]["name"]}"' in error or "strict decoding" in error
        assert named and case.fragment in error, (case.id, error)
    for case in cases:
        created = f"/{case.obj('')['metadata']['name']} created" in done.stdout
        assert created == (case.outcome != "rejected"), (case.id, done.stdout)


def wait_for_verdicts(crds: Cluster, namespace: str, stored: list[badinput.Case]) -> dict[str, Any]:
    """Objects by name once each carries its final reason for its current generation."""
    want = {c.id: c.outcome for c in stored}
    waiting: dict[str, Any] = {}

    def settled() -> tuple[dict[str, Any]] | None:
        live = {name: obj for (_, name), obj in kube.list_objects(crds, namespace).items()}
        waiting.clear()
        waiting.update({
            name: kube.ready_condition(live.get(name, {})).get("reason")
            for name, outcome in want.items()
            if kube.ready_condition(live.get(name, {})).get("reason") != outcome
            or live[name].get("status", {}).get("observedGeneration") != live[name]["metadata"]["generation"]
        })
        return None if waiting else (live,)

    (live,) = until(settled, 60 + PRINCIPAL_WINDOW, lambda: f"verdicts; still waiting for: {waiting}",
                    every=1.0)
    return live


def check_writes(proxy: rl.RecordingProxy, case: badinput.Case, prefix: str) -> None:
    calls = proxy.requests(entities=[case.aws_name(prefix)])
    writes = [r for r in calls if r.is_write]
    if case.outcome == "InvalidSpec":
        assert not calls, (case.id, rl.per_action(calls))  # refused before any AWS call
    elif case.outcome == "DependencyNotReady":  # checked before anything is written
        assert not writes, (case.id, rl.per_action(writes))
    elif case.outcome == "Conflict":  # the create AWS refused (name taken) changed nothing
        assert not [r for r in writes if not r.is_refused_create], (case.id, rl.per_action(writes))
    else:
        seen = {(r.action, r.aws_status == 200) for r in writes}
        assert seen == set(case.writes), (case.id, seen)
        successes = Counter(r.action for r in writes if r.aws_status == 200)
        assert all(n == 1 for n in successes.values()), (case.id, successes)
        if case.id == "trust-names-missing-role":
            # Treated as IAM's lag for the window (retried with backoff), then reported.
            attempts = [r.at for r in writes]
            assert 2 <= len(attempts) <= 8, attempts
            assert attempts[-1] - attempts[0] >= PRINCIPAL_WINDOW * 0.7, attempts


def make_by_hand(iam: Any, case: badinput.Case, prefix: str) -> None:
    name = case.aws_name(prefix)
    tags = [{"Key": "team", "Value": "hand-made"}]
    if case.kind == "IAMRole":
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(EC2_TRUST), Tags=tags)
        iam.attach_role_policy(RoleName=name, PolicyArn=S3_READ)
    else:
        iam.create_user(UserName=name, Tags=tags)
        iam.attach_user_policy(UserName=name, PolicyArn=S3_READ)


def remove_by_hand(iam: Any, case: badinput.Case, prefix: str) -> None:
    name = case.aws_name(prefix)
    if case.kind == "IAMRole":
        iam.detach_role_policy(RoleName=name, PolicyArn=S3_READ)
        iam.delete_role(RoleName=name)
    else:
        iam.detach_user_policy(UserName=name, PolicyArn=S3_READ)
        iam.delete_user(UserName=name)
