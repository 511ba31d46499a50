"""``bdb-ext demo``: the offline demo (synthetic data set, small BDBNet, report)."""

from __future__ import annotations

import argparse

from .config_args import add_config_arguments, config_from_args

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="offline demo: synthetic re-ID data, a small BDBNet trained on the CPU, a report",
        description="Draw (once, then cached) a synthetic person re-ID data set in Market-1501 layout, train a "
                    "ResNet-18 BDBNet from scratch on it (a few minutes on 2 CPU cores; a GPU is used when "
                    "present), evaluate, and write a report folder: metrics.json, cmc.png, ranked_lists.png, "
                    "dropped_region.png, best.pt / last.pt, metrics.jsonl / metrics.csv. The config fields start from the "
                    "'demo' preset; --output-dir picks the report folder (default bdb_demo).")
    parser.add_argument("--data-dir", default=None,
                        help="cache folder of the synthetic data set (default: $BDB_EXT_CACHE/demo or "
                             "~/.cache/bdb_ext/demo)")
    parser.add_argument("--train-ids", type=int, default=150, help="identities in the training set (150)")
    parser.add_argument("--test-ids", type=int, default=150, help="identities in query/gallery (150)")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the synthetic data set (0)")
    add_config_arguments(parser, with_preset=False)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..configs import load_preset
    from ..demo import SyntheticSpec, run_demo

    config = config_from_args(args, extra=load_preset("demo"))
    overrides = {k: v for k, v in config.to_dict().items() if k not in ("output_dir", "data_root")}
    spec = SyntheticSpec(num_train_ids=args.train_ids, num_test_ids=args.test_ids, seed=args.data_seed)
    run_demo(config.output_dir, args.data_dir, spec=spec, overrides=overrides)
    return 0
