"""TrainConfig.validate: every numeric field is checked for range and finiteness when the config is built, not when
the first step, epoch or evaluation reaches it."""

from __future__ import annotations

import math

import pytest

from bdb_ext.engine import TrainConfig, config_from_dict

BAD = [
    ("lr", math.inf), ("lr", math.nan), ("lr", 0.0), ("lr", -1e-3),
    ("weight_decay", -1.0), ("weight_decay", math.inf),
    ("label_smoothing", 1.0), ("label_smoothing", -0.1), ("label_smoothing", math.nan),
    ("h_ratio", 0.0), ("h_ratio", 1.5), ("w_ratio", math.nan),
    ("margin", -0.3), ("margin", math.inf),
    ("weight_triplet_global", -1.0), ("weight_ce_bdb", math.nan),
    ("seed", -1), ("seed", 2**63),
    ("device", "foo"), ("device", "cuda:x"),
    ("milestones", [0]), ("milestones", [300, 200]),
    ("ap_cutoff", 0), ("test_size", 0),
]


@pytest.mark.parametrize(("name", "value"), BAD, ids=[f"{n}={v!r}" for n, v in BAD])
def test_out_of_range_values_are_refused(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"^{name} must be"):
        config_from_dict({name: value})


@pytest.mark.parametrize(("name", "value"), [
    ("margin", None), ("margin", 0.0), ("label_smoothing", 0.0), ("weight_decay", 0.0), ("h_ratio", 1.0),
    ("weight_ce_global", 0.0), ("seed", 0), ("seed", 2**63 - 1), ("device", "cpu"), ("device", "cuda:1"),
    ("device", "auto"), ("milestones", []), ("milestones", [10, 10, 20]), ("ap_cutoff", None), ("ap_cutoff", 50),
])
def test_edge_values_that_are_meaningful_are_kept(name: str, value: object) -> None:
    assert getattr(config_from_dict({name: value}), name) == value


def test_defaults_are_valid() -> None:
    assert TrainConfig().validate() == TrainConfig()
