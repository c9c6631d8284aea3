"""Signal handlers that set a ``threading.Event``, safe when one signal lands inside another's handler.

Python runs a handler on the main thread between two bytecodes, which can be in the middle of
an earlier handler's ``Event.set()``. ``Event.set`` holds the event's lock (not re-entrant)
while it wakes the waiters. So a second handler that calls ``set()`` at that moment waits for a
lock its own thread holds, and the process never stops. That happened here once to `make run`
stopped by ``timeout``, which signals the whole process group while make also passes the signal
on; Ctrl-C under make can deliver two signals the same way. These handlers never wait for that
lock.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType


def set_on_signal(event: threading.Event, *signals: signal.Signals) -> None:
    """From now on each of ``signals`` sets ``event`` (replacing their handlers; call on the main
    thread, once per event, and let no other code on the main thread set ``event``: a handler that
    interrupted such a ``set()`` would wait for its lock). A signal that arrives while an earlier
    one is setting the same event is folded into it; one for another event (SIGTERM inside
    SIGHUP's handler) still sets that."""
    guard = threading.Lock()  # taken without waiting, only by this event's handler

    def handler(signum: int, frame: FrameType | None) -> None:
        if event.is_set() or not guard.acquire(blocking=False):
            return  # already set, or an outer call of this handler is setting it right now
        try:
            event.set()
        finally:
            guard.release()

    for sig in signals:
        signal.signal(sig, handler)


def terminate_as_interrupt() -> None:
    """From now on SIGTERM raises KeyboardInterrupt on the main thread, as Ctrl-C does, so a
    one-shot command (``view --out``, ``stylize``) under ``timeout`` or a service manager closes
    its output as it does on Ctrl-C: without it the process died with a file that had no index
    (an mp4 without its moov atom) or a ``.partial`` temp file left behind."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)
