"""`import streamer` must not import torch; `import engines` must not import tensorrt/pycuda."""

import subprocess
import sys

import pytest

CHECK = """
import sys
import {modules}
bad = sorted(m for m in sys.modules if m.split('.')[0] in {forbidden!r})
print(','.join(bad))
"""


@pytest.mark.parametrize(
    "modules, forbidden",
    [
        ("streamer, streamer.cli, streamer.pipeline, streamer.daemon, streamer.bench, streamer.view", {"torch", "training", "tensorrt", "pycuda"}),
        ("engines, engines.ort, engines.registry", {"torch", "tensorrt", "pycuda"}),
    ],
)
def test_no_heavy_imports(modules: str, forbidden: set[str]) -> None:
    out = subprocess.run([sys.executable, "-c", CHECK.format(modules=modules, forbidden=forbidden)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"importing {modules} pulled in {out.stdout.strip()}"


def test_serving_imports_no_torch_even_after_creating_an_engine(tiny_model) -> None:  # type: ignore[no-untyped-def]
    code = f"""
import sys, numpy as np
from pathlib import Path
import engines
with engines.create_engine('onnxruntime', Path({str(tiny_model)!r})) as e:
    e.infer(np.zeros((16, 16, 3), np.uint8), np.array([1, 0], np.float32), 1.0)
print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'tensorrt', 'pycuda'))))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
