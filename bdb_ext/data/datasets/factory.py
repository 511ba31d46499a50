"""Building a data set from its name, for configs and the command line."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

from .base import MetricLearningDataset, ReIDDataset
from .cars import Cars196
from .cub import CUB200
from .cuhk03 import CUHK03
from .inshop import InShop
from .market_layout import DukeMTMCreID, Market1501, MarketLayoutFolder
from .msmt17 import MSMT17
from .sop import StanfordOnlineProducts

__all__ = ["DATASETS", "build_dataset"]

#: Name -> constructor taking ``(root, **kwargs)``.
DATASETS: dict[str, Callable[..., ReIDDataset | MetricLearningDataset]] = {
    "market1501": Market1501,
    "dukemtmc": DukeMTMCreID,
    "cuhk03-detected": functools.partial(CUHK03, split="detected"),
    "cuhk03-labeled": functools.partial(CUHK03, split="labeled"),
    "msmt17": MSMT17,
    "market-layout": MarketLayoutFolder,
    "cub": CUB200,
    "cars": Cars196,
    "sop": StanfordOnlineProducts,
    "inshop": InShop,
}


def build_dataset(name: str, root: str | os.PathLike, **kwargs: object) -> ReIDDataset | MetricLearningDataset:
    """Build the data set called ``name`` (a key of :data:`DATASETS`, case-insensitive) from ``root``.

    Extra keyword arguments go to the data set class (e.g. ``extract_dir`` for CUHK03, ``include_val`` for MSMT17).
    """
    if not isinstance(name, str):
        raise TypeError(f"build_dataset: name must be a str, got {type(name).__name__}")
    key = name.lower()
    if key not in DATASETS:
        raise ValueError(f"build_dataset: unknown data set name {name!r}; expected one of {sorted(DATASETS)}")
    return DATASETS[key](root, **kwargs)
