"""``stylecast train --recipe``: the bundled model's chain of stages for a user's own styles."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from training.config import TrainConfig
from training.recipe import FAST_TEMPORAL, POLISH_EDGE, RecipeError, check_base, recipe_stages, run_recipe, stage_configs

REPO = Path(__file__).resolve().parents[1]
STAGES = ["quality", "polish", "fast"]
TIERS = ["quality", "fast"]


def _base(**kw: object) -> TrainConfig:
    d = "../shared/data"
    styles = tuple(f"{d}/styles/{s}" for s in ("hokusai_great_wave.jpg", "kandinsky_composition_viii.jpg", "van_gogh_night_cafe.jpg", "cartoon"))
    return TrainConfig(content=f"{d}/content", styles=styles, crop=160, batch=4, seed=3, mask_background=False,
                       edge_style_weights={"kandinsky_composition_viii": 30.0, "cartoon": 100.0}, **kw)  # type: ignore[arg-type]


def test_the_recipe_trains_the_quality_tier_polishes_it_then_the_fast_one(tmp_path: Path) -> None:
    """The quality tier without the temporal or edge loss, its polish from those weights with the
    user's edge weights, then the fast tier with the temporal loss (the teacher carries the edges); each keeps the user's own options (data,
    styles, crop, per-style weights, seed) and gets its folder."""
    base = _base()
    plan = stage_configs(base, tmp_path, recipe_stages())
    assert [st.name for st, _ in plan] == STAGES and [st.start for st, _ in plan] == ["new", "init", "new"]
    (q_st, q), (p_st, p), (f_st, f) = plan
    assert (q.tier, q.w_temporal) == ("quality", 0.0) and (f.tier, f.w_temporal) == ("fast", FAST_TEMPORAL) and FAST_TEMPORAL > 0
    assert (p.tier, p.w_temporal) == ("quality", 0.0)
    assert (q.w_edge, q.edge_style_weights) == (f.w_edge, f.edge_style_weights) == (0.0, {}) and p.edge_style_weights == base.edge_style_weights
    assert (q.steps, p.steps, f.steps) == (q_st.steps, p_st.steps, f_st.steps) and q.steps > f.steps >= 1000 > p.steps  # the table's counts
    # no edge weight given: the polish gets the recipe's
    assert [c.w_edge for _, c in stage_configs(TrainConfig(content="c", styles=("a.jpg",)), tmp_path, recipe_stages())] == [0.0, POLISH_EDGE, 0.0]
    for st, cfg in plan:
        assert Path(cfg.out) == tmp_path / st.name and cfg.resume is None and cfg.init is None and cfg.teacher is None  # run_recipe fills them
        mine = json.loads(cfg.to_json())
        for key, value in json.loads(base.to_json()).items():
            if key not in st.options and key not in {"steps", "out"}:
                assert mine[key] == value, f"{st.name}: {key} is {mine[key]!r}, the base had {value!r}"
    # the ablation: the same chain with no temporal loss anywhere
    assert [c.w_temporal for _, c in stage_configs(base, tmp_path, recipe_stages(temporal=False))] == [0.0, 0.0, 0.0]


def test_recipe_scale_and_a_given_teacher(tmp_path: Path) -> None:
    assert [c.steps for _, c in stage_configs(_base(), tmp_path, recipe_stages(), scale=0.1)] == [round(st.steps / 10) for st in recipe_stages()]
    assert [c.steps for _, c in stage_configs(_base(), tmp_path, recipe_stages(), scale=1e-6)] == [1, 1, 1]
    plan = stage_configs(_base(teacher="t.pt"), tmp_path, recipe_stages())
    assert [st.name for st, _ in plan] == ["polish", "fast"] and all(c.teacher is None for _, c in plan)  # run_recipe gives it to the fast stage
    for bad in (0.0, 1.5, float("nan")):
        with pytest.raises(RecipeError, match="scale"):
            stage_configs(_base(), tmp_path, recipe_stages(), scale=bad)


def test_check_base_refuses_what_the_stages_set() -> None:
    check_base({"content", "styles", "videos", "seed", "crop", "edge_style_weights", "out", "teacher", "mask_background", "w_edge"})
    with pytest.raises(RecipeError, match="--steps, --w-temporal: set by the recipe"):
        check_base({"w_temporal", "steps", "seed"})
    with pytest.raises(RecipeError, match="--init, --resume"):
        check_base({"init", "resume"})
    with pytest.raises(RecipeError, match="--tier: set by the recipe"):
        check_base({"tier"})


class _FakeTrain:
    """Stands in for ``training.train.train``: writes the checkpoint a run would (a numbered run
    directory, or the resumed directory's own), records each config, and fails on request."""

    def __init__(self, fail_at: str | None = None) -> None:
        self.calls: list[TrainConfig] = []
        self.fail_at = fail_at

    def __call__(self, cfg: TrainConfig) -> Path:
        self.calls.append(cfg)
        if cfg.resume:
            run = Path(cfg.resume)
        else:
            run = Path(cfg.out) / f"{len(list(Path(cfg.out).glob('0*'))) + 1:05d}-run"
            run.mkdir(parents=True)
        ckpt = run / "checkpoint.pt"
        ckpt.write_text(f"{Path(cfg.out).name} at {cfg.steps}")  # what a partial run leaves, too
        if Path(cfg.out).name == self.fail_at:
            raise KeyboardInterrupt
        return ckpt


def test_run_recipe_chains_the_stages_and_continues_after_a_stop(tmp_path: Path) -> None:
    base = TrainConfig(content="c", styles=("a.jpg",), backbone="fake")
    exported: list[tuple[Path, Path]] = []

    def export(ckpt: Path, out: Path) -> Path:
        exported.append((ckpt, out))
        return out

    r = tmp_path / "r"
    first = _FakeTrain(fail_at="fast")
    with pytest.raises(KeyboardInterrupt):
        run_recipe(base, r, scale=0.01, train=first, export=export)
    by = {Path(c.out).name: c for c in first.calls}
    assert list(by) == STAGES and not exported
    quality_ckpt = r / "quality" / "00001-run" / "checkpoint.pt"
    polish_ckpt = r / "polish" / "00001-run" / "checkpoint.pt"
    steps = {st.name: round(st.steps / 100) for st in recipe_stages()}
    assert by["quality"].teacher is None and by["quality"].tier == "quality" and by["quality"].steps == steps["quality"]
    assert by["polish"].init == str(quality_ckpt) and by["polish"].tier == "quality" and by["polish"].teacher is None
    assert by["fast"].teacher == str(polish_ckpt) and by["fast"].tier == "fast" and by["fast"].steps == steps["fast"]  # distilled from the polish
    assert (r / "polish" / ".done").exists() and not (r / "fast" / ".done").exists()
    assert [line.split("\t")[0] for line in (r / "times.tsv").read_text().splitlines()] == ["quality", "polish"]

    again = _FakeTrain()
    models = run_recipe(base, r, scale=0.01, train=again, export=export)
    assert [Path(c.out).name for c in again.calls] == ["fast"]  # a finished stage is not run again
    fast_run = r / "fast" / "00001-run"
    assert again.calls[0].resume == str(fast_run) and again.calls[0].teacher == str(polish_ckpt)  # continues its run, same teacher
    assert exported == [(polish_ckpt, r / "quality.onnx"), (fast_run / "checkpoint.pt", r / "fast.onnx")]
    assert models == {"quality": r / "quality.onnx", "fast": r / "fast.onnx"}

    third = _FakeTrain()
    run_recipe(base, r, scale=0.01, train=third, export=export)
    assert third.calls == [] and len(exported) == 4  # all done: only the exports again
    # the folder remembers how it was started: a finished stage is never retrained
    for scale, temporal in ((0.5, True), (0.01, False)):
        with pytest.raises(RecipeError, match="started with other settings"):
            run_recipe(base, r, scale=scale, temporal=temporal, train=_FakeTrain(), export=export)
    with pytest.raises(RecipeError, match="styles"):
        run_recipe(TrainConfig(content="c", styles=("b.jpg",)), r, scale=0.01, train=_FakeTrain(), export=export)


def test_run_recipe_from_a_given_teacher_and_under_torchrun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--teacher`` (a trained quality model) skips the quality stage: the polish starts from it,
    the fast one distils from the polish, which is the folder's quality model."""
    fake = _FakeTrain()
    exported: list[tuple[Path, Path]] = []
    models = run_recipe(TrainConfig(content="c", styles=("a.jpg",), teacher="mine.pt"), tmp_path, scale=0.01, train=fake,
                        export=lambda c, o: exported.append((c, o)) or o)
    polish_ckpt = tmp_path / "polish" / "00001-run" / "checkpoint.pt"
    assert [Path(c.out).name for c in fake.calls] == ["polish", "fast"] and fake.calls[0].init == "mine.pt" and fake.calls[1].teacher == str(polish_ckpt)
    assert not (tmp_path / "quality").exists()
    assert exported == [(polish_ckpt, tmp_path / "quality.onnx"), (tmp_path / "fast" / "00001-run" / "checkpoint.pt", tmp_path / "fast.onnx")]
    assert set(models) == {"quality", "fast"}
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RecipeError, match="one process"):
        run_recipe(TrainConfig(content="c", styles=("a.jpg",)), tmp_path / "t", train=_FakeTrain(), export=lambda c, o: o)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streamer", *args], capture_output=True, text=True, timeout=600, cwd=REPO)


def test_train_recipe_cli_end_to_end(tmp_path: Path) -> None:
    """The whole chain through the CLI, each stage a step on tiny images: both tiers exported and
    loadable, the fast one distilled from the quality one, and usage errors for flags the stages set."""
    rng = np.random.default_rng(0)
    for f in ("x/p0.png", "x/p1.png", "a.jpg", "b/s.png"):
        (tmp_path / f).parent.mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / f), rng.integers(0, 256, (72, 80, 3), dtype=np.uint8))
    data = ["--content", str(tmp_path / "x"), "--style", str(tmp_path / "a.jpg"), "--style", str(tmp_path / "b"),
            "--crop", "48", "--batch", "2", "--backbone", "fake", "--device", "cpu"]
    common = ["train", "--recipe", *data, "--out", str(tmp_path / "r")]
    for flags, words in ((["--steps", "5"], "--steps: set by the recipe"), (["--tier", "fast"], "--tier: set by the recipe"),
                         (["--recipe-scale", "0"], "--recipe-scale"), (["--w-edge-style", "nosuch=3", "--dry-run"], "nosuch")):
        out = _cli(*common, *flags)
        assert out.returncode == 2 and words in out.stderr, (flags, out.stderr)
    out = _cli("train", "--content", str(tmp_path / "x"), "--style", str(tmp_path / "a.jpg"), "--recipe-scale", "0.5", "--dry-run")
    assert out.returncode == 2 and "needs --recipe" in out.stderr
    out = _cli(*common, "--recipe-scale", "0.0002", "--dry-run")
    assert out.returncode == 0, out.stderr
    plan = {s["stage"]: s for s in json.loads(out.stdout)["stages"]}
    assert list(plan) == STAGES and plan["quality"]["config"]["tier"] == "quality" and plan["fast"]["config"]["tier"] == "fast"
    assert plan["fast"]["starts_from"] == "a new run" and "polish stage" in plan["fast"]["config"]["teacher"]
    assert not (tmp_path / "r").exists()

    out = _cli(*common, "--recipe-scale", "0.0002")
    assert out.returncode == 0, out.stderr
    r = tmp_path / "r"
    assert all((r / name / ".done").exists() for name in STAGES)
    import engines

    for tier in TIERS:
        model = r / f"{tier}.onnx"
        assert f"{tier} model: {model}" in out.stdout
        sidecar = json.loads(model.with_suffix(".json").read_text())
        assert sidecar["styles"] == ["a", "b"] and sidecar["tier"] == tier
        with engines.create_engine("onnxruntime", model) as eng:
            res = eng.infer(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8), np.array([1.0, 0.0], np.float32), 1.0)
            assert res.output.shape == (64, 96, 3)
    (polish_run,) = (r / "polish").glob("0*")
    (fast_run,) = (r / "fast").glob("0*")
    assert TrainConfig.from_json(fast_run / "config.json").teacher == str(polish_run / "checkpoint.pt")
    out = _cli(*common, "--recipe-scale", "0.0002")  # again: nothing left to train
    assert out.returncode == 0 and "done, skipped" in out.stderr
    # a trained quality model as --teacher: its polish, then the fast stage
    out = _cli("train", "--recipe", *data, "--out", str(tmp_path / "r2"), "--teacher", str(r / "quality.generator.pt"), "--dry-run")
    assert out.returncode == 0, out.stderr
    stages = json.loads(out.stdout)["stages"]
    assert [s["stage"] for s in stages] == ["polish", "fast"] and "polish stage" in stages[1]["config"]["teacher"]
