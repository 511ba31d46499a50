"""The official protocol equals the official evaluator (transcribed in tests/official_bfe.py) on random inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bdb_ext.evaluation import OFFICIAL_RANKS, ProtocolComparison, ReIDResults, evaluate_reid, rank_metrics
from official_bfe import eval_func_gpu, official_evaluate


def _random_split(seed: int, num_q: int = 40, num_g: int = 160, ids: int = 12, cams: int = 4):
    g = torch.Generator().manual_seed(seed)
    qf, gf = torch.randn(num_q, 16, generator=g), torch.randn(num_g, 16, generator=g)
    q_pids, g_pids = torch.randint(0, ids, (num_q,), generator=g), torch.randint(0, ids, (num_g,), generator=g)
    q_cams, g_cams = torch.randint(0, cams, (num_q,), generator=g), torch.randint(0, cams, (num_g,), generator=g)
    return qf, gf, q_pids, g_pids, q_cams, g_cams


@pytest.mark.parametrize("seed", range(5))
def test_official_protocol_equals_the_official_evaluator(seed):
    qf, gf, q_pids, g_pids, q_cams, g_cams = _random_split(seed)
    expected_cmc, expected_map = official_evaluate(qf, gf, q_pids, g_pids, q_cams, g_cams)
    results = evaluate_reid(qf, gf, q_pids, g_pids, q_cams, g_cams, eval_protocol="official", flip=True)
    assert results.ap_cutoff == 50 and results.ranks == OFFICIAL_RANKS and results.eval_protocol == "official"
    np.testing.assert_allclose(results.cmc[:50], expected_cmc, rtol=0, atol=1e-6)
    assert results.mAP == pytest.approx(expected_map, abs=1e-6)
    # The truncation matters on these inputs: full-ranking AP reads higher.
    standard = evaluate_reid(qf, gf, q_pids, g_pids, q_cams, g_cams)
    assert standard.mAP > results.mAP + 1e-3 and standard.ranks == (1, 5, 10, 20)


def test_official_ap_divides_by_all_matches_beyond_rank_50():
    """A query with one match at rank 1 and one at rank 60: official AP = (1/1) / 2, not 1/1."""
    num_g = 80
    dist = torch.arange(num_g, dtype=torch.float32).unsqueeze(0) + 1.0
    g_pids = torch.full((num_g,), 9)
    g_pids[0] = g_pids[59] = 1
    g_cams, q_pids, q_cams = torch.zeros(num_g, dtype=torch.long), torch.tensor([1]), torch.tensor([1])
    _, official_map = eval_func_gpu(dist, q_pids.float(), g_pids.float(), q_cams.float(), g_cams.float())
    ours = rank_metrics(dist, q_pids, g_pids, q_cams, g_cams, ap_cutoff=50)
    assert official_map == pytest.approx(0.5) and ours.mAP == pytest.approx(0.5)


def test_official_protocol_refuses_other_settings():
    qf, gf, q_pids, g_pids, q_cams, g_cams = _random_split(0)
    with pytest.raises(ValueError, match="truncates AP at 50"):
        evaluate_reid(qf, gf, q_pids, g_pids, q_cams, g_cams, eval_protocol="official", ap_cutoff=10)
    with pytest.raises(ValueError, match="squared\\) Euclidean"):
        evaluate_reid(qf, gf, q_pids, g_pids, q_cams, g_cams, eval_protocol="official", metric="cosine")
    with pytest.raises(ValueError, match="eval_protocol must be 'standard' or 'official'"):
        evaluate_reid(qf, gf, q_pids, g_pids, q_cams, g_cams, eval_protocol="both")


def test_both_prints_side_by_side_and_records_the_protocol(tmp_path):
    qf, gf, q_pids, g_pids, q_cams, g_cams = _random_split(1)
    official = evaluate_reid(qf, gf, q_pids, g_pids, q_cams, g_cams, eval_protocol="official", flip=True)
    standard = evaluate_reid(qf, gf, q_pids, g_pids, q_cams, g_cams, flip=False)
    both = ProtocolComparison(official=official, standard=standard)
    text = str(both)
    assert "standard |  official" in text and "AP cut-off" in text
    assert f"{100 * standard.mAP:.1f}% | {100 * official.mAP:>8.1f}%" in text
    for k in OFFICIAL_RANKS:
        assert f"Rank-{k} " in text
    data = json.loads(both.to_json(tmp_path / "both.json").read_text())
    assert data["eval_protocol"] == "both" and data["mAP"] == official.mAP and data["rank-16"] == official.rank(16)
    assert data["standard"]["eval_protocol"] == "standard" and data["standard"]["mAP"] == standard.mAP
    assert data["flip"] is True and data["standard"]["flip"] is False and data["ap_cutoff"] == 50


def test_results_record_protocol_and_flip():
    qf, gf, q_pids, g_pids, q_cams, g_cams = _random_split(2)
    results = evaluate_reid(qf, gf, q_pids, g_pids, q_cams, g_cams, eval_protocol="official", flip=True)
    assert isinstance(results, ReIDResults)
    data = results.as_dict()
    assert (data["eval_protocol"], data["flip"], data["ap_cutoff"]) == ("official", True, 50)
    assert "flip-averaged" in str(results) and "official protocol" in str(results)
