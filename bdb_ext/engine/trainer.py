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
                           convert_sync_batchnorm, get_rank, get_world_size, is_main_process, lockstep_generator,
                           process_device, wrap_ddp)
from ..losses.bdb_loss import BDBLoss, BDBLossTerms
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig
from .loaders import TrainBatches, load_dataset
from .metrics_log import MetricsLogger
from .model_io import build_model, resolve_device
from .resume import LAST_CHECKPOINT, check_resumable, check_resume_settings
from .rng import capture_rng_state, restore_rng_state, seed_everything, set_deterministic
from .schedule import build_scheduler, restore_scheduler
from .scoring import amp_dtype, check_evaluation_settings, evaluate

__all__ = ["Trainer", "CHECKPOINT_FORMAT", "NonFiniteLossError"]

CHECKPOINT_FORMAT = "bdb_ext.trainer/1"
# The logged names of BDBLossTerms' fields, in its order (the total is logged as "loss").
_LOSS_TERMS = ("loss",) + BDBLossTerms._fields[1:]


class NonFiniteLossError(FloatingPointError, ValueError):
    """Training met a NaN or infinite loss and stopped before that step's update (``skip_nonfinite`` skips such
    steps instead). ``step`` is the 1-based global step, ``terms`` the non-finite terms with their values.

    Also a ValueError: the cause is nearly always a setting (lr, loss weights, AMP) or the data, and the command
    line reports it as one line, like any other bad setting."""

    def __init__(self, message: str, step: int, terms: dict[str, float]) -> None:
        super().__init__(message)
        self.step = step
        self.terms = terms


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
        check_evaluation_settings(config, self.dataset)  # before the first step, not after the first epoch
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
        self.eval_pending = False  # the finished epoch self.epoch is due an evaluation that has not run yet
        self.skipped_steps = 0  # steps skipped for a non-finite loss (skip_nonfinite), over the whole run
        self.last_saved: tuple[Path, int] | None = None  # (path, global step) of the newest last.pt written
        self.last_results: Any = None
        self._logger: MetricsLogger | None = None

    # -- state ----------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything to continue at the exact next iteration, as tensors and primitive containers."""
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.to_dict(),
            "num_classes": self.num_classes,
            "progress": {"epoch": self.epoch, "batch": self.batch, "global_step": self.global_step,
                         "eval_pending": self.eval_pending, "skipped_steps": self.skipped_steps},
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "sampler": self.train_data.sampler.state_dict(),
            "rng": capture_rng_state({"drop_rect": self.drop_generator}),
            "best": dict(self.best),
        }

    def load_state_dict(self, state: dict[str, Any], source: str | Path = "the checkpoint",
                        ) -> dict[str, tuple[Any, Any]]:
        """Continue from ``state`` (see :meth:`state_dict`) under this trainer's config.

        Settings of :data:`~bdb_ext.engine.resume.FIXED_ON_RESUME` must equal the checkpoint's (ValueError naming
        each one that differs); every other changed setting applies from the next step: the lr and weight decay of
        the optimizer and the schedule are set from this config after the optimizer state is loaded. Returns the
        changed settings, ``{field: (saved, now)}``.
        """
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{source} is not a {CHECKPOINT_FORMAT} checkpoint (format {state.get('format')!r})")
        check_resumable(state, source)
        changes = check_resume_settings(state.get("config", {}), self.config, source)
        if int(state["num_classes"]) != self.num_classes:
            raise ValueError(f"{source} was trained on {state['num_classes']} classes, this data set has "
                             f"{self.num_classes}")
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as error:  # shapes the config check cannot see (e.g. a checkpoint edited by hand)
            raise ValueError(f"{source} does not fit this model: {str(error).splitlines()[0]}") from error
        self.optimizer.load_state_dict(state["optimizer"])
        restore_scheduler(self.scheduler, state["scheduler"], self.config.lr, self.config.weight_decay)
        if state["scaler"] or not self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler"])
        # else: amp switched to fp16 on this resume; the loss scale starts afresh.
        self.train_data.sampler.load_state_dict(state["sampler"])
        restore_rng_state(state["rng"], {"drop_rect": self.drop_generator})
        check_lockstep(self.drop_generator)  # every rank restored the same file, so this should hold
        progress = state["progress"]
        self.epoch, self.batch, self.global_step = progress["epoch"], progress["batch"], progress["global_step"]
        self.eval_pending = bool(progress.get("eval_pending", False))
        self.skipped_steps = int(progress.get("skipped_steps", 0))
        self.best = dict(state["best"])
        if self.best.get("metric") != self.config.best_metric:  # another metric picks best.pt from now on
            self.best = {"metric": self.config.best_metric, "value": -math.inf, "epoch": -1}
        return changes

    def save(self, name: str = LAST_CHECKPOINT) -> Path | None:
        """Write the resumable state atomically to ``output_dir/name`` (rank 0 only)."""
        path = self.output_dir / name
        if name == LAST_CHECKPOINT:  # on every rank, for messages that name the last good checkpoint
            self.last_saved = (path, self.global_step)
        if not is_main_process():
            return None
        return save_checkpoint(self.state_dict(), path)

    def resume(self, path: str | Path) -> None:
        """Continue from a checkpoint written by :meth:`save` (``last.pt``; ``best.pt`` holds weights only and is
        refused). Changed settings apply or are refused as :meth:`load_state_dict` says."""
        changes = self.load_state_dict(load_checkpoint(path, map_location=self.device), source=str(path))
        self.last_saved = (Path(path), self.global_step)
        self.log(f"resumed from {path} at epoch {self.epoch + 1}, batch {self.batch}, step {self.global_step}")
        if changes:
            self.log("settings changed on resume (in force from the next step): "
                     + ", ".join(f"{name} {old!r} -> {new!r}" for name, (old, new) in changes.items()))

    # -- training -------------------------------------------------------------------------------------------
    @property
    def logger(self) -> MetricsLogger:
        if self._logger is None:
            self._logger = MetricsLogger(self.output_dir, self.config.tensorboard)
        return self._logger

    def _nonfinite_terms(self, values: torch.Tensor) -> dict[str, float]:
        """The loss terms (by logged name) that are NaN or infinite on any rank, with this rank's values.

        One read of five flags to the host per step (as GradScaler's own inf check); the values themselves are read
        only when a flag is set. Under torch.distributed the flags are reduced so that every rank takes the same
        decision and no rank is left waiting in a collective."""
        flags = all_reduce_mean((~torch.isfinite(values)).float()).tolist()
        if not any(flags):
            return {}
        return {name: value for name, flag, value in zip(_LOSS_TERMS, flags, values.tolist()) if flag > 0}

    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor | None:
        """One optimiser step on a batch; returns the five loss values (total first), detached, shape (5,), or
        None when the step was skipped for a non-finite loss (``skip_nonfinite``).

        Raises:
            NonFiniteLossError: a loss term is NaN or infinite (without ``skip_nonfinite``); the weights are not
                updated and nothing is saved, so the last checkpoint on disk is the last good one.
        """
        memory_format = torch.channels_last if self.config.channels_last else torch.contiguous_format
        images = images.to(self.device, non_blocking=True).contiguous(memory_format=memory_format)
        labels = labels.to(self.device, non_blocking=True)
        self.model.train()
        # A skipped step must leave no trace: the forward pass updates BatchNorm's running statistics.
        buffers = [b.clone() for b in self.model.buffers()] if self.config.skip_nonfinite else None
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            output = self.forward(images)
            terms = self.criterion(output, labels)
        values = torch.stack([t.detach().float() for t in terms])
        bad = self._nonfinite_terms(values)
        step = self.global_step + 1
        if bad and not self.config.skip_nonfinite:
            raise NonFiniteLossError(self._nonfinite_message(step, bad), step, bad)
        self.optimizer.zero_grad(set_to_none=True)
        # Under DDP the backward of a skipped step still runs on every rank, so the gradient buckets stay in step;
        # its gradients are then dropped.
        self.scaler.scale(terms.total).backward()
        if bad:
            self.optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():
                for buffer, saved in zip(self.model.buffers(), buffers):
                    buffer.copy_(saved)
            self.skipped_steps += 1
            self.log(f"step {step}: non-finite loss ({self._describe(bad)}), step skipped "
                     f"({self.skipped_steps} skipped so far)")
            return None
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return values

    @staticmethod
    def _describe(terms: dict[str, float]) -> str:
        return ", ".join(f"{name}={value}" for name, value in terms.items())

    def _nonfinite_message(self, step: int, terms: dict[str, float]) -> str:
        if self.last_saved is not None:
            kept = f"the last good checkpoint is {self.last_saved[0]} (step {self.last_saved[1]})"
        else:
            kept = "no checkpoint had been written yet"
        return (f"non-finite loss at step {step} (epoch {self.epoch + 1}, batch {self.batch + 1}): "
                f"{self._describe(terms)}; training stopped before this step's update and {kept}. Lower lr, check "
                f"the data, or set skip_nonfinite=true to skip such steps")

    def train_epoch(self, max_steps: int | None = None) -> dict[str, float] | None:
        """Run the rest of epoch ``self.epoch`` from batch ``self.batch``; returns its mean losses and speed,
        or None when ``max_steps`` stopped it early."""
        epoch, total = self.epoch, len(self.train_data)
        loader = self.train_data.loader(epoch, self.batch)
        lr = self.optimizer.param_groups[0]["lr"]
        sums = torch.zeros(len(_LOSS_TERMS), dtype=torch.float64, device=self.device)
        steps, skipped, images_seen, start = 0, 0, 0, time.perf_counter()
        bar = tqdm(total=total, initial=self.batch, desc=f"epoch {epoch + 1}/{self.config.epochs}",
                   disable=not (self.config.progress and is_main_process()), leave=False, dynamic_ncols=True)
        try:
            for images, labels, _ in loader:
                values = self.train_step(images, labels)
                if values is None:
                    skipped += 1
                else:
                    sums += values
                    steps += 1
                images_seen += images.shape[0] * self.world_size  # the global batch
                self.batch += 1
                self.global_step += 1
                bar.update(1)
                if steps and (steps % 10 == 0 or self.batch == total):
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
                "seconds": seconds, "skipped": skipped}

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

    def _evaluate_epoch(self) -> None:
        """Evaluate the finished epoch ``self.epoch``, log it, update best.pt, and record that it was done."""
        self.last_results = self.evaluate()
        self._after_eval(self.last_results)
        self.eval_pending = False
        self.save()  # last.pt now knows the evaluation ran and the best value so far

    def _start_output(self) -> None:
        """Everything that writes output, opened before the first step so that it fails early: the folder,
        config.json (the config in force, after any resume overrides), the metrics logger."""
        if is_main_process():
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / "config.json").write_text(
                json.dumps(self.config.to_dict(), indent=2) + "\n", encoding="utf-8")
        _ = self.logger

    def fit(self, max_steps: int | None = None) -> Any:
        """Train to ``config.epochs`` (or until ``max_steps`` global steps, checkpointing there), evaluating every
        ``eval_every`` epochs and at the end. Returns the last evaluation's results (None if none ran).

        Each finished epoch is saved to last.pt *before* it is evaluated, so a failure in the evaluation (a corrupt
        test image, an out-of-memory) loses no training; the checkpoint records the evaluation as pending, and a
        run resumed from it evaluates that epoch first."""
        self._start_output()
        self.log(f"training {self.config.backbone} BDBNet on {self.config.dataset}: {self.num_classes} classes, "
                 f"{len(self.train_data)} batches of {self.config.batch_size} per epoch, {self.config.epochs} "
                 f"epochs, device {self.device}"
                 + (f", {self.world_size} processes" if self.world_size > 1 else ""))
        if self.eval_pending:
            self._evaluate_epoch()
        while self.epoch < self.config.epochs:
            stats = self.train_epoch(max_steps)
            if stats is None:
                self.save()
                return self.last_results
            self.scheduler.step()
            self.epoch += 1
            self.batch = 0
            self.eval_pending = self.epoch % self.config.eval_every == 0 or self.epoch == self.config.epochs
            self.save()
            self.logger.log({"kind": "train", "epoch": self.epoch, "step": self.global_step, **stats})
            if self.eval_pending:
                self._evaluate_epoch()
            if max_steps is not None and self.global_step >= max_steps:
                return self.last_results
        self.logger.close()
        return self.last_results
