"""The training loop, in named steps: ``d_step``, ``g_step``, ``ema_update``.

Each run gets a numbered directory ``<out>/NNNNN-<styles>/`` holding ``config.json`` (resolved
options), ``stats.jsonl`` (one JSON line per logged step), ``samples/step_NNNNNN.png`` grids and
``checkpoint.pt`` (latest; written atomically, resumable with ``resume``).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from training import losses
from training.backbone import build_backbone
from training.config import TrainConfig
from training.data import ContentSampler, StyleSet, load_styles
from training.discriminator import MultiScaleD
from training.distributed import World, device_for, finish, init_world, share_path, wrap
from training.generator import Generator, init_weights
from training.plots import plot_losses
from training.preflight import preflight
from training.video import PairBatch, VideoPairs, flow_warp
from training.warp import centre_crop, random_affine, second_view, warp

log = logging.getLogger(__name__)


@dataclass
class State:
    """Everything a checkpoint holds."""

    g: Generator
    g_ema: Generator
    d: MultiScaleD
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    step: int = 0


@dataclass
class StepOut:
    """One step's forward pass: crops x, output y of G, style index, backbone features of y and
    x; the moved second view's output and the move (temporal loss on); the teacher's output and
    features (distillation)."""

    x: torch.Tensor
    y: torch.Tensor
    idx: torch.Tensor
    f_out: dict[str, torch.Tensor]
    f_in: dict[str, torch.Tensor]
    second: tuple[torch.Tensor, Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]] | None = None
    teacher: tuple[torch.Tensor, dict[str, torch.Tensor]] | None = None


@dataclass(frozen=True)
class Term:
    """One named, weighted term of the generator's loss."""

    name: str
    weight: float
    fn: Callable[[StepOut], torch.Tensor]


def make_run_dir(out: Path, tag: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    nums = [int(p.name[:5]) for p in out.iterdir() if p.name[:5].isdigit()]
    run = out / f"{(max(nums) + 1) if nums else 1:05d}-{tag}"
    (run / "samples").mkdir(parents=True)
    return run


def per_style_scale(weights: list[float], device: torch.device) -> tuple[float, torch.Tensor | None]:
    """A loss term's per-style weights [S] → (the term's weight, the largest of them; each style's
    weight ÷ it as a [S] tensor, or None when they are all equal). The term is logged as its
    loss under those relative weights, so a run without per-style weights logs what it always did."""
    top = max(weights, default=0.0)
    if top <= 0 or all(w == top for w in weights):
        return top, None
    return top, torch.tensor(weights, device=device) / top


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def style_grams(backbone: torch.nn.Module, styles: list[StyleSet], layers: tuple[str, ...], device: torch.device) -> list[list[dict[str, torch.Tensor]]]:
    """Gram targets per style per reference image: [style][image][layer] → [C, C]; over the
    drawing alone where an image has a flat background (``StyleSet.foreground``)."""
    out = []
    with torch.no_grad():
        for s in styles:
            per_image = []
            for img, fg in zip(s.images, s.foreground, strict=True):
                feats = backbone(img.unsqueeze(0).to(device))
                mask = None if fg is None else fg.unsqueeze(0).to(device)
                per_image.append({k: losses.gram(feats[k], mask)[0] for k in layers})
            out.append(per_image)
    return out


class Trainer:
    def __init__(self, cfg: TrainConfig, run_dir: Path, world: World | None = None) -> None:
        self.cfg, self.run_dir, self.world = cfg, run_dir, world or World()
        self.device = device_for(self.world, pick_device(cfg.device))
        self.rng = random.Random(cfg.seed + self.world.rank)  # each rank draws its own batches
        torch.manual_seed(cfg.seed)  # the same initial weights on every rank
        self.styles = load_styles([Path(p) for p in cfg.styles], cfg.style_size, cfg.mask_background)
        names = [s.name for s in self.styles]
        self.w_edge, self.edge_rel = per_style_scale(cfg.edge_weights(names), self.device)
        # With the temporal loss on, crops carry context for the moved second view (``second_view``).
        self.margin = cfg.crop // 10 if cfg.w_temporal > 0 else 0
        self.content = ContentSampler(Path(cfg.content), cfg.crop + 2 * self.margin, max_side=cfg.content_max_side(), seed=cfg.seed + self.world.rank)
        self.video = VideoPairs([Path(v) for v in cfg.videos], cfg.crop, seed=cfg.seed + self.world.rank) if cfg.videos else None
        if self.video is not None:
            log.info("%d frame pairs from %d video(s); %.0f %% of steps train on them", len(self.video), len(cfg.videos), 100 * cfg.video_share)
        self.backbone = build_backbone(cfg.backbone).to(self.device)
        self.grams = style_grams(self.backbone, self.styles, self.backbone.style_layers, self.device)
        g = Generator(cfg.spec(len(self.styles))).to(self.device)
        d = MultiScaleD(len(self.styles)).to(self.device)
        self.state = State(
            g=g, g_ema=copy.deepcopy(g).requires_grad_(False), d=d,
            opt_g=torch.optim.Adam(g.parameters(), lr=cfg.lr_g, betas=(0.5, 0.99)),
            opt_d=torch.optim.Adam(d.parameters(), lr=cfg.lr_d, betas=(0.5, 0.99)),
        )
        if cfg.init:
            self._init_generator(cfg.init)
        self.g_train, self.d_train = wrap(self.world, g), wrap(self.world, d)  # DDP when under torchrun
        self.use_amp = self.device.type == "cuda"
        self.teacher = self._load_teacher(cfg.teacher) if cfg.teacher else None
        self.fixed_x = centre_crop(self.content.batch(4), self.margin).to(self.device)  # the sample grid's rows
        self.terms = self.loss_terms()

    def _init_generator(self, path: str) -> None:
        """Start G and its EMA from a trained generator's weights (a warm start, e.g. to fine-tune
        the bundled model); its styles must be this run's, in order, and its tier this run's."""
        src = self._load_same_styles(path, "--init")
        try:
            init_weights(self.state.g, src)
        except RuntimeError as e:  # a different width / blocks
            raise ValueError(f"--init {path} does not fit this run's generator (tier {self.cfg.tier}): {e}") from e
        init_weights(self.state.g_ema, src)
        log.info("generator initialised from %s", path)

    def _load_same_styles(self, path: str, role: str) -> Generator:
        """A trained generator (EMA weights, CPU) whose styles are this run's, in order; ``role``
        names it in the error (``teacher``, ``--init``)."""
        from training.export import load_generator

        g, names, _ = load_generator(Path(path))
        mine = [s.name for s in self.styles]
        if names != mine:
            raise ValueError(f"{role} {path} has styles {names}; this run trains {mine} (same names, same order)")
        return g

    def _load_teacher(self, path: str) -> Generator:
        """The frozen teacher (EMA weights); its styles must be the student's, in order."""
        t = self._load_same_styles(path, "teacher")
        log.info("distilling from %s (%d params → %d)", path, sum(p.numel() for p in t.parameters()), sum(p.numel() for p in self.state.g.parameters()))
        return t.to(self.device).requires_grad_(False)

    # -- one training step, in parts ------------------------------------------------------
    def sample_batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Content crops x [B,3,c,c], the same crops with context [B,3,c+2m,c+2m] (x itself when
        there is no temporal margin), style index [B], one-hot weights [B,S], real painting crops."""
        cfg, n = self.cfg, self.cfg.batch
        context = self.content.batch(n).to(self.device)
        x = centre_crop(context, self.margin)
        idx = torch.tensor([self.rng.randrange(len(self.styles)) for _ in range(n)], device=self.device)
        w = F.one_hot(idx, len(self.styles)).float()
        real = torch.stack([self.styles[i].crop(cfg.crop, self.rng, (0.3, 0.8)) for i in idx.tolist()])
        return x, context, idx, w, real.to(self.device)

    def video_pairs(self, n: int) -> PairBatch | None:
        """Frame pairs from the user's videos for this step (with probability ``video_share``), or
        None: the step trains on photos."""
        if self.video is None or self.rng.random() >= self.cfg.video_share:
            return None
        return self.video.batch(n).to(self.device)

    def temporal_view(self, context: torch.Tensor, pair: PairBatch | None) -> tuple[torch.Tensor, Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]]:
        """The temporal loss's second view [N,3,c,c] of this step's crops, and the move that takes
        an output for the first view onto it (→ moved output, valid mask [N,1,c,c]): frame t+1
        and the measured flow for video ``pair``; else a random affine move of the photo crops
        with context (``second_view``), plus ``temporal_noise``."""
        if pair is not None:
            def by_flow(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                moved, inside = flow_warp(y, pair.flow)
                return moved, inside * pair.valid
            return pair.x1, by_flow
        cfg = self.cfg
        theta = random_affine(context.shape[0], 0.05 * cfg.crop / context.shape[-1], 2.0, 0.03).to(self.device)
        xw, theta = second_view(context, theta, self.margin)
        xw = (xw + cfg.temporal_noise * torch.randn_like(xw)).clamp(0, 1)
        return xw, lambda y: warp(y, theta)

    def d_step(self, x: torch.Tensor, idx: torch.Tensor, w: torch.Tensor, real: torch.Tensor) -> float:
        st = self.state
        with torch.no_grad(), torch.autocast(self.device.type, enabled=self.use_amp):
            fake = st.g(x, w)[0].float()
        with torch.autocast(self.device.type, enabled=self.use_amp):
            # One forward for real and fake together: DDP expects one forward per backward.
            logits = self.d_train(torch.cat([real, fake]), torch.cat([idx, idx]))
            n = real.shape[0]
            loss = losses.d_hinge_loss([lg[:n] for lg in logits], [lg[n:] for lg in logits])
        st.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        st.opt_d.step()
        return float(loss.detach())

    def forward_step(self, x: torch.Tensor, context: torch.Tensor, idx: torch.Tensor, w: torch.Tensor, pair: PairBatch | None) -> StepOut:
        """G on this step's crops (and, with the temporal loss on, on their moved second view in
        the same forward), with the backbone features the perceptual terms read."""
        n, bb = x.shape[0], self.backbone
        second = None
        if self.cfg.w_temporal > 0:
            xw, move = self.temporal_view(context, pair)
            y_all = self.g_train(torch.cat([x, xw]), torch.cat([w, w]))[0]  # the forward, for DDP; the attention map is not trained
            y = y_all[:n]
            second = (y_all[n:], move)
        else:
            y = self.g_train(x, w)[0]
        with torch.no_grad():
            f_in = bb(x)
        teacher = None
        if self.teacher is not None:
            with torch.no_grad():
                ty = self.teacher.paint(x, w)
                teacher = (ty, bb(ty))
        return StepOut(x=x, y=y, idx=idx, f_out=bb(y), f_in=f_in, second=second, teacher=teacher)

    def g_step(self, x: torch.Tensor, context: torch.Tensor, idx: torch.Tensor, w: torch.Tensor, pair: PairBatch | None = None) -> dict[str, float]:
        """One generator update: the weighted sum of ``self.terms`` (``loss_terms``). With
        ``pair`` (frames from the user's videos; ``x`` is then ``pair.x0``) the temporal term
        compares G(frame t+1) with G(frame t) moved by the measured flow."""
        st = self.state
        st.d.requires_grad_(False)  # D only scores here; its own step updates it
        with torch.autocast(self.device.type, enabled=self.use_amp):
            out = self.forward_step(x, context, idx, w, pair)
            values = {t.name: t.fn(out) for t in self.terms}
        total = sum((t.weight * values[t.name].float() for t in self.terms), torch.zeros((), device=self.device))
        st.opt_g.zero_grad(set_to_none=True)
        total.backward()
        st.opt_g.step()
        st.d.requires_grad_(True)
        rec = {k: float(v.detach()) for k, v in values.items()}
        rec["total"] = float(total.detach())
        return rec

    def style_targets(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each sample's Gram targets [N, C, C] per style layer: one of its style's images, at random."""
        return {k: torch.stack([self.rng.choice(self.grams[i])[k] for i in idx.tolist()]) for k in self.backbone.style_layers}

    def loss_terms(self) -> list[Term]:
        """The generator's objective as named, weighted terms; those weighted 0 are left out."""
        cfg, bb = self.cfg, self.backbone
        terms = [
            Term("content", cfg.w_content, lambda o: losses.content_loss(o.f_out, o.f_in, bb.content_layers)),
            Term("style", cfg.w_style, lambda o: losses.style_loss(o.f_out, self.style_targets(o.idx), bb.style_layers)),
            Term("adv", cfg.w_adv, lambda o: losses.g_hinge_loss(self.state.d(o.y, o.idx))),
            Term("tv", cfg.w_tv, lambda o: losses.tv_loss(o.y)),
            Term("temporal", cfg.w_temporal, self.temporal_term),
            Term("edge", self.w_edge, lambda o: losses.edge_loss(o.y, o.x, None if self.edge_rel is None else self.edge_rel[o.idx])),
        ]
        if self.teacher is not None:
            terms.append(Term("distill", cfg.w_distill, self.distill_term))
        return [t for t in terms if t.weight > 0]

    def temporal_term(self, o: StepOut) -> torch.Tensor:
        """Compound regularisation (``losses.temporal_loss``): G of the moved view against the
        first view's output moved the same way."""
        assert o.second is not None  # the term exists only with w_temporal > 0
        y2, move = o.second
        moved, valid = move(o.y)
        return losses.temporal_loss(y2, moved, valid, self.cfg.temporal_blur)

    def distill_term(self, o: StepOut) -> torch.Tensor:
        """L1 to the teacher's output, plus the content loss against the teacher's
        output at every style layer (its strokes, not only its colours)."""
        assert o.teacher is not None
        ty, tf = o.teacher
        return losses.distill_loss(o.y, ty) + losses.content_loss(o.f_out, tf, self.backbone.style_layers)

    def ema_update(self) -> None:
        decay = min(self.cfg.ema_decay, (1 + self.state.step) / (10 + self.state.step))
        with torch.no_grad():
            for pe, p in zip(self.state.g_ema.parameters(), self.state.g.parameters(), strict=True):
                pe.lerp_(p, 1 - decay)

    # -- bookkeeping ----------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        st, path = self.state, self.run_dir / "checkpoint.pt"
        tmp = path.with_suffix(".tmp")
        torch.save({
            "step": st.step, "spec": st.g.spec.to_dict(), "styles": [s.name for s in self.styles],
            "g": st.g.state_dict(), "g_ema": st.g_ema.state_dict(), "d": st.d.state_dict(),
            "opt_g": st.opt_g.state_dict(), "opt_d": st.opt_d.state_dict(), "config": json.loads(self.cfg.to_json()),
        }, tmp)
        os.replace(tmp, path)
        return path

    def load_checkpoint(self, path: Path) -> None:
        ck = torch.load(path, map_location=self.device, weights_only=False)
        st = self.state
        for name in ("g", "g_ema", "d", "opt_g", "opt_d"):
            getattr(st, name).load_state_dict(ck[name])
        st.step = int(ck["step"])
        log.info("resumed from %s at step %d", path, st.step)

    def save_samples(self) -> Path:
        """Grid: rows = fixed content crops; columns = input, then each style's output."""
        with torch.no_grad():
            cols = [self.fixed_x]
            for i in range(len(self.styles)):
                w = F.one_hot(torch.full((self.fixed_x.shape[0],), i, device=self.device), len(self.styles)).float()
                g, a = self.state.g_ema(self.fixed_x, w)
                cols.append(g)
            grid = torch.cat([torch.cat(list(c), dim=1) for c in cols], dim=2)  # [3, 4·c, (1+S)·c]
        img = (grid.clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
        path = self.run_dir / "samples" / f"step_{self.state.step:06d}.png"
        cv2.imwrite(str(path), img[:, :, ::-1])
        return path

    def run(self) -> Path:
        cfg, st = self.cfg, self.state
        if cfg.resume:
            p = Path(cfg.resume)
            self.load_checkpoint(p / "checkpoint.pt" if p.is_dir() else p)
        main = self.world.main
        stats = (self.run_dir / "stats.jsonl").open("a") if main else open(os.devnull, "w")  # noqa: SIM115
        bar = tqdm(total=cfg.steps, initial=st.step, desc="train", dynamic_ncols=True, disable=not main)
        t0 = time.perf_counter()
        try:
            while st.step < cfg.steps:
                x, context, idx, w, real = self.sample_batch()
                pair = self.video_pairs(x.shape[0])
                if pair is not None:
                    x = context = pair.x0
                d_loss = self.d_step(x, idx, w, real)
                g_terms = self.g_step(x, context, idx, w, pair)
                g_terms["video"] = float(pair is not None)
                self.ema_update()
                st.step += 1
                bar.update(1)
                if st.step % 10 == 0 or st.step == cfg.steps:
                    rec = {"step": st.step, "d": d_loss, **g_terms, "sec": round(time.perf_counter() - t0, 2)}
                    stats.write(json.dumps(rec) + "\n")
                    stats.flush()
                    bar.set_postfix(style=f"{g_terms['style']:.3f}", content=f"{g_terms['content']:.3f}", total=f"{g_terms['total']:.2f}")
                if main and (st.step % cfg.sample_every == 0 or st.step == cfg.steps):
                    self.save_samples()
                if main and (st.step % cfg.ckpt_every == 0 or st.step == cfg.steps):
                    self.save_checkpoint()
        finally:
            bar.close()
            stats.close()
            if main:
                plot_losses(self.run_dir / "stats.jsonl", self.run_dir / "losses.png")
        return self.run_dir / "checkpoint.pt"


def train(cfg: TrainConfig) -> Path:
    """Run training; returns the final checkpoint's path. A resumed run continues in its own dir.
    Under torchrun, every rank trains (DDP) and rank 0 writes the run directory."""
    preflight(cfg)  # before any run directory is made or a resumed run's config.json rewritten
    world = init_world(cfg.device)
    try:
        run_dir: Path | None = None
        if world.main:
            if cfg.resume:
                p = Path(cfg.resume)
                run_dir = p if p.is_dir() else p.parent
            else:
                run_dir = make_run_dir(Path(cfg.out), cfg.run_tag())
            (run_dir / "config.json").write_text(cfg.to_json())
            log.info("run directory %s (%d process%s)", run_dir, world.size, "es" if world.distributed else "")
        run_dir = share_path(world, run_dir)
        return Trainer(cfg, run_dir, world).run()
    finally:
        finish(world)
