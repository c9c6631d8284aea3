"""Snapshot names, their default folder and the folder's cap (issue 32, defect 9; issue 33, point 13)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamer import snapshots
from streamer.controls import ControlError, snapshot_name


@pytest.mark.parametrize("name", ["x.png\n", "x.png\r", "../x.png", ".hidden.png", "a/b.png", "x.PNG", "x.png.exe", "", "x" * 65 + ".png"])
def test_names_that_are_not_plain_snapshot_files_are_refused(name: str) -> None:
    with pytest.raises(ControlError, match="plain file name"):
        snapshot_name({"name": name})


def test_plain_names_pass() -> None:
    assert snapshot_name({"name": "cam-1_2026.12.07.jpg"}) == "cam-1_2026.12.07.jpg"
    assert snapshot_name({}) is None


def test_the_default_folder_is_the_users_state_never_the_working_directory(tmp_path: Path) -> None:
    assert snapshots.default_dir({"STATE_DIRECTORY": "/var/lib/stylecast:/var/lib/x"}) == Path("/var/lib/stylecast/snapshots")
    assert snapshots.default_dir({"XDG_STATE_HOME": "/s"}) == Path("/s/stylecast/snapshots")
    assert snapshots.default_dir({}, home=tmp_path) == tmp_path / ".local/state/stylecast/snapshots"


def test_the_folder_is_capped_in_files_and_bytes(tmp_path: Path) -> None:
    image = np.full((8, 8, 3), 128, np.uint8)
    for i in range(3):
        snapshots.write(tmp_path, None, i, image, max_files=3)
    with pytest.raises(ControlError, match="holds 3 images"):
        snapshots.write(tmp_path, None, 9, image, max_files=3)
    assert snapshots.write(tmp_path, "stylecast_00000001.png", 0, image, max_files=3).is_file()  # overwriting adds none
    (tmp_path / "notes.txt").write_text("not an image")  # other files do not count
    big = tmp_path / "big"
    snapshots.write(big, "a.png", 0, np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8), max_bytes=1000)
    with pytest.raises(ControlError, match="MiB"):
        snapshots.write(big, "b.png", 0, image, max_bytes=1000)
    assert sorted(p.name for p in big.iterdir()) == ["a.png"]
