"""Whether Kopf's peering has paused this replica, for the work the operator does outside handlers.

Kopf pauses a replica's handlers when a peer of higher priority is alive (or one of equal
priority: then all pause), and resumes them when it is gone. The drift sweeps and the CloudTrail
consumer run outside Kopf's handlers, so Kopf does not pause them: without this, a replica that
had been active kept sweeping after another took over, and two replicas corrected the same
drift. Kopf offers no public way to ask; it does log each change of its verdict, on its peering
logger, in fixed words ("Pausing operations in favour of …", "Pausing all operators, including
self …", "Resuming operations after the pause …"). `PeeringState` follows those records.

Limits: one verdict for the process. With several peering ensembles (namespaced peering and
several watched namespaces) the last change wins; the Deployment peers cluster-wide (one
ensemble). A Kopf upgrade that rewords the lines breaks tests/e2e/test_ha.py at once.
"""

from __future__ import annotations

import logging

KOPF_PEERING_LOGGER = "kopf._core.engines.peering"
PAUSING = ("Pausing operations", "Pausing all operators")
RESUMING = ("Resuming operations",)


class PeeringState(logging.Handler):
    """Kopf's latest peering verdict for this process, read from its peering log records."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.paused = False

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(PAUSING):
            self.paused = True
        elif message.startswith(RESUMING):
            self.paused = False


def follow() -> PeeringState:
    """A PeeringState attached to Kopf's peering logger (its INFO records kept, whatever the
    operator's log level)."""
    state = PeeringState()
    logger = logging.getLogger(KOPF_PEERING_LOGGER)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.addHandler(state)
    return state
