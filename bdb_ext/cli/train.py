"""``bdb-ext train``: train BDBNet from a preset and overrides."""

from __future__ import annotations

import argparse

from .config_args import add_config_arguments, config_from_args, presets_epilog, resolve_preset
from .paths import writable_folder

__all__ = ["add_parser", "run"]

DEFAULT_PRESET = "market1501"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train BDBNet (the paper's recipe by preset)",
        description="Train BDBNet. Start from a preset (--config) and override any field; checkpoints, metrics "
                    "and config.json go to --output-dir.",
        epilog=presets_epilog() + "\n\nexample:\n  bdb-ext train --config market1501 --data-root ~/data "
               "--set amp=bf16 --channels-last true\n\nseveral GPUs (DistributedDataParallel, see docs/distributed.md):"
               "\n  torchrun --nproc_per_node=4 -m bdb_ext train --config market1501 --data-root ~/data "
               "--sync-bn true",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resume", metavar="CHECKPOINT",
                        help="continue a run from its last.pt (exactly where it stopped)")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="stop (with a checkpoint) after this many optimiser steps in total")
    add_config_arguments(parser, preset_help=f". Without it: the preset made for --dataset (said on stderr; an "
                                             f"error if there is none), else {DEFAULT_PRESET}")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..distributed import init_distributed, shutdown_distributed
    from ..distributed import is_main_process
    from ..engine import Trainer

    config = config_from_args(args, preset=resolve_preset(args, DEFAULT_PRESET))
    writable_folder(config.output_dir, "output_dir")  # now, not after the data set is read and the model built
    # Under torchrun (RANK/WORLD_SIZE set) join the process group: NCCL for CUDA training, gloo on the CPU.
    init_distributed(config.device)
    try:
        trainer = Trainer(config)
        if args.resume:
            trainer.resume(args.resume)
        results = trainer.fit(max_steps=args.max_steps)
        if results is not None and is_main_process():
            print(results)
    finally:
        shutdown_distributed()
    return 0
