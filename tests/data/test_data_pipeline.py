"""From a generated Market-1501 tree to metrics: loader, transforms, sampler, features, evaluation together."""

from __future__ import annotations

from pathlib import Path

import torch
from fake_trees import write_market
from torch import nn
from torch.utils.data import DataLoader

from bdb_ext.data import ImageDataset, Market1501, RandomIdentitySampler, build_transforms
from bdb_ext.evaluation import evaluate_reid, extract_features


class MeanColour(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def test_market_tree_to_metrics(tmp_path: Path) -> None:
    write_market(tmp_path)
    data = Market1501(tmp_path)

    train = ImageDataset(data.train, build_transforms("person", train=True, height=32, width=16))
    sampler = RandomIdentitySampler(train.pids, num_instances=2, batch_size=4, seed=0)
    images, pids, camids = next(iter(DataLoader(train, batch_size=4, sampler=sampler)))
    assert images.shape == (4, 3, 32, 16) and pids[0] == pids[1] and pids[2] == pids[3] and pids[0] != pids[2]

    test = build_transforms("person", train=False, height=32, width=16)
    qf, q_pids, q_cams = extract_features(MeanColour(), DataLoader(ImageDataset(data.query, test), batch_size=2))
    gf, g_pids, g_cams = extract_features(MeanColour(), DataLoader(ImageDataset(data.gallery, test), batch_size=3))
    assert qf.shape == (2, 3) and gf.shape == (7, 3)
    assert q_pids.tolist() == [r.pid for r in data.query] and g_cams.tolist() == [r.camid for r in data.gallery]
    results = evaluate_reid(qf, gf, q_pids, g_pids, q_cams, g_cams, max_rank=5)
    # Both queries keep a match seen by another camera (their same-camera gallery twins are removed). The features
    # are the flat colours (v, 3v, 7v) of image number v, so distance grows with |v - v'|: the matches rank 1st
    # (one step away) and 3rd (two steps, behind the query's own colour and one step), inside the top 5 whatever
    # order a CPU's rounding gives to equally distant colours.
    assert results.num_valid_queries == 2 and len(results.cmc) == 5 and results.cmc[-1] == 1.0
