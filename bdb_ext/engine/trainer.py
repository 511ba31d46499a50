"""The BDB training loop: the official recipe with AMP, channels_last, torch.compile, exact resume and logging."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..data.datasets import MetricLearningDataset, ReIDDataset
from ..distributed import (CrossRankBDBLoss, all_reduce_mean, broadcast_buffers, check_lockstep,
                           convert_sync_batchnorm, lockstep_generator, process_device, wrap_ddp)
from ..losses.bdb_loss import BDBLoss
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig
from .data import TrainBatches, load_dataset
from ..distributed import get_rank, get_world_size, is_main_process
from .evaluator import amp_dtype, evaluate
from .metrics_log import MetricsLogger
from .model_io import build_model, resolve_device
from .rng import capture_rng_state, restore_rng_state, seed_everything, set_deterministic
from .schedule import build_scheduler

__all__ = ["Trainer", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "bdb_ext.trainer/1"
_LOSS_TERMS = ("loss", "triplet_global", "triplet_bdb", "ce_global", "ce_bdb")


class Trainer:
    """Trains BDBNet on a data set as ``config`` says.

    Files under ``config.output_dir``: ``last.pt`` (everything needed to resume, written atomically at each epoch
    end and every ``checkpoint_every`` iterations), ``best.pt`` (the best evaluated weights), ``metrics.jsonl`` /
    ``metrics.csv`` (and ``tensorboard/``), ``config.json``.

    Args:
        config: the run's settings (validated here).
        dataset: a loaded data set; default ``build_dataset(config.dataset, config.data_root)``.
        log: where rank 0's one-line messages go (print by default).

    Under torch.distributed (torchrun; call :func:`bdb_ext.distributed.init_distributed` first) the model runs in
    DistributedDataParallel, one device per process; each rank loads its identities of every global P x K batch;
    the drop rectangle comes from a generator in lock-step on all ranks; the triplet terms mine over the global
    batch (``cross_rank_mining``); ``sync_bn`` converts BatchNorm to SyncBatchNorm. Checkpoints, logs and progress
    bars are rank 0's; a checkpoint resumes on any number of processes.
    """

    def __init__(self, config: TrainConfig, dataset: ReIDDataset | MetricLearningDataset | None = None, *,
                 log: Callable[[str], None] = print) -> None:
        self.config = config.validate()
        self.log = log if is_main_process() else (lambda message: None)
        self.world_size = get_world_size()
        self.device = resolve_device(config.device)
        if self.world_size > 1:
            self.device = process_device(self.device)  # "cuda" -> this process's cuda:LOCAL_RANK
        set_deterministic(config.deterministic)
        seed_everything(config.seed)
        self.dataset = dataset if dataset is not None else load_dataset(config)
        self.train_data = TrainBatches(self.dataset.train, config, rank=get_rank(), world_size=get_world_size(),
                                       pin_memory=self.device.type == "cuda")
        if len(self.train_data) == 0:
            raise ValueError("the training set yields no full batch: lower batch_size or add identities")
        self.num_classes = self.dataset.num_train_pids
        self.model = build_model(config, self.num_classes).to(self.device)
        if config.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if config.sync_bn and self.world_size > 1:
            if self.device.type != "cuda":
                raise ValueError("sync_bn needs CUDA devices (PyTorch's SyncBatchNorm does not run on the CPU)")
            self.model = convert_sync_batchnorm(self.model)
        # The rectangle has its own generator so that its stream is saved, restored and seeded apart from the
        # augmentation's. Under torch.distributed it is seeded with rank 0's seed, so every rank drops the same
        # rectangle at every iteration without exchanging it (checked once here and after a resume).
        self.drop_generator = lockstep_generator(config.seed + 1, self.device)
        check_lockstep(self.drop_generator)
        self.model.drop_pool.generator = self.drop_generator
        # rect_per_group: the ranks draw one sequence in lock-step and each uses its slice of it, so R ranks x G
        # groups drop as many distinct rectangles as R x G DataParallel replicas did.
        self.model.rect_group_shard = (get_rank(), self.world_size)
        loss_class = CrossRankBDBLoss if config.cross_rank_mining else BDBLoss
        self.criterion = loss_class(config.margin, config.label_smoothing,
                                    triplet_global=config.weight_triplet_global, triplet_bdb=config.weight_triplet_bdb,
                                    ce_global=config.weight_ce_global, ce_bdb=config.weight_ce_bdb)
        # The official recipe: plain Adam with L2 weight decay on all parameters.
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.scheduler = build_scheduler(self.optimizer, config.schedule, config.epochs, config.warmup_epochs,
                                         config.warmup_step, config.milestones)
        self.amp_dtype = amp_dtype(config.amp)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.amp == "fp16")
        # self.model stays the bare module (checkpoints, evaluation); self.forward is what training calls.
        forward = wrap_ddp(self.model, self.device) if self.world_size > 1 else self.model
        self.forward = torch.compile(forward) if config.compile else forward
        self.output_dir = Path(config.output_dir)
        self.epoch = 0  # the epoch in progress (or next to start)
        self.batch = 0  # the next batch of that epoch
        self.global_step = 0
        self.best: dict[str, Any] = {"metric": config.best_metric, "value": -math.inf, "epoch": -1}
        self.last_results: Any = None
        self._logger: MetricsLogger | None = None

    # -- state ----------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything to continue at the exact next iteration, as tensors and primitive containers."""
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.to_dict(),
            "num_classes": self.num_classes,
            "progress": {"epoch": self.epoch, "batch": self.batch, "global_step": self.global_step},
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "sampler": self.train_data.sampler.state_dict(),
            "rng": capture_rng_state({"drop_rect": self.drop_generator}),
            "best": dict(self.best),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"not a {CHECKPOINT_FORMAT} checkpoint (format {state.get('format')!r})")
        if int(state["num_classes"]) != self.num_classes:
            raise ValueError(f"the checkpoint was trained on {state['num_classes']} classes, this data set has "
                             f"{self.num_classes}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.train_data.sampler.load_state_dict(state["sampler"])
        restore_rng_state(state["rng"], {"drop_rect": self.drop_generator})
        check_lockstep(self.drop_generator)  # every rank restored the same file, so this should hold
        progress = state["progress"]
        self.epoch, self.batch, self.global_step = progress["epoch"], progress["batch"], progress["global_step"]
        self.best = dict(state["best"])

    def save(self, name: str = "last.pt") -> Path | None:
        """Write the resumable state atomically to ``output_dir/name`` (rank 0 only)."""
        if not is_main_process():
            return None
        return save_checkpoint(self.state_dict(), self.output_dir / name)

    def resume(self, path: str | Path) -> None:
        """Continue from a checkpoint written by :meth:`save`."""
        self.load_state_dict(load_checkpoint(path, map_location=self.device))
        self.log(f"resumed from {path} at epoch {self.epoch + 1}, batch {self.batch}, step {self.global_step}")

    # -- training -------------------------------------------------------------------------------------------
    @property
    def logger(self) -> MetricsLogger:
        if self._logger is None:
            self._logger = MetricsLogger(self.output_dir, self.config.tensorboard)
        return self._logger

    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """One optimiser step on a batch; returns the five loss values (total first), detached, shape (5,)."""
        memory_format = torch.channels_last if self.config.channels_last else torch.contiguous_format
        images = images.to(self.device, non_blocking=True).contiguous(memory_format=memory_format)
        labels = labels.to(self.device, non_blocking=True)
        self.model.train()
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            output = self.forward(images)
            terms = self.criterion(output, labels)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(terms.total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return torch.stack([t.detach().float() for t in terms])

    def train_epoch(self, max_steps: int | None = None) -> dict[str, float] | None:
        """Run the rest of epoch ``self.epoch`` from batch ``self.batch``; returns its mean losses and speed,
        or None when ``max_steps`` stopped it early."""
        epoch, total = self.epoch, len(self.train_data)
        loader = self.train_data.loader(epoch, self.batch)
        lr = self.optimizer.param_groups[0]["lr"]
        sums = torch.zeros(len(_LOSS_TERMS), dtype=torch.float64, device=self.device)
        steps, images_seen, start = 0, 0, time.perf_counter()
        bar = tqdm(total=total, initial=self.batch, desc=f"epoch {epoch + 1}/{self.config.epochs}",
                   disable=not (self.config.progress and is_main_process()), leave=False, dynamic_ncols=True)
        try:
            for images, labels, _ in loader:
                sums += self.train_step(images, labels)
                steps += 1
                images_seen += images.shape[0] * self.world_size  # the global batch
                self.batch += 1
                self.global_step += 1
                bar.update(1)
                if steps % 10 == 0 or self.batch == total:
                    # .item() syncs with the device, so the bar is refreshed only every few steps.
                    rate = images_seen / max(time.perf_counter() - start, 1e-9)
                    bar.set_postfix(loss=f"{sums[0].item() / steps:.3f}", lr=f"{lr:.2e}", img_s=f"{rate:.1f}")
                if self.config.checkpoint_every and self.global_step % self.config.checkpoint_every == 0:
                    self.save()
                if max_steps is not None and self.global_step >= max_steps and self.batch < total:
                    return None
        finally:
            bar.close()
        seconds = time.perf_counter() - start
        # One reduction per epoch: the logged losses are the global batch's (the CE terms differ per rank).
        means = all_reduce_mean(sums / max(steps, 1)).tolist()
        return {**dict(zip(_LOSS_TERMS, means)), "lr": lr, "img_per_s": images_seen / max(seconds, 1e-9),
                "seconds": seconds}

    def evaluate(self) -> Any:
        """Score the current weights on the test split (see :func:`bdb_ext.engine.evaluate`); under
        torch.distributed every rank extracts a shard with rank 0's weights and running statistics."""
        broadcast_buffers(self.model)
        return evaluate(self.model, self.dataset, self.config, self.device)

    def _after_eval(self, results: Any) -> None:
        scores = results.as_dict()
        record = {"kind": "eval", "epoch": self.epoch, "step": self.global_step,
                  **{k: v for k, v in scores.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}}
        self.logger.log(record)
        key = self.config.best_metric
        if key not in scores:
            raise ValueError(f"best_metric {key!r} is not among the evaluation's metrics {sorted(scores)}")
        summary = ", ".join(f"{k} {100 * scores[k]:.1f}%" for k in ("rank-1", "mAP", "mINP", "R@1") if k in scores)
        self.log(f"epoch {self.epoch}: {summary}")
        if scores[key] > self.best["value"]:
            self.best = {"metric": key, "value": float(scores[key]), "epoch": self.epoch}
            if is_main_process():
                save_checkpoint({"format": CHECKPOINT_FORMAT, "config": self.config.to_dict(),
                                 "num_classes": self.num_classes, "model": self.model.state_dict(),
                                 "metrics": {k: v for k, v in record.items() if k != "kind"},
                                 "best": dict(self.best)}, self.output_dir / "best.pt")

    def fit(self, max_steps: int | None = None) -> Any:
        """Train to ``config.epochs`` (or until ``max_steps`` global steps, checkpointing there), evaluating every
        ``eval_every`` epochs and at the end. Returns the last evaluation's results (None if none ran)."""
        if is_main_process():
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / "config.json").write_text(
                json.dumps(self.config.to_dict(), indent=2) + "\n", encoding="utf-8")
        self.log(f"training {self.config.backbone} BDBNet on {self.config.dataset}: {self.num_classes} classes, "
                 f"{len(self.train_data)} batches of {self.config.batch_size} per epoch, {self.config.epochs} "
                 f"epochs, device {self.device}"
                 + (f", {self.world_size} processes" if self.world_size > 1 else ""))
        while self.epoch < self.config.epochs:
            stats = self.train_epoch(max_steps)
            if stats is None:
                self.save()
                return self.last_results
            self.logger.log({"kind": "train", "epoch": self.epoch + 1, "step": self.global_step, **stats})
            self.scheduler.step()
            self.epoch += 1
            self.batch = 0
            if self.epoch % self.config.eval_every == 0 or self.epoch == self.config.epochs:
                self.last_results = self.evaluate()
                self._after_eval(self.last_results)
            self.save()
            if max_steps is not None and self.global_step >= max_steps:
                return self.last_results
        self.logger.close()
        return self.last_results
