"""Losses built on the fused ops."""

from .bdb_loss import BDBLoss, BDBLossTerms
from .triplet import BatchHardTripletLoss

__all__ = ["BatchHardTripletLoss", "BDBLoss", "BDBLossTerms"]
