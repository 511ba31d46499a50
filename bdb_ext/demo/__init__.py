"""The offline demo: a synthetic person re-ID data set in Market-1501 layout, and a small BDB run on it."""

from .figures import plot_dropped_region
from .run import chance_rank1, demo_config, run_demo
from .synthetic import GENERATOR_VERSION, SyntheticSpec, default_cache_dir, ensure_synthetic_market

__all__ = ["run_demo", "demo_config", "chance_rank1", "plot_dropped_region", "SyntheticSpec",
           "ensure_synthetic_market", "default_cache_dir", "GENERATOR_VERSION"]
