"""Test-only fault injection. The ONE place the daemon reads fault switches from the environment.

``STYLECAST_TEST_WEDGE_INFER_AFTER=N``: after N inferences the inference stage blocks forever
without beating its heartbeat, as a hung GPU call would (tests/test_notify.py uses it to show
that the watchdog pings stop). Never set it in production; the daemon logs loudly when it is.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

WEDGE_INFER_ENV = "STYLECAST_TEST_WEDGE_INFER_AFTER"


def wedge_infer_after() -> int | None:
    """N from ``$STYLECAST_TEST_WEDGE_INFER_AFTER`` or None (off, or not a non-negative integer)."""
    raw = os.environ.get(WEDGE_INFER_ENV, "")
    if not raw:
        return None
    if not raw.isdigit():
        log.error("ignoring %s=%r: expected a non-negative integer", WEDGE_INFER_ENV, raw)
        return None
    log.warning("TEST FAULT ARMED: inference will hang after %s frames (%s)", raw, WEDGE_INFER_ENV)
    return int(raw)
