"""``bdb-ext eval``: score a checkpoint on its data set's test split."""

from __future__ import annotations

import argparse
from .config_args import add_config_arguments, config_from_args
from .paths import writable_file

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval", help="evaluate a checkpoint (CMC/mAP/mINP or Recall@K)",
        description="Evaluate a trainer checkpoint (best.pt or last.pt). The run's own config is used; flags "
                    "override its fields (e.g. --data-root, --rerank true, --eval-flip true, --ap-cutoff 50).")
    parser.add_argument("checkpoint", help="a checkpoint written by bdb-ext train")
    parser.add_argument("--json", metavar="PATH", help="also write the metrics to this JSON file")
    add_config_arguments(parser, with_preset=False)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..distributed import init_distributed, process_device, shutdown_distributed
    from ..distributed import get_world_size, is_main_process
    from ..engine import evaluate, model_from_checkpoint, resolve_device
    from ..engine.data import load_dataset

    report = writable_file(args.json, "--json") if args.json else None  # before, not after, the evaluation
    model, stored, _ = model_from_checkpoint(args.checkpoint)
    # The run's own config, with whatever the command line overrides (data root, re-ranking, flip, ...).
    config = config_from_args(args, extra=stored.to_dict())
    # Under torchrun the feature extraction is sharded over the processes and rank 0 scores.
    init_distributed(config.device)
    try:
        device = resolve_device(config.device)
        if get_world_size() > 1:
            device = process_device(device)
        results = evaluate(model.to(device), load_dataset(config), config, device)
        if is_main_process():
            print(results)
            if report is not None:
                results.to_json(report)
    finally:
        shutdown_distributed()
    return 0
