"""docs/model/train_default.sh chains the bundled model's seven training steps: checked with a
stand-in `stylecast` that logs its arguments and makes the files each step would make."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "docs" / "model" / "train_default.sh"

FAKE = r"""#!/usr/bin/env bash
set -euo pipefail
echo "$*" >> "$LOG"
cmd=$1; shift
if [[ $cmd == export ]]; then
    [[ -f $1 ]] || { echo "no checkpoint $1" >&2; exit 1; }
    touch "$2" "${2%.onnx}.generator.pt"; exit 0
fi
out="" resume=""
while [[ $# -gt 0 ]]; do
    case $1 in --out) out=$2; shift;; --resume) resume=$2; shift;; --init|--teacher) [[ -f $2 ]] || { echo "missing $2" >&2; exit 1; }; shift;; esac
    shift
done
if [[ -n $resume ]]; then [[ -f $resume/checkpoint.pt ]] || exit 1; touch "$resume/checkpoint.pt"
else mkdir -p "$out/00001-run"; touch "$out/00001-run/checkpoint.pt"; fi
"""


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_recipe_runs_each_step_once_in_order(tmp_path: Path) -> None:
    fake = tmp_path / "stylecast"
    fake.write_text(FAKE)
    fake.chmod(0o755)
    log, out = tmp_path / "calls.log", tmp_path / "recipe"
    env = {**os.environ, "STYLECAST": str(fake), "LOG": str(log), "DATA": str(tmp_path / "data")}
    r = subprocess.run(["bash", str(SCRIPT), str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    calls = log.read_text().splitlines()
    assert [c.split()[0] for c in calls] == ["train", "export", "train", "train", "train", "train", "train", "train", "export"]
    assert "--width" not in calls[0] and "--steps 5000" in calls[0]  # the teacher: default width 32
    assert f"--teacher {out}/teacher.generator.pt" in calls[2] and "--width 16" in calls[2]
    assert f"--resume {out}/video --steps 3800" in calls[3] and "--w-edge" not in calls[3]
    assert f"--resume {out}/edge --steps 4600" in calls[4] and "--w-edge-style cartoon=100" in calls[4]
    assert f"--init {out}/edge/checkpoint.pt" in calls[5] and "--alias-free --alias-free-quarter" in calls[5]
    assert "--head-lanczos" not in " ".join(calls[:6])
    assert f"--init {out}/alias_free/00001-run/checkpoint.pt" in calls[6] and "--head-lanczos" in calls[6]
    assert f"--init {out}/lanczos/00001-run/checkpoint.pt" in calls[7] and "--head-lanczos --steps 800" in calls[7]
    assert calls[8].endswith(f"{out}/default.onnx") and f"{out}/lanczos2/" in calls[8]
    stages = [line.split("\t")[0] for line in (out / "times.tsv").read_text().splitlines()]
    assert stages == ["teacher", "student", "video", "edge", "alias_free", "lanczos", "lanczos2"]
    # a second run skips every finished stage (only the two exports repeat)
    r = subprocess.run(["bash", str(SCRIPT), str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert [c.split()[0] for c in log.read_text().splitlines()[9:]] == ["export", "export"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_recipe_ablation_reuses_a_teacher_and_turns_off_every_temporal_loss(tmp_path: Path) -> None:
    fake = tmp_path / "stylecast"
    fake.write_text(FAKE)
    fake.chmod(0o755)
    teacher = tmp_path / "teacher.generator.pt"
    teacher.touch()
    log, out = tmp_path / "calls.log", tmp_path / "ablation"
    env = {**os.environ, "STYLECAST": str(fake), "LOG": str(log), "DATA": str(tmp_path / "data"),
           "TEACHER": str(teacher), "TEMPORAL": "0"}
    r = subprocess.run(["bash", str(SCRIPT), str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    calls = log.read_text().splitlines()
    assert [c.split()[0] for c in calls] == ["train"] * 6 + ["export"]  # no teacher stage
    assert f"--teacher {teacher}" in calls[0]
    assert all("--w-temporal 0 " in c for c in calls[:6]), calls
    assert not any("--w-temporal 20" in c or "--w-temporal 500" in c for c in calls)
    for bad in ({"TEMPORAL": "2"}, {"TEACHER": str(tmp_path / "missing.pt")}):
        r = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "x")], cwd=ROOT, env={**env, **bad},
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and ("TEMPORAL" in r.stderr or "no such file" in r.stderr), r.stderr


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_recipe_half_res_knobs_reach_every_stage_after_the_teacher(tmp_path: Path) -> None:
    """HALF_RES/HEAD_BLUR_TAPS (variant HRS in docs/QUALITY.md): the ½-res stage from the student
    on, the wider head blur in the three fine-tunes only; unset, the bundled model's recipe."""
    fake = tmp_path / "stylecast"
    fake.write_text(FAKE)
    fake.chmod(0o755)
    teacher = tmp_path / "teacher.generator.pt"
    teacher.touch()
    env = {**os.environ, "STYLECAST": str(fake), "DATA": str(tmp_path / "data"), "TEACHER": str(teacher)}
    for knobs, half, taps in (({"HALF_RES": "16", "HEAD_BLUR_TAPS": "5"}, "16", "5"), ({}, "0", "3")):
        log = tmp_path / f"calls{half}.log"
        r = subprocess.run(["bash", str(SCRIPT), str(tmp_path / f"out{half}")], cwd=ROOT,
                           env={**env, **knobs, "LOG": str(log)}, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        trains = [c for c in log.read_text().splitlines() if c.startswith("train")]
        assert len(trains) == 6 and all(f"--half-res {half} " in c for c in trains), trains
        assert "--head-blur-taps" not in trains[0] and all(f"--head-blur-taps {taps} " in c for c in trains[1:])
    for bad in ({"HEAD_BLUR_TAPS": "4"}, {"HALF_RES": "-8"}, {"HALF_RES": "x"}):  # refused before any stage runs
        log = tmp_path / "bad.log"
        r = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "bad")], cwd=ROOT, env={**env, **bad, "LOG": str(log)},
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and next(iter(bad)) in r.stderr and not log.exists(), r.stderr
