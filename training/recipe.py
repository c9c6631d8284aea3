"""The bundled model's training recipe as one command (``stylecast train --recipe``).

Three stages, one folder, both tiers exported (docs/MODEL.md):

=========  =====  ===========================================================================
stage      steps  what it trains
=========  =====  ===========================================================================
quality     3500  the quality generator (GPU box): perceptual + adversarial losses, no temporal,
                  no edge loss: it learns to paint first
polish       500  the same generator from those weights with the edge loss on (``--w-edge``,
                  ``--w-edge-style``; ``POLISH_EDGE`` when neither is given): the photo's
                  outlines come back, so the subject stays readable under the strokes
fast        3000  the fast generator (laptop CPU), distilled from the polished quality one,
                  light temporal loss, no edge loss of its own: the teacher carries the
                  outlines (with its own, the Great Wave's texture share fell from 45 to 35 %)
=========  =====  ===========================================================================

``recipe_stages`` is that table as data and ``run_recipe`` runs it for the user's own styles,
photos and footage: each stage has its own folder, a finished stage is never run again, and an
interrupted one continues from its last checkpoint, so the same command picks up where it
stopped. Both stages are exported, to ``quality.onnx`` and ``fast.onnx`` in the folder.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from training.config import TrainConfig

log = logging.getLogger(__name__)

Start = Literal["new", "resume", "init"]
"""How a stage starts from the one before: ``new`` a fresh run (the teacher; the student, with
the teacher given to it), ``resume`` the previous stage's checkpoint copied into the stage's
folder and continued (optimisers and discriminator too), ``init`` a fresh run from the previous
stage's EMA generator weights."""


class RecipeError(ValueError):
    """A recipe that cannot run as asked: a flag the stages set, a bad scale, a torchrun launch."""


@dataclass(frozen=True)
class Stage:
    name: str
    steps: int  # this stage's own steps (a resumed stage trains to the previous total plus these)
    start: Start
    options: dict[str, Any]  # TrainConfig fields on top of the recipe's base

    @property
    def tier(self) -> str:
        """The tier this stage trains; the last stage of a tier gives its exported model."""
        return str(self.options["tier"])


FAST_TEMPORAL = 20.0
"""The fast stage's temporal weight: enough to keep its strokes from boiling under small
camera moves, far below the 500 that made the first bundled models colour grades."""


POLISH_EDGE = 6.0
"""The polish stage's edge-loss weight when the user gives none (``--w-edge``). Measured
on the bundled styles (docs/MODEL.md): edge F1 0.46–0.48 → 0.50–0.54 in 400 steps."""

EDGE_FIELDS = frozenset({"w_edge", "edge_style_weights"})
"""The user's edge weights: only the polish stage trains with them."""


def recipe_stages(temporal: bool = True) -> list[Stage]:
    """The chain. With ``temporal`` False the fast stage trains without the temporal loss."""
    return [
        Stage("quality", 3500, "new", {"tier": "quality", "w_temporal": 0.0, "w_edge": 0.0, "edge_style_weights": {}}),
        Stage("polish", 500, "init", {"tier": "quality", "w_temporal": 0.0, "sample_every": 250}),
        Stage("fast", 3000, "new", {"tier": "fast", "w_temporal": FAST_TEMPORAL if temporal else 0.0, "sample_every": 500,
                                    "w_edge": 0.0, "edge_style_weights": {}}),
    ]


STAGE_FIELDS = frozenset({"steps", "out", "resume", "init", "teacher"} | {k for s in recipe_stages() for k in s.options})
"""TrainConfig fields the stages set. A recipe's base may set none of them but ``out`` (the
recipe's folder, not the base's), ``teacher`` (a trained teacher: its stage is skipped) and the
``EDGE_FIELDS`` (the polish stage's edge weights)."""


def check_base(user_set: set[str]) -> None:
    """RecipeError naming the flags (TrainConfig fields) the user set that the stages set."""
    clash = sorted(user_set & (STAGE_FIELDS - {"out", "teacher"} - EDGE_FIELDS))
    if clash:
        flags = ", ".join("--" + k.replace("_", "-") for k in clash)
        raise RecipeError(f"{flags}: set by the recipe's stages (training/recipe.py); leave them out, or run the stages "
                          "yourself (docs/model/train_default.sh shows their commands)")


def stage_configs(base: TrainConfig, folder: Path, stages: list[Stage], scale: float = 1.0) -> list[tuple[Stage, TrainConfig]]:
    """Each stage's TrainConfig: ``base`` (the user's data, styles, seed, device…) with the stage's
    options, its steps × ``scale`` (at least 1; a resumed stage's count is the running total, as a
    resumed run trains to ``steps``), and ``out`` its folder under ``folder``. ``resume``, ``init``
    and ``teacher`` are left for ``run_recipe`` to fill in once the previous stage exists; the
    configs are built here, before anything trains, so that a bad option fails in seconds, not
    an hour in. With ``base.teacher`` (a trained quality model) the quality stage is dropped and
    the later ones start from and distil from it. Without edge weights in ``base`` the polish
    stage gets ``POLISH_EDGE``."""
    if not 0 < scale <= 1:
        raise RecipeError(f"recipe scale must be > 0 and ≤ 1, got {scale}")
    if base.w_edge == 0 and not base.edge_style_weights:
        base = replace(base, w_edge=POLISH_EDGE)
    out: list[tuple[Stage, TrainConfig]] = []
    total = 0
    for st in stages:
        if st.name == "quality" and base.teacher:
            continue
        n = max(1, round(st.steps * scale))
        total = total + n if st.start == "resume" else n
        cfg = replace(base, **st.options, steps=total, out=str(folder / st.name), resume=None, init=None, teacher=None)
        out.append((st, cfg))
    return out


def _check_folder(folder: Path, started: dict[str, Any]) -> None:
    """Write ``folder/recipe.json`` with ``started``, or RecipeError if the folder was started
    with something else."""
    record = folder / "recipe.json"
    if record.exists():
        before = json.loads(record.read_text())
        differ = {k: (before.get(k), v) for k, v in started.items() if before.get(k) != v}
        if differ:
            said = "; ".join(f"{k} {was!r} then, {now!r} now" for k, (was, now) in differ.items())
            raise RecipeError(f"{folder} holds a recipe started with other settings ({said}): rerun it as it was started, or give another --out")
        return
    folder.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(started, indent=2) + "\n")


def _checkpoint(st: Stage, stage_dir: Path) -> Path | None:
    """The stage's latest checkpoint, finished or not, or None: a resumed stage keeps it in its
    folder, the others in their (last) numbered run directory."""
    if st.start == "resume":
        ckpt = stage_dir / "checkpoint.pt"
        return ckpt if ckpt.is_file() else None
    runs = sorted(p for p in stage_dir.glob("0*") if (p / "checkpoint.pt").is_file())
    return runs[-1] / "checkpoint.pt" if runs else None


def _started(st: Stage, cfg: TrainConfig, prev: Path | None, teacher: str | None) -> TrainConfig:
    """``cfg`` with where the stage starts from: its own checkpoint if it was interrupted, else
    ``prev`` (the checkpoint of its tier's previous stage, copied into its folder for a resumed
    stage); the fast stage also gets ``teacher``."""
    stage_dir = Path(cfg.out)
    partial = _checkpoint(st, stage_dir)
    if st.start == "resume":
        if partial is None:
            assert prev is not None, "a resumed stage follows another"
            stage_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy2(prev, stage_dir / "checkpoint.pt")
        cfg = replace(cfg, resume=str(stage_dir))
    elif partial is not None:  # interrupted: continue that run, not a new one from its start
        cfg = replace(cfg, resume=str(partial.parent))
    elif st.start == "init":
        cfg = replace(cfg, init=str(prev))
    return replace(cfg, teacher=teacher) if st.name == "fast" else cfg


def describe(base: TrainConfig, plan: list[tuple[Stage, TrainConfig]]) -> list[dict[str, Any]]:
    """``plan`` as JSON-ready data for ``train --recipe --dry-run``: each stage, what it starts
    from and its config, with the teacher the fast stage will be given (the run fills it in)."""
    starts = {"new": "a new run", "resume": "the previous stage's checkpoint, continued", "init": "the previous stage's EMA weights, a new run"}
    out = []
    for st, cfg in plan:
        config = json.loads(cfg.to_json())
        if st.name == "fast":
            config["teacher"] = "the polish stage's checkpoint"
        out.append({"stage": st.name, "starts_from": starts[st.start], "config": config})
    return out


def run_recipe(base: TrainConfig, folder: Path, scale: float = 1.0, temporal: bool = True,
               train: Callable[[TrainConfig], Path] | None = None,
               export: Callable[[Path, Path], Path] | None = None) -> dict[str, Path]:
    """Run the chain for ``base``'s styles under ``folder`` (with ``base.teacher``, a trained
    quality model of the same styles, only the fast stage) and export each tier to
    ``folder/<tier>.onnx`` (with its sidecar, FP16 ONNX and generator weights); returns tier → path.

    Per stage: ``folder/<stage>/`` holds its numbered run directory and ``.done`` once it
    finished; ``folder/times.tsv`` gets its seconds. A stage with ``.done`` is skipped; one
    without it that has a checkpoint continues from it. ``train`` and ``export`` default to
    ``training.train.train`` and ``training.export.export_checkpoint`` (tests pass their own).

    ``folder/recipe.json`` records the styles, scale and temporal setting the folder was started
    with; a rerun that differs is a RecipeError: a finished stage is not trained again."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise RecipeError("the recipe runs on one process; under torchrun, run its stages' commands (docs/MODEL.md)")
    if train is None:
        from training.train import train
    if export is None:
        from training.export import export_checkpoint as export
    plan = stage_configs(base, folder, recipe_stages(temporal), scale)
    _check_folder(folder, {"styles": list(base.styles), "scale": scale, "temporal": temporal})
    ckpts: dict[str, Path] = {}
    if base.teacher:
        ckpts["quality"] = Path(base.teacher)
    for st, cfg in plan:
        stage_dir = Path(cfg.out)
        done = stage_dir / ".done"
        ckpt = _checkpoint(st, stage_dir) if done.exists() else None
        if ckpt is not None:
            log.info("recipe: %s done, skipped", st.name)
        else:
            prev = ckpts.get(st.tier)
            cfg = _started(st, cfg, prev, str(ckpts.get("quality", "")) or None)
            log.info("recipe: stage %s, %d steps → %s", st.name, cfg.steps, stage_dir)
            t0 = time.monotonic()
            ckpt = train(cfg)
            done.touch()
            with (folder / "times.tsv").open("a") as f:
                f.write(f"{st.name}\t{time.monotonic() - t0:.0f} s\n")
        ckpts[st.tier] = ckpt  # the polish replaces the quality stage's: the fast one distils from it
    return {tier: export(ckpt, folder / f"{tier}.onnx") for tier, ckpt in ckpts.items()}
