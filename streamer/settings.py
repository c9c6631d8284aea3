"""Building the ServeConfig at the edge: a TOML file (flat table of ServeConfig field names) with
CLI overrides on top, checked key by key; what a SIGHUP reload may change live; and the port
pre-flight that runs before any thread starts.

    cfg = resolve(Path("/etc/stylecast/cam0.toml"), {"width": 1280})   # ConfigError names the field
"""

from __future__ import annotations

import difflib
import errno
import socket
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from streamer.config import ConfigError, ServeConfig, parse_host_port, validate

# Applied to the running pipeline on SIGHUP; every other change is logged as needing a restart.
RELOADABLE = ("style", "strength", "overlay_opacity", "publish_overlay", "stabilise")

_HINTS = typing.get_type_hints(ServeConfig)


def _expected(name: str) -> tuple[type, tuple[str, ...]]:
    """The Python type of field ``name`` and, for Literal fields, the allowed values."""
    hint = _HINTS[name]
    if typing.get_origin(hint) is typing.Literal:
        return str, tuple(str(v) for v in typing.get_args(hint))
    return hint, ()


def _type_name(t: type) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(t, t.__name__)


def check_values(values: Mapping[str, Any], origin: str) -> dict[str, Any]:
    """Each key a ServeConfig field, each value of its type (ints accepted for floats). Raises
    ConfigError naming the first bad key; ``origin`` (a file name) goes in the message."""
    names = [f.name for f in fields(ServeConfig)]
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(names)}"
            raise ConfigError(f"{key}: unknown key in {origin}{hint}")
        typ, choices = _expected(key)
        ok = isinstance(value, typ) and not (typ is int and isinstance(value, bool))
        if typ is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise ConfigError(f"{key}: expected {_type_name(typ)} in {origin}, got {type(value).__name__} {value!r}")
        if choices and value not in choices:
            raise ConfigError(f"{key}: expected one of {list(choices)} in {origin}, got {value!r}")
        out[key] = value
    return out


def load_toml(path: Path) -> dict[str, Any]:
    """The checked key/values of a TOML config file (a flat table; see systemd/example.toml)."""
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError as e:
        raise ConfigError(f"config: file not found: {path}") from e
    except OSError as e:
        raise ConfigError(f"config: cannot read {path}: {e}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config: {path} is not valid TOML: {e}") from e
    except UnicodeDecodeError as e:  # TOML is UTF-8; e.g. a comment saved in Latin-1
        raise ConfigError(f"config: {path} is not UTF-8 text (byte {e.start}): save it as UTF-8") from e
    nested = [k for k, v in data.items() if isinstance(v, dict)]
    if nested:
        raise ConfigError(f"{nested[0]}: unknown table [{nested[0]}] in {path}; the config is a flat list of keys")
    return check_values(data, str(path))


def resolve(path: Path | None, overrides: Mapping[str, Any]) -> ServeConfig:
    """Defaults ← the TOML file ← CLI overrides (the ones the user gave), validated."""
    values = load_toml(path) if path is not None else {}
    values.update(check_values(overrides, "command-line options"))
    return validate(ServeConfig(**values))


def reload_diff(old: ServeConfig, new: ServeConfig) -> tuple[dict[str, Any], list[str]]:
    """(changed fields that apply live, changed fields that need a restart)."""
    changed = [f.name for f in fields(ServeConfig) if getattr(old, f.name) != getattr(new, f.name)]
    live = {k: getattr(new, k) for k in changed if k in RELOADABLE}
    return live, [k for k in changed if k not in RELOADABLE]


def with_live(old: ServeConfig, live: Mapping[str, Any]) -> ServeConfig:
    return replace(old, **live)


# -- pre-flight ---------------------------------------------------------------------------
def _tcp_listeners(cfg: ServeConfig) -> list[tuple[str, str, int]]:
    """(field, host, port) of every TCP port this config listens on."""
    out: list[tuple[str, str, int]] = []
    for name in ("publish", "control", "imagezmq"):
        ep: str = getattr(cfg, name)
        if ep.startswith("tcp://"):
            host, port = parse_host_port(ep[len("tcp://"):])
            out.append((name, host, port))
    if cfg.metrics:
        host, port = parse_host_port(cfg.metrics)
        out.append(("metrics", host, port))
    return out


def check_ports(cfg: ServeConfig) -> None:
    """Raise ConfigError naming the field if a listening port is taken or repeated. Run before any
    thread starts, so a taken port fails the start cleanly (exit 2) instead of a half-started
    daemon."""
    seen: dict[int, str] = {}
    for name, host, port in _tcp_listeners(cfg):
        if port in seen:
            raise ConfigError(f"{name}: port {port} is also used by {seen[port]}")
        seen[port] = name
        check_port_free(name, host, port)
    for name in ("publish", "control", "imagezmq"):
        if getattr(cfg, name):
            check_bindable(name, getattr(cfg, name))


def check_bindable(field: str, endpoint: str) -> None:
    """ConfigError naming ``field`` unless ZeroMQ can listen on ``endpoint`` now: bound and
    released at once, so what only libzmq knows (an address no interface has, like
    ``tcp://256.1.1.1:5555`` or an unknown interface name; an ipc path in a missing folder)
    fails the start as a config error, not as a crash once threads run."""
    import zmq

    ctx: zmq.Context[Any] = zmq.Context.instance()
    sock = ctx.socket(zmq.PUB)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.bind(endpoint)
        sock.unbind(sock.getsockopt_string(zmq.LAST_ENDPOINT))
    except zmq.ZMQError as e:
        raise ConfigError(f"{field}: cannot listen on {endpoint}: {e.strerror}") from e
    finally:
        sock.close()


def check_port_free(field: str, host: str, port: int) -> None:
    """ConfigError if ``host:port`` cannot be listened on now. A host that does not resolve (a
    ZeroMQ interface name like ``eth0``) is left to ZeroMQ."""
    bind_host = "0.0.0.0" if host == "*" else host
    try:
        infos = socket.getaddrinfo(bind_host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as ZeroMQ does: TIME_WAIT is not "in use"
        try:
            s.bind(addr)
        except OSError as e:
            why = "is already in use" if e.errno == errno.EADDRINUSE else f"cannot be bound ({e.strerror})"
            raise ConfigError(f"{field}: {host}:{port} {why}") from e
