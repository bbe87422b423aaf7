"""Static checks of the CustomResourceDefinitions in crds/ (no API server involved).

Covers:
- identity: group, version (served, storage), scope, kind/plural/singular/short names, categories;
- the status subresource, printer columns (ARN, Ready, Reason, Age), Kopf-safe status;
- every schema node has a description (so `kubectl explain` explains every field);
- fields both kinds share have one schema; defaults and immutability rules are in place;
- every CEL rule over a map or list is bounded (the API server's cost estimate needs it);
- policy documents (trust and inline) have one structural schema: only IAM's keys (closed by
  `anyOf` key sets where a node is typeless), bounded depth, sizes and numbers, so the API
  server refuses what would crash Kopf (600-deep nesting) or be rounded (numbers over 2^53);
- tables of valid and invalid values per field, run through the CRD's own patterns, bounds and
  CEL key rules, so the schema and IAM's documented rules agree.

Admission by a real API server (CEL compilation, transition rules) is tested in tests/e2e.
The schema walker `violations` here is also what tests/unit/test_examples.py validates with.
"""

from __future__ import annotations

import functools
import math
import re
import sys
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

CRD_DIR = Path(__file__).resolve().parents[2] / "crds"
GROUP = "iam.rolekeeper.dev"
VERSION = "v1alpha1"

Schema = dict[str, Any]


def _load(name: str) -> dict[str, Any]:
    with (CRD_DIR / name).open() as f:
        crd: dict[str, Any] = yaml.safe_load(f)
    return crd


CRDS = {"IAMRole": _load("iamroles.yaml"), "IAMUser": _load("iamusers.yaml")}
NAME_FIELD = {"IAMRole": "roleName", "IAMUser": "userName"}
ID_FIELD = {"IAMRole": "roleId", "IAMUser": "userId"}


def root_schema(kind: str) -> Schema:
    version: dict[str, Any] = CRDS[kind]["spec"]["versions"][0]
    schema: Schema = version["schema"]["openAPIV3Schema"]
    return schema


def node_at(kind: str, path: str) -> Schema:
    """Schema node at a dotted path; `x[]` is x's items, `x{}` its additionalProperties."""
    node = root_schema(kind)
    for part in path.split("."):
        name = part.rstrip("[]{}")
        node = node["properties"][name]
        if part.endswith("[]"):
            node = node["items"]
        elif part.endswith("{}"):
            node = node["additionalProperties"]
    return node


def walk(node: Schema, path: str = "") -> Iterator[tuple[str, Schema]]:
    """Every schema node below `node` (not `node` itself), with its path as in node_at."""
    for name, child in node.get("properties", {}).items():
        yield from _child(f"{path}.{name}".lstrip("."), child)
    if isinstance(node.get("additionalProperties"), dict):
        yield from _child(f"{path}{{}}", node["additionalProperties"])
    if "items" in node:
        yield from _child(f"{path}[]", node["items"])


def _child(path: str, node: Schema) -> Iterator[tuple[str, Schema]]:
    yield path, node
    yield from walk(node, path)


# --------------------------------------------------------------------------- RE2 as Python


@functools.cache
def _unicode_classes() -> dict[str, str]:
    """`\\p{L}`, `\\p{Z}`, `\\p{N}` (RE2) as explicit Python character-class ranges."""
    ranges: dict[str, list[list[int]]] = {"L": [], "Z": [], "N": []}
    for cp in range(sys.maxunicode + 1):
        spans = ranges.get(unicodedata.category(chr(cp))[0])
        if spans is None:
            continue
        if spans and spans[-1][1] == cp - 1:
            spans[-1][1] = cp
        else:
            spans.append([cp, cp])
    return {
        cat: "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in spans)
        for cat, spans in ranges.items()
    }


@functools.cache
def python_regex(pattern: str) -> re.Pattern[str]:
    """Compile an RE2 pattern (what the API server and CEL run) with the same meaning in Python.

    The differences that matter for our patterns: RE2's `\\w` and `\\d` are ASCII, its `$`
    matches only at the end of the text (Python's also before a final newline), and Python's
    `re` has no `\\p{..}` Unicode classes.
    """
    for cat, ranges in _unicode_classes().items():
        pattern = pattern.replace(f"\\p{{{cat}}}", ranges)
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern, re.ASCII)


# --------------------------------------------------------------------------- schema walker


def _lower_ascii(s: str) -> str:
    return "".join(c.lower() if c.isascii() else c for c in s)


# The CEL rule shapes the CRDs use on maps, as predicates on one key. A rule of another shape
# fails loudly, so a new rule cannot slip past the tables unchecked.
_KEY_RULES: tuple[tuple[re.Pattern[str], Callable[[str, str], bool]], ...] = (
    (re.compile(r"self\.all\(k, k\.matches\(r'(.+)'\)\)"),
     lambda arg, k: python_regex(arg).search(k) is not None),
    (re.compile(r"self\.all\(k, k\.size\(\) <= (\d+)\)"), lambda arg, k: len(k) <= int(arg)),
    (re.compile(r"self\.all\(k, !k\.lowerAscii\(\)\.startsWith\('(.+)'\)\)"),
     lambda arg, k: not _lower_ascii(k).startswith(arg)),
)


# Rules on which fields of one object are present (IAMRole spec: a trust policy or the
# ServiceAccounts it is generated for), as predicates on the object.
_FIELD_RULES: dict[str, Callable[[Any], bool]] = {
    "has(self.assumeRolePolicy) || has(self.serviceAccounts)":
        lambda v: "assumeRolePolicy" in v or "serviceAccounts" in v,
    "!has(self.podIdentity) || has(self.serviceAccounts)":
        lambda v: "podIdentity" not in v or "serviceAccounts" in v,
}


def cel_holds(rule: str, value: Any) -> bool:
    """Evaluate one of the CEL rule shapes in _KEY_RULES on a map (or of _FIELD_RULES)."""
    if rule in _FIELD_RULES:
        return _FIELD_RULES[rule](value)
    for shape, holds in _KEY_RULES:
        if m := shape.fullmatch(rule):
            return all(holds(m[1], key) for key in value)
    raise AssertionError(f"the test walker does not know this CEL rule: {rule}")


_TYPES: dict[str, type | tuple[type, ...]] = {
    "object": dict, "array": list, "string": str, "integer": int, "boolean": bool,
}


def violations(node: Schema, value: Any, where: str = "spec") -> list[str]:
    """What the API server would reject in `value`, for the schema subset the CRDs use.

    Transition rules (those reading oldSelf) are skipped: they need two objects.
    """
    want = node.get("type")
    if want and (not isinstance(value, _TYPES[want]) or
                 (want == "integer" and isinstance(value, bool))):
        return [f"{where}: must be {want}, not {type(value).__name__}"]
    out = []
    if "enum" in node and value not in node["enum"]:
        out.append(f"{where}: {value!r} is not one of {node['enum']}")
    if isinstance(value, str):
        if not node.get("minLength", 0) <= len(value) <= node.get("maxLength", math.inf):
            out.append(f"{where}: length {len(value)} is out of bounds")
        if "pattern" in node and not python_regex(node["pattern"]).search(value):
            out.append(f"{where}: does not match {node['pattern']}")
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and not node.get("minimum", -math.inf) <= value <= node.get("maximum", math.inf):
        out.append(f"{where}: {value} is out of bounds")
    # The CRDs use anyOf only as key sets ({required, maxProperties}) closing typeless objects.
    if isinstance(value, dict) and "anyOf" in node and not any(
        set(branch.get("required", ())) <= set(value) and len(value) <= branch["maxProperties"]
        for branch in node["anyOf"]
    ):
        out.append(f"{where}: keys {sorted(value)} are not an allowed combination")
    if isinstance(value, list):
        if len(value) > node.get("maxItems", math.inf):
            out.append(f"{where}: more than {node['maxItems']} items")
        if node.get("x-kubernetes-list-type") == "set" and len(set(value)) != len(value):
            out.append(f"{where}: duplicate items")
        for i, item in enumerate(value if "items" in node else ()):
            out += violations(node["items"], item, f"{where}[{i}]")
    if isinstance(value, dict):
        out += [f"{where}.{key}: required" for key in node.get("required", ()) if key not in value]
        if len(value) > node.get("maxProperties", math.inf):
            out.append(f"{where}: more than {node['maxProperties']} entries")
        for key, item in value.items():
            if key in node.get("properties", {}):
                out += violations(node["properties"][key], item, f"{where}.{key}")
            elif isinstance(node.get("additionalProperties"), dict):
                out += violations(node["additionalProperties"], item, f"{where}.{key}")
            elif not node.get("x-kubernetes-preserve-unknown-fields"):
                out.append(f"{where}.{key}: unknown field")
    for rule in node.get("x-kubernetes-validations", ()):
        if "oldSelf" not in rule["rule"] and not cel_holds(rule["rule"], value):
            out.append(f"{where}{rule.get('fieldPath', '')}: {rule['message']}")  # as reported
    return out


# --------------------------------------------------------------------------- identity

KINDS = sorted(CRDS)
EXPECTED_NAMES = {
    "IAMRole": {"kind": "IAMRole", "listKind": "IAMRoleList", "plural": "iamroles",
                "singular": "iamrole", "shortNames": ["iamr"], "categories": ["rolekeeper", "iam"]},
    "IAMUser": {"kind": "IAMUser", "listKind": "IAMUserList", "plural": "iamusers",
                "singular": "iamuser", "shortNames": ["iamu"], "categories": ["rolekeeper", "iam"]},
}


@pytest.mark.parametrize("kind", KINDS)
def test_identity(kind: str) -> None:
    crd = CRDS[kind]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == f"{EXPECTED_NAMES[kind]['plural']}.{GROUP}"
    assert (crd["spec"]["group"], crd["spec"]["scope"]) == (GROUP, "Namespaced")
    assert crd["spec"]["names"] == EXPECTED_NAMES[kind]


@pytest.mark.parametrize("kind", KINDS)
def test_one_served_storage_version(kind: str) -> None:
    [version] = CRDS[kind]["spec"]["versions"]
    assert (version["name"], version["served"], version["storage"]) == (VERSION, True, True)


@pytest.mark.parametrize("kind", KINDS)
def test_status_subresource(kind: str) -> None:
    assert CRDS[kind]["spec"]["versions"][0]["subresources"] == {"status": {}}


@pytest.mark.parametrize("kind", KINDS)
def test_printer_columns(kind: str) -> None:
    ready = '.status.conditions[?(@.type=="Ready")]'
    columns = CRDS[kind]["spec"]["versions"][0]["additionalPrinterColumns"]
    default = [(c["name"], c["type"], c["jsonPath"]) for c in columns if not c.get("priority")]
    assert default == [
        ("ARN", "string", ".status.arn"),
        ("Ready", "string", f"{ready}.status"),
        ("Reason", "string", f"{ready}.reason"),
        ("Age", "date", ".metadata.creationTimestamp"),
    ]


@pytest.mark.parametrize("kind", KINDS)
def test_status_keeps_unknown_fields_for_kopf(kind: str) -> None:
    assert node_at(kind, "status")["x-kubernetes-preserve-unknown-fields"] is True


@pytest.mark.parametrize("kind", KINDS)
def test_status_fields(kind: str) -> None:
    status = node_at(kind, "status")
    assert set(status["properties"]) == {
        "arn", ID_FIELD[kind], "observedGeneration", "findings", "conditions"
    } | ({"accessKey"} if kind == "IAMUser" else set()) | (  # spec.accessKey (test_access_keys.py)
        {"roleLastUsed"} if kind == "IAMRole" else set()  # RK-UNUSED-001 (kinds/role.py usage)
    ) | ({"serviceAccounts"} if kind == "IAMRole" else set())  # tests/unit/test_irsa.py
    assert status["properties"]["observedGeneration"]["format"] == "int64"


@pytest.mark.parametrize("kind", KINDS)
def test_status_findings_accept_what_the_operator_writes(kind: str) -> None:
    from controller.core.findings import findings_for, suppress
    from controller.core.view import EntityView

    view = EntityView(kind, "team-a", "x", trust_policy={"Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"}]},
        managed_policies=frozenset({"arn:aws:iam::aws:policy/AdministratorAccess"}))
    written = [f.to_json() for f in suppress(findings_for(view), "RK-PERM-006=break-glass")]
    assert any(f.get("suppressed") for f in written)
    assert violations(node_at(kind, "status.findings"), written) == []


@pytest.mark.parametrize("kind", KINDS)
def test_conditions_are_a_map_keyed_by_type(kind: str) -> None:
    conditions = node_at(kind, "status.conditions")
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert set(conditions["items"]["properties"]) == {
        "type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"
    }
    assert "type" in conditions["items"]["required"]


# --------------------------------------------------------------------------- schema shape

# The API server forbids anything but `type` on the root `metadata` node, description included.
ALL_NODES = [
    (kind, path) for kind in KINDS for path, _ in walk(root_schema(kind)) if path != "metadata"
]


@pytest.mark.parametrize(("kind", "path"), [(k, "<root>") for k in KINDS] + ALL_NODES)
def test_every_field_has_a_description(kind: str, path: str) -> None:
    node = root_schema(kind) if path == "<root>" else dict(walk(root_schema(kind)))[path]
    assert len(node.get("description", "")) > 10


@pytest.mark.parametrize(("kind", "path"), ALL_NODES)
def test_every_field_is_structural(kind: str, path: str) -> None:
    node = dict(walk(root_schema(kind)))[path]
    assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields") is True


def test_role_requires_spec_and_trust_policy() -> None:
    assert root_schema("IAMRole")["required"] == ["spec"]
    # A trust policy, or the ServiceAccounts it is generated for (tests/unit/test_irsa.py).
    rules = [r["rule"] for r in node_at("IAMRole", "spec")["x-kubernetes-validations"]]
    assert "has(self.assumeRolePolicy) || has(self.serviceAccounts)" in rules


def test_user_spec_may_be_empty() -> None:
    assert node_at("IAMUser", "spec")["default"] == {}
    assert violations(node_at("IAMUser", "spec"), {}) == []


SHARED = ["spec.path", "spec.managedPolicies", "spec.inlinePolicies", "spec.permissionsBoundary",
          "spec.tags", "spec.deletionPolicy", "spec.adopt", "status.arn", "status.conditions",
          "status.findings"]


def _without_prose(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: _without_prose(v) for k, v in node.items() if k not in ("description", "message")
        }
    if isinstance(node, list):
        return [_without_prose(v) for v in node]
    return node


@pytest.mark.parametrize("path", SHARED)
def test_shared_fields_have_one_schema(path: str) -> None:
    role, user = (_without_prose(node_at(kind, path)) for kind in KINDS)
    assert role == user


DEFAULTS = [
    ("IAMRole", "spec.path", "/"), ("IAMRole", "spec.maxSessionDuration", 3600),
    ("IAMRole", "spec.instanceProfile", False), ("IAMRole", "spec.deletionPolicy", "Delete"),
    ("IAMRole", "spec.adopt", False), ("IAMUser", "spec.path", "/"),
    ("IAMUser", "spec.deletionPolicy", "Delete"), ("IAMUser", "spec.adopt", False),
]


@pytest.mark.parametrize(("kind", "path", "default"), DEFAULTS)
def test_default(kind: str, path: str, default: Any) -> None:
    node = node_at(kind, path)
    assert node["default"] == default
    assert violations(node, node["default"]) == []


@pytest.mark.parametrize("kind", KINDS)
def test_path_is_immutable(kind: str) -> None:
    [rule] = node_at(kind, "spec.path")["x-kubernetes-validations"]
    assert rule["rule"] == "self == oldSelf"


@pytest.mark.parametrize("kind", KINDS)
def test_name_is_immutable_including_the_metadata_name_fallback(kind: str) -> None:
    field = NAME_FIELD[kind]
    effective = "(has({0}.spec.{1}) ? {0}.spec.{1} : {0}.metadata.name)"
    rules = {r["rule"]: r for r in root_schema(kind)["x-kubernetes-validations"]}
    rule = rules[f"{effective.format('self', field)} == {effective.format('oldSelf', field)}"]
    assert rule["message"].startswith(f"{field} is immutable")
    assert rule["fieldPath"] == f".spec.{field}"


@pytest.mark.parametrize(("kind", "path"), ALL_NODES)
def test_cel_rules_over_collections_are_bounded(kind: str, path: str) -> None:
    node = dict(walk(root_schema(kind)))[path]
    if any("self.all(" in r["rule"] for r in node.get("x-kubernetes-validations", ())):
        assert "maxProperties" in node or "maxItems" in node


# --------------------------------------------------------------------------- value tables

# (field, value, valid). `{name}` is roleName or userName; `x[]` is an item of list x, `x{}` a
# value of map x. A field that only one kind has is checked on that kind only.
ARN = "arn:aws:iam::aws:policy/ReadOnlyAccess"
CASES: list[tuple[str, Any, bool]] = [
    ("{name}", "team-a-web-ec2", True),
    ("{name}", "A_b+c=d,e.f@g-h0", True),
    ("{name}", "x" * 64, True),
    ("{name}", "", False),
    ("{name}", "x" * 65, False),
    ("{name}", "web ec2", False),
    ("{name}", "apps/web", False),
    ("{name}", "wéb", False),  # RE2's \w is ASCII
    ("{name}", "web\n", False),  # RE2's $ is the end of the text
    ("path", "/", True),
    ("path", "/apps/", True),
    ("path", "/a/b-c/d_e/", True),
    ("path", "/" + "x" * 510 + "/", True),
    ("path", "/" + "x" * 511 + "/", False),
    ("path", "", False),
    ("path", "apps/", False),
    ("path", "/apps", False),
    ("path", "//", False),  # IAM: (\u002F)|(\u002F[\u0021-\u007E]+\u002F)
    ("path", "/my apps/", False),
    ("path", "/äpps/", False),
    ("description", "", True),
    ("description", "Web tier\tinstances\r\nof team-a", True),
    ("description", "Café — no", False),  # em dash is outside Latin-1
    ("description", "Café, ©, ÿ", True),
    ("description", "x" * 1000, True),
    ("description", "x" * 1001, False),
    ("description", "bell\x07", False),
    ("description", "del\x7f", False),
    ("description", "🙂", False),
    ("maxSessionDuration", 3600, True),
    ("maxSessionDuration", 43200, True),
    ("maxSessionDuration", 3599, False),
    ("maxSessionDuration", 43201, False),
    ("maxSessionDuration", "3600", False),
    ("managedPolicies[]", ARN, True),
    ("managedPolicies[]", "arn:aws:iam::123456789012:policy/team-a/boundary", True),
    ("managedPolicies[]", "arn:aws:iam::aws:policy/service-role/AWSLambdaRole", True),
    ("managedPolicies[]", "arn:aws-cn:iam::aws:policy/ReadOnlyAccess", True),
    ("managedPolicies[]", "arn:aws-us-gov:iam::123456789012:policy/x", True),
    ("managedPolicies[]", "arn:aws-iso-b:iam::aws:policy/x", True),
    ("managedPolicies[]", "ReadOnlyAccess", False),
    ("managedPolicies[]", "arn:aws:iam::12345678901:policy/x", False),
    ("managedPolicies[]", "arn:aws:iam::123456789012:role/x", False),
    ("managedPolicies[]", "arn:aws:iam::aws:policy/", False),
    ("managedPolicies[]", "arn:aws-eu:iam::aws:policy/x", False),
    ("managedPolicies[]", "arn:aws:s3:::bucket", False),
    ("managedPolicies[]", ARN + "\n", False),
    ("managedPolicies", [ARN] * 2, False),
    ("managedPolicies", [f"{ARN}{i}" for i in range(20)], True),
    ("managedPolicies", [f"{ARN}{i}" for i in range(21)], False),
    ("permissionsBoundary", "arn:aws:iam::aws:policy/PowerUserAccess", True),
    ("permissionsBoundary", "arn:aws:iam::aws:role/PowerUserAccess", False),
    ("inlinePolicies", {"write-logs": {}}, True),
    ("inlinePolicies", {"A_b+c=d,e.f@g": {}}, True),
    ("inlinePolicies", {"x" * 128: {}}, True),
    ("inlinePolicies", {"x" * 129: {}}, False),
    ("inlinePolicies", {"": {}}, False),
    ("inlinePolicies", {"write logs": {}}, False),
    ("inlinePolicies", {"logs/write": {}}, False),
    ("inlinePolicies", {"p": "Allow everything"}, False),
    ("inlinePolicies{}", {"Version": "2012-10-17", "Statement": []}, True),
    ("inlinePolicies{}", {"Version": "2012-10-18"}, False),
    ("tags", {"team": "a"}, True),
    ("tags", {"cost center": "1234"}, True),
    ("tags", {"kubernetes.io/cluster/prod": "owned"}, True),
    ("tags", {"Équipe": "a"}, True),
    ("tags", {"awsome": "a", "aws": "b"}, True),
    ("tags", {"k" * 128: "a"}, True),
    ("tags", {"k" * 129: "a"}, False),
    ("tags", {"aws:cloudformation:stack-name": "a"}, False),
    ("tags", {"AWS:x": "a"}, False),
    ("tags", {"rolekeeper.dev/owner": "team-a/web"}, False),
    ("tags", {"RoleKeeper.dev/uid": "x"}, False),
    ("tags", {"team,a": "x"}, False),
    ("tags", {"": "x"}, False),
    ("tags", {f"k{i}": "v" for i in range(50)}, True),
    ("tags", {f"k{i}": "v" for i in range(51)}, False),
    ("tags{}", "", True),
    ("tags{}", "Jane Doe @ ops: +1=2 a/b_c.d-e", True),
    ("tags{}", "Ünïcode 東京 ٣", True),
    ("tags{}", "v" * 256, True),
    ("tags{}", "v" * 257, False),
    ("tags{}", "a,b", False),
    ("tags{}", "#1", False),
    ("tags{}", "tab\there", False),  # \p{Z} is space separators, not all whitespace
    ("tags{}", 1, False),
    ("instanceProfile", True, True),
    ("instanceProfile", "true", False),
    ("deletionPolicy", "Delete", True),
    ("deletionPolicy", "Retain", True),
    ("deletionPolicy", "delete", False),
    ("deletionPolicy", "Orphan", False),
    ("adopt", "yes", False),
    ("groups[]", "deployers", True),
    ("groups[]", "x" * 128, True),
    ("groups[]", "x" * 129, False),
    ("groups[]", "", False),
    ("groups[]", "the deployers", False),
    ("groups", ["a", "a"], False),
    ("groups", [f"g{i}" for i in range(10)], True),
    ("groups", [f"g{i}" for i in range(11)], False),
]


def _expand() -> Iterator[Any]:
    for field, value, valid in CASES:
        for kind in KINDS:
            path = "spec." + field.replace("{name}", NAME_FIELD[kind])
            try:
                node_at(kind, path)
            except KeyError:
                continue
            yield pytest.param(kind, path, value, valid, id=f"{kind}-{path}-{value!r:.40}")


@pytest.mark.parametrize(("kind", "path", "value", "valid"), list(_expand()))
def test_value(kind: str, path: str, value: Any, valid: bool) -> None:
    assert (violations(node_at(kind, path), value) == []) is valid


@pytest.mark.parametrize(
    "field", sorted({re.split(r"[\[{]", f)[0] for f, _, _ in CASES} - {""})
)
def test_every_table_field_exists_somewhere(field: str) -> None:
    assert any(field in node_at(kind, "spec")["properties"] for kind in KINDS)


# --------------------------------------------------------------------------- policy documents

DOCUMENTS = [("IAMRole", "spec.assumeRolePolicy"), ("IAMRole", "spec.inlinePolicies{}"),
             ("IAMUser", "spec.inlinePolicies{}")]
MAX_SAFE = 2**53 - 1


def _document(kind: str, path: str) -> Schema:
    return node_at(kind, path) if not path.endswith("{}") else node_at(
        kind, path[:-2])["additionalProperties"]


@pytest.mark.parametrize(("kind", "path"), DOCUMENTS[1:])
def test_every_policy_document_has_the_trust_policy_schema(kind: str, path: str) -> None:
    assert _without_prose(_document(kind, path)) == _without_prose(_document(*DOCUMENTS[0]))


STATEMENT_KEYS = ["Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction",
                  "Resource", "NotResource", "Condition"]


@pytest.mark.parametrize("at", ["Statement", "Statement[]"])
def test_statement_key_sets_are_exactly_the_grammar(at: str) -> None:
    node = _document(*DOCUMENTS[0])["properties"]["Statement"]
    node = node["items"] if at.endswith("[]") else node
    allowed = {tuple(sorted(b["required"])) for b in node["anyOf"]}
    expected = {
        tuple(sorted({"Effect", action, *extra}))
        for action in ("Action", "NotAction")
        for principal in ((), ("Principal",), ("NotPrincipal",))
        for resource in ((), ("Resource",), ("NotResource",))
        for sid in ((), ("Sid",))
        for condition in ((), ("Condition",))
        for extra in [(*principal, *resource, *sid, *condition)]
    }
    assert allowed == expected
    assert all(b["maxProperties"] == len(b["required"]) for b in node["anyOf"])


def _nested(depth: int) -> Any:
    value: Any = "s3:GetObject"
    for _ in range(depth):
        value = [value]
    return value


def _statement(**fields: Any) -> dict[str, Any]:
    body = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", **fields}
    return {"Version": "2012-10-17", "Statement": [{k: v for k, v in body.items() if v is not None}]}


TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
DOCUMENT_CASES: list[tuple[str, Any, bool]] = [
    ("trust policy", TRUST, True),
    ("one statement as an object", {"Statement": TRUST["Statement"][0]}, True),
    ("principal *", _statement(Principal="*"), True),
    ("federated principal list", _statement(Principal={"Federated": ["a", "b"]}), True),
    ("condition with numbers and booleans", _statement(Condition={
        "Bool": {"aws:SecureTransport": False}, "NumericLessThan": {"aws:MultiFactorAuthAge": 3600},
        "StringEquals": {"aws:PrincipalTag/team": ["a", "b"]}}), True),
    ("largest exact integer", _statement(Condition={"NumericEquals": {"k": MAX_SAFE}}), True),
    ("action 42 (Rolekeeper reports it)", _statement(Action=42), True),
    ("unknown operator (Rolekeeper reports it)", _statement(Condition={"StringEqualz": {"k": "v"}}), True),
    ("Effect allow (Rolekeeper reports the case)", _statement(Effect="allow"), True),
    ("500 statements", {"Statement": [TRUST["Statement"][0]] * 500}, True),
    ("1000 actions", _statement(Action=[f"s3:A{i}" for i in range(1000)]), True),
    ("600-deep Action", _statement(Action=_nested(600)), False),
    ("list in a list of actions", _statement(Action=[["s3:GetObject"]]), False),
    ("object as Action", _statement(Action={"a": {"b": "c"}}), False),
    ("600-deep condition value", _statement(Condition={"StringEquals": {"k": _nested(600)}}), False),
    ("object as condition value", _statement(Condition={"StringEquals": {"k": {"x": 1}}}), False),
    ("condition block not an object", _statement(Condition={"StringEquals": "x"}), False),
    ("integer 2^53", _statement(Condition={"NumericEquals": {"k": MAX_SAFE + 1}}), False),
    ("number 1e20", _statement(Condition={"NumericEquals": {"k": 1e20}}), False),
    ("negative beyond 2^53", _statement(Action=[-(MAX_SAFE + 1)]), False),
    ("unknown statement key", _statement(Actions=[_nested(600)]), False),
    ("unknown key in one-object Statement",
     {"Statement": {"Effect": "Allow", "Action": "x", "Foo": _nested(600)}}, False),
    ("Action and NotAction in one object",
     {"Statement": {"Effect": "Allow", "Action": "x", "NotAction": "y"}}, False),
    ("unknown principal type", _statement(Principal={"Account": _nested(600)}), False),
    ("principal as a list", _statement(Principal=["*"]), False),
    ("unknown document key", {**TRUST, "Statment": _nested(600)}, False),
    ("501 statements", {"Statement": [TRUST["Statement"][0]] * 501}, False),
    ("1001 actions", _statement(Action=[f"s3:A{i}" for i in range(1001)]), False),
    ("65 condition operators", _statement(Condition={f"Op{i}": {"k": "v"} for i in range(65)}), False),
    ("257-character action", _statement(Action="s3:" + "A" * 254), False),
    ("Effect as a boolean", _statement(Effect=True), False),
    ("Id as a number", {**TRUST, "Id": 5}, False),
]


@pytest.mark.parametrize(("kind", "path"), DOCUMENTS)
@pytest.mark.parametrize(("what", "value", "valid"), DOCUMENT_CASES, ids=[c[0] for c in DOCUMENT_CASES])
def test_policy_document(kind: str, path: str, what: str, value: Any, valid: bool) -> None:
    assert (violations(_document(kind, path), value) == []) is valid


def _open_nodes() -> Iterator[Any]:
    for kind, path in DOCUMENTS:
        for sub, node in walk(_document(kind, path), path):
            if node.get("x-kubernetes-preserve-unknown-fields"):
                yield pytest.param(node, id=f"{kind}-{sub}")


@pytest.mark.parametrize("node", list(_open_nodes()))
def test_typeless_nodes_hold_no_nested_unknown_value(node: Schema) -> None:
    # Where the API server cannot prune (a typeless node), the schema itself must refuse depth.
    assert violations(node, {"Unknown": {"a": {"b": "c"}}})
    assert violations(node, [[[["deep"]]]])
