"""Feature extraction: run a model over a loader, batched and without gradients."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ._inputs import as_device

__all__ = ["extract_features", "extract_features_and_flipped"]


def _forward(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    features = model(images)
    if not isinstance(features, torch.Tensor) or features.dim() != 2 or features.shape[0] != images.shape[0]:
        shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise TypeError(f"extract_features: model must return a (batch, dim) tensor in eval mode, got {shape}")
    return features.float()


def extract_features(model: nn.Module, loader: Iterable, device: torch.device | str | None = None,
                     flip: bool = False, amp_dtype: torch.dtype | None = None, progress: bool = False,
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Features of every image in ``loader``.

    Args:
        model: maps a (B, 3, H, W) batch to (B, D) features in eval mode. It is put in eval mode for the pass and
            restored to its previous mode afterwards.
        loader: yields ``(images, pids, camids)`` batches, as a DataLoader over :class:`bdb_ext.data.ImageDataset`.
        device: where the model runs; default the device of the model's first parameter (CPU if it has none).
        flip: average the features of each image and its horizontal mirror.
        amp_dtype: e.g. torch.float16 or torch.bfloat16 to run under autocast; features are returned in float32.
        progress: show a tqdm progress bar (needs tqdm).

    Returns:
        features (N, D) float32 on the CPU, pids (N,) int64, camids (N,) int64. Features are returned as the model
        gave them; every metric refuses NaN or inf features with an error counting the rows (not here, because
        under torch.distributed one rank raising alone would leave the others waiting in the gather).
    """
    plain, averaged, pids, camids = _extract(model, loader, device, amp_dtype, progress,
                                             "averaged" if flip else "plain")
    return (averaged if flip else plain), pids, camids


def extract_features_and_flipped(model: nn.Module, loader: Iterable, device: torch.device | str | None = None,
                                 amp_dtype: torch.dtype | None = None, progress: bool = False,
                                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Both test features of every image in one pass: (plain (N, D), flip-averaged (N, D), pids, camids).

    The flip-averaged feature is (f(image) + f(mirror image)) / 2, as the official BDB evaluator computed it at
    the commits behind the published numbers; the plain one is f(image). Arguments as :func:`extract_features`.
    """
    return _extract(model, loader, device, amp_dtype, progress, "both")


def _extract(model: nn.Module, loader: Iterable, device: torch.device | str | None, amp_dtype: torch.dtype | None,
             progress: bool, views: str) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor,
                                                  torch.Tensor]:
    """The extraction loop; ``views`` "plain", "averaged" or "both" says which features are kept."""
    if device is None:
        first = next(model.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    device = as_device(device, "extract_features: device")
    if amp_dtype is not None and amp_dtype not in (torch.float16, torch.bfloat16):
        raise ValueError(f"extract_features: amp_dtype must be None, torch.float16 or torch.bfloat16, "
                         f"got {amp_dtype!r}")
    was_training = model.training
    model.eval()
    plain, averaged, pids, camids = [], [], [], []
    if progress:
        from tqdm.auto import tqdm

        loader = tqdm(loader, desc="features", unit="batch")
    try:
        # no_grad rather than inference_mode: inference tensors would refuse later in-place use by the caller.
        with torch.no_grad(), torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            for batch in loader:
                if not isinstance(batch, (tuple, list)) or len(batch) != 3:
                    raise TypeError("extract_features: loader must yield (images, pids, camids) batches")
                images, batch_pids, batch_camids = batch
                images = images.to(device, non_blocking=True)
                out = _forward(model, images)
                if views != "averaged":
                    plain.append(out.cpu())
                if views != "plain":
                    averaged.append(((out + _forward(model, images.flip(-1))) / 2).cpu())
                pids.append(torch.as_tensor(batch_pids, dtype=torch.long).reshape(-1))
                camids.append(torch.as_tensor(batch_camids, dtype=torch.long).reshape(-1))
    finally:
        model.train(was_training)
    if not pids:
        raise ValueError("extract_features: the loader yielded no batches")
    return (torch.cat(plain) if plain else None, torch.cat(averaged) if averaged else None, torch.cat(pids),
            torch.cat(camids))
