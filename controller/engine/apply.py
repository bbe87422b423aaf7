"""Run a Decision's Actions in order, with the idempotence rules that make retries safe.

Rules, each because a crash between two calls, or an answer lost after AWS applied the call
(the client's retry then meets its own result), must never wedge the next attempt:

- `NoSuchEntity` from a delete-like call (Delete*, Detach*, Remove*, Untag*, Deactivate*) is
  success: the goal of the step is met;
- anything a kind's `tolerate` accepts (e.g. a role's own instance profile that exists already,
  or already holds the role) is success;
- everything else stops the batch with the classified error (`core.errors`), which carries the
  calls that succeeded before it, so the caller can post Events for them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from controller.aws import calls
from controller.core.actions import Action
from controller.core.errors import AWSError

if TYPE_CHECKING:
    from controller.kinds.base import Kind

log = logging.getLogger(__name__)

DELETE_PREFIXES = ("Delete", "Detach", "Remove", "Untag", "Deactivate")
OnApplied = Callable[[Action], None]


@dataclass(frozen=True)
class Applied:
    """One successful call and the response AWS returned (ARNs and ids of created entities)."""

    action: Action
    response: Mapping[str, Any]


def execute(
    client: Any,
    kind: Kind,
    actions: Iterable[Action],
    on_applied: OnApplied | None = None,
) -> list[Applied]:
    """Run actions in order; stop at the first error, which carries what was applied before it."""
    done: list[Applied] = []
    for action in actions:
        try:
            response = _call(client, kind, action)
        except AWSError as exc:
            exc.applied = tuple(a.action for a in done)
            exc.created = tuple(
                made for a in done if (made := kind.created(a.action, a.response)) is not None
            )
            raise
        done.append(Applied(action, response))
        log.debug("%s %s", action.api, action.summary)
        if on_applied is not None:
            on_applied(action)
    return done


def _call(client: Any, kind: Kind, action: Action) -> Mapping[str, Any]:
    try:
        return calls.invoke(client, action)
    except AWSError as exc:
        if exc.code == "NoSuchEntity" and action.api.startswith(DELETE_PREFIXES):
            return {}
        if kind.tolerate(client, action, exc):
            return {}
        raise
