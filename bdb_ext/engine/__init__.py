"""Training engine: the config, the trainer, checkpoints, schedules, RNG and logging helpers.

Data flows one way: data -> model -> losses -> engine; nothing below the engine imports it.
"""

from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig, config_from_dict, parse_field_value
from .scoring import evaluate
from .metrics_log import MetricsLogger
from .model_io import build_model, model_from_checkpoint, resolve_device
from .rng import capture_rng_state, restore_rng_state, seed_everything, set_deterministic
from .schedule import CosineSchedule, StaircaseSchedule, build_scheduler
from .resume import FIXED_ON_RESUME, find_resume_checkpoint, resume_config
from .trainer import CHECKPOINT_FORMAT, NonFiniteLossError, Trainer

__all__ = [
    "TrainConfig", "config_from_dict", "parse_field_value",
    "Trainer", "CHECKPOINT_FORMAT", "NonFiniteLossError", "evaluate",
    "FIXED_ON_RESUME", "find_resume_checkpoint", "resume_config",
    "save_checkpoint", "load_checkpoint", "build_model", "model_from_checkpoint", "resolve_device",
    "StaircaseSchedule", "CosineSchedule", "build_scheduler",
    "seed_everything", "set_deterministic", "capture_rng_state", "restore_rng_state",
    "MetricsLogger",
]
