"""Data set classes, each reading one data set from its published on-disk layout."""

from .base import MetricLearningDataset, ReIDDataset
from .cars import Cars196
from .cub import CUB200
from .cuhk03 import CUHK03, extract_cuhk03_images
from .factory import DATASETS, build_dataset
from .inshop import InShop
from .market_layout import DukeMTMCreID, Market1501, MarketLayoutFolder, parse_market_name
from .msmt17 import MSMT17
from .sop import StanfordOnlineProducts

__all__ = [
    "ReIDDataset", "MetricLearningDataset",
    "Market1501", "DukeMTMCreID", "CUHK03", "MSMT17", "MarketLayoutFolder",
    "CUB200", "Cars196", "StanfordOnlineProducts", "InShop",
    "DATASETS", "build_dataset", "parse_market_name", "extract_cuhk03_images",
]
