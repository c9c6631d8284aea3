"""``stylecast explain``: offline pictures of what the generator does and why.

For one photo it writes PNG panels and a static ``report.html`` into an output folder:
features per stage (and how conditional normalisation changes them between styles), attention
per style, gradient saliency and a bounded adversarial perturbation (robustness), and style-space
interpolations. Everything runs on CPU in a few seconds per style at ~512 px.

All images handled here are RGB float tensors [N, 3, H, W] in [0, 1] unless stated; files are
written as 8-bit PNG (BGR order for OpenCV).
"""

from __future__ import annotations

import html
import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from training.export import ExportError, load_generator
from training.generator import SIZE_MULTIPLE, Generator

log = logging.getLogger(__name__)

STAGES = ("stem", "down", "res", "up", "fine")


class ExplainError(RuntimeError):
    """The photo or the generator could not be loaded."""


# -- loading --------------------------------------------------------------------------------
def load_weights(path: Path) -> tuple[Generator, list[str]]:
    """A generator from a training checkpoint (EMA weights) or a bundled ``*.generator.pt``."""
    try:
        g, styles, _ = load_generator(path)
    except ExportError as e:
        raise ExplainError(f"cannot load generator weights from {path}: {e}") from e
    return g.requires_grad_(False), styles


def load_photo(path: Path, max_side: int) -> torch.Tensor:
    """RGB [1,3,H,W] in [0,1], longer side ≤ max_side, H and W cropped to multiples of 8."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ExplainError(f"cannot read image {path}")
    h, w = bgr.shape[:2]
    s = min(1.0, max_side / max(h, w))
    nh, nw = max(16, int(h * s) // SIZE_MULTIPLE * SIZE_MULTIPLE), max(16, int(w * s) // SIZE_MULTIPLE * SIZE_MULTIPLE)
    bgr = cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1])).permute(2, 0, 1)[None].float() / 255.0


def one_hot(i: int, n: int) -> torch.Tensor:
    return F.one_hot(torch.tensor([i]), n).float()


# -- small image helpers (pure) ----------------------------------------------------------------
def to_u8(x: torch.Tensor) -> np.ndarray:
    """[1,3,H,W] or [3,H,W] RGB [0,1] → [H,W,3] uint8 BGR."""
    x = x[0] if x.dim() == 4 else x
    return np.ascontiguousarray((x.clamp(0, 1).permute(1, 2, 0).numpy()[:, :, ::-1] * 255).round().astype(np.uint8))


def heat(m: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """[H,W] float → [H,W,3] uint8 TURBO colour map, scaled to [lo, hi] (default: min/max)."""
    lo = float(m.min()) if lo is None else lo
    hi = float(m.max()) if hi is None else hi
    u8 = np.clip((m - lo) / max(hi - lo, 1e-8) * 255, 0, 255).astype(np.uint8)
    return cv2.applyColorMap(u8, cv2.COLORMAP_TURBO)


def label(img: np.ndarray, text: str) -> np.ndarray:
    """A copy of ``img`` with a caption bar on top."""
    bar = np.full((18, img.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text[: max(4, img.shape[1] // 7)], (3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([bar, img])


def grid(tiles: list[np.ndarray], cols: int, pad: int = 4) -> np.ndarray:
    """Tiles of equal size, row-major, on a white background."""
    h, w = tiles[0].shape[:2]
    rows = math.ceil(len(tiles) / cols)
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        out[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = t
    return out


def fit(img: np.ndarray, width: int) -> np.ndarray:
    h, w = img.shape[:2]
    return cv2.resize(img, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA if w > width else cv2.INTER_NEAREST)


# -- panels ---------------------------------------------------------------------------------
def stage_features(g: Generator, x: torch.Tensor, w: torch.Tensor) -> dict[str, torch.Tensor]:
    feats = g.features(x, w)
    res = [k for k in feats if k.startswith("res")]
    return {"stem": feats["stem"], "down": feats["down"], "res": feats[res[-1]] if res else feats["down"], "up": feats["up"], "fine": feats["fine"]}


def top_channels(f: torch.Tensor, k: int) -> list[int]:
    """Indices of the ``k`` channels of [1,C,H,W] with the largest mean |activation|."""
    return f[0].abs().mean(dim=(1, 2)).argsort(descending=True)[:k].tolist()


def feature_panel(g: Generator, x: torch.Tensor, style: int, n_styles: int, k: int, tile: int) -> np.ndarray:
    """Rows = stages, columns = the stage's k strongest channels (each scaled to its own range)."""
    feats = stage_features(g, x, one_hot(style, n_styles))
    rows = []
    for name in STAGES:
        f = feats[name]
        tiles = [label(fit(heat(f[0, c].numpy()), tile), f"{name} ch{c}") for c in top_channels(f, k)]
        rows.append(grid(tiles, k, 2))
    return np.vstack(rows)


def style_feature_panel(g: Generator, x: torch.Tensor, styles: list[str], k: int, tile: int) -> np.ndarray:
    """The last residual block's k strongest channels (chosen under style 0), under every style,
    on one shared scale per channel: rows = styles. Differences are what conditional instance
    norm changes."""
    per_style = [stage_features(g, x, one_hot(i, len(styles)))["res"][0] for i in range(len(styles))]
    chans = top_channels(per_style[0][None], k)
    tiles = []
    for i, s in enumerate(styles):
        for c in chans:
            lo = min(float(p[c].min()) for p in per_style)
            hi = max(float(p[c].max()) for p in per_style)
            tiles.append(label(fit(heat(per_style[i][c].numpy(), lo, hi), tile), f"{s[:14]} ch{c}"))
    return grid(tiles, k, 2)


@dataclass(frozen=True)
class AttentionStats:
    mean: float
    std: float
    frac_above_half: float
    corr_with_change: float  # Pearson correlation of A with mean |output − input| per pixel


def attention_stats(a: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> AttentionStats:
    av = a.flatten().double()
    change = (y - x).abs().mean(dim=1).flatten().double()
    corr = float(torch.corrcoef(torch.stack([av, change]))[0, 1]) if av.std() > 0 and change.std() > 0 else 0.0
    return AttentionStats(float(av.mean()), float(av.std()), float((av > 0.5).double().mean()), corr)


def saliency(g: Generator, x: torch.Tensor, w: torch.Tensor, probes: int = 6, seed: int = 0) -> torch.Tensor:
    """Per-pixel input sensitivity [H,W]: RMS over random ±1 output directions r of |Jᵀr| (a
    Hutchinson estimate of the Jacobian's row norms), summed over colour channels."""
    gen = torch.Generator().manual_seed(seed)
    acc = torch.zeros(x.shape[-2:])
    for _ in range(probes):
        xi = x.clone().requires_grad_(True)
        s, a = g(xi, w)
        y = s
        r = torch.randint(0, 2, y.shape, generator=gen).float() * 2 - 1
        (grad,) = torch.autograd.grad((y * r).sum(), xi)
        acc += grad[0].pow(2).sum(0)
    return (acc / probes).sqrt()


@dataclass(frozen=True)
class Robustness:
    epsilon: float  # L∞ bound of the perturbation, 0–255 scale
    mean_input_change: float  # mean |δ|, 0–255
    mean_output_change: float  # mean |G(x+δ) − G(x)|, 0–255
    max_output_change: float
    sensitivity: float  # mean output change per unit mean input change (adversarial)
    random_sensitivity: float  # the same for a random ±ε perturbation, as a baseline


def adversarial(g: Generator, x: torch.Tensor, w: torch.Tensor, eps: float = 2 / 255, steps: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, Robustness]:
    """PGD (sign steps) on δ with |δ|∞ ≤ eps maximising ‖G(x+δ) − G(x)‖²; returns δ, the output
    change [1,3,H,W] and the measured robustness."""
    with torch.no_grad():
        s, a = g(x, w)
        y0 = s
    gen = torch.Generator().manual_seed(seed)
    delta = ((torch.rand(x.shape, generator=gen) * 2 - 1) * eps).requires_grad_(True)
    for _ in range(steps):
        xa = (x + delta).clamp(0, 1)
        s, a = g(xa, w)
        loss = (s - y0).pow(2).sum()
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            delta += (eps / 4) * grad.sign()
            delta.clamp_(-eps, eps)
            delta.copy_((x + delta).clamp(0, 1) - x)
    delta = delta.detach()

    def change(d: torch.Tensor) -> tuple[torch.Tensor, float]:
        with torch.no_grad():
            xa = x + d
            s, a = g(xa, w)
            dy = s - y0
        return dy, float(dy.abs().mean() * 255) / max(float(d.abs().mean() * 255), 1e-6)

    dy, sens = change(delta)
    rnd = (torch.randint(0, 2, x.shape, generator=gen).float() * 2 - 1) * eps
    rnd = (x + rnd).clamp(0, 1) - x
    _, rsens = change(rnd)
    rob = Robustness(eps * 255, float(delta.abs().mean() * 255), float(dy.abs().mean() * 255), float(dy.abs().max() * 255), sens, rsens)
    return delta, dy, rob


def mix_output(g: Generator, x: torch.Tensor, weights: list[float]) -> torch.Tensor:
    with torch.no_grad():
        s, a = g(x, torch.tensor([weights], dtype=torch.float32))
        return s


def interpolation_strip(g: Generator, x: torch.Tensor, i: int, j: int, n_styles: int, steps: int, tile: int) -> np.ndarray:
    tiles = []
    for t in np.linspace(0, 1, steps):
        w = [0.0] * n_styles
        w[i], w[j] = 1 - t, w[j] + t
        tiles.append(label(fit(to_u8(mix_output(g, x, w)), tile), f"{1 - t:.2f} / {t:.2f}"))
    return grid(tiles, steps, 2)


def mixing_grid(g: Generator, x: torch.Tensor, corners: list[int], n_styles: int, size: int, tile: int) -> np.ndarray:
    """size×size outputs; the four corners are pure styles, the rest bilinear mixes."""
    tiles = []
    for r in np.linspace(0, 1, size):
        for c in np.linspace(0, 1, size):
            w = [0.0] * n_styles
            for k, wt in zip(corners, ((1 - r) * (1 - c), (1 - r) * c, r * (1 - c), r * c), strict=True):
                w[k] += float(wt)
            tiles.append(fit(to_u8(mix_output(g, x, w)), tile))
    return grid(tiles, size, 2)


# -- the whole report ------------------------------------------------------------------------
def explain(weights: Path, photo: Path, out: Path, styles: list[str] | None = None, max_side: int = 384, top_k: int = 6) -> dict[str, Any]:
    """Write every panel and ``report.html`` for ``photo`` into ``out``; returns the summary
    (also written as ``summary.json``). ``styles``: names to explain (default: all)."""
    g, names = load_weights(weights)
    chosen = styles or names
    unknown = [s for s in chosen if s not in names]
    if unknown:
        raise ExplainError(f"unknown style(s) {unknown}; the model has {names}")
    x = load_photo(photo, max_side)
    out.mkdir(parents=True, exist_ok=True)
    tile = 160
    photo_u8 = to_u8(x)
    cv2.imwrite(str(out / "input.png"), photo_u8)
    summary: dict[str, Any] = {"photo": str(photo), "size": list(x.shape[-2:]), "model": str(weights), "styles": {}}
    for name in chosen:
        i = names.index(name)
        w = one_hot(i, len(names))
        with torch.no_grad():
            s, a = g(x, w)
            y = s
        stats = attention_stats(a, x, y)
        a_np = a[0, 0].numpy()
        overlay = cv2.addWeighted(heat(a_np, 0.0, 1.0), 0.55, photo_u8, 0.45, 0)
        cv2.imwrite(str(out / f"attention_{name}.png"), grid([label(photo_u8, "input"), label(to_u8(y), f"output: {name}"), label(heat(a_np, 0.0, 1.0), f"attention mean {stats.mean:.2f}"), label(overlay, "attention over input")], 4))
        cv2.imwrite(str(out / f"features_{name}.png"), feature_panel(g, x, i, len(names), top_k, tile))
        sal = saliency(g, x, w)
        delta, dy, rob = adversarial(g, x, w)
        pert = to_u8(0.5 + delta / (2 * rob.epsilon / 255))  # signed δ, mid-grey = 0, full range = ±ε
        cv2.imwrite(str(out / f"sensitivity_{name}.png"), grid([
            label(photo_u8, "input"), label(heat(sal.numpy()), "saliency |J^T r|"),
            label(pert, f"perturbation x{127 / rob.epsilon:.0f} (|d|<={rob.epsilon:.0f}/255)"), label(heat(dy[0].abs().mean(0).numpy() * 255, 0.0, None), f"output change, mean {rob.mean_output_change:.2f}"),
        ], 4))
        summary["styles"][name] = {"attention": asdict(stats), "robustness": asdict(rob)}
    cv2.imwrite(str(out / "style_features.png"), style_feature_panel(g, x, names, min(top_k, 6), tile))
    a_i, b_i = names.index(chosen[0]), names.index(chosen[-1]) if len(chosen) > 1 else (names.index(chosen[0]) + 1) % len(names)
    cv2.imwrite(str(out / "interpolation.png"), interpolation_strip(g, x, a_i, b_i, len(names), 6, tile))
    corners = [names.index(n) for n in (chosen + names)[:4]] if len(names) >= 4 else [k % len(names) for k in range(4)]
    cv2.imwrite(str(out / "mixing_grid.png"), mixing_grid(g, x, corners, len(names), 5, 128))
    summary["interpolation"] = [names[a_i], names[b_i]]
    summary["mixing_corners"] = [names[k] for k in corners]
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "report.html").write_text(render_html(summary, chosen))
    log.info("wrote report to %s", out / "report.html")
    return summary


def render_html(summary: dict[str, Any], styles: list[str]) -> str:
    """A static page that shows every panel with a short caption (images by relative path)."""
    e = html.escape
    parts = [f"""<!doctype html><html><head><meta charset="utf-8"><title>stylecast explain</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:1em auto;padding:0 1em;color:#222}}
img{{max-width:100%;border:1px solid #ccc}} h2{{border-bottom:1px solid #ddd;margin-top:1.6em}}
table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}
.cap{{color:#555;font-size:0.92em}}</style></head><body>
<h1>What the generator does to <code>{e(Path(summary['photo']).name)}</code></h1>
<p class="cap">Model <code>{e(Path(summary['model']).name)}</code>, photo processed at {summary['size'][1]}×{summary['size'][0]} px.</p>
<h2>Attention and robustness, per style</h2><table><tr><th>style</th><th>attention mean</th><th>std</th><th>&gt;0.5</th>
<th>corr(A, |out−in|)</th><th>adv. output change (0–255)</th><th>sensitivity adv.</th><th>sensitivity random</th></tr>"""]
    for s in styles:
        a, r = summary["styles"][s]["attention"], summary["styles"][s]["robustness"]
        parts.append(f"<tr><th>{e(s)}</th><td>{a['mean']:.3f}</td><td>{a['std']:.3f}</td><td>{a['frac_above_half']:.2f}</td><td>{a['corr_with_change']:.2f}</td>"
                     f"<td>{r['mean_output_change']:.2f}</td><td>{r['sensitivity']:.2f}</td><td>{r['random_sensitivity']:.2f}</td></tr>")
    parts.append("</table><p class='cap'>Sensitivity = mean output change per unit mean input change, for a PGD perturbation bounded by |δ|∞ ≤ 2/255 "
                 "and for a random ±2/255 perturbation. Higher = less robust.</p>")
    for s in styles:
        parts.append(f"""<h2>{e(s)}</h2>
<p class="cap"><b>Attention.</b> Input, output, the attention map (blue = style barely applied, red = fully applied) and the map over the photo.</p>
<img src="attention_{e(s)}.png" alt="attention {e(s)}">
<p class="cap"><b>Features.</b> Rows: encoder (¼ res), encoder (⅛ res), last residual block, decoder; columns: each stage's six strongest channels, each on its own colour scale.</p>
<img src="features_{e(s)}.png" alt="features {e(s)}">
<p class="cap"><b>Sensitivity.</b> Gradient saliency (where input changes move the output most), the adversarial perturbation (signed, amplified so ±2/255 spans the full range; grey = 0) and the output change it causes.</p>
<img src="sensitivity_{e(s)}.png" alt="sensitivity {e(s)}">""")
    parts.append(f"""<h2>Conditional normalisation across styles</h2>
<p class="cap">The last residual block's strongest channels under every style (rows), each channel on one shared scale: same weights, different per-style norm statistics.</p>
<img src="style_features.png" alt="style features">
<h2>Style space</h2><p class="cap">Interpolating {e(summary['interpolation'][0])} → {e(summary['interpolation'][1])} (weights in the captions).</p>
<img src="interpolation.png" alt="interpolation">
<p class="cap">A 5×5 mix of four styles: corners are pure {', '.join(e(c) for c in summary['mixing_corners'])} (top-left, top-right, bottom-left, bottom-right), the rest bilinear weight mixes.</p>
<img src="mixing_grid.png" alt="mixing grid"></body></html>
""")
    return "".join(parts)
