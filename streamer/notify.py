"""sd_notify: tell systemd (``Type=notify``) how the service is doing, without libsystemd.

The protocol is one datagram per notification on the AF_UNIX socket named by ``$NOTIFY_SOCKET``,
holding newline-separated ``KEY=VALUE`` assignments (``READY=1``, ``STATUS=…``, ``WATCHDOG=1``,
``STOPPING=1``, ``RELOADING=1``). A name starting with ``@`` is in the abstract namespace (sent
with a leading NUL). Without ``$NOTIFY_SOCKET`` (not under systemd) every call is a no-op.

    with Notifier() as n:
        n.notify("READY=1", "STATUS=publishing")
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Self

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 1.0  # a receiver that stopped draining must not stall the caller for long


class NotifyError(OSError):
    """``$NOTIFY_SOCKET`` is malformed or a notification could not be sent."""


def socket_address(name: str) -> str:
    """``$NOTIFY_SOCKET`` → an address for ``socket.sendto``: ``@name`` → ``\\0name`` (abstract)."""
    if name.startswith("@"):
        return "\0" + name[1:]
    if name.startswith("/"):
        return name
    raise NotifyError(f"NOTIFY_SOCKET: expected an absolute path or @abstract name, got {name!r}")


def watchdog_interval(env: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """The watchdog timeout systemd expects pings within, s (``$WATCHDOG_USEC``), or None when the
    watchdog is off or meant for another process (``$WATCHDOG_PID`` differs from ``pid``)."""
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC", "")
    owner = env.get("WATCHDOG_PID", "")
    if not usec:
        return None
    if owner and owner != str(os.getpid() if pid is None else pid):
        return None
    try:
        value = int(usec)
    except ValueError:
        log.warning("ignoring malformed WATCHDOG_USEC=%r", usec)
        return None
    return value / 1e6 if value > 0 else None


class Notifier:
    """A datagram socket to ``$NOTIFY_SOCKET`` (or ``address``); open, use and close it on one
    thread. ``enabled`` is False when there is nowhere to send to."""

    def __init__(self, address: str | None = None) -> None:
        name = os.environ.get("NOTIFY_SOCKET", "") if address is None else address
        self._address = socket_address(name) if name else ""
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def __enter__(self) -> Self:
        if self._address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.settimeout(SEND_TIMEOUT_S)
        return self

    def notify(self, *assignments: str) -> None:
        """Send ``KEY=VALUE`` assignments in one datagram; raises NotifyError if sending fails."""
        if self._sock is None:
            return
        for a in assignments:
            if "=" not in a or "\n" in a:
                raise NotifyError(f"not a single KEY=VALUE assignment: {a!r}")
        try:
            self._sock.sendto("\n".join(assignments).encode(), self._address)
        except OSError as e:
            raise NotifyError(f"sd_notify to {self._address.lstrip(chr(0))!r} failed: {e}") from e

    def ready(self, status: str = "") -> None:
        self.notify("READY=1", *([f"STATUS={one_line(status)}"] if status else []))  # a newline would lose READY

    def status(self, text: str) -> None:
        self.notify(f"STATUS={one_line(text)}")

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")

    def reloading(self) -> None:
        # MONOTONIC_USEC lets systemd ≥ 253 (Type=notify-reload) match the reload to this request.
        self.notify("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def one_line(text: str) -> str:
    return " ".join(text.split())
