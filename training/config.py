"""The frozen training configuration, resolved once at the CLI edge and saved with each run."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from training.generator import TIERS, GeneratorSpec, tier_spec


def _per_style(table: str, overrides: dict[str, float], default: float, style_names: list[str]) -> list[float]:
    unknown = sorted(set(overrides) - set(style_names))
    if unknown:
        raise ValueError(f"{table}: no style named {', '.join(unknown)} (styles: {', '.join(style_names)})")
    return [overrides.get(n, default) for n in style_names]


REMOVED_FIELDS = frozenset({"w_attention"})
"""Fields older runs' config.json may hold that no longer mean anything (the attention map is now
computed, not learned: ``generator.change_map``); reading such a file ignores them."""


@dataclass(frozen=True)
class TrainConfig:
    content: str  # folder of photos
    styles: tuple[str, ...]  # each a painting file or a folder of one artist's works
    out: str = "runs"  # numbered run directories are made under this
    tier: str = "quality"  # the generator trained (generator.TIERS): quality or fast
    steps: int = 3000
    batch: int = 4
    crop: int = 160  # training crop side, px
    style_size: int = 640  # longer side of style images for Gram targets and D crops, px (the bundled paintings are at most 702: their own size)
    mask_background: bool = True  # leave a style image's flat background out of its targets (data.background_mask)
    lr_g: float = 2e-3
    lr_d: float = 2e-4
    w_content: float = 4.0
    w_style: float = 60.0
    w_adv: float = 0.1
    w_tv: float = 0.2
    w_temporal: float = 0.0  # compound regularisation: G(move(x)) against move(G(x)) (losses.temporal_loss); 0 = off
    temporal_blur: float = 1.5  # σ (px) of the Gaussian the temporal difference is blurred with; 0 = none
    temporal_noise: float = 0.02  # std of the noise added to the moved second view (0–1 scale)
    w_edge: float = 0.0  # soft Canny edge maps of output vs photo (losses.edge_loss); 0 = off
    edge_style_weights: dict[str, float] = field(default_factory=dict)  # style name → its own w_edge
    videos: tuple[str, ...] = ()  # the user's clips: their frame pairs give a temporal loss on real (optical-flow) motion
    video_share: float = 0.5  # share of steps whose batch is frame pairs from ``videos`` instead of photos
    ema_decay: float = 0.995
    backbone: Literal["efficientnet_lite0", "fake"] = "efficientnet_lite0"
    sample_every: int = 250
    ckpt_every: int = 250
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    resume: str | None = None
    init: str | None = None  # generator weights to start from (checkpoint or MODEL.generator.pt); D, optimisers, step start fresh
    teacher: str | None = None  # checkpoint of a (larger) generator to distil into this one
    w_distill: float = 10.0  # L1 to the teacher's output, plus its features' content loss
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("steps", "batch", "sample_every", "ckpt_every"):
            if getattr(self, name) < 1:  # steps ≤ 0 "finished" with a checkpoint path that was never written
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if self.tier not in TIERS:
            raise ValueError(f"tier must be one of {', '.join(sorted(TIERS))}, got {self.tier!r}")
        if self.crop < 32 or self.crop % 8:
            raise ValueError(f"crop must be a multiple of 8, ≥ 32 px (the generator works at ⅛ resolution), got {self.crop}")
        if self.style_size < self.crop:
            raise ValueError(f"style_size must be ≥ crop ({self.crop}): the discriminator's painting crops come from it, got {self.style_size}")
        for name in ("lr_g", "lr_d"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("w_content", "w_style", "w_adv", "w_tv", "w_temporal", "temporal_blur", "temporal_noise", "w_edge", "w_distill"):
            if not getattr(self, name) >= 0:  # NaN fails too
                raise ValueError(f"{name} must be ≥ 0, got {getattr(self, name)}")
        for style, weight in self.edge_style_weights.items():
            if not weight >= 0:
                raise ValueError(f"edge_style_weights[{style!r}] must be ≥ 0, got {weight}")
        if not 0.0 <= self.video_share <= 1.0:
            raise ValueError(f"video_share must be in [0, 1], got {self.video_share}")
        if self.init and self.resume:
            raise ValueError("init and resume exclude each other: resume continues a run (its weights, discriminator and step), init starts a new one from trained weights")

    def spec(self, num_styles: int) -> GeneratorSpec:
        """The generator this run trains: its tier's architecture for ``num_styles`` styles."""
        return tier_spec(self.tier, num_styles)

    def run_tag(self) -> str:
        """The styles' names joined, as run directories are named: a painting's file stem, a
        folder's name (at most 60 characters)."""
        return "-".join(Path(s).stem if Path(s).is_file() else Path(s).name for s in self.styles)[:60]

    def content_max_side(self) -> int:
        """The longer side, px, the content photos are downscaled to (never up) before cropping."""
        return max(self.crop * 2, 384)

    def edge_weights(self, style_names: list[str]) -> list[float]:
        """Each style's edge-loss weight, in ``style_names``' order: its ``edge_style_weights``
        entry, else ``w_edge``. A name there that is not one of the styles is an error."""
        return _per_style("edge_style_weights", self.edge_style_weights, self.w_edge, style_names)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @staticmethod
    def from_json(path: Path) -> TrainConfig:
        raw = {k: v for k, v in json.loads(path.read_text()).items() if k not in REMOVED_FIELDS}
        raw["styles"] = tuple(raw["styles"])
        raw["videos"] = tuple(raw.get("videos", ()))
        return TrainConfig(**raw)
