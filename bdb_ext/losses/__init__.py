"""Losses built on the fused ops."""

from .triplet import BatchHardTripletLoss

__all__ = ["BatchHardTripletLoss"]
