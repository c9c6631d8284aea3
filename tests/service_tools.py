"""Helpers for the service tests: a fake systemd notify socket and `stylecast serve` in a subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from streamer.bench import free_tcp_port

if TYPE_CHECKING:
    from streamer.pipeline import Pipeline


class NotifyListener:
    """What systemd would be: an AF_UNIX datagram socket, drained by a thread that records
    (monotonic arrival s, {key: value}) as each notification arrives."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path if not self.path.startswith("@") else "\0" + self.path[1:])
        self.sock.settimeout(0.1)
        self._lock = threading.Lock()
        self._messages: list[tuple[float, dict[str, str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines())
            with self._lock:
                self._messages.append((time.monotonic(), fields))

    @property
    def messages(self) -> list[tuple[float, dict[str, str]]]:
        with self._lock:
            return list(self._messages)

    def poll(self, seconds: float) -> None:
        """Let notifications arrive for ``seconds``."""
        time.sleep(max(0.0, seconds))

    def wait_for(self, key: str, timeout: float, value: str | None = None) -> float:
        """Time the first message with ``key`` (equal to ``value``) arrived; AssertionError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            for t, m in self.messages:
                if key in m and (value is None or m[key] == value):
                    return t
            assert time.monotonic() < deadline, f"no {key} within {timeout} s; got {[m for _, m in self.messages][-5:]}"
            time.sleep(0.05)

    def times(self, key: str) -> list[float]:
        return [t for t, m in self.messages if key in m]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@dataclass
class Daemon:
    proc: subprocess.Popen[str]
    publish: str
    control: str
    log: Path
    extra: dict[str, str] = field(default_factory=dict)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise

    def output(self) -> str:
        return self.log.read_text()


def start_daemon(tmp: Path, *args: str, env: dict[str, str] | None = None, name: str = "serve", ports: bool = True,
                 soft_nofile: int | None = None) -> Daemon:
    """``stylecast serve ARGS`` on the bundled model at a small size; free loopback ports unless
    ``ports`` is False; started with that soft open-file limit when ``soft_nofile`` is given."""
    pub, ctl = f"tcp://127.0.0.1:{free_tcp_port()}", f"tcp://127.0.0.1:{free_tcp_port()}"
    log = tmp / f"{name}.log"
    argv = [sys.executable, "-m", "streamer", "serve", *args]
    if ports:
        argv += ["--publish", pub, "--control", ctl]
    clean = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    with log.open("w") as f:
        proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, text=True, env={**clean, "PYTHONUNBUFFERED": "1", **(env or {})},
                                preexec_fn=None if soft_nofile is None else lambda: _set_soft_nofile(soft_nofile))
    return Daemon(proc, pub, ctl, log)


def _set_soft_nofile(n: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (n, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))


SMALL = ("--source", "demo", "--width", "128", "--height", "72", "--fps", "15")


@contextmanager
def running(pipe: Pipeline, first_frame_s: float = 60.0) -> Iterator[Pipeline]:
    """``pipe`` run on a thread until the block ends, entered once its first frame is published;
    stopped and joined on the way out, whatever the block raised."""
    t = threading.Thread(target=pipe.run)
    t.start()
    try:
        assert pipe.first_published.wait(first_frame_s), "no frame published"
        yield pipe
    finally:
        pipe.stop()
        t.join(30)
