"""Test helpers shared by every tier (unit, aws, e2e, bench): manifests, policies, and the kind API.

One place for the literals tests keep needing (an EC2 trust policy, a logs policy, managed
policy ARNs) and for building IAMRole/IAMUser objects, so a change of the API is one edit here.
Helpers over kubectl live in `tests.harness.kube`; `until` and `free_port` in
`tests.harness.util` (the harness does not import the controller, this module does).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from controller.core.actions import RESERVED_TAG_PREFIX
from controller.core.podidentity import TrustContext
from controller.core.status import Reason, Verdict, render
from controller.kinds import registry
from controller.kinds.base import Desired, Entity
from controller.kinds.role import Role
from controller.kinds.user import User

API_VERSION = registry.API_VERSION
ACCOUNT = "123456789012"
EC2_TRUST: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
LOGS_POLICY: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "*",
        }
    ],
}
S3_READ = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"
DYNAMO_READ = "arn:aws:iam::aws:policy/AmazonDynamoDBReadOnlyAccess"
SQS_READ = "arn:aws:iam::aws:policy/AmazonSQSReadOnlyAccess"
BOUNDARY = "arn:aws:iam::aws:policy/PowerUserAccess"
# The cluster issuer examples/irsa-role.yaml is planned with (`rolekeeper plan --oidc-issuer`).
OIDC_ISSUER = "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B716D3041E"


def aws_name(kind: str) -> str:
    """A fresh AWS name for one test's entity ("rk-<random>-<kind>"), so tests never collide."""
    return f"rk-{secrets.token_hex(4)}-{kind}"


def manifest(
    kind: str, name: str, spec: dict[str, Any], namespace: str | None = "team-a", **meta: Any
) -> dict[str, Any]:
    """A Rolekeeper object as a user writes it (namespace None: none given)."""
    metadata: dict[str, Any] = {"name": name, **meta}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "spec": spec}


def iam_role(
    name: str, role_name: str | None = None, namespace: str | None = None, **spec: Any
) -> dict[str, Any]:
    """An IAMRole with an EC2 trust as applied with kubectl (`tests.harness.kube.apply` sets the
    namespace): metadata.name `name`, spec.roleName `role_name` (left out when None)."""
    body: dict[str, Any] = {} if role_name is None else {"roleName": role_name}
    body.update({"assumeRolePolicy": EC2_TRUST, **spec})
    return manifest("IAMRole", name, body, namespace)


def iam_user(
    name: str, user_name: str | None = None, namespace: str | None = None, **spec: Any
) -> dict[str, Any]:
    """An IAMUser as applied with kubectl: metadata.name `name`, spec.userName `user_name`."""
    body: dict[str, Any] = {} if user_name is None else {"userName": user_name}
    return manifest("IAMUser", name, {**body, **spec}, namespace)


def role_object(
    name: str, namespace: str = "team-a", uid: str = "uid-1", **spec: Any
) -> dict[str, Any]:
    """An IAMRole with an EC2 trust; its metadata.name derived from the AWS name."""
    body: dict[str, Any] = {"roleName": name, "assumeRolePolicy": EC2_TRUST, **spec}
    return manifest("IAMRole", name.lower()[:50], body, namespace, uid=uid, generation=1)


def user_object(
    name: str, namespace: str = "team-a", uid: str = "uid-u", **spec: Any
) -> dict[str, Any]:
    """An IAMUser; its metadata.name derived from the AWS name."""
    body: dict[str, Any] = {"userName": name, **spec}
    return manifest("IAMUser", name.lower()[:50], body, namespace, uid=uid, generation=1)


def role(name: str, **spec: Any) -> Desired:
    return registry.parse(role_object(name, **spec))


def user(name: str, namespace: str = "team-a", uid: str = "uid-u", **spec: Any) -> Desired:
    return registry.parse(user_object(name, namespace, uid, **spec))


def read_role(iam: Any, name: str) -> Role | None:
    found = registry.get("IAMRole").read(iam, name)
    assert found is None or isinstance(found, Role)
    return found


def read_user(
    iam: Any, name: str, credentials: bool = False, rare_credentials: bool = False
) -> User | None:
    found = registry.get("IAMUser").read(iam, name, for_delete=credentials, rare=rare_credentials)
    assert found is None or isinstance(found, User)
    return found


def with_trust(desired: Desired, account_id: str = ACCOUNT, issuer: str = OIDC_ISSUER) -> Desired:
    """`desired` with the trust statements its spec.serviceAccounts asks for, as the operator
    generates them in account `account_id` (unchanged for every other object)."""
    return registry.of(desired).bind_trust(desired, TrustContext(issuer, account_id))


def plan(desired: Desired, observed: Entity | None, partition: str = "aws") -> tuple[Any, ...]:
    """The calls the desired object's kind plans against `observed`."""
    return registry.of(desired).plan(desired, observed, partition)


# --- rolekeeper import: the round trip ---------------------------------------------------------


def as_managed(imported_yaml: str) -> str:
    """`rolekeeper import`'s output flipped to Manage: what a team commits once the observed
    objects show no difference (spec.managementPolicy dropped, so the default Manage applies)."""
    docs = list(yaml.safe_load_all(imported_yaml))
    for doc in docs:
        doc["spec"].pop("managementPolicy", None)
    return yaml.safe_dump_all(docs, sort_keys=False)


def only_claims(calls: Any) -> bool:
    """True when a plan's calls (Actions or their JSON) only claim the entity: one Tag* call
    setting rolekeeper.dev/ ownership tags, what `adopt: true` does before anything else."""
    found = [(c.api, c.params) if hasattr(c, "api") else (c["api"], c["params"]) for c in calls]
    return len(found) == 1 and found[0][0] in ("TagRole", "TagUser", "TagPolicy") and all(
        tag["Key"].startswith(RESERVED_TAG_PREFIX) for tag in found[0][1]["Tags"]
    )


def adoption_guardrail(imported_yaml: str, name: str = "onboarding") -> dict[str, Any]:
    """The IAMGuardrail a platform team writes before imported objects may adopt: every
    namespace, exactly the imported AWS names (docs/onboarding.md)."""
    names: dict[str, list[str]] = {}
    for doc in yaml.safe_load_all(imported_yaml):
        kind = registry.get(doc["kind"])
        section = kind.plural.removeprefix("iam")  # iamroles -> roles, the guardrail's section
        names.setdefault(section, []).append(doc["spec"][kind.name_field])
    return {
        "apiVersion": API_VERSION,
        "kind": "IAMGuardrail",
        "metadata": {"name": name},
        "spec": {
            "namespaceSelector": {},
            "adoption": {section: {"names": sorted(found)} for section, found in names.items()},
        },
    }


# --- docs/status.md: the status contract for GitOps tools (kstatus, Argo CD) -------------------

STATUS_DOC = Path(__file__).resolve().parents[1] / "docs" / "status.md"
STATUS_KINDS = ("IAMRole", "IAMUser", "IAMPolicy")  # the kinds whose status the operator writes
STATUS_TIME = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
# What the operator writes for each reason (the shape of its real messages; {noun} and {name}
# are the kind's noun and the entity's AWS name).
REASON_MESSAGES = {
    Reason.SYNCED: "IAM {noun} is in sync",
    Reason.OBSERVED: "IAM {noun} exists; observe-only: 1 difference(s) with the spec",
    Reason.NOT_FOUND: "IAM {noun} {name} does not exist (managementPolicy: Observe never creates it)",
    Reason.CREATING: "waiting for IAM to recognise the trust policy principal (Invalid principal in policy); retrying",
    Reason.UPDATING: "updating IAM {noun} {name}",
    Reason.DRIFTED: "IAM {noun} {name} differs from the spec",
    Reason.THROTTLED: "AWS is temporarily failing, will retry: ListTags: Throttling: Rate exceeded",
    Reason.DEPENDENCY_NOT_READY: "IAMPolicy team-a/boundary is not Ready yet",
    Reason.DELETING: "cannot delete IAM {noun} {name} yet: Delete: DeleteConflict: Cannot delete entity, must detach all policies first.",
    Reason.AWS_ERROR: "AWS rejected Tag: LimitExceeded: Cannot exceed quota for TagsPerResource: 50",
    Reason.INVALID_SPEC: "spec.tags: key 'rolekeeper.dev/owner' uses the reserved prefix rolekeeper.dev/",
    Reason.CONFLICT: "IAM {noun} {name} exists and is not managed by this object; set adopt: true to take it over",
    Reason.GUARDRAIL_VIOLATION: "guardrail names (rule names) denies {name}: not under team-a-",
}
RETRYING_MESSAGE = "AWS is temporarily failing, will retry: Tag: ServiceFailure: internal error"
_SPECS: dict[str, dict[str, Any]] = {
    "IAMRole": {"roleName": "team-a-web", "assumeRolePolicy": EC2_TRUST},
    "IAMUser": {"userName": "team-a-ci"},
    "IAMPolicy": {"policyName": "team-a-logs", "document": LOGS_POLICY},
}


@dataclass(frozen=True)
class StatusCase:
    """One row of docs/status.md: the object it stands for and what each tool says of it."""

    name: str  # "Synced", "AWSError-retrying", "no-status", ...
    obj: dict[str, Any]  # as read from the API server, status as Rolekeeper renders it
    kstatus: str
    argocd: str
    verdict: Verdict | None  # what was rendered (None: no status at all)
    # Ready / Reconciling / Stalled as the row says ("True", "False" or "absent");
    # empty for the edge cases, whose table does not say.
    conditions: dict[str, str]


def status_object(
    kind: str,
    verdict: Verdict | None,
    generation: int = 2,
    observed: int | None = None,
    deleting: bool = False,
) -> dict[str, Any]:
    """A `kind` object with the status Rolekeeper renders for `verdict` at `observed` (default:
    the object's generation); no status at all when `verdict` is None."""
    meta: dict[str, Any] = {"generation": generation, "uid": "6f1c2b1e-0000-4000-8000-000000000001"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-02T04:00:00Z"
        meta["finalizers"] = ["iam.rolekeeper.dev/finalizer"]
    obj = manifest(kind, "web", _SPECS[kind], "team-a", **meta)
    if verdict is not None:
        seen = generation if observed is None else observed
        obj["status"] = render(None, verdict, seen, registry.get(kind).id_field, now=STATUS_TIME)
    return obj


def _edge_case(case: str, kind: str) -> tuple[dict[str, Any], Verdict | None]:
    """The object each row of docs/status.md's edge-case table describes, and its verdict."""
    if case == "no-status":  # as served: the CRD's default, nothing written yet
        obj = status_object(kind, None, generation=1)
        obj["status"] = {"observedGeneration": 0}
        return obj, None
    if case == "stale-generation":
        synced = _verdict(kind, Reason.SYNCED)
        return status_object(kind, synced, generation=2, observed=1), synced
    if case in ("deletion-retried", "deletion-stuck"):
        retried = case == "deletion-retried"
        verdict = _verdict(kind, Reason.DELETING if retried else Reason.AWS_ERROR)
        return status_object(kind, verdict, deleting=True), verdict
    raise AssertionError(f"docs/status.md names an edge case no test builds: {case!r}")


def _verdict(kind: str, reason: Reason, retrying: bool = False) -> Verdict:
    noun, name = registry.get(kind).noun, next(iter(_SPECS[kind].values()))
    message = RETRYING_MESSAGE if retrying else REASON_MESSAGES[reason]
    done = reason in (Reason.SYNCED, Reason.OBSERVED)
    arn = f"arn:aws:iam::{ACCOUNT}:{noun}/{name}" if done else ""
    return Verdict(done, reason, message.format(noun=noun, name=name), arn,
                   "AIDAEXAMPLE0001" if done else "", retrying=retrying)  # fmt: skip


def _tables(text: str) -> list[list[dict[str, str]]]:
    """Every Markdown table in `text` as rows keyed by header (lower case), backticks dropped."""
    tables: list[list[dict[str, str]]] = []
    lines = text.splitlines()
    for i, line in enumerate(lines[:-1]):
        if line.startswith("|") and lines[i + 1].startswith("|---"):
            header = [c.strip().lower() for c in line.strip("|").split("|")]
            rows = []
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                cells = [c.strip().strip("`") for c in row.strip().strip("|").split("|")]
                rows.append(dict(zip(header, cells, strict=True)))
            tables.append(rows)
    return tables


def status_cases(kind: str = "IAMRole") -> list[StatusCase]:
    """docs/status.md's reason and edge-case tables, each row built as a `kind` object."""
    cases = []
    for table in _tables(STATUS_DOC.read_text()):
        for row in table:
            if "reason" in row and "retrying" in row:
                retrying = row["retrying"] == "yes"
                verdict = _verdict(kind, Reason(row["reason"]), retrying)
                name = row["reason"] + ("-retrying" if retrying else "")
                conditions = {t: row[t.lower()].replace("\u2013", "absent")  # the doc's dash
                              for t in ("Ready", "Reconciling", "Stalled")}  # fmt: skip
                cases.append(StatusCase(name, status_object(kind, verdict), row["kstatus"],
                                        row["argo cd"], verdict, conditions))  # fmt: skip
            elif "case" in row:
                obj, seen = _edge_case(row["case"], kind)
                cases.append(StatusCase(row["case"], obj, row["kstatus"], row["argo cd"], seen, {}))
    return cases
