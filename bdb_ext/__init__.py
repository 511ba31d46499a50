"""bdb_ext: the Batch DropBlock network (Dai et al., ICCV 2019) with fused C++/CUDA kernels.

Importing bdb_ext loads the compiled op library ``bdb_ext._C`` (and fails with rebuild instructions
if it is missing or was built against another torch).
"""

from __future__ import annotations

from ._extension import build_info
from . import ops, reference
from .layers import BatchDropBlock, BatchDropPool
from .losses import BatchHardTripletLoss

__version__ = "0.1.0"

__all__ = ["BatchDropBlock", "BatchDropPool", "BatchHardTripletLoss", "build_info", "ops", "reference", "__version__"]
