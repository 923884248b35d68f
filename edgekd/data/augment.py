"""Input augmentation for training: noise + shift for 1-D signals, flip + crop for images.

Seeded per epoch by the trainer, so a resumed run sees the same augmented batches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def augment(x: torch.Tensor, gen: torch.Generator, scale: float) -> torch.Tensor:
    """x: (B, L) or (B, C, H, W) raw inputs; `scale` is the data's standard deviation."""
    if x.ndim == 2:
        return _signal(x, gen, scale)
    if x.ndim == 4:
        return _image(x, gen)
    return x


def _signal(x: torch.Tensor, gen: torch.Generator, scale: float) -> torch.Tensor:
    b, length = x.shape
    shift = torch.randint(-2, 3, (b, 1), generator=gen)               # up to 2 samples either way
    index = (torch.arange(length).unsqueeze(0) - shift).clamp(0, length - 1)  # (B, L), edge-padded
    shifted = x.gather(1, index)
    return shifted + 0.05 * scale * torch.randn(x.shape, generator=gen)


def _image(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    b, _, h, w = x.shape
    flip = torch.rand(b, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    pad = max(1, min(h, w) // 8)
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    rows = (dy[:, None] + torch.arange(h)[None]).view(b, 1, h, 1).expand(b, x.shape[1], h, w + 2 * pad)
    cropped = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w)[None]).view(b, 1, 1, w).expand(b, x.shape[1], h, w)
    return cropped.gather(3, cols)
