"""The daemon's side of a systemd ``Type=notify`` service, run on its own thread (which owns the
notify socket): READY once the first frame is out, STATUS once a second, WATCHDOG pings only while
every pipeline stage is live, RELOADING/READY around a SIGHUP reload, STOPPING when it stops.

Watchdog rule: ping every ``W/3`` (``W`` = ``$WATCHDOG_USEC``) while no stage's heartbeat is older
than ``W/2``, once start-up is over: READY sent, or the source has failed (then READY waits for
the camera, bounded by ``TimeoutStartSec``, and a camera that is away is not a hung daemon). A hung
inference call stops the pings within ``W/2`` and systemd restarts the service within ``1.5 W``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streamer.config import ConfigError, ServeConfig
from streamer.controls import ControlError
from streamer.notify import Notifier, NotifyError, watchdog_interval
from streamer.pipeline import Pipeline
from streamer.settings import reload_diff, with_live

log = logging.getLogger(__name__)

TICK_S = 0.1
STATUS_EVERY_S = 1.0


@dataclass
class Reloader:
    """SIGHUP sets ``requested``; the service thread then calls ``load`` (re-reads the TOML file and
    re-applies the CLI overrides; raises ConfigError) and ``extra`` hooks (the CURVE allow-list)."""

    load: Callable[[], ServeConfig]
    requested: threading.Event = field(default_factory=threading.Event)
    extra: list[Callable[[], None]] = field(default_factory=list)


def status_line(s: dict[str, Any]) -> str:
    """One line for ``systemctl status``: fps, drops, latency, source state."""
    drops = s.get("drops", {})
    parts = [f"fps {s.get('fps', 0.0):.1f}", f"drops {drops.get('capture', 0)}+{drops.get('infer', 0)}"]
    lat = s.get("latency_ms")
    if lat:
        parts.append(f"latency p50 {lat['p50']:.0f} ms p95 {lat['p95']:.0f} ms")
    parts.append(f"source {s.get('source_state', 'starting')}")
    if s.get("source_error") and s.get("source_state") != "streaming":
        parts.append(str(s["source_error"])[:120])
    return ", ".join(parts)


class ServiceLoop:
    """Run ``run()`` on a thread of its own, started after the pipeline's threads."""

    def __init__(self, pipe: Pipeline, cfg: ServeConfig, reloader: Reloader | None = None, notify_socket: str | None = None,
                 watchdog_s: float | None = None) -> None:
        self.pipe, self.cfg, self.reloader = pipe, cfg, reloader
        self._notify_socket = notify_socket
        self.watchdog_s = watchdog_interval() if watchdog_s is None else watchdog_s
        self.ready = False
        self._pinging = False

    def run(self) -> None:
        with Notifier(self._notify_socket) as n:
            if self.watchdog_s:
                log.info("watchdog: pinging every %.2f s while every stage beat within %.2f s", self.watchdog_s / 3, self.watchdog_s / 2)
            next_status = next_ping = 0.0
            while not self.pipe.stop_event.wait(TICK_S):
                now = time.monotonic()
                if not self.ready and self.pipe.first_published.is_set():
                    self._send(n.ready, status_line(self.pipe.status()))
                    self.ready = True
                if self.reloader is not None and self.reloader.requested.is_set():
                    self.reloader.requested.clear()
                    self._reload(n)
                if self.ready and now >= next_status:
                    self._send(n.status, status_line(self.pipe.status()))
                    next_status = now + STATUS_EVERY_S
                if self.watchdog_s and now >= next_ping and self._healthy():
                    self._send(n.watchdog)
                    next_ping = now + self.watchdog_s / 3
            self._send(n.stopping)

    def _healthy(self) -> bool:
        assert self.watchdog_s is not None
        started = self.ready or self.pipe.stats.snapshot().get("source_state") == "reconnecting"
        stale = self.pipe.heartbeats.stale(self.watchdog_s / 2) if started else ["start-up"]
        if stale and self._pinging:
            log.error("watchdog: stopped pinging; stale: %s (s since last beat: %s)", stale, self.pipe.heartbeats.ages())
        elif not stale and not self._pinging:
            log.info("watchdog: pinging")
        self._pinging = not stale
        return not stale

    def _reload(self, n: Notifier) -> None:
        assert self.reloader is not None
        self._send(n.reloading)
        try:
            new = self.reloader.load()
            live, restart = reload_diff(self.cfg, new)
            self.pipe.reconfigure(live)
            self.cfg = with_live(self.cfg, live)
            for hook in self.reloader.extra:
                hook()
            log.info("reload: applied %s", live or "nothing (no live setting changed)")
            if restart:
                log.warning("reload: %s changed; these need a restart (systemctl restart) to take effect", ", ".join(restart))
        except (ConfigError, ControlError) as e:
            log.error("reload: new config rejected, keeping the running one: %s", e)
        except Exception:  # a reload must never end this thread: its pings keep systemd's watchdog fed
            log.exception("reload failed, keeping the running config")
        if self.ready:  # before the first frame, READY still means "first frame out"
            self._send(n.ready, status_line(self.pipe.status()))

    @staticmethod
    def _send(fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except NotifyError as e:  # systemd gone or socket full: never a reason to stop streaming
            log.warning("%s", e)
