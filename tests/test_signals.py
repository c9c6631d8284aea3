"""A second signal that lands inside the first one's handler must not hang the process.

Reproduced deterministically in a child process: the event's ``notify_all`` (which ``Event.set``
calls while holding the event's lock) sends the process a second SIGTERM, so the second handler
runs exactly where it used to deadlock. Before ``streamer.signals`` the daemon did hang this way
(`make run` stopped by ``timeout``: two SIGTERMs, one from the group kill and one from make)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

CHILD = textwrap.dedent("""
    import os, signal, threading, sys
    stop = threading.Event()
    if sys.argv[1] == "naive":   # what cli.py did before
        for s in (signal.SIGTERM, signal.SIGINT):
            signal.signal(s, lambda *_: stop.set())
    else:
        from streamer.signals import set_on_signal
        set_on_signal(stop, signal.SIGTERM, signal.SIGINT)
    cond = stop._cond
    original = cond.notify_all
    def notify_all_then_signal_again():
        if not getattr(cond, "resent", False):
            cond.resent = True
            os.kill(os.getpid(), signal.SIGINT)   # the second signal, inside Event.set
            for _ in range(1000):                  # let the interpreter run its handler here
                pass
        original()
    cond.notify_all = notify_all_then_signal_again
    waiter = threading.Thread(target=stop.wait, daemon=True)
    waiter.start()
    os.kill(os.getpid(), signal.SIGTERM)
    waiter.join(5)
    print("stopped" if stop.is_set() and not waiter.is_alive() else "not stopped", flush=True)
""")


def run_child(mode: str, timeout: float) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None  # hung


def test_two_signals_in_a_row_stop_the_process() -> None:
    r = run_child("safe", 30)
    assert r is not None, "the process hung on the second signal"
    assert r.returncode == 0 and r.stdout.strip() == "stopped", r.stderr


@pytest.mark.skipif(sys.platform != "linux", reason="the deadlock needs POSIX signals on the main thread")
def test_the_naive_handler_did_hang() -> None:
    """The reproduction is real: the handler cli.py used before hangs in the same child."""
    assert run_child("naive", 8) is None


def edit(text: str, old: str, new: str) -> str:
    """``text`` with its one ``old`` replaced (fails if ``old`` is not there exactly once)."""
    assert text.count(old) == 1, old
    return text.replace(old, new)


def test_a_signal_for_another_event_inside_a_handler_is_not_lost() -> None:
    """SIGTERM arriving while SIGHUP's handler sets the reload event still sets the stop event."""
    child = edit(CHILD, "set_on_signal(stop, signal.SIGTERM, signal.SIGINT)",
                 "hup = threading.Event(); set_on_signal(hup, signal.SIGHUP); set_on_signal(stop, signal.SIGTERM, signal.SIGINT)")
    child = edit(child, "cond = stop._cond", "cond = hup._cond")  # the second signal lands inside hup.set()
    child = edit(child, "os.kill(os.getpid(), signal.SIGINT)", "os.kill(os.getpid(), signal.SIGTERM)")  # ... and is SIGTERM
    child = edit(child, "waiter.start()\nos.kill(os.getpid(), signal.SIGTERM)", "waiter.start()\nos.kill(os.getpid(), signal.SIGHUP)")  # the first is SIGHUP
    r = subprocess.run([sys.executable, "-c", child, "safe"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.strip() == "stopped", r.stdout + r.stderr


def test_terminate_as_interrupt_raises_keyboard_interrupt() -> None:
    """stylize and view --out clean up on KeyboardInterrupt (atomic_output, the writer's release):
    SIGTERM must take the same path."""
    import os
    import signal

    from streamer.signals import terminate_as_interrupt

    before = signal.getsignal(signal.SIGTERM)
    try:
        terminate_as_interrupt()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1.0)  # the handler runs between bytecodes, well before this ends
    finally:
        signal.signal(signal.SIGTERM, before)
