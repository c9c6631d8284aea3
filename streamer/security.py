"""ZeroMQ CURVE: encrypted, authenticated stream and control sockets.

Keys are ZeroMQ certificate files made by ``stylecast keygen`` (``zmq.auth.create_certificates``):
``NAME.key`` (public, safe to copy) and ``NAME.key_secret`` (public + secret, mode 0600).

- The daemon loads its own ``*.key_secret`` (``curve_server_key``) and an allow-list directory of
  client public certificates (``curve_clients_dir``). A ``CurveAuthenticator`` (pyzmq's
  ThreadAuthenticator, the ZAP handler of the daemon's context) admits only those clients.
- A client loads the server's public ``.key`` and its own ``.key_secret``.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

log = logging.getLogger(__name__)


class CurveKeyError(ValueError):
    """A certificate file or the allow-list directory is missing, unreadable or malformed."""


@dataclass(frozen=True)
class ServerKeys:
    """The daemon's own key pair (Z85-encoded, 40 bytes each) and its client allow-list folder."""

    public: bytes
    secret: bytes
    clients_dir: Path

    def apply(self, sock: zmq.Socket[Any]) -> None:
        """Make ``sock`` a CURVE server; call before ``bind``."""
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_server = True


@dataclass(frozen=True)
class ClientKeys:
    """What a client needs: the server's public key and its own pair (Z85, 40 bytes each)."""

    server_public: bytes
    public: bytes
    secret: bytes

    def apply(self, sock: zmq.Socket[Any]) -> None:
        """Make ``sock`` a CURVE client of the server; call before ``connect``."""
        sock.curve_serverkey = self.server_public
        sock.curve_publickey = self.public
        sock.curve_secretkey = self.secret


def load_public(path: str | Path, field: str = "key") -> bytes:
    """The public key of a ``.key`` or ``.key_secret`` certificate file."""
    public, _ = _load(path, field)
    return public


def load_pair(path: str | Path, field: str = "key") -> tuple[bytes, bytes]:
    """(public, secret) of a ``.key_secret`` certificate file."""
    public, secret = _load(path, field)
    if secret is None:
        raise CurveKeyError(f"{field}: {path} holds no secret key; give the .key_secret file made by 'stylecast keygen'")
    return public, secret


def _load(path: str | Path, field: str) -> tuple[bytes, bytes | None]:
    p = Path(path)
    if not p.is_file():
        raise CurveKeyError(f"{field}: certificate file not found: {p}")
    try:
        p.read_bytes()
        public, secret = zmq.auth.load_certificate(p)
    except (OSError, ValueError) as e:
        raise CurveKeyError(f"{field}: cannot read certificate {p}: {e}") from e
    if public is None or not is_z85_key(public):
        raise CurveKeyError(f"{field}: {p} holds no valid public key")
    if secret is not None and not is_z85_key(secret):
        raise CurveKeyError(f"{field}: {p} holds a malformed secret key (a CURVE key is 40 Z85 characters)")
    return public, secret


def is_z85_key(key: bytes) -> bool:
    """Whether ``key`` is a CURVE key as ZeroMQ takes it: 40 Z85 characters, 32 bytes decoded.
    libzmq refuses anything else with a bare EINVAL when the socket option is set."""
    if len(key) != 40:
        return False
    try:
        return len(z85.decode(key)) == 32
    except (ValueError, KeyError):  # KeyError: a byte outside the Z85 alphabet
        return False


def check_clients_dir(path: str | Path, field: str = "curve_clients_dir") -> list[Path]:
    """The client certificates in the allow-list folder; each must load. Raises CurveKeyError if the
    folder is missing, unreadable or holds no ``*.key`` file (nobody could connect)."""
    d = Path(path)
    if not d.is_dir():
        raise CurveKeyError(f"{field}: not a directory: {d}")
    if not os.access(d, os.R_OK | os.X_OK):
        raise CurveKeyError(f"{field}: directory is not readable: {d}")
    try:
        certs = sorted(d.glob("*.key"))
    except OSError as e:
        raise CurveKeyError(f"{field}: cannot list {d}: {e}") from e
    if not certs:
        raise CurveKeyError(f"{field}: no client public certificates (*.key) in {d}; nobody could connect")
    for c in certs:
        load_public(c, field)
    return certs


def load_server_keys(secret_file: str | Path, clients_dir: str | Path) -> ServerKeys:
    public, secret = load_pair(secret_file, "curve_server_key")
    check_clients_dir(clients_dir)
    return ServerKeys(public, secret, Path(clients_dir))


def load_client_keys(server_key: str | Path, client_secret: str | Path) -> ClientKeys:
    """From the server's ``.key`` and the client's own ``.key_secret``."""
    public, secret = load_pair(client_secret, "client_key")
    return ClientKeys(load_public(server_key, "server_key"), public, secret)


def create_keypair(folder: str | Path, name: str) -> tuple[Path, Path]:
    """Write ``folder/NAME.key`` and ``folder/NAME.key_secret`` (mode 0600); refuses to overwrite."""
    d = Path(folder)
    pub, sec = d / f"{name}.key", d / f"{name}.key_secret"
    for p in (pub, sec):
        if p.exists():
            raise FileExistsError(f"{p} already exists; not overwriting a key")
    d.mkdir(parents=True, exist_ok=True)
    pub_s, sec_s = zmq.auth.create_certificates(d, name)
    os.chmod(sec_s, stat.S_IRUSR | stat.S_IWUSR)
    return Path(pub_s), Path(sec_s)


class CurveAuthenticator:
    """The ZAP handler of ``ctx``: admits CURVE clients whose public key is in ``clients_dir``.

    Start it before any CURVE server socket binds (without a ZAP handler libzmq admits every key).
    It runs on its own thread, owned by this object; ``close()`` is idempotent. The allow-list is
    read at start and on ``reload()`` (SIGHUP).
    """

    def __init__(self, ctx: zmq.Context[Any], clients_dir: Path) -> None:
        self.ctx, self.clients_dir = ctx, clients_dir
        self._auth: ThreadAuthenticator | None = None
        self._keys: set[bytes] = set()

    def __enter__(self) -> Self:
        auth = ThreadAuthenticator(self.ctx, log=logging.getLogger(__name__ + ".zap"))
        auth.start()
        self._auth = auth
        self.reload()
        return self

    def reload(self) -> int:
        """Read the allow-list again; returns how many keys it lost since the last read (whose
        open sessions the caller must end: libzmq checks keys only at the handshake)."""
        if self._auth is None:
            return 0
        self._auth.configure_curve(domain="*", location=str(self.clients_dir))
        keys = set()
        for p in self.clients_dir.glob("*.key"):
            try:
                keys.add(zmq.auth.load_certificate(p)[0])
            except (OSError, ValueError):  # unreadable: not admitted either
                log.warning("CURVE: cannot read client key %s", p)
        removed, self._keys = len(self._keys - keys), keys
        log.info("CURVE: %d allowed client key(s) from %s%s", len(keys), self.clients_dir, f", {removed} removed" if removed else "")
        return removed

    def close(self) -> None:
        if self._auth is not None:
            self._auth.stop()
            self._auth = None

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class HandshakeWatch:
    """Counts (and logs) CURVE handshakes a server socket refused, from its monitor events:
    ``auth_failures`` (key not on the allow-list), ``protocol_failures`` (wrong mechanism,
    malformed commands) and ``handshake_failures`` (anything else: a client without CURVE keys,
    measured, or a peer that left). Create, ``check()`` and close it on the thread that owns ``sock``;
    ``check()`` never blocks. A no-op when ``enabled`` is False."""

    _EVENTS: dict[int, str] = {int(zmq.EVENT_HANDSHAKE_FAILED_AUTH): "auth_failures", int(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL): "protocol_failures",
                               int(zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL): "handshake_failures"}

    def __init__(self, sock: zmq.Socket[Any], label: str, count: Callable[[str], None], enabled: bool = True) -> None:
        self.sock, self.label, self.count = sock, label, count
        self._mon: zmq.Socket[Any] | None = None
        self._seen: dict[str, int] = {}
        if enabled:
            mask = 0
            for ev in self._EVENTS:
                mask |= ev
            self._mon = sock.get_monitor_socket(mask)

    def check(self) -> None:
        from zmq.utils.monitor import recv_monitor_message

        while self._mon is not None and self._mon.poll(0):
            ev = recv_monitor_message(self._mon)
            kind = self._EVENTS.get(int(ev["event"]))
            if kind is None:
                continue
            self.count(kind)
            n = self._seen[kind] = self._seen.get(kind, 0) + 1
            if n & (n - 1) == 0:  # 1, 2, 4, 8, …: visible in the journal, but a scanner cannot flood it
                log.warning("%s: refused a client handshake (%s, %d so far)", self.label, kind.replace("_", " ").rstrip("s"), n)

    def close(self) -> None:
        if self._mon is not None:
            try:
                self.sock.disable_monitor()
            except zmq.ZMQError:
                pass
            self._mon.close(0)
            self._mon = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
