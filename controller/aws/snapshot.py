"""The raw account snapshot: GetAccountAuthorizationDetails plus ListRoles, in a few pages.

Each kind turns the raw lists into its entities (`Kind.from_snapshot`); this module only
knows which AWS calls read the whole account cheaply.

Customer-managed policies come with GAAD (`LocalManagedPolicy`: every version and its
document) but without tags: no bulk IAM call returns a managed policy's tags (GAAD's
`ManagedPolicyDetail` and `ListPolicies` have none). They are read with one `ListPolicyTags`
per policy, for the policies the caller names (all by default): ownership is decided by tags.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from controller.aws import calls
from controller.aws.calls import PAGE, classified


@dataclass(frozen=True)
class RawSnapshot:
    """What AWS returned, by GAAD list name ("RoleDetailList", ...) plus ListRoles settings."""

    details: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    listed_roles: dict[str, dict[str, Any]] = field(default_factory=dict)  # by RoleName
    # Tags of customer-managed policies by ARN (GAAD has none); only those read.
    policy_tags: dict[str, dict[str, str]] = field(default_factory=dict)
    taken_at: float = 0.0  # time.monotonic() when the read finished
    pages: int = 0  # API calls the read made


def read_raw(
    iam: Any,
    *,
    policy_tags: Collection[str] | None = None,
    known_tags: Mapping[str, dict[str, str]] | None = None,
) -> RawSnapshot:
    """GetAccountAuthorizationDetails (roles, users, customer-managed policies) plus ListRoles
    and ListPolicyTags for what it lacks.

    GAAD omits a role's Description and MaxSessionDuration; ListRoles has both at up to 1,000
    roles a page, so two paginated reads cover the whole account. GAAD omits every managed
    policy's tags: one ListPolicyTags per policy named in `policy_tags` (None: every
    customer-managed policy; an operator passes the names its IAMPolicy objects manage).
    `known_tags` (by ARN) are used as they are instead of being read again: the sweep passes
    what it read recently, so a steady sweep costs its pages only (docs/design.md).
    """
    pages = 0
    details: dict[str, list[dict[str, Any]]] = {
        "RoleDetailList": [],
        "UserDetailList": [],
        "Policies": [],
    }
    with classified("GetAccountAuthorizationDetails"):
        for page in iam.get_paginator("get_account_authorization_details").paginate(
            Filter=["Role", "User", "LocalManagedPolicy"], PaginationConfig={"PageSize": PAGE}
        ):
            pages += 1
            for key, items in details.items():
                items.extend(page.get(key, []))
    listed: dict[str, dict[str, Any]] = {}
    if details["RoleDetailList"]:
        with classified("ListRoles"):
            for listed_page in iam.get_paginator("list_roles").paginate(
                PaginationConfig={"PageSize": PAGE}
            ):
                pages += 1
                for role in listed_page["Roles"]:
                    listed[role["RoleName"]] = dict(role)
    wanted = None if policy_tags is None else set(policy_tags)
    found_tags: dict[str, dict[str, str]] = {}
    for detail in list(details["Policies"]):
        arn = detail["Arn"]
        if wanted is not None and arn.rsplit("/", 1)[-1] not in wanted:
            continue
        if known_tags is not None and arn in known_tags:
            found_tags[arn] = known_tags[arn]
            continue
        pages += 1  # at most 50 tags: always one page
        found = calls.get_or_none("ListPolicyTags", partial(_policy_tags, iam, arn))
        if found is None:  # deleted since GAAD listed it: it is not in the account
            details["Policies"].remove(detail)
        else:
            found_tags[arn] = found
    return RawSnapshot(
        details=details,
        listed_roles=listed,
        policy_tags=found_tags,
        taken_at=time.monotonic(),
        pages=pages,
    )


def _policy_tags(iam: Any, arn: str) -> dict[str, str]:
    return calls.tags(calls.pages(iam, "list_policy_tags", "Tags", PolicyArn=arn))
