"""Typing and lint are part of the suite: streamer/ and engines/ are mypy-strict."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("tool, args", [("mypy", []), ("ruff", ["check", "streamer", "engines", "training", "tests"])])
def test_tool_passes(tool: str, args: list[str]) -> None:
    exe = shutil.which(tool, path=str(Path(sys.executable).parent)) or shutil.which(tool)
    if exe is None:
        pytest.skip(f"{tool} not installed (pip install 'stylecast[dev]')")
    out = subprocess.run([exe, *args], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
