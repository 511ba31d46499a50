"""Evaluation: features, distances, re-ID metrics (CMC, mAP, mINP), k-reciprocal re-ranking, Recall@K, result
objects and pictures, and the standard and official protocols. Nothing here imports the model or the compiled ops.
"""

from .distances import METRICS, pairwise_distances
from .features import extract_features, extract_features_and_flipped
from .plots import plot_cmc, plot_ranked_lists
from .protocols import (EVAL_PROTOCOLS, OFFICIAL_AP_CUTOFF, OFFICIAL_RANKS, STANDARD_RANKS, ProtocolComparison,
                        check_eval_protocol, evaluate_recall, evaluate_reid)
from .recall import recall_at_k, recall_at_k_query_gallery
from .reid_metrics import RankMetrics, cuhk03_rank_metrics, rank_metrics
from .reranking import re_ranking, re_ranking_features
from .results import RecallResults, ReIDResults

__all__ = [
    "extract_features", "extract_features_and_flipped",
    "EVAL_PROTOCOLS", "OFFICIAL_AP_CUTOFF", "OFFICIAL_RANKS", "STANDARD_RANKS", "ProtocolComparison",
    "check_eval_protocol",
    "pairwise_distances", "METRICS",
    "rank_metrics", "cuhk03_rank_metrics", "RankMetrics",
    "re_ranking", "re_ranking_features",
    "recall_at_k", "recall_at_k_query_gallery",
    "evaluate_reid", "evaluate_recall", "ReIDResults", "RecallResults",
    "plot_cmc", "plot_ranked_lists",
]
