"""Pure parts of the TensorRT backend: profiles, manifests and staleness, the cache folder,
atomic writes. No TensorRT, no GPU: the machine's facts are made up."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engines.cache import atomic_write, engine_cache_dir, engine_paths, fp16_onnx_path
from engines.trt_manifest import (
    DEFAULT_PROFILE,
    GpuFacts,
    ProfileError,
    compare_manifest,
    expected_io,
    make_manifest,
    manifest_json,
    parse_profile,
    read_manifest,
)

FACTS = GpuFacts("NVIDIA H100 80GB HBM3", (9, 0), "10.13.0.35")


def manifest(**over: object) -> dict[str, object]:
    m = make_manifest("ab" * 32, FACTS, "fp16", DEFAULT_PROFILE, ("a", "b"), expected_io(2, with_check=True))
    m.update(over)
    return m


def test_default_profile_covers_180p_to_1080p_rounded_to_multiples_of_8() -> None:
    assert DEFAULT_PROFILE.min == (184, 320)  # 180 → 184: frames are padded to multiples of 8
    assert DEFAULT_PROFILE.opt == (720, 1280)
    assert DEFAULT_PROFILE.max == (1080, 1920)
    assert DEFAULT_PROFILE.frame_shapes() == ((1, 184, 320, 3), (1, 720, 1280, 3), (1, 1080, 1920, 3))
    assert DEFAULT_PROFILE.contains(184, 320) and DEFAULT_PROFILE.contains(1080, 1920)
    assert not DEFAULT_PROFILE.contains(176, 320) and not DEFAULT_PROFILE.contains(1088, 1920)


@pytest.mark.parametrize("text, message", [
    ("320x180:1280x720", "MIN:OPT:MAX"),
    ("320x180:abc:1920x1080", "WIDTHxHEIGHT"),
    ("1280x720:320x180:1920x1080", "min <= opt <= max"),
    ("8x8:1280x720:1920x1080", "at least 16x16"),
])
def test_bad_profiles_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        parse_profile(text)


def test_identical_manifest_is_usable() -> None:
    assert compare_manifest(manifest(), manifest()) == []


def test_json_round_trip_does_not_count_as_a_change(tmp_path: Path) -> None:
    atomic_write(tmp_path / "m.json", manifest_json(manifest()))
    on_disk, why = read_manifest(tmp_path / "m.json")
    assert why == "" and on_disk is not None
    assert compare_manifest(manifest(), on_disk) == []  # tuples became lists


@pytest.mark.parametrize("field, value", [
    ("onnx_sha256", "cd" * 32),
    ("trt_version", "11.0.0.1"),
    ("gpu_name", "NVIDIA GeForce RTX 4090"),
    ("compute_capability", [8, 9]),
    ("precision", "fp32"),
    ("profile", parse_profile("320x180:640x360:1280x720").to_dict()),
    ("io", expected_io(3, with_check=True)),
    ("styles", ["a", "c"]),
    ("format_version", 0),
])
def test_every_mismatch_is_a_reason_naming_its_field(field: str, value: object) -> None:
    reasons = compare_manifest(manifest(), manifest(**{field: value}))
    assert len(reasons) == 1 and reasons[0].startswith(field + ":"), reasons


def test_all_mismatches_are_listed_at_once() -> None:
    other = GpuFacts("Tesla T4", (7, 5), "10.0.1")
    actual = make_manifest("00" * 32, other, "fp16", DEFAULT_PROFILE, ("a", "b"), expected_io(2, True))
    fields = {r.split(":")[0] for r in compare_manifest(manifest(), actual)}
    assert fields == {"onnx_sha256", "trt_version", "gpu_name", "compute_capability"}


def test_unreadable_manifests_are_reasons_not_crashes(tmp_path: Path) -> None:
    assert read_manifest(tmp_path / "missing.json")[1].startswith("no manifest")
    (tmp_path / "bad.json").write_text("{not json")
    assert "unreadable" in read_manifest(tmp_path / "bad.json")[1]
    for junk in (b"\xff\xfe{", b"[" * 100_000):  # not UTF-8 (raised UnicodeDecodeError), too deep
        (tmp_path / "junk.json").write_bytes(junk)
        assert "unreadable" in read_manifest(tmp_path / "junk.json")[1]
    (tmp_path / "list.json").write_text("[]")
    assert "not a JSON object" in read_manifest(tmp_path / "list.json")[1]


def test_cache_dir_prefers_systemd_state_directory(tmp_path: Path) -> None:
    assert engine_cache_dir({"STATE_DIRECTORY": "/var/lib/stylecast:/var/lib/other"}) == Path("/var/lib/stylecast/engines")
    assert engine_cache_dir({"XDG_CACHE_HOME": "/x"}) == Path("/x/stylecast/engines")
    assert engine_cache_dir({}, home=tmp_path) == tmp_path / ".cache/stylecast/engines"


def test_engine_files_sit_side_by_side(tmp_path: Path) -> None:
    p = engine_paths(tmp_path, Path("/m/default.onnx"), "fp16", "320x180:1280x720:1920x1080")
    assert p.plan.name.startswith("default.fp16.320x180_1280x720_1920x1080.") and p.plan.parent == tmp_path
    assert (p.manifest.name, p.timing_cache.name) == (p.plan.name + ".json", "default.fp16.timing")
    assert engine_paths(tmp_path, Path("/m/default.onnx"), "fp16", "320x180:1280x720:1920x1080") == p  # stable across starts
    others = [engine_paths(tmp_path, Path("/m/default.onnx"), "fp16", "320x184:640x360:640x360").plan,
              engine_paths(tmp_path, Path("/n/default.onnx"), "fp16", "320x180:1280x720:1920x1080").plan,
              engine_paths(tmp_path, Path("/m/default.onnx"), "fp32", "320x180:1280x720:1920x1080").plan]
    assert len({p.plan, *others}) == 4  # profile, model folder and precision each get their own plan
    assert fp16_onnx_path(Path("/m/default.onnx")) == Path("/m/default.fp16.onnx")


def test_atomic_write_replaces_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "engine.plan"
    atomic_write(target, b"one")
    atomic_write(target, b"two")
    assert target.read_bytes() == b"two"
    assert sorted(os.listdir(target.parent)) == ["engine.plan"]
