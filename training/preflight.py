"""What ``train`` checks before it makes (or rewrites) a run directory: ``preflight``."""

from __future__ import annotations

from pathlib import Path

import cv2
import torch

from training.config import TrainConfig
from training.data import style_name
from training.generator import Generator, GeneratorSpec


class PreflightError(ValueError):
    """A run's inputs are unusable (the CLI exits 2); found before its run directory is made or
    a resumed run's config.json is rewritten."""


def preflight(cfg: TrainConfig) -> None:
    """Check what ``train`` would otherwise fail on only after making (or rewriting) the run
    directory: the content folder and each style hold readable images, style names are unique,
    the per-style tables name real styles, and a ``resume`` checkpoint, ``teacher`` or ``init``
    has this run's styles (a resume also its generator: resuming with other styles relabelled
    the trained weights). Raises PreflightError naming the input."""
    from training.data import DataError, list_images
    from training.export import ExportError, load_generator

    try:
        names = [style_name(Path(p)) for p in cfg.styles]
        cfg.edge_weights(names)  # no files read yet
        if len(set(names)) != len(names):
            raise DataError(f"style names must be unique, got {names}")
        for folder in [Path(cfg.content), *(Path(p) for p in cfg.styles)]:
            for f in list_images(folder):
                if cv2.imread(str(f), cv2.IMREAD_REDUCED_COLOR_8) is None:  # decodes at ⅛ size: a cheap check
                    raise DataError(f"cannot read image {f}")
        if cfg.resume:
            p = Path(cfg.resume)
            ck_path = p / "checkpoint.pt" if p.is_dir() else p
            try:
                ck = torch.load(ck_path, map_location="cpu", weights_only=False)
                ck_styles, ck_spec = list(ck["styles"]), GeneratorSpec.from_dict(ck["spec"]).to_dict()  # options added since: their defaults
                have = {k: tuple(v.shape) for k, v in ck["g"].items()}
            except (OSError, EOFError, KeyError, TypeError, ValueError, RuntimeError) as e:
                raise DataError(f"resume: cannot read checkpoint {ck_path}: {e}") from e
            if ck_styles != names:
                raise DataError(f"resume: {ck_path} trained styles {ck_styles}; this run names {names} (same names, same order)")
            # A resume must train the generator the checkpoint holds (its tier's layers).
            spec = cfg.spec(len(names))
            if {k: tuple(v.shape) for k, v in Generator(spec).state_dict().items()} != have:
                want = spec.to_dict()
                differ = ", ".join(f"{k} ({ck_spec[k]!r}, here {want[k]!r})" for k in sorted(want) if want[k] != ck_spec[k])
                raise DataError(f"resume: {ck_path}'s generator has other layers ({differ}); resume with its options, or start a new run with --init")
        for role, path in (("teacher", cfg.teacher), ("--init", cfg.init)):
            if path:
                _, theirs, _ = load_generator(Path(path))
                if theirs != names:
                    raise DataError(f"{role} {path} has styles {theirs}; this run trains {names} (same names, same order)")
    except (ValueError, ExportError) as e:  # ValueError: DataError, or a per-style table naming no style
        raise PreflightError(str(e)) from e
