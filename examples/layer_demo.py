"""A short tour of the Batch DropBlock layers on random feature maps (CPU or GPU)."""

from __future__ import annotations

import time

import torch

import bdb_ext
from bdb_ext import reference


def main() -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print("bdb_ext", bdb_ext.__version__, bdb_ext.build_info(), "on", device)
    x = torch.randn(32, 2048, 24, 8, device=device, requires_grad=True)
    layer = bdb_ext.BatchDropPool(h_ratio=0.33, w_ratio=1.0).train()
    rect = layer.draw_rect(x)
    print(f"{layer}: dropping rows {int(rect[0])}..{int(rect[0] + rect[2]) - 1} of 24 for the whole batch")
    fused = layer(x, rect)
    eager = reference.drop_pool(x, rect, "max")
    print("fused == reference-code eager:", torch.equal(fused, eager))
    for name, fn in [("fused", lambda: layer(x, rect)), ("reference", lambda: reference.drop_pool(x, rect, "max"))]:
        fn().sum().backward()
        start = time.perf_counter()
        for _ in range(5):
            x.grad = None
            fn().sum().backward()
        if device == "cuda":
            torch.cuda.synchronize()
        print(f"{name:>9}: drop + max pool, forward + backward, {(time.perf_counter() - start) / 5 * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
