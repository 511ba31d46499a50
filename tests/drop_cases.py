"""Helpers shared by the drop-op tests: inputs in every layout, tolerances per dtype."""

from __future__ import annotations

import torch

DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)

# Max pooling and the drop itself select values, so they are exact in every dtype; only the
# average's sum rounds.
AVG_TOLERANCE = {
    torch.float64: dict(rtol=1e-12, atol=1e-12),
    torch.float32: dict(rtol=1e-5, atol=1e-6),
    torch.float16: dict(rtol=2e-3, atol=2e-3),
    torch.bfloat16: dict(rtol=1.6e-2, atol=1.6e-2),
}

LAYOUTS = ("contiguous", "channels_last", "strided", "misaligned")


def feature_map(shape, dtype=torch.float32, device="cpu", layout="contiguous", seed=0) -> torch.Tensor:
    """A random (N, C, H, W) map laid out as asked.

    "strided" is a view with no dense layout (every other channel of a wider map); "misaligned"
    starts one element past an aligned buffer, which rules out vector loads.
    """
    g = torch.Generator().manual_seed(seed)
    n, c, h, w = shape
    if layout == "contiguous":
        x = torch.randn(shape, generator=g)
    elif layout == "channels_last":
        x = torch.randn(shape, generator=g).contiguous(memory_format=torch.channels_last)
    elif layout == "strided":
        x = torch.randn((n, 2 * c, h, w), generator=g)[:, ::2]
    elif layout == "misaligned":
        x = torch.randn(n * c * h * w + 1, generator=g)[1:].view(shape)
    else:
        raise ValueError(layout)
    x = x.to(device=device, dtype=dtype)
    if layout == "misaligned" and x.numel() > 0:
        # .to() may have copied into a fresh (aligned) buffer; rebuild the offset view on the device.
        buf = torch.empty(x.numel() + 1, dtype=dtype, device=device)
        buf[1:] = x.reshape(-1)
        x = buf[1:].view(shape)
    return x


def random_rect(h: int, w: int, g: torch.Generator) -> list[int]:
    rows = int(torch.randint(0, h + 1, (1,), generator=g))
    cols = int(torch.randint(0, w + 1, (1,), generator=g))
    top = int(torch.randint(0, h - rows + 1, (1,), generator=g))
    left = int(torch.randint(0, w - cols + 1, (1,), generator=g))
    return [top, left, rows, cols]
