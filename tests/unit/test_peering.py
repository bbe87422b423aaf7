"""operator.peering: Kopf's pause and resume, followed from the lines Kopf logs for them.

The lines are Kopf 1.45's own (kopf/_core/engines/peering.py); tests/e2e/test_ha.py proves the
same against real replicas, so a Kopf upgrade that rewords them fails there too.
"""

from __future__ import annotations

import logging

from controller.operator.peering import KOPF_PEERING_LOGGER, follow


def test_pause_and_resume_follow_kopfs_peering_lines() -> None:
    state = follow()
    logger = logging.getLogger(KOPF_PEERING_LOGGER)
    try:
        assert not state.paused
        logger.info("Pausing operations in favour of [Peer(identity='b', priority=20)].")
        assert state.paused
        logger.info("Resuming operations after the pause. Conflicting operators with the same "
                    "priority are gone.")
        assert not state.paused
        logger.warning("Possibly conflicting operators with the same priority: [...].")
        assert not state.paused  # a warning alone changes nothing
        logger.warning("Pausing all operators, including self: [...]")
        assert state.paused
    finally:
        logger.removeHandler(state)


def test_the_lines_are_seen_whatever_the_operators_log_level() -> None:
    logging.getLogger(KOPF_PEERING_LOGGER).setLevel(logging.NOTSET)
    root = logging.getLogger()
    before = root.level
    root.setLevel(logging.WARNING)  # `rolekeeper run` without --verbose may be this quiet
    state = follow()
    try:
        logging.getLogger(KOPF_PEERING_LOGGER).info("Pausing operations in favour of [...]")
        assert state.paused
    finally:
        logging.getLogger(KOPF_PEERING_LOGGER).removeHandler(state)
        root.setLevel(before)
