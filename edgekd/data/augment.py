"""Input augmentation for training, chosen by what the data is: shifts suit a 1-D signal,
flips and crops suit photos, crops alone suit digits (a mirrored digit is another digit), and
for feature vectors (csv, npz) only noise is safe: edgekd cannot know which transforms keep
their labels.

Seeded per epoch by the trainer, so a resumed run sees the same augmented batches.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


def _noise(x: torch.Tensor, gen: torch.Generator, scale: float | torch.Tensor) -> torch.Tensor:
    return x + 0.05 * scale * torch.randn(x.shape, generator=gen)


def _shift(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    b, length = x.shape
    shift = torch.randint(-2, 3, (b, 1), generator=gen)               # up to 2 samples either way
    index = (torch.arange(length).unsqueeze(0) - shift).clamp(0, length - 1)  # (B, L), edge-padded
    return x.gather(1, index)


def _flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    flip = torch.rand(x.shape[0], generator=gen) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def _crop(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    b, _, h, w = x.shape
    pad = max(1, min(h, w) // 8)
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    rows = (dy[:, None] + torch.arange(h)[None]).view(b, 1, h, 1).expand(b, x.shape[1], h, w + 2 * pad)
    cropped = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w)[None]).view(b, 1, 1, w).expand(b, x.shape[1], h, w)
    return cropped.gather(3, cols)


# name -> (input rank it needs, transform(x, gen, scale)); `scale` is the data's standard deviation
AUGMENTATIONS: dict[str, tuple[int | None, Callable]] = {
    "shift+noise": (2, lambda x, gen, scale: _noise(_shift(x, gen), gen, scale)),
    "flip+crop": (4, lambda x, gen, scale: _crop(_flip(x, gen), gen)),
    "crop": (4, lambda x, gen, scale: _crop(x, gen)),
    "noise": (None, _noise),
}


def augment(x: torch.Tensor, gen: torch.Generator, scale: float | torch.Tensor, kind: str = "noise") -> torch.Tensor:
    rank, transform = AUGMENTATIONS[kind]
    if rank is not None and x.ndim != rank:  # the data promised another shape: stay on the safe side
        transform = _noise
    return transform(x, gen, scale)
