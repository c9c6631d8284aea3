"""Where the bundled model's flicker comes from (docs/QUALITY.md, "The head's colour map of the frame").

The head adds two things to the frame's logit: a 3×3 conv over the frame itself (a colour map,
shared by every style) and the Lanczos-upsampled ¼-res field z that the body draws per style.
This runs ``stylecast evaluate``'s clips (seed 0, 6 photos, 10 frames, 640×360, same valid mask)
through PyTorch copies of the generator with one part changed, untrained:
  normal     the generator as bundled (matches the ONNX figures)
  zmean      z replaced by its spatial mean per channel: the colour map and the style's global
             offset alone, no strokes
  xcentre    the frame taps collapsed onto the centre tap (same sums): no spatial filtering
  alphaK     the frame taps scaled by K (alpha0 = a head blind to the frame, ``head_frame=False``)
Run from the repository root: .venv/bin/python docs/bench/flicker_decomposition/decompose.py normal zmean alpha0
(a generator.pt path first measures that model; variants HF and AB need ``git apply
docs/bench/flicker_decomposition/head_options.patch``, the spec options they were trained with).
"""
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, '.')
from engines import InferResult
from training import evaluate as ev
from training.data import list_images
from training.export import FramePipeline, load_generator
from training.generator import HEAD_CHANNELS
from training.layers import lanczos_upsample

MODEL = Path(sys.argv[1]) if sys.argv[1:] and sys.argv[1].endswith('.pt') else Path('streamer/models/default.generator.pt')
modes = [a for a in sys.argv[1:] if not a.endswith('.pt')] or ['normal', 'zmean', 'xcentre', 'alpha0']
torch.set_num_threads(2)
g, styles, _ = load_generator(MODEL)
assert g.spec.head_lanczos, "written for the Lanczos head (the bundled model)"
photos = list_images(Path('../shared/data/content'))[:6]
mode = {'m': 'normal'}


def features(x: torch.Tensor, w: torch.Tensor) -> dict[str, torch.Tensor]:
    h = g.enc1(F.pixel_unshuffle(g.in_blur(x), 4), w)
    skip = h
    h = g.enc2(g.blur(h), w)
    for b in g.res:
        h = b(h, w)
    h = g.dec1(g.upsample_half(h), w) + skip
    z = g.head_blur(g.squeeze(h))
    m = mode['m']
    if m == 'zmean':
        z = z.mean((2, 3), keepdim=True).expand_as(z)
    wt = g.head.weight
    wx = wt[:, HEAD_CHANNELS:]
    if m == 'xcentre':
        wx = torch.zeros_like(wx)
        wx[:, :, 1, 1] = wt[:, HEAD_CHANNELS:].sum((2, 3))
    elif m.startswith('alpha'):
        wx = float(m[5:]) * wx
    wz = wt[:, :HEAD_CHANNELS].sum((2, 3), keepdim=True)
    head = lanczos_upsample(F.conv2d(z, wz), 4) + F.conv2d(F.pad(x, (1, 1, 1, 1), mode='reflect'), wx, g.head.bias)
    return {'head': head}


g.features = features  # type: ignore[method-assign]
pipe = FramePipeline(g).eval()


class TorchEngine:
    def infer(self, frame: np.ndarray, w: np.ndarray, s: float) -> InferResult:
        f = frame[: frame.shape[0] - frame.shape[0] % 8, : frame.shape[1] - frame.shape[1] % 8]
        with torch.no_grad():
            o, a = pipe(torch.from_numpy(np.ascontiguousarray(f))[None], torch.from_numpy(w)[None].float(), torch.tensor([s], dtype=torch.float32))
        return InferResult(o[0].numpy(), a[0, ..., 0].numpy())


print(f"{MODEL}: warp ratio (no-flicker floor) per style: {' / '.join(styles)}")
for m in modes:
    mode['m'] = m
    r = []
    for i in range(len(styles)):
        t = ev.temporal_synthetic(TorchEngine(), photos, np.eye(len(styles), dtype=np.float32)[i], 10, (640, 360), 0)  # type: ignore[arg-type]
        r.append(f"{t.ratio:.2f} ({t.floor_ratio:.2f})")
    print(f"{m:<10}", " / ".join(r), flush=True)
