"""Decompose the bundled model's clip flicker: attention gate vs style delta."""
import sys, glob
import cv2, numpy as np, torch
import os as _os
HERE = _os.path.dirname(_os.path.abspath(__file__))
sys.path.insert(0, _os.path.join(HERE, "..", "..", "..", ".."))  # the repository root
from training.export import load_generator
from training.evaluate import motion_path, render_clip, warp_error_affine

import os
sys.path.insert(0, HERE)
if os.environ.get("LANCZOS"):
    sys.path.insert(0, HERE)
    from lanczos import lanczos_up
    import training.generator as G
    G.upsample4 = lambda h: lanczos_up(h, 4, int(os.environ.get("LA", "3")))
if os.environ.get("FRELU"):
    from training import layers as L
    from lanczos import lanczos_up as _lu
    def fr(h, row, col):
        c = h.shape[1]
        u = torch.relu(_lu(h, 2))
        u = torch.nn.functional.pad(u, (1, 1, 1, 1), mode="replicate")
        u = torch.nn.functional.conv2d(u, row.to(u.dtype), stride=(1, 2), groups=c)
        return torch.nn.functional.conv2d(u, col.to(u.dtype), stride=(2, 1), groups=c)
    L.filtered_relu = fr
path = sys.argv[1] if len(sys.argv) > 1 else _os.path.join(HERE, "..", "..", "..", "..", "streamer", "models", "default.generator.pt")
g, styles, _ = load_generator(__import__("pathlib").Path(path)); g.eval()
torch.set_num_threads(2)
photos = sorted(glob.glob(_os.path.join(HERE, "..", "..", "..", "..", "..", "shared", "data", "content", "*.jpg")))[:6]
size = (640, 360)
def run(frame, si):
    x = torch.from_numpy(frame[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255
    w = torch.zeros(1, len(styles)); w[0, si] = 1
    with torch.no_grad():
        s, a = g(x, w)
    x, s, a = (t[0].permute(1, 2, 0).numpy() for t in (x, s, a))
    return x * 255, (s - x) * 255, a  # RGB
def W(img, d):
    return cv2.warpAffine(img.astype(np.float32), d, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
for si, name in enumerate(styles):
    rng = np.random.default_rng(0)
    acc = {k: [] for k in ("raw", "full", "A_frozen", "delta_frozen", "A_change", "delta_change")}
    for p in photos:
        img = cv2.imread(p); img = img[: img.shape[0] // 8 * 8, : img.shape[1] // 8 * 8]
        mats = motion_path(img.shape[:2], 10, size, rng)
        clip, deltas = render_clip(img, mats, size)
        outs = [run(f, si) for f in clip]
        for t, d in enumerate(deltas):
            (x0, D0, A0), (x1, D1, A1) = outs[t], outs[t + 1]
            S0, S1 = x0 + A0 * D0, x1 + A1 * D1
            acc["raw"].append(warp_error_affine(x0, x1, d))
            acc["full"].append(warp_error_affine(S0, S1, d))
            acc["A_frozen"].append(warp_error_affine(S0, x1 + W(A0, d)[..., None] * D1, d))
            acc["delta_frozen"].append(warp_error_affine(S0, x1 + A1 * W(D0, d), d))
            acc["A_change"].append(warp_error_affine(A0 * 255, A1 * 255, d))
            acc["delta_change"].append(warp_error_affine(D0 + 128, D1 + 128, d))
    m = {k: float(np.mean(v)) for k, v in acc.items()}
    print(f"{name:28s} raw {m['raw']:.3f} full {m['full']:.3f} ({m['full']/m['raw']:.2f})  A frozen {m['A_frozen']/m['raw']:.2f}  delta frozen {m['delta_frozen']/m['raw']:.2f}  |dA|*255 {m['A_change']:.3f}  |dDelta| {m['delta_change']:.3f}", flush=True)
