"""``stylecast evaluate``: temporal stability, style faithfulness and content kept, measured on
the ONNX model through the same engine the daemon uses.

- Warp error (0–255): mean |S(t+1) − warp(S(t))| over valid pixels, both frames first blurred
  with a Gaussian of σ = 1.5 so resampling error does not dominate. The warp is the clip's known
  affine motion (synthetic clips made from photos) or Farneback optical flow (any video). Reported
  for the stylised and the raw clip; their ratio is the model's added flicker. Synthetic clips also
  get a floor: the same error for the photo stylised once and moved rigidly, what a model with the
  same look and no flicker at all would score.
- Style distance: normalised Gram distance on VGG16 relu1_2…relu4_3 between an image and the
  style's painting(s); reported for the output and for the input photo (the reduction is the
  share of the distance the model removes). A colour grade alone can cut it a long way.
- Texture distance: the same on relu3_3 and relu4_3 of tone-normalised luma (strokes and shapes,
  blind to palette, brightness and contrast): it tells a painting's texture from a re-coloured photo.
- Content kept: F1 of Canny edge maps of input and output, with a 1-pixel tolerance.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from engines import BaseEngine
from streamer.stabilise import StabiliseConfig, Stabiliser

log = logging.getLogger(__name__)
U8 = np.ndarray


# -- temporal -------------------------------------------------------------------------------
def motion_path(photo_hw: tuple[int, int], frames: int, size: tuple[int, int], rng: np.random.Generator) -> list[np.ndarray]:
    """3×3 pixel transforms, photo → frame t, of a slow random affine camera motion over a photo
    of ``photo_hw`` (its centre, 1.25× the cover scale, drifting up to 2 px/frame, zooming and
    rotating slowly) for frames of ``size`` (W, H)."""
    w, h = size
    ph, pw = photo_hw
    scale = max(w / pw, h / ph) * 1.25
    vel = rng.uniform(-1, 1, 4) * np.array([2.0, 2.0, 0.004, 0.003])  # px/frame x, y; zoom, rotation (rad)/frame
    mats = []
    for t in range(frames):
        s, a = scale * (1 + vel[2] * t), vel[3] * t
        c, si = np.cos(a) * s, np.sin(a) * s
        cx, cy = pw / 2 + vel[0] * t / scale, ph / 2 + vel[1] * t / scale
        mats.append(np.array([[c, -si, w / 2 - (c * cx - si * cy)], [si, c, h / 2 - (si * cx + c * cy)], [0, 0, 1]]))
    return mats


def render_clip(photo: U8, mats: list[np.ndarray], size: tuple[int, int]) -> tuple[list[U8], list[np.ndarray]]:
    """The frames [H,W,3] of ``photo`` seen through ``mats``, and the 2×3 pixel transforms D_t
    mapping frame t's pixels to frame t+1's."""
    clip = [cv2.warpAffine(photo, m[:2], size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT) for m in mats]
    deltas = [(mats[t + 1] @ np.linalg.inv(mats[t]))[:2] for t in range(len(mats) - 1)]
    return clip, deltas


def motion_clip(photo: U8, frames: int, size: tuple[int, int], rng: np.random.Generator) -> tuple[list[U8], list[np.ndarray]]:
    """A clip of ``frames`` [H,W,3] views of ``photo`` under a slow random affine camera motion,
    and the 2×3 pixel transforms D_t mapping frame t's pixels to frame t+1's."""
    return render_clip(photo, motion_path(photo.shape[:2], frames, size, rng), size)


def _blur(img: U8) -> np.ndarray:
    return cv2.GaussianBlur(img.astype(np.float32), (0, 0), 1.5)


def warp_error_affine(a: U8, b: U8, d: np.ndarray) -> float:
    """|blur(b) − warp_d(blur(a))| on pixels that the warp fills wholly from ``a`` (0–255).

    Valid = the bilinear warp of ones is 1 there, eroded 5×5. (A nearest-neighbour warp of ones,
    used before 2026-12-04, also passed pixels whose source lay under half a pixel outside ``a``,
    where the bilinear warp mixes in up to half the black border: every error read ~20 % high on
    the raw clip, less on stylised ones, so stylised/raw ratios read 5–7 % low.)"""
    h, w = a.shape[:2]
    warped = cv2.warpAffine(_blur(a), d, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    cover = cv2.warpAffine(np.ones((h, w), np.float32), d, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    valid = cv2.erode((cover > 0.999).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    return float(np.abs(_blur(b) - warped)[valid].mean())


def warp_error_flow(raw_a: U8, raw_b: U8, a: U8, b: U8) -> float:
    """The same with motion estimated from the raw frames (Farneback flow from b back to a)."""
    ga, gb = cv2.cvtColor(raw_a, cv2.COLOR_BGR2GRAY), cv2.cvtColor(raw_b, cv2.COLOR_BGR2GRAY)
    flow = cv2.calcOpticalFlowFarneback(gb, ga, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    h, w = ga.shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx, my = gx + flow[..., 0], gy + flow[..., 1]
    warped = cv2.remap(_blur(a), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    valid = (mx >= 2) & (mx <= w - 3) & (my >= 2) & (my <= h - 3)
    return float(np.abs(_blur(b) - warped)[valid].mean())


@dataclass(frozen=True)
class Temporal:
    """Mean warp errors (0–255). ``floor``, for synthetic clips: the stylised error of a model with
    the same look that flickered not at all: the photo stylised once, then moved through the same
    camera path as the raw clip. Resampling error grows with the image's detail and contrast, so
    a textured style scores above the raw clip even when perfectly stable."""

    raw: float
    stylised: float
    floor: float | None = None

    @property
    def ratio(self) -> float:
        return self.stylised / max(self.raw, 1e-6)

    @property
    def floor_ratio(self) -> float | None:
        return None if self.floor is None else self.floor / max(self.raw, 1e-6)


def stylise_clip(engine: BaseEngine, clip: list[U8], weights: np.ndarray, stabilise: float = 0.0) -> list[U8]:
    """Each frame [H,W,3] uint8 through ``engine``; with ``stabilise`` > 0 the outputs then go, in
    order, through the daemon's stabiliser at that history weight (what a viewer of the stream sees)."""
    stabiliser = Stabiliser(StabiliseConfig(history=stabilise))
    out = []
    for f in clip:
        res = engine.infer(f, weights, 1.0)
        out.append(stabiliser(f, res.output, res.attention)[0].copy())  # copied: off, it passes the engine's reused buffer through
    return out


def temporal_synthetic(engine: BaseEngine, photos: list[Path], weights: np.ndarray, frames: int, size: tuple[int, int], seed: int, stabilise: float = 0.0) -> Temporal:
    rng = np.random.default_rng(seed)
    raw, sty, floor = [], [], []
    for p in photos:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(f"cannot read image {p}")
        img = img[: img.shape[0] - img.shape[0] % 8, : img.shape[1] - img.shape[1] % 8]  # the engine's size rule
        mats = motion_path(img.shape[:2], frames, size, rng)
        clip, deltas = render_clip(img, mats, size)
        out = stylise_clip(engine, clip, weights, stabilise)
        still, _ = render_clip(engine.infer(img, weights, 1.0).output.copy(), mats, size)
        raw += [warp_error_affine(clip[t], clip[t + 1], d) for t, d in enumerate(deltas)]
        sty += [warp_error_affine(out[t], out[t + 1], d) for t, d in enumerate(deltas)]
        floor += [warp_error_affine(still[t], still[t + 1], d) for t, d in enumerate(deltas)]
    return Temporal(float(np.mean(raw)), float(np.mean(sty)), float(np.mean(floor)))


def temporal_video(engine: BaseEngine, video: Path, weights: np.ndarray, max_frames: int, stabilise: float = 0.0) -> Temporal:
    cap = cv2.VideoCapture(str(video))
    clip: list[U8] = []
    while len(clip) < max_frames:
        ok, f = cap.read()
        if not ok:
            break
        clip.append(f)
    cap.release()
    if len(clip) < 2:
        raise FileNotFoundError(f"need at least 2 frames from {video}, got {len(clip)}")
    out = stylise_clip(engine, clip, weights, stabilise)
    raw = [warp_error_flow(clip[t], clip[t + 1], clip[t], clip[t + 1]) for t in range(len(clip) - 1)]
    sty = [warp_error_flow(clip[t], clip[t + 1], out[t], out[t + 1]) for t in range(len(clip) - 1)]
    return Temporal(float(np.mean(raw)), float(np.mean(sty)))


def shift_errors(engine: BaseEngine, photos: list[Path], weights: np.ndarray, shifts: list[int], size: tuple[int, int]) -> dict[int, float]:
    """Per integer shift dx (px): mean |blur(S(b)) − blur(S(a)) moved by dx| (0–255), a and b two
    ``size`` crops of each photo dx apart. The raw frames agree exactly, so this is all the
    model's; an error that is small at multiples of 8 px but large between them is aliasing at
    the model's ¼ and ⅛ resolution grids, not motion it cannot follow."""
    w, h = size
    m, edge = max(shifts), 5  # edge: columns the σ = 1.5 blur mixes with the frame's border, px
    errs: dict[int, list[float]] = {dx: [] for dx in shifts}
    for p in photos:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(f"cannot read image {p}")
        scale = max((w + m) / img.shape[1], h / img.shape[0])
        img = cv2.resize(img, (int(np.ceil(img.shape[1] * scale)), int(np.ceil(img.shape[0] * scale))), interpolation=cv2.INTER_AREA)
        y0 = (img.shape[0] - h) // 2
        a = np.ascontiguousarray(img[y0:y0 + h, m:m + w])
        sa = _blur(engine.infer(a, weights, 1.0).output)
        for dx in shifts:
            b = np.ascontiguousarray(img[y0:y0 + h, m - dx:m - dx + w])  # the scene moved right by dx
            sb = _blur(engine.infer(b, weights, 1.0).output)
            errs[dx].append(float(np.abs(sb[:, dx + edge:-edge] - sa[:, edge:-dx - edge]).mean()))
    return {dx: float(np.mean(v)) for dx, v in errs.items()}


# -- style and content ------------------------------------------------------------------------
def _rgb(img: U8, max_side: int = 512) -> torch.Tensor:
    h, w = img.shape[:2]
    s = min(1.0, max_side / max(h, w))
    if s < 1:
        img = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(np.ascontiguousarray(img[:, :, ::-1])).permute(2, 0, 1)[None].float() / 255.0


def grams(net: torch.nn.Module, img: U8, mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Gram matrix per layer of ``net`` on ``img`` (uint8 BGR [H,W,3]); over ``mask`` (float
    [1, h, w], any size, 1 = counted) alone when given (``losses.gram``)."""
    from training.losses import gram

    with torch.no_grad():
        m = None if mask is None else mask[None]
        return {k: gram(v, m)[0] for k, v in net(_rgb(img)).items()}


def foreground(img: U8) -> torch.Tensor | None:
    """float [1, h, w] mask of ``img``'s drawing when it has a flat background (a cut-out on
    white, ``training.data.background_mask``, at ``_rgb``'s size), else None: the style
    references' Grams are taken over it, as training's targets are."""
    from training.data import foreground_mask

    return foreground_mask(_rgb(img)[0])


TEXTURE_LAYERS = ("relu3_3", "relu4_3")
"""The VGG layers of the texture distance: patterns a few to tens of pixels across, not pixel colour."""


def tone_normalised_luma(img: U8) -> U8:
    """[H,W,3] uint8 BGR → its luma, standardised to mean 128 and std 50 (clipped to 0–255), as
    three equal channels [H,W,3] uint8. Any brightness/contrast change or colour cast that keeps
    the luma's pattern gives (up to rounding) the same image."""
    g = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32)
    g = (g - g.mean()) / max(float(g.std()), 1.0) * 50.0 + 128.0
    return cv2.cvtColor(np.clip(np.rint(g), 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


def texture_grams(net: torch.nn.Module, img: U8, mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Gram matrices of ``TEXTURE_LAYERS`` on ``tone_normalised_luma(img)``: the painting's
    strokes and shapes without its palette, so a model that only re-colours the photo does not
    reduce the distance to them. ``mask`` as in ``grams``."""
    g = grams(net, tone_normalised_luma(img), mask)
    return {k: g[k] for k in TEXTURE_LAYERS}


def style_distance(g: dict[str, torch.Tensor], targets: list[dict[str, torch.Tensor]]) -> float:
    """Mean over layers of ‖G − Ḡ‖² / ‖Ḡ‖², Ḡ the mean Gram of the style's reference images."""
    d = []
    for k in g:
        t = torch.stack([x[k] for x in targets]).mean(0)
        d.append(float((g[k] - t).pow(2).sum() / t.pow(2).sum().clamp_min(1e-12)))
    return float(np.mean(d))


def edge_f1(a: U8, b: U8, tolerance: int = 1) -> float:
    """F1 of Canny edges of ``b`` against ``a`` (matches within ``tolerance`` px)."""
    def edges(img: U8) -> np.ndarray:
        gray = cv2.GaussianBlur(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), (0, 0), 1.0)
        return cv2.Canny(gray, 50, 150) > 0

    ea, eb = edges(a), edges(b)
    k = np.ones((2 * tolerance + 1, 2 * tolerance + 1), np.uint8)
    da, db = cv2.dilate(ea.astype(np.uint8), k) > 0, cv2.dilate(eb.astype(np.uint8), k) > 0
    precision = (eb & da).sum() / max(eb.sum(), 1)
    recall = (ea & db).sum() / max(ea.sum(), 1)
    return float(2 * precision * recall / max(precision + recall, 1e-9))


def _reduction(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else 1 - after / max(before, 1e-12)


@dataclass(frozen=True)
class StyleScores:
    """Means over the photos. Style distance: all of ``Vgg16.layers`` on the colour images;
    texture distance: ``texture_grams`` (strokes and shapes, blind to colour). None without VGG."""

    style_distance_input: float | None
    style_distance_output: float | None
    edge_f1: float
    texture_distance_input: float | None = None
    texture_distance_output: float | None = None

    @property
    def reduction(self) -> float | None:
        return _reduction(self.style_distance_input, self.style_distance_output)

    @property
    def texture_reduction(self) -> float | None:
        return _reduction(self.texture_distance_input, self.texture_distance_output)


def attention_correlation(photo: U8, output: U8, attention: U8) -> float:
    """Pearson correlation of the attention map [H, W] with the output's change |output − photo|
    (channel mean, [H, W]); 0 when either is constant. What "where the style changes the frame
    most" should score."""
    change = np.abs(output.astype(np.float32) - photo.astype(np.float32)).mean(axis=2).ravel()
    a = attention.astype(np.float32).ravel()
    if a.std() == 0 or change.std() == 0:
        return 0.0
    return float(np.corrcoef(a, change)[0, 1])


Reference = Callable[[U8, str], U8]
"""(BGR photo [H, W, 3] uint8, style name) → the optimisation-based reference rendering."""


def evaluate_images(engine: BaseEngine, photos: list[Path], style_refs: dict[str, list[Path]], vgg: torch.nn.Module | None, size: tuple[int, int],
                    mask_background: bool = True, reference: Reference | None = None, reference_photos: int = 0) -> dict[str, dict[str, Any]]:
    """Per style: mean style distance (input, output), its reduction, mean edge F1 and the
    attention map's correlation with the output's change. With ``reference``, the same texture
    and style distances for its rendering of the first ``reference_photos`` photos (all when 0),
    beside the model's on those photos. With ``mask_background`` a reference image with a flat
    background counts its drawing alone (``foreground``)."""
    from streamer.contact_sheet import _cell

    imgs = []
    for p in photos:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(f"cannot read image {p}")
        imgs.append(_cell(img, *size))
    # The photos' own Grams do not depend on the style: made once, not once per style.
    inputs = [(grams(vgg, x), texture_grams(vgg, x)) for x in imgs] if vgg is not None else []
    out: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(engine.model.styles):
        w = np.eye(engine.model.num_styles, dtype=np.float32)[i]
        refs = [cv2.imread(str(r), cv2.IMREAD_COLOR) for r in style_refs.get(name, [])]
        refs = [r for r in refs if r is not None]
        masks = [foreground(r) if mask_background and vgg is not None else None for r in refs]
        targets = [grams(vgg, r, m) for r, m in zip(refs, masks, strict=True)] if vgg is not None else []
        textures = [texture_grams(vgg, r, m) for r, m in zip(refs, masks, strict=True)] if vgg is not None else []
        d: dict[str, list[float]] = {"in": [], "out": [], "tex_in": [], "tex_out": [], "ref_out": [], "ref_tex_out": [], "ref_in": [], "ref_tex_in": [], "ref_model_out": [], "ref_model_tex_out": []}
        f1, corr = [], []
        n_ref = (reference_photos or len(imgs)) if reference is not None and targets else 0
        for j, x in enumerate(imgs):
            res = engine.infer(x, w, 1.0)
            y = res.output.copy()
            f1.append(edge_f1(x, y))
            corr.append(attention_correlation(x, y, res.attention))
            if j < n_ref:
                assert vgg is not None and reference is not None
                r = reference(x, name)
                g_in, t_in = inputs[j]
                d["ref_in"].append(style_distance(g_in, targets))
                d["ref_tex_in"].append(style_distance(t_in, textures))
                d["ref_out"].append(style_distance(grams(vgg, r), targets))
                d["ref_tex_out"].append(style_distance(texture_grams(vgg, r), textures))
                d["ref_model_out"].append(style_distance(grams(vgg, y), targets))
                d["ref_model_tex_out"].append(style_distance(texture_grams(vgg, y), textures))
            if targets:
                assert vgg is not None
                g_in, t_in = inputs[j]
                d["in"].append(style_distance(g_in, targets))
                d["out"].append(style_distance(grams(vgg, y), targets))
                d["tex_in"].append(style_distance(t_in, textures))
                d["tex_out"].append(style_distance(texture_grams(vgg, y), textures))
        m = {k: float(np.mean(v)) if v else None for k, v in d.items()}
        s = StyleScores(m["in"], m["out"], float(np.mean(f1)), m["tex_in"], m["tex_out"])
        out[name] = {**asdict(s), "style_distance_reduction": s.reduction, "texture_distance_reduction": s.texture_reduction,
                     "attention_change_correlation": float(np.mean(corr)) if corr else None,
                     "references": [str(r) for r in style_refs.get(name, [])], "references_masked": sum(m is not None for m in masks)}
        if n_ref:
            out[name]["reference"] = reference_scores(m, n_ref)
    return out


def reference_scores(m: dict[str, float | None], photos: int) -> dict[str, Any]:
    """The reference's cuts beside the model's on the same photos, and the model's share of the
    reference's texture cut (``model_share_of_texture_cut``; None when the reference cuts ≤ 0)."""
    ref_tex = _reduction(m["ref_tex_in"], m["ref_tex_out"])
    model_tex = _reduction(m["ref_tex_in"], m["ref_model_tex_out"])
    share = model_tex / ref_tex if ref_tex is not None and model_tex is not None and ref_tex > 0 else None
    return {"photos": photos, "style_distance_reduction": _reduction(m["ref_in"], m["ref_out"]), "texture_distance_reduction": ref_tex,
            "model_style_distance_reduction": _reduction(m["ref_in"], m["ref_model_out"]), "model_texture_distance_reduction": model_tex,
            "model_share_of_texture_cut": share}


def style_references(sidecar: dict[str, Any]) -> dict[str, list[Path]]:
    """Style name → its reference images, from the training config recorded in the model's sidecar
    (``engines.model.training_paintings``: styles whose files are not here are left out)."""
    from engines.model import training_paintings

    return training_paintings(sidecar)
