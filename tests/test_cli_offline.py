from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.test_sources import write_clip


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streamer", *args], capture_output=True, text=True, timeout=120)


def test_stylize_image_and_video(tiny_model: Path, tmp_path: Path) -> None:
    img = tmp_path / "in.png"
    cv2.imwrite(str(img), np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8))
    out = _cli("stylize", str(img), str(tmp_path / "out.png"), "--model", str(tiny_model), "--style", "style_a=1,style_b=1", "--attention", str(tmp_path / "att.png"))
    assert out.returncode == 0, out.stderr
    assert cv2.imread(str(tmp_path / "out.png")).shape == (50, 70, 3)
    assert cv2.imread(str(tmp_path / "att.png"), cv2.IMREAD_GRAYSCALE).shape == (50, 70)
    clip = write_clip(tmp_path / "clip.avi", n=4)
    for flags in ([], ["--stabilise", "0"]):
        out = _cli("stylize", str(clip), str(tmp_path / "out.mp4"), "--model", str(tiny_model), "--style", "style_b", *flags)
        assert out.returncode == 0, out.stderr
        cap = cv2.VideoCapture(str(tmp_path / "out.mp4"))
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 4


def test_stylize_reads_any_depth(tiny_model: Path, tmp_path: Path) -> None:
    """A 16-bit PNG (scanners, HDR exports) was refused; contact-sheet read it."""
    img = tmp_path / "deep.png"
    cv2.imwrite(str(img), np.random.default_rng(0).integers(0, 65536, (40, 56, 3), dtype=np.uint16))
    out = _cli("stylize", str(img), str(tmp_path / "o.png"), "--model", str(tiny_model))
    assert out.returncode == 0, out.stderr
    assert cv2.imread(str(tmp_path / "o.png")).shape == (40, 56, 3)


def test_stylize_errors(tiny_model: Path, tmp_path: Path) -> None:
    out = _cli("stylize", str(tmp_path / "missing.png"), str(tmp_path / "o.png"), "--model", str(tiny_model))
    assert out.returncode == 1 and "cannot read image" in out.stderr
    img = tmp_path / "in.png"
    cv2.imwrite(str(img), np.zeros((32, 32, 3), np.uint8))
    out = _cli("stylize", str(img), str(tmp_path / "o.png"), "--model", str(tiny_model), "--style", "nope")
    assert out.returncode == 2 and "unknown style" in out.stderr
    out = _cli("stylize", str(img), str(tmp_path / "o.png"), "--model", str(tiny_model), "--stabilise", "1.5")
    assert out.returncode == 2 and "history" in out.stderr and not (tmp_path / "o.png").exists()


def test_train_dry_run_and_export_cli(tiny_run: Path, tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "b").mkdir()
    for f in (tmp_path / "x" / "p.png", tmp_path / "a.jpg", tmp_path / "b" / "s.png"):
        cv2.imwrite(str(f), np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8))
    x, a_jpg, b = (str(tmp_path / n) for n in ("x", "a.jpg", "b"))
    out = _cli("train", "--content", x, "--style", a_jpg, "--style", b, "--steps", "7", "--dry-run")
    assert out.returncode == 0, out.stderr
    assert '"steps": 7' in out.stdout and f'"{b}"' in out.stdout and '"tier": "quality"' in out.stdout  # the default tier
    out = _cli("train", "--content", x, "--style", a_jpg, "--tier", "fast", "--w-temporal", "20", "--temporal-blur", "1.5", "--dry-run")
    assert out.returncode == 0, out.stderr
    assert '"tier": "fast"' in out.stdout and '"w_temporal": 20.0' in out.stdout and '"temporal_blur": 1.5' in out.stdout
    out = _cli("train", "--content", x, "--style", a_jpg, "--tier", "medium", "--dry-run")
    assert out.returncode == 2 and "--tier" in out.stderr and "invalid choice" in out.stderr
    out = _cli("train", "--content", x, "--style", a_jpg, "--temporal-blur", "-4", "--dry-run")
    assert out.returncode == 2 and "temporal_blur must be ≥ 0" in out.stderr
    out = _cli("train", "--content", x, "--style", a_jpg, "--w-edge", "-1", "--dry-run")
    assert out.returncode == 2 and "w_edge must be ≥ 0" in out.stderr
    out = _cli("train", "--content", x, "--style", a_jpg, "--w-style", "-1", "--out", str(tmp_path / "runs"))  # not a dry run
    assert out.returncode == 2 and "w_style must be ≥ 0" in out.stderr and not (tmp_path / "runs").exists()
    out = _cli("train", "--content", x, "--style", a_jpg, "--w-edge-style", "a=3", "--dry-run")
    assert out.returncode == 0 and '"a": 3.0' in out.stdout, out.stderr
    out = _cli("train", "--content", x, "--style", a_jpg, "--w-edge-style", "a.jpg=3", "--dry-run")  # a file name, not the style's
    assert out.returncode == 2 and "no style named a.jpg (styles: a)" in out.stderr
    out = _cli("train", "--content", x, "--style", a_jpg, "--w-edge-style", "a.jpg", "--dry-run")
    assert out.returncode == 2 and "expected NAME=WEIGHT" in out.stderr
    out = _cli("train", "--content", x, "--style", a_jpg, "--init", "g.pt", "--resume", "runs/1", "--dry-run")
    assert out.returncode == 2 and "init and resume exclude each other" in out.stderr
    # the dry run checks the inputs as train would: a missing content folder, an unreadable style
    # image, a checkpoint of other styles
    out = _cli("train", "--content", str(tmp_path / "none"), "--style", a_jpg, "--dry-run")
    assert out.returncode == 2 and "none" in out.stderr and '"steps"' not in out.stdout
    (tmp_path / "b" / "bad.png").write_bytes(b"not a png")
    out = _cli("train", "--content", x, "--style", b, "--dry-run")
    assert out.returncode == 2 and "cannot read image" in out.stderr and "bad.png" in out.stderr
    out = _cli("train", "--content", x, "--style", a_jpg, "--init", str(tiny_run), "--dry-run")
    assert out.returncode == 2 and "has styles" in out.stderr
    out = _cli("export", str(tiny_run), str(tmp_path / "m.onnx"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "m.onnx").is_file() and json.loads((tmp_path / "m.json").read_text())["tier"] == "fast"
    out = _cli("export", str(tmp_path / "nope.pt"), str(tmp_path / "m2.onnx"))
    assert out.returncode == 1 and "cannot load generator" in out.stderr
    # an output that is the checkpoint (it was overwritten with the ONNX), or not .onnx (the sidecar
    # then overwrote the model): exit 2, the checkpoint intact
    ck = tmp_path / "ck.pt"
    ck.write_bytes(Path(tiny_run).read_bytes())
    for dst, words in ((ck, "must end in one of .onnx"), (tmp_path / "model.json", "must end in one of .onnx")):
        out = _cli("export", str(ck), str(dst))
        assert out.returncode == 2 and words in out.stderr, out.stderr
    assert ck.read_bytes() == Path(tiny_run).read_bytes() and not (tmp_path / "model.json").exists()


def test_contact_sheet(tiny_model: Path, tmp_path: Path) -> None:
    photos = []
    for i in range(2):
        p = tmp_path / f"p{i}.png"
        cv2.imwrite(str(p), np.random.default_rng(i).integers(0, 256, (90 + i * 40, 120, 3), dtype=np.uint8))
        photos.append(str(p))
    out = _cli("contact-sheet", *photos, "--out", str(tmp_path / "sheet.png"), "--model", str(tiny_model), "--cell-width", "64", "--cell-height", "48", "--attention")
    assert out.returncode == 0, out.stderr
    sheet = cv2.imread(str(tmp_path / "sheet.png"))
    # header + the paintings' row (the tiny model's style images are on disk) + 2 photo rows;
    # columns: input + 2 styles × (output, attention)
    assert sheet.shape == (28 + 48 + 2 * 48, 64 * (1 + 2 * 2), 3)
    painting_row = sheet[28 : 28 + 48]
    assert painting_row[:, 64:128].std() > 0 and painting_row[:, 128:192].min() == 255  # a thumbnail above the style, blank above its attention
    out = _cli("contact-sheet", str(tmp_path / "missing.png"), "--out", str(tmp_path / "s2.png"), "--model", str(tiny_model))
    assert out.returncode == 1 and "cannot read image" in out.stderr


def test_stylize_refuses_outputs_it_cannot_or_must_not_write(tiny_model: Path, tmp_path: Path) -> None:
    """Checked before the engine loads, exit 2, nothing touched: the output is the input (that
    clobbered the clip: 4.3 MB to 44 KB), a suffix no writer takes, a video to an image file,
    and --attention for a video (it was silently ignored)."""
    clip = write_clip(tmp_path / "clip.avi", n=4)
    before = clip.read_bytes()
    img = tmp_path / "in.png"
    cv2.imwrite(str(img), np.zeros((32, 32, 3), np.uint8))
    cases = [
        ([str(img), str(tmp_path / "o.png"), "--strength", "5"], "--strength"),  # was exit 1 from the engine
        ([str(clip), str(clip)], "is also an input"),
        ([str(clip), str(tmp_path / "v.png")], "must end in one of .avi, .mp4"),
        ([str(img), str(tmp_path / "o.xyz")], "must end in one of"),
        ([str(img), str(tmp_path / "o.png"), "--attention", str(tmp_path / "o.png")], "is also an input"),
        ([str(clip), str(tmp_path / "o.mp4"), "--attention", str(tmp_path / "a.png")], "written for an image input"),
    ]
    for args, words in cases:
        out = _cli("stylize", *args, "--model", str(tiny_model))
        assert out.returncode == 2 and words in out.stderr and "Traceback" not in out.stderr, (args, out.stderr)
    assert clip.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.avi", "in.png"]


def test_an_output_is_replaced_only_when_complete(tmp_path: Path) -> None:
    from streamer.outputs import atomic_output

    dst = tmp_path / "keep.mp4"
    dst.write_bytes(b"the old video")
    try:
        with atomic_output(dst) as tmp:
            tmp.write_bytes(b"half of a new one")
            raise KeyboardInterrupt  # Ctrl-C mid-video left 47 of 150 frames, SIGTERM an unreadable file
    except KeyboardInterrupt:
        pass
    assert dst.read_bytes() == b"the old video" and [p.name for p in tmp_path.iterdir()] == ["keep.mp4"]
    with atomic_output(dst) as tmp:
        tmp.write_bytes(b"new")
    assert dst.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["keep.mp4"]


def test_contact_sheet_refuses_bad_outputs_and_cells(tiny_model: Path, tmp_path: Path) -> None:
    p = tmp_path / "p.png"
    cv2.imwrite(str(p), np.zeros((40, 40, 3), np.uint8))
    for args, words in (([str(p), "--out", str(tmp_path / "s.xyz")], "must end in one of"),
                        ([str(p), "--out", str(p)], "is also an input"),
                        ([str(p), "--out", str(tmp_path / "s.png"), "--cell-height", "0"], "at least 16 px")):
        out = _cli("contact-sheet", *args, "--model", str(tiny_model))
        assert out.returncode == 2 and words in out.stderr and "Traceback" not in out.stderr, (args, out.stderr)
    assert [x.name for x in tmp_path.iterdir()] == ["p.png"]


@pytest.mark.parametrize("argv", [["train", "--content", "x", "--style", "y"], ["export", "a.pt", "b.onnx"], ["evaluate", "--motion-clips", "x"],
                                  ["explain", "p.jpg", "--out", "o"]])
def test_torch_commands_in_a_base_install_say_what_to_install(argv: list[str]) -> None:
    """In a base install they died with a bare ModuleNotFoundError (exit 1)."""
    code = f"import sys; sys.modules['torch'] = None; from streamer.cli import main; sys.exit(main({argv!r}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "needs PyTorch" in out.stderr and "stylecast[train]" in out.stderr and "Traceback" not in out.stderr, out.stderr[-400:]
