"""``bdb-ext export``: the eval model (images -> test features) as TorchScript or ONNX."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
from torch import nn

__all__ = ["add_parser", "run", "export_torchscript", "export_onnx"]


def export_torchscript(model: nn.Module, example: torch.Tensor, path: str | os.PathLike) -> Path:
    """Trace ``model`` in eval mode on ``example`` (N, 3, H, W) and save it; the file maps images to features."""
    model = model.eval()
    with torch.no_grad():
        traced = torch.jit.trace(model, example, check_trace=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    traced.save(str(path))
    return path


def export_onnx(model: nn.Module, example: torch.Tensor, path: str | os.PathLike, opset: int = 18) -> Path:
    """Export ``model`` in eval mode to ONNX with a dynamic batch size (input "images", output "features").

    Needs the ``onnx`` package (``pip install 'bdb_ext[export]'``); raises ImportError saying so otherwise.
    """
    try:
        import onnx  # noqa: F401
    except ImportError as error:
        raise ImportError("ONNX export needs the onnx package: pip install 'bdb_ext[export]' (onnx, onnxscript)"
                          ) from error
    model = model.eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    batch = torch.export.Dim("batch", min=1, max=4096)
    with torch.no_grad():
        torch.onnx.export(model, (example,), str(path), input_names=["images"], output_names=["features"],
                          dynamic_shapes={"images": {0: batch}}, opset_version=opset, dynamo=True)
    return path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export the eval model (images -> features) to TorchScript or ONNX",
        description="Export a checkpoint's eval-mode BDBNet, mapping (N, 3, H, W) ImageNet-normalised images "
                    "to (N, D) test features (1536-d for ResNet-50), as TorchScript (.pt) or ONNX (.onnx).")
    parser.add_argument("checkpoint", help="a checkpoint written by bdb-ext train (best.pt or last.pt)")
    parser.add_argument("--format", choices=("torchscript", "onnx"), default="torchscript")
    parser.add_argument("--output", "-o", required=True, help="the file to write")
    parser.add_argument("--height", type=int, default=None, help="input height (default: the run's)")
    parser.add_argument("--width", type=int, default=None, help="input width (default: the run's)")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..engine import model_from_checkpoint
    from .paths import writable_file

    writable_file(args.output, "--output")
    model, config, _ = model_from_checkpoint(args.checkpoint)
    height = args.height or (config.height if config.recipe == "person" else config.crop)
    width = args.width or (config.width if config.recipe == "person" else config.crop)
    example = torch.randn(2, 3, height, width)
    if args.format == "torchscript":
        path = export_torchscript(model, example, args.output)
    else:
        path = export_onnx(model, example, args.output, args.opset)
    print(f"wrote {path} ({args.format}, input (N, 3, {height}, {width}) -> features (N, {model.feature_dim}))")
    return 0
