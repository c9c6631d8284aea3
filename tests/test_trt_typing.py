"""mypy --strict over the TensorRT modules against tensorrt-stubs, so calls to the real API are
type-checked on a machine without TensorRT.

tensorrt-stubs 10.13.0.35.1 cannot be used as installed: its ``tensorrt/`` folder has no
``py.typed`` (so mypy ignores it) and ``tensorrt.pyi`` does not parse (parameters named ``in``,
a required parameter after defaulted ones). The test copies the stubs to a temporary folder,
fixes those two things textually, and points MYPYPATH at the copy. pycuda has no stubs: it is
typed ``Any`` at its one boundary (engines/trt_runtime.py).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TRT_MODULES = ["engines/trt_build.py", "engines/trt_store.py", "engines/tensorrt.py", "engines/trt_runtime.py", "engines/trt_manifest.py", "engines/cache.py"]
_DEF = re.compile(r"^(\s*def \w+\()(.*)(\)\s*(?:->.*)?:.*)$")

CONFIG = """[mypy]
strict = True
ignore_missing_imports = True
[mypy-tensorrt,tensorrt.*,tensorrt_bindings,tensorrt_bindings.*]
ignore_errors = True
"""

WRONG = """import tensorrt as trt

def old_api(logger: trt.ILogger, network: trt.INetworkDefinition, config: trt.IBuilderConfig) -> None:
    trt.Builder(logger).build_engine(network, config)  # removed in TensorRT 10
"""


def _split(params: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in params:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    return [*out, cur] if cur.strip() else out


def fix_stub_line(line: str) -> str:
    m = _DEF.match(line)
    if not m:
        return line
    fixed, defaulted = [], False
    for p in (q.strip() for q in _split(m.group(2))):
        p = re.sub(r"^in(\s*:)", r"in_\1", p)
        if p.startswith("*"):
            defaulted = defaulted and p != "*"
        elif "=" in p:
            defaulted = True
        elif defaulted:
            p += " = ..."
        fixed.append(p)
    return m.group(1) + ", ".join(fixed) + m.group(3)


def stub_copy(dest: Path) -> Path:
    for pkg in ("tensorrt", "tensorrt_bindings"):
        spec = importlib.util.find_spec(pkg)
        if spec is None or not spec.submodule_search_locations:
            pytest.skip("tensorrt-stubs not installed (pip install --no-deps tensorrt-stubs==10.13.0.35.1)")
        src = Path(next(iter(spec.submodule_search_locations)))
        if not list(src.glob("*.pyi")) or (src / "__init__.py").exists():
            pytest.skip(f"{src} is a real TensorRT install, not tensorrt-stubs")
        shutil.copytree(src, dest / pkg, ignore=shutil.ignore_patterns("__pycache__"))
        for f in (dest / pkg).glob("*.pyi"):
            f.write_text("\n".join(fix_stub_line(line) for line in f.read_text().splitlines()) + "\n")
    return dest


@pytest.mark.timeout(300)
def test_trt_modules_type_check_against_tensorrt_stubs(tmp_path: Path) -> None:
    stubs = stub_copy(tmp_path / "stubs")
    (tmp_path / "mypy.ini").write_text(CONFIG)
    (tmp_path / "wrong.py").write_text(WRONG)
    env = {"MYPYPATH": str(stubs), "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(tmp_path / "mypy.ini"), "--cache-dir", str(tmp_path / "cache"), *TRT_MODULES, str(tmp_path / "wrong.py")]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=280, env=env)
    errors = [line for line in out.stdout.splitlines() if ": error:" in line]
    ours = [e for e in errors if not e.startswith(str(tmp_path))]
    assert not ours, "\n".join(ours)
    # the stubs are really in use: a call to an API TensorRT 10 removed is caught
    assert any("wrong.py" in e and "build_engine" in e for e in errors), out.stdout + out.stderr
