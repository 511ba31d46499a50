"""Data: data sets in their published layouts, the P x K identity sampler, and the augmentation recipes.

Nothing here imports the model or the compiled ops; data flows one way into them.
"""

from .datasets import (
    CUB200,
    CUHK03,
    DATASETS,
    MSMT17,
    Cars196,
    DukeMTMCreID,
    InShop,
    Market1501,
    MarketLayoutFolder,
    MetricLearningDataset,
    ReIDDataset,
    StanfordOnlineProducts,
    build_dataset,
    extract_cuhk03_images,
    parse_market_name,
)
from .image_dataset import ImageDataset, read_image
from .records import IMAGE_EXTENSIONS, ImageRecord, relabel
from .sampler import RandomIdentitySampler
from .transforms import IMAGENET_MEAN, IMAGENET_STD, Cutout, OfficialRandomErasing, PadToSquare, build_transforms

__all__ = [
    "ImageRecord", "relabel", "IMAGE_EXTENSIONS",
    "ReIDDataset", "MetricLearningDataset",
    "Market1501", "DukeMTMCreID", "CUHK03", "MSMT17", "MarketLayoutFolder",
    "CUB200", "Cars196", "StanfordOnlineProducts", "InShop",
    "DATASETS", "build_dataset", "parse_market_name", "extract_cuhk03_images",
    "ImageDataset", "read_image",
    "RandomIdentitySampler",
    "Cutout", "OfficialRandomErasing", "PadToSquare", "build_transforms", "IMAGENET_MEAN", "IMAGENET_STD",
]
