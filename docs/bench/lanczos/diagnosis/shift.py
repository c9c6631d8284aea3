"""Exact integer shifts, instance-norm statistics frozen to frame a's: error in the interior, after sigma 1.5 blur,
of the blended output, and of z (the 1/4-res head channels, upsampled), per shift."""
import sys, glob
import cv2, numpy as np, torch
import torch.nn.functional as F
import os as _os
HERE = _os.path.dirname(_os.path.abspath(__file__))
sys.path.insert(0, _os.path.join(HERE, "..", "..", "..", ".."))  # the repository root
from training.export import load_generator
from training import layers
from training.generator import upsample4
path = sys.argv[1] if len(sys.argv) > 1 else _os.path.join(HERE, "..", "..", "..", "..", "streamer", "models", "default.generator.pt")
g, styles, _ = load_generator(__import__("pathlib").Path(path)); g.eval()
torch.set_num_threads(2)
MODE = {"m": None, "store": []}
def fwd(self, x, w):
    xf = x.float()
    if MODE["m"] == "record":
        mu = xf.mean((2, 3), keepdim=True); var = xf.var((2, 3), keepdim=True, unbiased=False)
        MODE["store"].append((mu, var))
    elif MODE["m"] == "replay":
        mu, var = MODE["store"][MODE["i"]]; MODE["i"] += 1
    else:
        mu = xf.mean((2, 3), keepdim=True); var = xf.var((2, 3), keepdim=True, unbiased=False)
    h = (xf - mu) / torch.sqrt(var + 1e-5)
    gm = (w @ self.gamma)[:, :, None, None]; b = (w @ self.beta)[:, :, None, None]
    return h * gm + b
layers.CondInstanceNorm.forward = fwd
import os
if os.environ.get("LANCZOS"):
    sys.path.insert(0, HERE)
    from lanczos import lanczos_up
    import training.generator as G
    if "4" in os.environ["LANCZOS"]:
        G.upsample4 = lambda h: lanczos_up(h, 4)
    if "2" in os.environ["LANCZOS"]:
        G.upsample2 = lambda h: lanczos_up(h, 2)
photos = sorted(glob.glob(_os.path.join(HERE, "..", "..", "..", "..", "..", "shared", "data", "content", "*.jpg")))[:4]
bl = lambda im: cv2.GaussianBlur(im.astype(np.float32), (0, 0), 1.5)
def out(x, w):
    f = g.features(x, w)
    s, a = g(x, w)
    return (x + a * (s - x))[0].permute(1, 2, 0).numpy() * 255
H, Wd = 360, 640
for si, name in enumerate(styles[:3]):
    w = torch.zeros(1, len(styles)); w[0, si] = 1
    res = {}
    for dx in (1, 2, 3, 4, 8, 16):
        e_live, e_frozen = [], []
        for p in photos:
            img = cv2.imread(p)[..., ::-1]
            a = torch.from_numpy(img[:H, :Wd].copy()).permute(2, 0, 1)[None].float() / 255
            b = torch.from_numpy(img[:H, dx:dx + Wd].copy()).permute(2, 0, 1)[None].float() / 255
            with torch.no_grad():
                MODE.update(m="record", store=[]); oa = out(a, w)
                MODE.update(m="replay", i=0); ob_f = out(b, w)
                MODE.update(m=None); ob = out(b, w)
            # b[x] = a[x + dx]
            sl = (slice(64, H - 64), slice(64, Wd - 64 - dx))
            A = bl(oa)[:, dx:]; B = bl(ob)[:, :-dx]; Bf = bl(ob_f)[:, :-dx]
            e_live.append(np.abs(A - B)[64:-64, 64:-64].mean()); e_frozen.append(np.abs(A - Bf)[64:-64, 64:-64].mean())
        res[dx] = (np.mean(e_live), np.mean(e_frozen))
    print(name, " ".join(f"{dx}px {l:.3f}/{f:.3f}" for dx, (l, f) in res.items()), flush=True)
