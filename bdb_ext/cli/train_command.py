"""``bdb-ext train``: train BDBNet from a preset and overrides, or resume a run."""

from __future__ import annotations

import argparse
from pathlib import Path

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
               "--sync-bn true\n\nrestart on failure (each restart resumes from --output-dir/last.pt; the variable "
               "gives each\nattempt its own rendezvous store, see pytorch/pytorch#135712):"
               "\n  TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 torchrun --nproc_per_node=4 --max-restarts 3 -m bdb_ext "
               "train \\\n      --config market1501 --data-root ~/data --resume auto --checkpoint-every 500",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resume", metavar="CHECKPOINT",
                        help="continue a run from its last.pt, exactly where it stopped; 'auto': from "
                             "OUTPUT_DIR/last.pt when it exists, else start a new run (for torchrun "
                             "--max-restarts). The run's saved config is the base: give only the settings to change "
                             "(lr, schedule, epochs, evaluation, ...); changing the batch, the input size or the "
                             "model's shape is refused. best.pt holds weights only and cannot be resumed from")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="stop (with a checkpoint) after this many optimiser steps in total")
    add_config_arguments(parser, preset_help=f". Without it: the preset made for --dataset (said on stderr; an "
                                             f"error if there is none), else {DEFAULT_PRESET}; on --resume, the "
                                             f"run's saved config")
    parser.set_defaults(run=run)


def _checkpoint_and_config(args: argparse.Namespace):
    """(the checkpoint to resume from or None, the config to run with)."""
    from ..configs import load_preset
    from ..engine import find_resume_checkpoint, resume_config
    from ..engine.resume import check_resume_settings

    if not args.resume:
        return None, config_from_args(args, preset=resolve_preset(args, DEFAULT_PRESET))
    if args.resume == "auto":
        # The command line of the original run (torchrun restarts the same one) names the output folder.
        fresh = config_from_args(args, preset=resolve_preset(args, DEFAULT_PRESET))
        path = find_resume_checkpoint(fresh.output_dir)
        if path is None:
            return None, fresh
    else:
        path = Path(args.resume)
    # Resume: the saved config, then an explicitly given preset, then the flags and --set.
    preset, args.config = args.config, None
    saved = resume_config(path).to_dict()
    config = config_from_args(args, extra={**saved, **(load_preset(preset) if preset else {})})
    check_resume_settings(saved, config, path)  # a refused change is reported before anything is built
    return path, config


def run(args: argparse.Namespace) -> int:
    from ..distributed import init_distributed, shutdown_distributed
    from ..distributed import is_main_process
    from ..engine import Trainer

    resume, config = _checkpoint_and_config(args)
    writable_folder(config.output_dir, "output_dir")  # now, not after the data set is read and the model built
    # Under torchrun (RANK/WORLD_SIZE set) join the process group: NCCL for CUDA training, gloo on the CPU.
    init_distributed(config.device)
    try:
        trainer = Trainer(config)
        if resume is not None:
            trainer.resume(resume)
        results = trainer.fit(max_steps=args.max_steps)
        if results is not None and is_main_process():
            print(results)
    finally:
        shutdown_distributed()
    return 0
