"""The raw account snapshot: GetAccountAuthorizationDetails plus ListRoles, in a few pages.

Each kind turns the raw lists into its entities (`Kind.from_snapshot`); this module only
knows which AWS calls read the whole account cheaply.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from controller.aws.calls import PAGE, classified


@dataclass(frozen=True)
class RawSnapshot:
    """What AWS returned, by GAAD list name ("RoleDetailList", ...) plus ListRoles settings."""

    details: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    listed_roles: dict[str, dict[str, Any]] = field(default_factory=dict)  # by RoleName
    taken_at: float = 0.0  # time.monotonic() when the read finished
    pages: int = 0  # API calls the read made


def read_raw(iam: Any) -> RawSnapshot:
    """GetAccountAuthorizationDetails (roles, users) plus ListRoles for what it lacks.

    GAAD omits a role's Description and MaxSessionDuration; ListRoles has both at up to 1,000
    roles a page, so two paginated reads cover the whole account.
    """
    pages = 0
    details: dict[str, list[dict[str, Any]]] = {"RoleDetailList": [], "UserDetailList": []}
    with classified("GetAccountAuthorizationDetails"):
        for page in iam.get_paginator("get_account_authorization_details").paginate(
            Filter=["Role", "User"], PaginationConfig={"PageSize": PAGE}
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
    return RawSnapshot(details=details, listed_roles=listed, taken_at=time.monotonic(), pages=pages)
