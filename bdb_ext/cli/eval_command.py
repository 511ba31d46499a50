"""``bdb-ext eval``: score a checkpoint (bdb_ext's, or the official release's) on its data set's test split."""

from __future__ import annotations

import argparse

from .config_args import add_config_arguments, config_from_args, resolve_preset
from .paths import writable_file

__all__ = ["add_parser", "run"]

#: The preset an official checkpoint is evaluated with when neither --config nor --dataset names one.
OFFICIAL_DEFAULT_PRESET = "market1501-release"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval", help="evaluate a checkpoint (CMC/mAP/mINP or Recall@K)",
        description="Evaluate a trainer checkpoint (best.pt or last.pt), whose own config is used, or a checkpoint "
                    "of the official BDB release (--official-checkpoint), evaluated with the release preset of "
                    "--dataset (or --config) and the official protocol. Flags override config fields (e.g. "
                    "--data-root, --protocol official|standard|both, --rerank true, --eval-flip true).",
        epilog="examples:\n  bdb-ext eval runs/market/best.pt --data-root ~/data --protocol both\n"
               "  bdb-ext eval --official-checkpoint market_953.pth.tar --data-root ~/data\n"
               "  bdb-ext eval --official-checkpoint duke_887.pth.tar --dataset dukemtmc --data-root ~/data",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", nargs="?", help="a checkpoint written by bdb-ext train")
    parser.add_argument("--official-checkpoint", metavar="PATH",
                        help="a checkpoint of the official release ({'state_dict', 'epoch'}, e.g. market_953.pth.tar)"
                             "; evaluated with --eval-protocol official unless told otherwise")
    parser.add_argument("--json", metavar="PATH", help="also write the metrics to this JSON file")
    add_config_arguments(parser, preset_help=" (with --official-checkpoint only; default: the release preset of "
                                             f"--dataset, else {OFFICIAL_DEFAULT_PRESET})")
    parser.set_defaults(run=run)


def _model_and_config(args: argparse.Namespace):
    from ..engine import model_from_checkpoint
    from ..models import load_official_checkpoint

    if (args.checkpoint is None) == (args.official_checkpoint is None):
        raise ValueError("give either a bdb_ext checkpoint or --official-checkpoint PATH (exactly one)")
    if args.checkpoint is not None:
        if args.config is not None:
            raise ValueError("--config applies to --official-checkpoint only: a bdb_ext checkpoint carries its config")
        model, stored, _ = model_from_checkpoint(args.checkpoint)
        # The run's own config, with whatever the command line overrides (data root, re-ranking, flip, ...).
        return model, config_from_args(args, extra=stored.to_dict())
    preset = resolve_preset(args, OFFICIAL_DEFAULT_PRESET, release=True)
    # The release presets already say eval_protocol "official"; other presets get it unless a flag says otherwise.
    return (load_official_checkpoint(args.official_checkpoint),
            config_from_args(args, extra={"eval_protocol": "official"}, preset=preset))


def run(args: argparse.Namespace) -> int:
    from ..distributed import init_distributed, process_device, shutdown_distributed
    from ..distributed import get_world_size, is_main_process
    from ..engine import evaluate, resolve_device
    from ..engine.loaders import load_dataset

    report = writable_file(args.json, "--json") if args.json else None  # before, not after, the evaluation
    model, config = _model_and_config(args)
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
