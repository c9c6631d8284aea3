"""The frozen training configuration, resolved once at the CLI edge and saved with each run."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal


def _per_style(table: str, overrides: dict[str, float], default: float, style_names: list[str]) -> list[float]:
    unknown = sorted(set(overrides) - set(style_names))
    if unknown:
        raise ValueError(f"{table}: no style named {', '.join(unknown)} (styles: {', '.join(style_names)})")
    return [overrides.get(n, default) for n in style_names]


@dataclass(frozen=True)
class TrainConfig:
    content: str  # folder of photos
    styles: tuple[str, ...]  # each a painting file or a folder of one artist's works
    out: str = "runs"  # numbered run directories are made under this
    steps: int = 3000
    batch: int = 4
    crop: int = 160  # training crop side, px
    content_side: int = 0  # longer side the photos are held at before cropping, px; 0 = max(2 × crop, 384)
    crop_scale_min: float = 0.5  # a crop's side as a share of that photo's shorter side: smallest …
    crop_scale_max: float = 1.0  # … and largest (the crop is then resized to ``crop``; with content_side, the zoom)
    style_size: int = 384  # longer side of style images for Gram targets and D crops, px
    mask_background: bool = True  # leave a style image's flat background out of its targets (data.background_mask)
    width: int = 32
    blocks: int = 3
    antialias: bool = False  # blur before the 4× and 2× downsampling, bilinear 2× upsampling (GeneratorSpec)
    in_blur_taps: int = 5  # 5, 9, 13 or 17: the frame blur's size before the 4× downsampling (GeneratorSpec.in_blur_taps)
    alias_free: bool = False  # the ⅛-res ReLUs as filtered ReLUs (GeneratorSpec.alias_free)
    alias_free_quarter: bool = False  # the ¼-res ReLUs too (GeneratorSpec.alias_free_quarter)
    smooth_body: bool = False  # blur the ⅛-res features before upsampling (GeneratorSpec.smooth_body)
    half_res: int = 0  # channels of the ½-res decoder stage, 0 for none (GeneratorSpec.half_res)
    stroke_mlp: int = 0  # hidden channels of the full-resolution pointwise stroke head, 0 for none (GeneratorSpec.stroke_mlp)
    smooth_head: bool = False  # blur the ¼-res head channels before the 4× upsampling (GeneratorSpec)
    head_blur_taps: int = 3  # 3 or 5: that blur's size (GeneratorSpec)
    head_lanczos: bool = False  # the head's 4× upsampling as Lanczos-3, not bilinear (GeneratorSpec.head_lanczos)
    lr_g: float = 3e-3
    lr_d: float = 2e-4
    w_content: float = 1.0
    w_style: float = 30.0
    w_adv: float = 0.05
    w_tv: float = 0.5
    w_attention: float = 0.2
    attention_mean: float = 0.7  # attention above this mean is penalised
    w_temporal: float = 2.0
    w_temporal_branch: float = 0.0  # the temporal loss on the style branch's own output too (Trainer.temporal_terms; needs w_temporal > 0); 0 = off
    temporal_blur: float = 0.0  # σ (px) of the Gaussian the temporal difference is blurred with; 0 = none
    temporal_noise: float = 0.02  # std of the noise added to the warped second view (0–1 scale)
    temporal_margin: int = 0  # px of context around each crop that the second view is warped from; 0 = smeared border
    temporal_motion: float = 1.0  # scale of the second view's random move; at 1: shift ≤ crop/40 px, rotation ≤ 2°, zoom ≤ 3 % (``Trainer.temporal_view``)
    w_edge: float = 0.0  # soft Canny edge maps of output vs photo (losses.edge_loss), every style; 0 = off
    edge_style_weights: dict[str, float] = field(default_factory=dict)  # style name → its own w_edge
    temporal_style_weights: dict[str, float] = field(default_factory=dict)  # style name → its own w_temporal (needs w_temporal > 0)
    cartoon_prior_weights: dict[str, float] = field(default_factory=dict)  # style name → weight of L1 to training.cartoon's rendering (losses.prior_loss); none = off
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
    teacher: str | None = None  # checkpoint of a larger generator to distil into this one
    w_distill: float = 10.0  # L1 to the teacher's blended output and attention
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("steps", "batch", "sample_every", "ckpt_every"):
            if getattr(self, name) < 1:  # steps ≤ 0 "finished" with a checkpoint path that was never written
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if self.crop < 32 or self.crop % 8:
            raise ValueError(f"crop must be a multiple of 8, ≥ 32 px (the generator works at ⅛ resolution), got {self.crop}")
        if self.content_side < 0 or 0 < self.content_side < self.crop:
            raise ValueError(f"content_side must be 0 (auto) or ≥ crop ({self.crop}), got {self.content_side}")
        if not 0.0 < self.crop_scale_min <= self.crop_scale_max <= 1.0:
            raise ValueError(f"need 0 < crop_scale_min ≤ crop_scale_max ≤ 1, got {self.crop_scale_min} and {self.crop_scale_max}")
        if self.style_size < self.crop:
            raise ValueError(f"style_size must be ≥ crop ({self.crop}): the discriminator's painting crops come from it, got {self.style_size}")
        for name in ("lr_g", "lr_d"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        # Channel counts too (GeneratorSpec checks them again, but only once the run directory exists).
        for name in ("temporal_blur", "temporal_noise", "temporal_margin", "w_temporal", "w_temporal_branch", "w_edge", "half_res", "stroke_mlp"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be ≥ 0, got {getattr(self, name)}")
        if not 0 < self.temporal_motion <= 10:  # NaN and inf fail too; at 10 a move already leaves a 160 px crop's 16 px margin
            raise ValueError(f"temporal_motion must be > 0 and ≤ 10 (a scale on the second view's move), got {self.temporal_motion}")
        if self.in_blur_taps not in (5, 9, 13, 17):  # generator.IN_BLUR_TAPS
            raise ValueError(f"in_blur_taps must be 5, 9, 13 or 17, got {self.in_blur_taps}")
        if self.head_blur_taps not in (3, 5):  # generator.HEAD_BLUR_KERNELS
            raise ValueError(f"head_blur_taps must be 3 or 5, got {self.head_blur_taps}")
        for table in ("edge_style_weights", "temporal_style_weights", "cartoon_prior_weights"):
            for style, weight in getattr(self, table).items():
                if weight < 0:
                    raise ValueError(f"{table}[{style!r}] must be ≥ 0, got {weight}")
        if not 0.0 <= self.video_share <= 1.0:
            raise ValueError(f"video_share must be in [0, 1], got {self.video_share}")
        if self.init and self.resume:
            raise ValueError("init and resume exclude each other: resume continues a run (its weights, discriminator and step), init starts a new one from trained weights")
        if self.w_temporal_branch > 0 and self.w_temporal <= 0:
            raise ValueError("w_temporal_branch needs w_temporal > 0 (the temporal loss is off)")
        if self.temporal_style_weights and self.w_temporal <= 0:
            raise ValueError("temporal_style_weights need w_temporal > 0 (the temporal loss is off)")

    def run_tag(self) -> str:
        """The styles' names joined, as run directories are named: a painting's file stem, a
        folder's name (at most 60 characters)."""
        return "-".join(Path(s).stem if Path(s).is_file() else Path(s).name for s in self.styles)[:60]

    def content_max_side(self) -> int:
        """The longer side, px, the content photos are downscaled to (never up) before cropping."""
        return self.content_side or max(self.crop * 2, 384)

    def edge_weights(self, style_names: list[str]) -> list[float]:
        """Each style's edge-loss weight, in ``style_names``' order: its ``edge_style_weights``
        entry, else ``w_edge``. A name there that is not one of the styles is an error."""
        return _per_style("edge_style_weights", self.edge_style_weights, self.w_edge, style_names)

    def temporal_weights(self, style_names: list[str]) -> list[float]:
        """Each style's temporal-loss weight, as ``edge_weights`` (``temporal_style_weights``, else
        ``w_temporal``)."""
        return _per_style("temporal_style_weights", self.temporal_style_weights, self.w_temporal, style_names)

    def prior_weights(self, style_names: list[str]) -> list[float]:
        """Each style's cartoon-prior weight, in ``style_names``' order (``cartoon_prior_weights``,
        else 0)."""
        return _per_style("cartoon_prior_weights", self.cartoon_prior_weights, 0.0, style_names)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @staticmethod
    def from_json(path: Path) -> TrainConfig:
        raw = json.loads(path.read_text())
        raw["styles"] = tuple(raw["styles"])
        raw["videos"] = tuple(raw.get("videos", ()))
        return TrainConfig(**raw)
