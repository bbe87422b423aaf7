"""The IAMPolicy kind (`controller.kinds.policy`) and its CRD, without AWS.

Covers:
- parse: defaults (policyName from metadata.name, path /), every broken rule reported at once
  (document required, a YAML object, identity grammar — no Principal —, 6,144 characters;
  name 1-128 of IAM's characters; description length and characters; reserved tags);
- plan tables: create (one CreatePolicy with document, description, all tags); nothing for an
  equivalent document written differently; a new default version; at 5 versions the oldest
  non-default version by CreateDate (not list order; equal dates by version number) is deleted
  first; SetDefaultPolicyVersion when a stored version already holds the spec's document; tags
  by ARN (aws: tags left alone); adoption claims the policy first; immutable path/description;
- plan_delete: detach from owned roles/users, delete non-default versions oldest first, delete
  the policy; anything foreign (untagged entity, a group, a boundary use) refuses the whole
  delete with a TerminalError naming every holder; plan_release;
- the decision engine on a policy: noop, conflict, refused, adopt;
- snapshot entries (moto's GAAD shape, tags from ListPolicyTags), the snapshot file round trip,
  `rolekeeper import`'s manifest, offline notes;
- every planned Action is a valid call for botocore's IAM model;
- the CRD: identity, printer columns, status fields, descriptions everywhere, structural,
  CEL immutability of policyName/path/description, the shared document schema, value tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import botocore.session
import pytest
import yaml
from botocore.validate import ParamValidator

from controller.aws.snapshot import RawSnapshot
from controller.core import policy as documents
from controller.core.actions import OWNER_TAG, UID_TAG, Action
from controller.core.errors import SpecError, TerminalError
from controller.engine.reconcile import Verb, decide
from controller.kinds import registry
from controller.kinds.base import Desired
from controller.kinds.policy import KIND, Attachment, Policy, PolicyError, Version
from controller.kinds.snapshot import AccountSnapshot, from_json
from tests.helpers import ACCOUNT, LOGS_POLICY, manifest
from tests.unit.test_crds import node_at as _node_at
from tests.unit.test_crds import violations, walk

ARN = f"arn:aws:iam::{ACCOUNT}:policy/apps/web-logs"
S3_POLICY: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}],
}
OWNED = {OWNER_TAG: "team-a/web-logs", UID_TAG: "uid-p"}


def desired(**spec: Any) -> Desired:
    body: dict[str, Any] = {"path": "/apps/", "document": LOGS_POLICY, **spec}
    obj = manifest("IAMPolicy", "web-logs", body, uid="uid-p", generation=3)
    return registry.parse(obj)


def version(number: int, when: str, default: bool = False, doc: Any = None) -> Version:
    return Version(f"v{number}", when, default, doc)


def observed(
    doc: Any = None,
    versions: tuple[Version, ...] | None = None,
    tags: dict[str, str] | None = None,
    **fields: Any,
) -> Policy:
    doc = LOGS_POLICY if doc is None else doc
    return Policy(
        name="web-logs",
        document=doc,
        path=fields.pop("path", "/apps/"),
        tags=OWNED if tags is None else tags,
        arn=ARN,
        policy_id="ANPAEXAMPLE",
        default_version_id="v1",
        versions=versions if versions is not None else (version(1, "2024-01-01T00:00:00+00:00", True, doc),),
        **fields,
    )


def plan(want: Desired, seen: Policy | None) -> list[tuple[str, dict[str, Any]]]:
    return [(a.api, dict(a.params)) for a in KIND.plan(want, seen, "aws")]


def apis(actions: Any) -> list[str]:
    return [a.api if isinstance(a, Action) else a[0] for a in actions]


# --------------------------------------------------------------------------- parse


def test_parse_defaults() -> None:
    obj = manifest("IAMPolicy", "team-a-logs", {"document": LOGS_POLICY})
    parsed = registry.parse(obj)
    entity = parsed.entity
    assert isinstance(entity, Policy)
    assert (entity.name, entity.path, entity.description, entity.tags) == ("team-a-logs", "/", "", {})
    assert entity.document == LOGS_POLICY
    assert registry.of(parsed) is KIND
    view = KIND.view(parsed)
    assert view.kind == "IAMPolicy" and dict(view.documents) == {"spec.document": LOGS_POLICY}


def errors_of(spec: dict[str, Any], name: str = "p") -> list[str]:
    with pytest.raises(SpecError) as caught:
        registry.parse(manifest("IAMPolicy", name, spec))
    return caught.value.errors


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({}, "spec.document: required"),
        ({"document": "{}"}, "write the document as YAML"),
        (
            {"document": {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*"}]}},
            "spec.document.Statement[0]",
        ),
        ({"document": LOGS_POLICY, "policyName": "x" * 129}, "is 129 characters, the maximum is 128"),
        ({"document": LOGS_POLICY, "policyName": "web logs"}, "may only contain ASCII letters"),
        ({"document": LOGS_POLICY, "description": "x" * 1001}, "1001 characters exceeds 1000"),
        ({"document": LOGS_POLICY, "description": "em — dash"}, "is not allowed"),
        ({"document": LOGS_POLICY, "tags": {"rolekeeper.dev/owner": "x"}}, "set by Rolekeeper"),
        ({"document": LOGS_POLICY, "managedPolicies": []}, "spec.managedPolicies: unknown field"),
        ({"document": LOGS_POLICY, "path": "apps"}, "spec.path"),
    ],
)
def test_parse_errors(spec: dict[str, Any], expected: str) -> None:
    assert any(expected in e for e in errors_of(spec)), errors_of(spec)


def test_name_up_to_128_and_metadata_fallback_says_so() -> None:
    assert registry.parse(manifest("IAMPolicy", "p", {"document": LOGS_POLICY, "policyName": "x" * 128}))
    [error] = errors_of({"document": LOGS_POLICY}, name="x" * 129)
    assert "defaulted from metadata.name; set spec.policyName" in error


def test_document_size_limit_is_6144_minified() -> None:
    def doc(n: int) -> dict[str, Any]:
        return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/" + "r" * n}]}

    base_size = documents.size(doc(0))
    fits = doc(6144 - base_size)
    assert documents.size(fits) == 6144
    assert registry.parse(manifest("IAMPolicy", "p", {"document": fits}))
    [error] = errors_of({"document": doc(6145 - base_size)})
    assert error.startswith("spec.document: 6145 characters exceeds the limit 6144")


def test_all_errors_at_once() -> None:
    errors = errors_of({"policyName": "a b", "description": "x" * 1001, "tags": {"aws:x": "y"}})
    assert len(errors) == 4  # name, document, description, tag


# --------------------------------------------------------------------------- plan: create/update


def test_create_is_one_call() -> None:
    want = desired(description="Write logs", tags={"team": "a"})
    assert plan(want, None) == [
        (
            "CreatePolicy",
            {
                "PolicyName": "web-logs",
                "Path": "/apps/",
                "PolicyDocument": documents.to_json(LOGS_POLICY),
                "Tags": [
                    {"Key": OWNER_TAG, "Value": "team-a/web-logs"},
                    {"Key": UID_TAG, "Value": "uid-p"},
                    {"Key": "team", "Value": "a"},
                ],
                "Description": "Write logs",
            },
        )
    ]


def test_create_without_description_sends_none() -> None:
    [(_, params)] = plan(desired(), None)
    assert "Description" not in params


def test_equivalent_document_is_a_noop() -> None:
    rewritten = {
        "Statement": {
            "Effect": "Allow",
            "Action": ["logs:PutLogEvents", "logs:CreateLogStream"],
            "Resource": ["*"],
        }
    }
    assert plan(desired(), observed(doc=rewritten)) == []


def test_changed_document_is_a_new_default_version() -> None:
    assert plan(desired(document=S3_POLICY), observed()) == [
        (
            "CreatePolicyVersion",
            {"PolicyArn": ARN, "PolicyDocument": documents.to_json(S3_POLICY), "SetAsDefault": True},
        )
    ]


def test_at_five_versions_the_oldest_non_default_by_create_date_goes_first() -> None:
    # List order is not age order: v4 was created first (e.g. dates from another import).
    versions = (
        version(2, "2024-03-01T00:00:00+00:00"),
        version(3, "2024-04-01T00:00:00+00:00"),
        version(4, "2024-01-15T00:00:00+00:00"),
        version(1, "2024-01-01T00:00:00+00:00", default=True, doc=LOGS_POLICY),  # oldest, default
        version(5, "2024-05-01T00:00:00+00:00"),
    )
    actions = plan(desired(document=S3_POLICY), observed(versions=versions))
    assert actions == [
        ("DeletePolicyVersion", {"PolicyArn": ARN, "VersionId": "v4"}),
        (
            "CreatePolicyVersion",
            {"PolicyArn": ARN, "PolicyDocument": documents.to_json(S3_POLICY), "SetAsDefault": True},
        ),
    ]


def test_equal_dates_fall_back_to_the_version_number() -> None:
    same = "2024-01-01T00:00:00+00:00"
    versions = (
        version(12, same),
        version(10, same),
        version(11, same),
        version(13, same),
        version(14, same, default=True, doc=LOGS_POLICY),
    )
    assert plan(desired(document=S3_POLICY), observed(versions=versions))[0] == (
        "DeletePolicyVersion",
        {"PolicyArn": ARN, "VersionId": "v10"},
    )


def test_dates_with_and_without_zone_compare() -> None:
    versions = (
        version(1, "2024-02-01T00:00:00"),
        version(2, "2024-01-01T00:00:00+00:00"),
        version(3, "2024-03-01T00:00:00+00:00"),
        version(4, "2024-04-01T00:00:00+00:00"),
        version(5, "2024-05-01T00:00:00+00:00", default=True, doc=LOGS_POLICY),
    )
    assert plan(desired(document=S3_POLICY), observed(versions=versions))[0][1]["VersionId"] == "v2"


def test_below_five_versions_nothing_is_pruned() -> None:
    versions = (
        *(version(i, f"2024-0{i}-01T00:00:00+00:00") for i in range(1, 4)),
        version(4, "2024-04-01T00:00:00+00:00", default=True, doc=LOGS_POLICY),
    )
    assert apis(plan(desired(document=S3_POLICY), observed(versions=versions))) == ["CreatePolicyVersion"]


def test_a_stored_version_with_the_spec_document_is_made_default() -> None:
    # Someone set v1 (an old document) as default; v2 still holds the spec's document.
    versions = (
        version(1, "2024-01-01T00:00:00+00:00", default=True, doc=S3_POLICY),
        version(2, "2024-02-01T00:00:00+00:00", doc={"Statement": LOGS_POLICY["Statement"][0]}),
        version(3, "2024-03-01T00:00:00+00:00", doc=S3_POLICY),
        version(4, "2024-04-01T00:00:00+00:00"),
        version(5, "2024-05-01T00:00:00+00:00"),
    )
    assert plan(desired(), observed(doc=S3_POLICY, versions=versions)) == [
        ("SetDefaultPolicyVersion", {"PolicyArn": ARN, "VersionId": "v2"})
    ]


def test_tags_by_arn_and_aws_tags_are_left_alone() -> None:
    seen = observed(tags={**OWNED, "team": "b", "old": "x", "aws:cloudformation:stack-name": "s"})
    assert plan(desired(tags={"team": "a", "env": "prod"}), seen) == [
        ("TagPolicy", {"PolicyArn": ARN, "Tags": [{"Key": "env", "Value": "prod"}, {"Key": "team", "Value": "a"}]}),
        ("UntagPolicy", {"PolicyArn": ARN, "TagKeys": ["old"]}),
    ]


def test_adopting_claims_the_policy_first() -> None:
    want = desired(document=S3_POLICY, adopt=True)
    actions = plan(want, observed(tags={}))
    assert apis(actions) == ["TagPolicy", "CreatePolicyVersion"]
    assert {t["Key"] for t in actions[0][1]["Tags"]} == {OWNER_TAG, UID_TAG}


@pytest.mark.parametrize(
    ("spec", "seen", "field"),
    [
        ({"path": "/other/"}, {}, "spec.path"),
        ({"description": "new words"}, {"description": "old words"}, "spec.description"),
        ({}, {"description": "made in the console"}, "spec.description"),
    ],
)
def test_immutable_fields_are_refused(spec: dict[str, Any], seen: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as caught:
        plan(desired(**spec), observed(**seen))
    [error] = caught.value.errors
    assert error.startswith(field) and "create a new object" in error


# --------------------------------------------------------------------------- decide


def test_decide_on_a_policy() -> None:
    want = desired()
    assert decide(KIND, want, None).verb is Verb.CREATE
    assert decide(KIND, want, observed()).verb is Verb.NOOP
    assert decide(KIND, want, observed(doc=S3_POLICY)).verb is Verb.UPDATE
    conflict = decide(KIND, want, observed(tags={OWNER_TAG: "team-b/other"}))
    assert conflict.verb is Verb.CONFLICT and "IAM policy 'web-logs' is already managed by team-b/other" in conflict.message
    assert decide(KIND, want, observed(tags={})).verb is Verb.REFUSED
    invalid = decide(KIND, want, observed(path="/"))
    assert invalid.verb is Verb.INVALID
    renamed = decide(KIND, want, None, known_arn=f"arn:aws:iam::{ACCOUNT}:policy/apps/other")
    assert renamed.verb is Verb.INVALID and renamed.message.startswith("spec.policyName: is immutable")


# --------------------------------------------------------------------------- delete / release


FIVE = (
    version(3, "2024-03-01T00:00:00+00:00", default=True, doc=LOGS_POLICY),
    version(2, "2024-02-01T00:00:00+00:00"),
    version(1, "2024-01-01T00:00:00+00:00"),
)


def test_delete_detaches_owned_holders_then_versions_then_the_policy() -> None:
    held = (Attachment("User", "ci", True), Attachment("Role", "web", True), Attachment("Role", "api", True))
    actions = KIND.plan_delete(observed(versions=FIVE, attachments=held))
    assert [(a.api, dict(a.params)) for a in actions] == [
        ("DetachRolePolicy", {"RoleName": "api", "PolicyArn": ARN}),
        ("DetachRolePolicy", {"RoleName": "web", "PolicyArn": ARN}),
        ("DetachUserPolicy", {"UserName": "ci", "PolicyArn": ARN}),
        ("DeletePolicyVersion", {"PolicyArn": ARN, "VersionId": "v1"}),
        ("DeletePolicyVersion", {"PolicyArn": ARN, "VersionId": "v2"}),
        ("DeletePolicy", {"PolicyArn": ARN}),
    ]


def test_delete_of_an_unattached_single_version_policy_is_one_call() -> None:
    assert apis(KIND.plan_delete(observed(attachments=()))) == ["DeletePolicy"]


@pytest.mark.parametrize(
    ("holder", "words"),
    [
        (Attachment("Role", "hand-made", False), "role hand-made (untagged)"),
        (Attachment("Group", "admins", False), "group admins (groups are not managed)"),
        (Attachment("Role", "web", True, boundary=True), "role web (as its permissions boundary)"),
    ],
)
def test_delete_refuses_while_anything_foreign_holds_it(holder: Attachment, words: str) -> None:
    held = (Attachment("Role", "owned-one", True), holder)
    with pytest.raises(PolicyError) as caught:
        KIND.plan_delete(observed(attachments=held))
    assert isinstance(caught.value, TerminalError)  # the finalizer stays, retried slowly
    message = str(caught.value)
    assert words in message and "nothing was detached" in message
    assert "owned-one" not in message


def test_release_removes_only_ownership_tags() -> None:
    seen = observed(tags={**OWNED, "team": "a"})
    assert [(a.api, dict(a.params)) for a in KIND.plan_release(seen)] == [
        ("UntagPolicy", {"PolicyArn": ARN, "TagKeys": [OWNER_TAG, UID_TAG]})
    ]
    assert KIND.plan_release(observed(tags={"team": "a"})) == ()


# --------------------------------------------------------------------------- small contracts


def test_documents_created_and_document_field() -> None:
    create, = KIND.plan(desired(), None, "aws")
    assert KIND.document_field(create) == registry.document_field(create) == "spec.document"
    update, = KIND.plan(desired(document=S3_POLICY), observed(), "aws")
    assert registry.document_field(update) == "spec.document"
    assert KIND.documents(observed()) == {"spec.document": LOGS_POLICY}
    response = {"Policy": {"Arn": ARN, "PolicyId": "ANPA1"}}
    assert KIND.created(create, response) == (ARN, "ANPA1")
    assert KIND.created(update, response) is None


def moto_gaad_entry() -> dict[str, Any]:
    """A GAAD `Policies` item as moto 5.2 serves it (real AWS adds PolicyName and PolicyId)."""
    return {
        "Arn": ARN,
        "Path": "/apps/",
        "DefaultVersionId": "v2",
        "AttachmentCount": 1,
        "Description": "Write logs",
        "PolicyVersionList": [
            {"Document": S3_POLICY, "VersionId": "v1", "IsDefaultVersion": False, "CreateDate": "2024-01-01T00:00:00Z"},
            {"Document": "%7B%22Statement%22%3A%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%5B%22logs%3APutLogEvents%22%2C%22logs%3ACreateLogStream%22%5D%2C%22Resource%22%3A%22%2A%22%7D%7D",
             "VersionId": "v2", "IsDefaultVersion": True, "CreateDate": "2024-02-01T00:00:00Z"},
        ],
    }


def test_from_snapshot_and_the_file_round_trip() -> None:
    raw = RawSnapshot(details={"Policies": [moto_gaad_entry()]}, policy_tags={ARN: OWNED})
    entities = KIND.from_snapshot(raw)
    seen = entities["web-logs"]
    assert isinstance(seen, Policy)
    assert documents.equivalent(seen.document, LOGS_POLICY)  # the default version's, URL-decoded
    assert (seen.default_version_id, seen.attachment_count, seen.description) == ("v2", 1, "Write logs")
    assert [v.version_id for v in seen.versions] == ["v1", "v2"] and seen.attachments is None
    assert seen.tags == OWNED
    assert decide(KIND, desired(description="Write logs"), seen).verb is Verb.NOOP
    snapshot = AccountSnapshot(entities={"IAMPolicy": entities})
    again = from_json(yaml.safe_load(yaml.safe_dump(snapshot.to_json())))
    assert again.of_kind("IAMPolicy") == entities
    assert KIND.offline_notes(seen, KIND.plan_delete(seen)) == [
        "the snapshot does not list what holds policy " + ARN + ": the operator detaches it from "
        "roles and users Rolekeeper owns, and refuses to delete it (Ready=False, finalizer kept) "
        "while anything else holds it"
    ]
    assert KIND.offline_notes(observed(attachments=()), ()) == []


def test_to_manifest_round_trips_to_a_noop() -> None:
    seen = observed(description="Write logs", tags={"team": "a", "aws:x": "y", OWNER_TAG: "other/x"})
    made = KIND.to_manifest(seen, "team-a", "web-logs")
    assert made["kind"] == "IAMPolicy" and made["metadata"] == {"name": "web-logs", "namespace": "team-a"}
    spec = made["spec"]
    assert spec["policyName"] == "web-logs" and spec["path"] == "/apps/"
    assert spec["description"] == "Write logs" and spec["tags"] == {"team": "a"}
    assert documents.equivalent(spec["document"], LOGS_POLICY)
    assert "path" not in KIND.to_manifest(observed(path="/"), "team-a", "web-logs")["spec"]


# --------------------------------------------------------------------------- valid boto3 calls

_MODEL = botocore.session.get_session().get_service_model("iam")


def _every_action() -> list[Action]:
    held = (Attachment("Role", "r", True), Attachment("User", "u", True))
    five = tuple(version(i, f"2024-0{i}-01T00:00:00+00:00", i == 5, LOGS_POLICY if i == 5 else None) for i in range(1, 6))
    return [
        *KIND.plan(desired(description="d", tags={"t": "v"}), None, "aws"),
        *KIND.plan(desired(document=S3_POLICY, tags={"t": "v"}), observed(versions=five, tags={"x": "y"}), "aws"),
        *KIND.plan(desired(), observed(doc=S3_POLICY, versions=(*FIVE[1:], version(4, "2024-04-01", doc=LOGS_POLICY))), "aws"),
        *KIND.plan_delete(observed(versions=FIVE, attachments=held)),
        *KIND.plan_release(observed()),
    ]


@pytest.mark.parametrize("action", _every_action(), ids=lambda a: a.api)
def test_every_action_is_a_valid_iam_call(action: Action) -> None:
    shape = _MODEL.operation_model(action.api).input_shape
    assert shape is not None
    report = ParamValidator().validate(dict(action.params), shape)
    assert not report.has_errors(), report.generate_report()


def test_the_table_covers_every_api() -> None:
    assert {a.api for a in _every_action()} == {
        "CreatePolicy", "CreatePolicyVersion", "DeletePolicyVersion", "SetDefaultPolicyVersion",
        "TagPolicy", "UntagPolicy", "DetachRolePolicy", "DetachUserPolicy", "DeletePolicy",
    }


# --------------------------------------------------------------------------- the CRD

CRD_PATH = Path(__file__).resolve().parents[2] / "crds" / "iampolicies.yaml"
CRD = yaml.safe_load(CRD_PATH.read_text())
VERSION_ = CRD["spec"]["versions"][0]
ROOT = VERSION_["schema"]["openAPIV3Schema"]


def node(path: str) -> dict[str, Any]:
    found: dict[str, Any] = ROOT
    for part in path.split("."):
        found = found["properties"][part.rstrip("[]{}")]
        if part.endswith("[]"):
            found = found["items"]
        elif part.endswith("{}"):
            found = found["additionalProperties"]
    return found


def _without_prose(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_prose(v) for k, v in value.items() if k not in ("description", "message")}
    if isinstance(value, list):
        return [_without_prose(v) for v in value]
    return value


def test_crd_identity_and_version() -> None:
    assert CRD["metadata"]["name"] == "iampolicies.iam.rolekeeper.dev"
    assert (CRD["spec"]["group"], CRD["spec"]["scope"]) == (registry.GROUP, "Namespaced")
    assert CRD["spec"]["names"] == {
        "kind": "IAMPolicy", "listKind": "IAMPolicyList", "plural": KIND.plural,
        "singular": "iampolicy", "shortNames": ["iamp"], "categories": ["rolekeeper", "iam"],
    }
    assert (VERSION_["name"], VERSION_["served"], VERSION_["storage"]) == (registry.VERSION, True, True)
    assert VERSION_["subresources"] == {"status": {}}


def test_crd_printer_columns() -> None:
    ready = '.status.conditions[?(@.type=="Ready")]'
    default = [(c["name"], c["type"], c["jsonPath"]) for c in VERSION_["additionalPrinterColumns"] if not c.get("priority")]
    assert default == [
        ("ARN", "string", ".status.arn"),
        ("Ready", "string", f"{ready}.status"),
        ("Reason", "string", f"{ready}.reason"),
        ("Age", "date", ".metadata.creationTimestamp"),
    ]


def test_crd_status_is_the_shared_status_plus_policy_fields() -> None:
    status = node("status")
    assert status["x-kubernetes-preserve-unknown-fields"] is True
    assert set(status["properties"]) == {
        "arn", KIND.id_field, "defaultVersionId", "attachmentCount", "observedGeneration", "findings", "conditions",
    }
    for shared in ("arn", "observedGeneration", "findings", "conditions"):
        assert _without_prose(node(f"status.{shared}")) == _without_prose(_node_at("IAMRole", f"status.{shared}"))


def test_crd_shared_spec_fields_have_the_role_schema() -> None:
    for shared in ("path", "tags", "deletionPolicy", "adopt"):
        assert _without_prose(node(f"spec.{shared}")) == _without_prose(_node_at("IAMRole", f"spec.{shared}")), shared


def test_crd_document_has_the_one_policy_document_schema() -> None:
    assert node("spec")["required"] == ["document"]
    assert _without_prose(node("spec.document")) == _without_prose(_node_at("IAMRole", "spec.inlinePolicies{}"))


@pytest.mark.parametrize(("path", "schema"), [("<root>", ROOT), *[(p, n) for p, n in walk(ROOT) if p != "metadata"]])
def test_crd_every_field_is_described_and_structural(path: str, schema: dict[str, Any]) -> None:
    assert len(schema.get("description", "")) > 10
    if path != "<root>":
        assert "type" in schema or schema.get("x-kubernetes-preserve-unknown-fields") is True


def test_crd_immutability_rules() -> None:
    effective = "(has({0}.spec.policyName) ? {0}.spec.policyName : {0}.metadata.name)"
    rules = {" ".join(r["rule"].split()): r for r in ROOT["x-kubernetes-validations"]}
    rule = rules[f"{effective.format('self')} == {effective.format('oldSelf')}"]
    assert rule["message"].startswith("policyName is immutable") and rule["fieldPath"] == ".spec.policyName"
    for field in ("path", "description"):
        [immutable] = node(f"spec.{field}")["x-kubernetes-validations"]
        assert immutable["rule"] == "self == oldSelf"
        assert immutable["message"].startswith(f"{field} is immutable")
        # A default, so removing the field is a change the rule sees.
        assert "default" in node(f"spec.{field}")


@pytest.mark.parametrize(
    ("path", "value", "valid"),
    [
        ("spec.policyName", "x" * 128, True),
        ("spec.policyName", "x" * 129, False),
        ("spec.policyName", "web logs", False),
        ("spec.policyName", "A_b+c=d,e.f@g-h0", True),
        ("spec.path", "/tenants/team-a/", True),
        ("spec.path", "tenants", False),
        ("spec.description", "x" * 1000, True),
        ("spec.description", "x" * 1001, False),
        ("spec.description", "🙂", False),
        ("spec.document", LOGS_POLICY, True),
        ("spec.document", {"Version": "2012-10-18"}, False),
        ("spec.document", {**LOGS_POLICY, "Statment": []}, False),
        ("spec", {"document": LOGS_POLICY, "managedPolicies": []}, False),
        ("status.attachmentCount", -1, False),
    ],
)
def test_crd_values(path: str, value: Any, valid: bool) -> None:
    assert (violations(node(path), value) == []) is valid
