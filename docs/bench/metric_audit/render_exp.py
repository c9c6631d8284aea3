"""Warp ratios on clips rendered two ways (docs/QUALITY.md, "Measured"): bilinear point sampling (evaluate's) and band-limited
(photo pre-blurred σ, then Lanczos-4), for the bundled model's 4 styles, the identity and a 3×3
sharpener. Same camera paths, seed 0, 6 photos, 10 frames, 640×360, fixed valid mask."""
import sys, cv2, numpy as np
from pathlib import Path
sys.path.insert(0, '.')  # run from the repository root: .venv/bin/python docs/bench/metric_audit/render_exp.py
import engines
from engines import InferResult
from training.evaluate import motion_path, warp_error_affine, stylise_clip

SIG = float(sys.argv[1]) if len(sys.argv) > 1 else 0.6
photos = sorted(Path('../shared/data/content').glob('*.jpg'))[:6]
K = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], np.float32)

class Ident:
    def infer(self, f, w, s): return InferResult(f, np.zeros(f.shape[:2], np.uint8))
class Sharp:
    def infer(self, f, w, s): return InferResult(cv2.filter2D(f, -1, K), np.zeros(f.shape[:2], np.uint8))

def render(img, mats, size, mode):
    if mode == 'bilinear':
        return [cv2.warpAffine(img, m[:2], size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT) for m in mats]
    src = cv2.GaussianBlur(img, (0, 0), SIG)
    return [cv2.warpAffine(src, m[:2], size, flags=cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REFLECT) for m in mats]

with engines.create_engine('onnxruntime', Path('streamer/models/default.onnx'), threads=2) as eng:
    models = {n: (eng, np.eye(4, dtype=np.float32)[i]) for i, n in enumerate(eng.model.styles)}
    models['identity'] = (Ident(), None); models['sharpen3x3'] = (Sharp(), None)
    for mode in ('bilinear', f'bandlimited σ={SIG}'):
        rng = np.random.default_rng(0)
        clips = []
        for p in photos:
            img = cv2.imread(str(p)); img = img[: img.shape[0] - img.shape[0] % 8, : img.shape[1] - img.shape[1] % 8]
            mats = motion_path(img.shape[:2], 10, (640, 360), rng)
            clip = render(img, mats, (640, 360), mode.split()[0])
            deltas = [(mats[t + 1] @ np.linalg.inv(mats[t]))[:2] for t in range(9)]
            clips.append((clip, deltas))
        raw = np.mean([warp_error_affine(c[t], c[t + 1], d) for c, ds in clips for t, d in enumerate(ds)])
        row = []
        for name, (m, w) in models.items():
            sty = np.mean([warp_error_affine(o[t], o[t + 1], d) for c, ds in clips for o in [stylise_clip(m, c, w if w is not None else np.ones(1, np.float32))] for t, d in enumerate(ds)])
            row.append(f'{name[:10]} {sty / raw:.2f}')
        print(f'{mode:<18} raw {raw:.3f} | ' + ' | '.join(row), flush=True)
