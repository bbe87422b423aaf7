"""Pod identities: the trust statements that let Kubernetes ServiceAccounts assume an IAM role.

`spec.serviceAccounts` of an IAMRole names ServiceAccounts; Rolekeeper writes the statements that
trust them, so nobody copies an OIDC provider ARN or a `:sub` string by hand:

- IRSA (the default): one statement `RolekeeperIRSA` trusting the cluster's OIDC provider
  (`arn:<partition>:iam::<account>:oidc-provider/<issuer host and path>`) with
  `sts:AssumeRoleWithWebIdentity`, the `<issuer>:sub` condition naming exactly the listed
  ServiceAccounts and `<issuer>:aud` = `sts.amazonaws.com`. The operator also annotates each
  ServiceAccount with `eks.amazonaws.com/role-arn` (operator/serviceaccounts.py).
- EKS Pod Identity (`spec.podIdentity`): one statement per ServiceAccount,
  `RolekeeperPodIdentity<i>`, trusting `pods.eks.amazonaws.com` with `sts:AssumeRole` +
  `sts:TagSession`, conditioned on the session tags EKS sets (`kubernetes-namespace`,
  `kubernetes-service-account`, optionally `eks-cluster-name`). The association itself is made
  outside Rolekeeper (docs/pod-identity.md).

The generated statements are appended to the statements the spec writes; their Sids start with
`Rolekeeper`, which the spec's own statements may then not use. Everything here is pure: the
operator and `rolekeeper plan` generate the same document from the same inputs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

ANNOTATION = "eks.amazonaws.com/role-arn"  # what the EKS pod identity webhook reads
AUDIENCE = "sts.amazonaws.com"
SID_PREFIX = "Rolekeeper"
IRSA_SID = f"{SID_PREFIX}IRSA"
POD_IDENTITY_SID = f"{SID_PREFIX}PodIdentity"
POD_IDENTITY_SERVICE = "pods.eks.amazonaws.com"
MAX_SERVICE_ACCOUNTS = 20  # also the CRD's maxItems: the trust policy's size runs out first
# Kubernetes' own rules: a namespace is a DNS label, a ServiceAccount name a DNS subdomain.
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# EKS's CreateCluster rule for cluster names.
CLUSTER_NAME = re.compile(r"[0-9A-Za-z][A-Za-z0-9_-]{0,99}")


class IssuerError(ValueError):
    """An OIDC issuer URL IAM cannot use as a provider."""


@dataclass(frozen=True, order=True)
class ServiceAccountRef:
    """One Kubernetes ServiceAccount, by namespace and name."""

    namespace: str
    name: str

    @property
    def subject(self) -> str:
        """The `sub` claim of its tokens."""
        return f"system:serviceaccount:{self.namespace}:{self.name}"

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class PodIdentity:
    """What `spec.serviceAccounts` and `spec.podIdentity` ask for."""

    service_accounts: tuple[ServiceAccountRef, ...]  # sorted, unique
    irsa: bool = True  # IRSA statement + ServiceAccount annotations
    eks: bool = False  # EKS Pod Identity statements
    cluster_name: str = ""  # EKS Pod Identity: only pods of this cluster ("" any)


def normalize_issuer(url: str) -> str:
    """The issuer as IAM and the token's `iss` claim spell it: https://host[:port][/path], no
    trailing slash; IssuerError for anything else (IAM providers are https only)."""
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme != "https" or not parts.hostname:
        raise IssuerError(f"{url!r} is not an https:// URL (IAM OIDC providers are https only)")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise IssuerError(f"{url!r} must not carry a query, fragment or credentials")
    if any(c.isspace() for c in text):
        raise IssuerError(f"{url!r} contains white space")
    return text.rstrip("/")


def provider(issuer: str) -> str:
    """The provider part of ARNs and condition keys: the issuer without https://."""
    return issuer.removeprefix("https://")


def provider_arn(issuer: str, account_id: str, partition: str = "aws") -> str:
    return f"arn:{partition}:iam::{account_id}:oidc-provider/{provider(issuer)}"


def irsa_statement(
    accounts: Sequence[ServiceAccountRef], issuer: str, account_id: str, partition: str = "aws"
) -> dict[str, Any]:
    """The one IRSA statement trusting exactly `accounts` (one subject: a string, more: a list)."""
    host = provider(issuer)
    subjects = sorted({a.subject for a in accounts})
    return {
        "Sid": IRSA_SID,
        "Effect": "Allow",
        "Principal": {"Federated": provider_arn(issuer, account_id, partition)},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {
            "StringEquals": {
                f"{host}:sub": subjects[0] if len(subjects) == 1 else subjects,
                f"{host}:aud": AUDIENCE,
            }
        },
    }


def pod_identity_statements(
    accounts: Sequence[ServiceAccountRef], cluster_name: str = ""
) -> list[dict[str, Any]]:
    """One EKS Pod Identity statement per ServiceAccount: the namespace and name conditions must
    hold together, which one statement with two lists would not say."""
    found = []
    for index, account in enumerate(sorted(set(accounts))):
        tags = {
            "aws:RequestTag/kubernetes-namespace": account.namespace,
            "aws:RequestTag/kubernetes-service-account": account.name,
        }
        if cluster_name:
            tags["aws:RequestTag/eks-cluster-name"] = cluster_name
        found.append(
            {
                "Sid": f"{POD_IDENTITY_SID}{index}",
                "Effect": "Allow",
                "Principal": {"Service": POD_IDENTITY_SERVICE},
                "Action": ["sts:AssumeRole", "sts:TagSession"],
                "Condition": {"StringEquals": tags},
            }
        )
    return found


def statements(
    identity: PodIdentity, issuer: str | None, account_id: str, partition: str = "aws"
) -> list[dict[str, Any]]:
    """Every generated statement; IRSA needs the issuer (None: ValueError, callers check)."""
    found = []
    if identity.irsa:
        if issuer is None:
            raise ValueError("IRSA statements need the cluster's OIDC issuer")
        found.append(irsa_statement(identity.service_accounts, issuer, account_id, partition))
    if identity.eks:
        found += pod_identity_statements(identity.service_accounts, identity.cluster_name)
    return found


def merge(written: Mapping[str, Any], generated: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The spec's trust policy (possibly empty) with the generated statements appended."""
    own = written.get("Statement", [])
    listed = [own] if isinstance(own, Mapping) else list(own or [])
    merged = {k: v for k, v in written.items() if k != "Statement"}
    merged.setdefault("Version", "2012-10-17")
    merged["Statement"] = [*listed, *(dict(s) for s in generated)]
    return merged


def reserved_sids(written: Mapping[str, Any], field_path: str) -> list[str]:
    """Errors for statements of the spec whose Sid starts with the generated prefix: a reader
    must be able to tell what Rolekeeper wrote from what the spec wrote."""
    own = written.get("Statement", [])
    listed = [own] if isinstance(own, Mapping) else own if isinstance(own, list) else []
    errors = []
    for index, statement in enumerate(listed):
        sid = statement.get("Sid") if isinstance(statement, Mapping) else None
        if isinstance(sid, str) and sid.lower().startswith(SID_PREFIX.lower()):
            where = f"{field_path}.Statement" + ("" if isinstance(own, Mapping) else f"[{index}]")
            errors.append(
                f"{where}.Sid: {sid!r} starts with {SID_PREFIX!r}, which marks the statements "
                "Rolekeeper generates from spec.serviceAccounts; rename it"
            )
    return errors


@dataclass(frozen=True)
class TrustContext:
    """What the generated statements need besides the spec: the cluster's OIDC issuer (None:
    not known), the AWS account the role lives in, and its partition."""

    issuer: str | None
    account_id: str
    partition: str = "aws"
    trust_policy_size: int = 2048  # Limits.trust_policy_size
    # What an object using IRSA is told when `issuer` is None (how to give it, where this runs).
    missing_issuer: str = (
        "spec.serviceAccounts: the cluster's OIDC issuer is not known, so the IRSA trust "
        "statement cannot be written"
    )
