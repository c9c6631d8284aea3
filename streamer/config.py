"""The one frozen configuration of a ``stylecast serve`` process, built at the CLI edge.

Every bad value raises ConfigError naming the field, before anything starts.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from streamer.stabilise import DEFAULT_HISTORY, MAX_HISTORY

Backend = Literal["auto", "onnxruntime", "tensorrt", "null"]
Encoding = Literal["raw", "jpeg"]
BACKENDS: tuple[str, ...] = ("auto", "onnxruntime", "tensorrt", "null")


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field."""


BUNDLED_MODELS = {"fast": "default.onnx", "quality": "quality.onnx"}
"""The bundled models' files in ``streamer/models``, by tier: the fast one (a laptop CPU's) is the
default of every command; ``serve`` picks the quality one for a GPU backend (``daemon.with_model``).
A tier missing from this table resolves to the quality model."""


def bundled_model_path(tier: str) -> Path:
    """The bundled model of ``tier`` (``BUNDLED_MODELS``; the quality one for a tier not bundled)
    inside the ``streamer`` package."""
    return Path(str(resources.files("streamer").joinpath("models", BUNDLED_MODELS.get(tier, BUNDLED_MODELS["quality"]))))


def default_model_path() -> Path:
    """The bundled model a CPU gets: what every command uses when no ``--model`` is named."""
    return bundled_model_path("fast")


@dataclass(frozen=True)
class ServeConfig:
    source: str = "demo"  # demo | video file | webcam index or /dev/videoN | rtsp:// URL
    model: str = ""  # path to an exported .onnx (sidecar .json beside it); "" = bundled model
    backend: Backend = "auto"
    threads: int = 0  # inference threads, 0 = one per core
    width: int = 640  # processing size, px; frames are resized to it
    height: int = 360
    fps: float = 30.0  # pacing of the demo source
    publish: str = "tcp://127.0.0.1:5555"  # PUB endpoint: frames, overlays, stats, state
    control: str = "tcp://127.0.0.1:5556"  # REP endpoint: control requests
    imagezmq: str = ""  # optional PUB endpoint in imagezmq's message shape ("" = off)
    snapshot_dir: str = ""  # where the 'snapshot' control command writes PNGs: "" = $STATE_DIRECTORY/snapshots under systemd, else ~/.local/state/stylecast/snapshots
    style: str = ""  # initial style name, "" = first style of the model
    strength: float = 1.0
    overlay_opacity: float = 0.5
    stabilise: float = DEFAULT_HISTORY  # weight of the camera-motion-compensated previous output (streamer/stabilise.py); 0 = off
    publish_overlay: bool = True
    encoding: Encoding = "raw"
    jpeg_quality: int = 85
    stats_interval: float = 1.0  # s between stats/state messages
    source_timeout: float = 5.0  # s, open/read timeout of network sources
    max_frames: int = 0  # stop after publishing this many frames (0 = run until stopped)
    engine_cache: str = ""  # TensorRT plans: "" = $STATE_DIRECTORY/engines under systemd, else ~/.cache/stylecast/engines
    trt_profile: str = "320x180:1280x720:1920x1080"  # TensorRT MIN:OPT:MAX frame sizes (WxH, rounded up to multiples of 8)
    trt_precision: Literal["fp16", "fp32"] = "fp16"
    trt_rebuild: bool = True  # rebuild a missing/stale TensorRT engine (False: fail with the reasons)
    cuda_graph: bool = False  # replay TensorRT's steady state as a CUDA graph
    curve_server_key: str = ""  # the daemon's CURVE secret certificate (NAME.key_secret from 'stylecast keygen'); "" = no CURVE
    curve_clients_dir: str = ""  # folder of allowed clients' public certificates (*.key); required with curve_server_key
    metrics: str = ""  # Prometheus endpoint HOST:PORT (e.g. 127.0.0.1:9108); "" = off

    @property
    def model_path(self) -> Path:
        return Path(self.model) if self.model else default_model_path()

    @property
    def curve(self) -> bool:
        """Stream and control are CURVE-encrypted and authenticated."""
        return bool(self.curve_server_key)

    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model"] = str(self.model_path)
        return d


_ENDPOINT = re.compile(r"^(tcp)://([^:/]+|\[[0-9a-fA-F:]+\]):(\d{1,5})$|^(ipc|inproc)://.+$")


def check_endpoint(field: str, value: str) -> None:
    """ConfigError naming ``field`` unless ``value`` is a ZeroMQ endpoint this program serves or
    connects to (libzmq answers anything else with a bare EINVAL)."""
    m = _ENDPOINT.match(value)
    if not m:
        raise ConfigError(f"{field}: expected tcp://HOST:PORT, ipc://PATH or inproc://NAME, got {value!r}")
    if m.group(1) and not 0 < int(m.group(3)) < 65536:
        raise ConfigError(f"{field}: port must be 1–65535, got {m.group(3)}")


def is_loopback(endpoint: str) -> bool:
    m = _ENDPOINT.match(endpoint)
    if not m or not m.group(1):
        return endpoint.startswith(("ipc://", "inproc://"))
    host = m.group(2).strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_source(source: str) -> None:
    """The source's form (what ``parse_source`` reads), and a video file that is not there at
    start. Whether a camera or a network source opens is the capture thread's business, which
    retries a source that is away."""
    from streamer.sources import SourceError, parse_source

    try:
        spec = parse_source(source)
    except SourceError as e:
        raise ConfigError(f"source: {e}") from e
    if spec.kind == "file" and not Path(spec.target).is_file():
        raise ConfigError(f"source: no such video file: {spec.target} (expected demo, a video file, a webcam index or an rtsp:// URL)")


def _check_trt(cfg: ServeConfig) -> None:
    from engines.trt_manifest import ProfileError, parse_profile

    try:
        parse_profile(cfg.trt_profile)
    except ProfileError as e:
        raise ConfigError(f"trt_profile: {e}") from e
    if cfg.trt_precision not in ("fp16", "fp32"):
        raise ConfigError(f"trt_precision: expected 'fp16' or 'fp32', got {cfg.trt_precision!r}")
    if cfg.backend == "tensorrt" and (why := outside_profile(cfg)):
        raise ConfigError(f"trt_profile: {why}; widen the profile or change the size")


def outside_profile(cfg: ServeConfig) -> str:
    """Why ``cfg``'s frame size cannot run in its (valid) TensorRT profile, or "" when it can.
    ``validate`` refuses such a size for ``backend = "tensorrt"``; ``auto`` falls back to ONNX
    Runtime instead (an engine built for the profile would reject every frame)."""
    from engines.trt_manifest import parse_profile, round_up

    if parse_profile(cfg.trt_profile).contains(round_up(cfg.height), round_up(cfg.width)):
        return ""
    return f"{cfg.width}x{cfg.height} is outside trt_profile {cfg.trt_profile}"


def _check_curve(cfg: ServeConfig) -> None:
    if bool(cfg.curve_server_key) != bool(cfg.curve_clients_dir):
        missing = "curve_clients_dir" if cfg.curve_server_key else "curve_server_key"
        raise ConfigError(f"{missing}: CURVE needs both curve_server_key and curve_clients_dir")
    if cfg.curve:
        from streamer.security import CurveKeyError, load_server_keys

        try:
            load_server_keys(cfg.curve_server_key, cfg.curve_clients_dir)
        except CurveKeyError as e:
            raise ConfigError(str(e)) from e  # the message starts with the field name


def parse_host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` → (host, port); ValueError if malformed."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT with a port 1–65535, got {text!r}")
    return host.strip("[]"), int(port)


def _check_metrics(value: str) -> None:
    try:
        parse_host_port(value)
    except ValueError as e:
        raise ConfigError(f"metrics: {e}") from e


def validate(cfg: ServeConfig) -> ServeConfig:
    """Return ``cfg`` if every field is valid, else raise ConfigError naming the first bad one."""
    if cfg.backend not in BACKENDS:
        raise ConfigError(f"backend: expected one of {list(BACKENDS)}, got {cfg.backend!r}")
    for name in ("width", "height"):
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, int) or not 64 <= v <= 4096:
            raise ConfigError(f"{name}: expected an integer 64–4096 px, got {v!r}")
    if not 0 <= cfg.threads <= 256:
        raise ConfigError(f"threads: expected 0–256, got {cfg.threads}")
    if not 0.5 <= cfg.fps <= 240:
        raise ConfigError(f"fps: expected 0.5–240, got {cfg.fps}")
    for name in ("strength", "overlay_opacity"):
        v = getattr(cfg, name)
        if not 0.0 <= v <= 1.0:
            raise ConfigError(f"{name}: expected 0–1, got {v}")
    if not 0.0 <= cfg.stabilise <= MAX_HISTORY:
        raise ConfigError(f"stabilise: expected 0–{MAX_HISTORY} (0 = off), got {cfg.stabilise}")
    if cfg.encoding not in ("raw", "jpeg"):
        raise ConfigError(f"encoding: expected 'raw' or 'jpeg', got {cfg.encoding!r}")
    if not 1 <= cfg.jpeg_quality <= 100:
        raise ConfigError(f"jpeg_quality: expected 1–100, got {cfg.jpeg_quality}")
    if not 0.05 <= cfg.stats_interval <= 60:
        raise ConfigError(f"stats_interval: expected 0.05–60 s, got {cfg.stats_interval}")
    if not 0.1 <= cfg.source_timeout <= 120:
        raise ConfigError(f"source_timeout: expected 0.1–120 s, got {cfg.source_timeout}")
    if cfg.max_frames < 0:
        raise ConfigError(f"max_frames: expected >= 0, got {cfg.max_frames}")
    _check_source(cfg.source)
    _check_trt(cfg)
    check_endpoint("publish", cfg.publish)
    check_endpoint("control", cfg.control)
    if cfg.publish == cfg.control:
        raise ConfigError("control: must differ from publish")
    if cfg.imagezmq:
        check_endpoint("imagezmq", cfg.imagezmq)
        if cfg.imagezmq in (cfg.publish, cfg.control):
            raise ConfigError("imagezmq: must differ from publish and control")
    _check_curve(cfg)
    if not is_loopback(cfg.control) and not cfg.curve:
        raise ConfigError(f"control: {cfg.control} is not a loopback address; control is only served beyond loopback with CURVE "
                          "(set curve_server_key and curve_clients_dir, keys from 'stylecast keygen')")
    if cfg.metrics:
        _check_metrics(cfg.metrics)
    if not cfg.model_path.is_file():
        raise ConfigError(f"model: file not found: {cfg.model_path}")
    return cfg
