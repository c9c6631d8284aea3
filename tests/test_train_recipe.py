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
from training.recipe import RecipeError, check_base, recipe_stages, run_recipe, stage_configs

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "docs" / "model"
# what each stage of the bundled model's chain recorded (docs/QUALITY.md, "How it was trained")
RECORDED = {"teacher": "teacher/train_config.json", "student": "train_config_stage1.json", "video": "train_config_stage2.json",
            "edge": "train_config_stage3.json", "alias_free": "train_config_stage4.json", "lanczos": "train_config_stage5.json",
            "lanczos2": "train_config.json"}
PATHS = {"content", "styles", "out", "resume", "init", "teacher", "extra"}


def _bundled_base(**kw: object) -> TrainConfig:
    d = "../shared/data"
    styles = tuple(f"{d}/styles/{s}" for s in ("hokusai_great_wave.jpg", "kandinsky_composition_viii.jpg", "van_gogh_night_cafe.jpg", "cartoon"))
    return TrainConfig(content=f"{d}/content", styles=styles, crop=160, batch=4, seed=0, mask_background=False,
                       edge_style_weights={"kandinsky_composition_viii": 30.0, "cartoon": 100.0}, **kw)  # type: ignore[arg-type]


def test_the_recipe_is_the_bundled_models_chain(tmp_path: Path) -> None:
    """Each stage's config is the one that stage of the bundled model recorded, field by field
    (paths aside; fields added to the loop since an early stage ran are at their defaults, which
    is what that stage ran with)."""
    plan = stage_configs(_bundled_base(), tmp_path, recipe_stages())
    assert [st.name for st, _ in plan] == list(RECORDED)
    for st, cfg in plan:
        recorded = json.loads((MODEL / RECORDED[st.name]).read_text())
        mine = json.loads(cfg.to_json())
        for key, value in recorded.items():
            if key in PATHS or (key == "mask_background" and "mask_background" not in recorded):
                continue
            assert mine[key] == value, f"{st.name}: {key} is {mine[key]!r}, the bundled model's stage ran {value!r}"
        assert Path(cfg.out) == tmp_path / st.name
    # the ablation is the same chain at temporal weight 0 after the teacher (docs/model/ablation_*config*.json)
    abl = stage_configs(_bundled_base(), tmp_path, recipe_stages(temporal=False))
    assert [c.w_temporal for _, c in abl] == [2.0, 0, 0, 0, 0, 0, 0]


def test_recipe_scale_and_a_given_teacher(tmp_path: Path) -> None:
    plan = stage_configs(_bundled_base(), tmp_path, recipe_stages(), scale=0.1)
    # a resumed stage trains to the running total, as a resumed run trains to ``steps``
    assert [c.steps for _, c in plan] == [500, 300, 380, 460, 80, 80, 80]
    assert [c.steps for _, c in stage_configs(_bundled_base(), tmp_path, recipe_stages(), scale=1e-6)] == [1, 1, 2, 3, 1, 1, 1]
    plan = stage_configs(_bundled_base(teacher="t.pt"), tmp_path, recipe_stages())
    assert [st.name for st, _ in plan][0] == "student" and all(c.teacher is None for _, c in plan)  # run_recipe gives it to the student
    for bad in (0.0, 1.5, float("nan")):
        with pytest.raises(RecipeError, match="scale"):
            stage_configs(_bundled_base(), tmp_path, recipe_stages(), scale=bad)


def test_check_base_refuses_what_the_stages_set() -> None:
    check_base({"content", "styles", "videos", "seed", "crop", "edge_style_weights", "out", "teacher", "mask_background"})
    with pytest.raises(RecipeError, match="--steps, --w-temporal: set by the recipe"):
        check_base({"w_temporal", "steps", "seed"})
    with pytest.raises(RecipeError, match="--init, --resume"):
        check_base({"init", "resume"})


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

    first = _FakeTrain(fail_at="alias_free")
    with pytest.raises(KeyboardInterrupt):
        run_recipe(base, tmp_path / "r", scale=0.01, train=first, export=export)
    by = {Path(c.out).name: c for c in first.calls}
    assert list(by) == ["teacher", "student", "video", "edge", "alias_free"] and not exported
    teacher_ckpt = tmp_path / "r" / "teacher" / "00001-run" / "checkpoint.pt"
    assert by["student"].teacher == str(teacher_ckpt) and by["teacher"].teacher is None
    # the fine-tunes resume a copy of the stage before, in their own folder
    assert by["video"].resume == str(tmp_path / "r" / "video") and by["video"].steps == 30 + 8
    assert (tmp_path / "r" / "video" / "checkpoint.pt").read_text().startswith("video")
    assert by["edge"].resume == str(tmp_path / "r" / "edge") and by["edge"].steps == 46
    assert by["alias_free"].init == str(tmp_path / "r" / "edge" / "checkpoint.pt") and by["alias_free"].alias_free
    assert not (tmp_path / "r" / "alias_free" / ".done").exists()
    assert [line.split("\t")[0] for line in (tmp_path / "r" / "times.tsv").read_text().splitlines()] == ["teacher", "student", "video", "edge"]

    again = _FakeTrain()
    model = run_recipe(base, tmp_path / "r", scale=0.01, train=again, export=export)
    by = {Path(c.out).name: c for c in again.calls}
    assert list(by) == ["alias_free", "lanczos", "lanczos2"]  # finished stages are not run again
    af_run = tmp_path / "r" / "alias_free" / "00001-run"
    assert by["alias_free"].resume == str(af_run) and by["alias_free"].init is None  # continues its run
    assert by["lanczos"].init == str(af_run / "checkpoint.pt") and by["lanczos"].head_lanczos
    assert by["lanczos2"].init == str(tmp_path / "r" / "lanczos" / "00001-run" / "checkpoint.pt")
    assert exported == [(tmp_path / "r" / "lanczos2" / "00001-run" / "checkpoint.pt", tmp_path / "r" / "model.onnx")]
    assert model == tmp_path / "r" / "model.onnx"

    third = _FakeTrain()
    run_recipe(base, tmp_path / "r", scale=0.01, train=third, export=export)
    assert third.calls == [] and len(exported) == 2  # all done: only the export again
    # the folder remembers how it was started: a finished stage is never retrained, so another
    # scale would have the stages after it count their steps from the wrong end
    for scale, temporal in ((0.5, True), (0.01, False)):
        with pytest.raises(RecipeError, match="started with other settings"):
            run_recipe(base, tmp_path / "r", scale=scale, temporal=temporal, train=_FakeTrain(), export=export)
    with pytest.raises(RecipeError, match="styles"):
        run_recipe(TrainConfig(content="c", styles=("b.jpg",)), tmp_path / "r", scale=0.01, train=_FakeTrain(), export=export)


def test_run_recipe_from_a_given_teacher_and_under_torchrun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeTrain()
    run_recipe(TrainConfig(content="c", styles=("a.jpg",), teacher="mine.pt"), tmp_path, scale=0.01, train=fake, export=lambda c, o: o)
    assert [Path(c.out).name for c in fake.calls][0] == "student" and fake.calls[0].teacher == "mine.pt"
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RecipeError, match="one process"):
        run_recipe(TrainConfig(content="c", styles=("a.jpg",)), tmp_path / "t", train=_FakeTrain(), export=lambda c, o: o)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streamer", *args], capture_output=True, text=True, timeout=600, cwd=REPO)


def test_train_recipe_cli_end_to_end(tmp_path: Path) -> None:
    """The whole chain through the CLI, each stage a step or two on tiny images: seven stages,
    an exported model that loads, and usage errors for flags the stages set."""
    rng = np.random.default_rng(0)
    for f in ("x/p0.png", "x/p1.png", "a.jpg", "b/s.png"):
        (tmp_path / f).parent.mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / f), rng.integers(0, 256, (72, 80, 3), dtype=np.uint8))
    common = ["train", "--recipe", "--content", str(tmp_path / "x"), "--style", str(tmp_path / "a.jpg"), "--style", str(tmp_path / "b"),
              "--crop", "48", "--batch", "2", "--backbone", "fake", "--device", "cpu", "--out", str(tmp_path / "r")]
    out = _cli(*common, "--steps", "5")
    assert out.returncode == 2 and "--steps: set by the recipe" in out.stderr
    out = _cli(*common, "--recipe-scale", "0")
    assert out.returncode == 2 and "--recipe-scale" in out.stderr
    out = _cli(*common, "--w-edge-style", "nosuch=3", "--dry-run")
    assert out.returncode == 2 and "nosuch" in out.stderr
    out = _cli("train", "--content", str(tmp_path / "x"), "--style", str(tmp_path / "a.jpg"), "--recipe-scale", "0.5", "--dry-run")
    assert out.returncode == 2 and "needs --recipe" in out.stderr
    out = _cli(*common, "--recipe-scale", "0.0002", "--dry-run")
    assert out.returncode == 0, out.stderr
    plan = {s["stage"]: s for s in json.loads(out.stdout)["stages"]}
    assert list(plan) == list(RECORDED) and plan["lanczos2"]["config"]["head_lanczos"] and plan["student"]["config"]["width"] == 16
    assert plan["video"]["starts_from"].startswith("the previous stage's checkpoint") and "teacher stage" in plan["student"]["config"]["teacher"]
    assert not (tmp_path / "r").exists()

    out = _cli(*common, "--recipe-scale", "0.0002")
    assert out.returncode == 0, out.stderr
    model = tmp_path / "r" / "model.onnx"
    assert f"model: {model}" in out.stdout
    assert all((tmp_path / "r" / name / ".done").exists() for name in RECORDED)
    sidecar = json.loads(model.with_suffix(".json").read_text())
    assert sidecar["styles"] == ["a", "b"]
    import engines

    with engines.create_engine("onnxruntime", model) as eng:
        frame = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
        res = eng.infer(frame, np.array([1.0, 0.0], np.float32), 1.0)
        assert res.output.shape == (64, 96, 3)
    out = _cli(*common, "--recipe-scale", "0.0002")  # again: nothing left to train
    assert out.returncode == 0 and "done, skipped" in out.stderr
    (last,) = (tmp_path / "r" / "lanczos2").glob("0*")
    assert TrainConfig.from_json(last / "config.json").head_lanczos
