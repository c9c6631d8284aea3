"""The bundled generators in FP16 on a GPU: numerics against FP32, and throughput. One call.

For a CUDA machine that has PyTorch but no TensorRT (the machines lent here). It runs what the
TensorRT source graph computes (``training.export.FramePipeline``, as ``training/fp16.py`` exports
it), in the FP16 recipe of ``<model>.fp16.onnx``: weights and activations in FP16, instance-norm
statistics in FP32 (``CondInstanceNorm`` casts), the uint8 frame in and out. Each ``--model``
(default: both bundled tiers) is reported:

- numerics: PSNR of the FP16 output against the FP32 output (uint8, per photo × style, at each
  size), the largest absolute difference in grey levels, whether the FP16 head (colour logits,
  before its sigmoid or cast) stayed finite, and their largest |value|;
- speed: median and p95 ms of one frame, uint8 in device memory to uint8 out, FP32 and FP16, at
  each size (CUDA events; ``--runs`` frames after ``--warmup``), and the same with the host copies
  (pinned uint8 buffers) for FP16.

On the lent machine only the repository travels, not ``../shared``: without ``--content`` photos
the numerics use the demo frame alone; carry a folder of photos and name it to use more.
Run from the repository root (CPU works too, slowly, for a smoke test; tests/test_gpu_check_script.py):
  python -m training.gpu_check --out "$OUT/gpu_check.json"
  python -m training.gpu_check --device cpu --sizes 128x72 --photos 1 --runs 2 --warmup 1
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from engines.trt_manifest import ProfileError
from streamer.bench import parse_sizes
from streamer.config import BUNDLED_MODELS, bundled_model_path
from streamer.contact_sheet import _cell
from training.data import list_images
from training.export import generator_weights_path, load_generator, to_u8_nhwc
from training.generator import Generator, change_map


def sizes_arg(text: str) -> list[tuple[int, int]]:
    """``--sizes`` through the bench's parser; each a multiple of 8 (the graph's own rule)."""
    try:
        sizes = parse_sizes(text)
    except ProfileError as e:
        raise SystemExit(f"--sizes: {e}") from e
    for w, h in sizes:
        if w % 8 or h % 8:
            raise SystemExit(f"--sizes: {w}x{h} is not a multiple of 8")
    return sizes


def frame_pipeline(g: Generator, frame: torch.Tensor, style: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``FramePipeline.run`` in ``dtype``: uint8 BGR [1,H,W,3] on the device → (uint8 output
    [1,H,W,3], uint8 attention [1,H,W,1], the head's logits flattened, in ``dtype``)."""
    x = frame.to(dtype).permute(0, 3, 1, 2).flip(1) / 255.0
    logits = g.features(x, style.to(dtype))["rgb_logits"]
    painted = torch.sigmoid(logits)
    return to_u8_nhwc(painted.flip(1)), to_u8_nhwc(change_map(painted, x)), logits.flatten()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


class Timer:
    """Wall time of a callable on the device: CUDA events on a GPU, perf_counter elsewhere."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def __call__(self, fn: Any, runs: int, warmup: int) -> list[float]:
        for _ in range(warmup):
            fn()
        ms = []
        for _ in range(runs):
            if self.cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                end.synchronize()
                ms.append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                fn()
                ms.append((time.perf_counter() - t0) * 1000)
        return ms


def check_size(fast32: Generator, fast16: Generator, photos: list[np.ndarray], num_styles: int, w: int, h: int,
               dev: torch.device, timer: Timer, runs: int, warmup: int) -> dict[str, Any]:
    """Numerics over every photo × style, then speed on the first photo and style, at w×h."""
    psnrs, maxdiff, head_max, finite = [], 0, 0.0, True
    for img in photos:
        frame = torch.from_numpy(_cell(img, w, h))[None].to(dev)
        for i in range(num_styles):
            style = torch.nn.functional.one_hot(torch.tensor([i]), num_styles).float().to(dev)
            o32, _, _ = frame_pipeline(fast32, frame, style, torch.float32)
            o16, _, head = frame_pipeline(fast16, frame, style, torch.float16)
            finite &= bool(torch.isfinite(head).all())
            head_max = max(head_max, float(head.float().abs().max()))
            r32, r16 = o32.cpu().numpy(), o16.cpu().numpy()
            psnrs.append(psnr(r32, r16))
            maxdiff = max(maxdiff, int(np.abs(r32.astype(int) - r16.astype(int)).max()))
    host_in = torch.from_numpy(_cell(photos[0], w, h))[None]
    host_out = torch.empty((1, h, w, 3), dtype=torch.uint8)
    if dev.type == "cuda":
        host_in, host_out = host_in.pin_memory(), host_out.pin_memory()
    frame = host_in.to(dev)
    style = torch.nn.functional.one_hot(torch.tensor([0]), num_styles).float().to(dev)

    def stats(ms: list[float]) -> dict[str, float]:
        return {"median_ms": float(np.median(ms)), "p95_ms": float(np.percentile(ms, 95))}

    def with_copies() -> None:
        out, _, _ = frame_pipeline(fast16, host_in.to(dev, non_blocking=True), style, torch.float16)
        host_out.copy_(out, non_blocking=True)

    speed = {
        "fp32": stats(timer(lambda: frame_pipeline(fast32, frame, style, torch.float32), runs, warmup)),
        "fp16": stats(timer(lambda: frame_pipeline(fast16, frame, style, torch.float16), runs, warmup)),
        "fp16_with_host_copies": stats(timer(with_copies, runs, warmup)),
    }
    return {"psnr_fp16_vs_fp32_db": {"min": float(np.min(psnrs)), "median": float(np.median(psnrs))},
            "max_abs_diff_grey_levels": maxdiff, "fp16_head_finite": finite, "fp16_head_max_abs": head_max, "speed": speed}


def check_model(path: Path, photos: list[np.ndarray], sizes: list[tuple[int, int]], dev: torch.device, timer: Timer, runs: int, warmup: int) -> dict[str, Any]:
    """One generator (``*.generator.pt`` or a checkpoint) at every size; prints a line per size."""
    g, styles, _ = load_generator(path)
    g32 = g.to(dev).eval()
    g16 = copy.deepcopy(g32).half().eval()  # its own copy of the weights, all FP16
    report: dict[str, Any] = {"model": str(path), "tier": g.spec.tier, "styles": styles, "sizes": {}}
    for w, h in sizes:
        s = report["sizes"][f"{w}x{h}"] = check_size(g32, g16, photos, len(styles), w, h, dev, timer, runs, warmup)
        print(f"{g.spec.tier:<8} {w}x{h:<5}  PSNR min {s['psnr_fp16_vs_fp32_db']['min']:.1f} dB median {s['psnr_fp16_vs_fp32_db']['median']:.1f} dB, "
              f"max diff {s['max_abs_diff_grey_levels']}, head finite {s['fp16_head_finite']} (max |head| {s['fp16_head_max_abs']:.1f});  "
              + ", ".join(f"{k} {v['median_ms']:.2f} ms (p95 {v['p95_ms']:.2f})" for k, v in s["speed"].items()), flush=True)
    return report


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--model", action="append", help="generator weights (repeat); default: every bundled tier")
    ap.add_argument("--content", default="../shared/data/content", help="photos for the numerics (falls back to the demo frame)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--sizes", default="640x360,1280x720,1920x1080")
    ap.add_argument("--photos", type=int, default=4)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--out", help="JSON report")
    a = ap.parse_args()

    dev = torch.device(a.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device (try --device cpu for a smoke test)")
    torch.backends.cudnn.benchmark = True
    sizes = sizes_arg(a.sizes)
    models = [Path(m) for m in a.model] if a.model else [generator_weights_path(bundled_model_path(t)) for t in BUNDLED_MODELS]
    content = Path(a.content)
    photos = [cv2.imread(str(p)) for p in (list_images(content)[: a.photos] if content.is_dir() else [])]
    if not photos:
        photos = [cv2.imread(str(Path(__file__).parents[1] / "streamer" / "assets" / "demo.jpg"))]
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if dev.type == "cuda" else None,
        "photos": len(photos), "models": [],
    }
    timer = Timer(dev)
    with torch.inference_mode():
        for m in models:
            report["models"].append(check_model(m, photos, sizes, dev, timer, a.runs, a.warmup))
    print(f"device: {report['device']}, torch {report['torch']}, CUDA {report['cuda']}")
    if a.out:
        Path(a.out).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
