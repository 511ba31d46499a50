"""A faithful small re-implementation of the official BDB code (daizuozhuo/batch-dropblock-network), the oracle of
the reproduction tests: the ``BFE`` module tree of ``models/networks.py`` with the official module names, and the
evaluator's ``eval_func_gpu`` of ``trainers/evaluator.py``.

Written from the official code's behaviour (read at its HEAD, 21c99ab, and at e7315dc, the commit of the 95.3 Market
model): the same layers in the same order, the same forward (including ``.squeeze()``), the same metric arithmetic;
only ``resnet50(pretrained=True)`` is replaced by random weights (tests run offline) and the deprecated
``addmm_(1, -2, ...)`` by its current spelling.
"""

from __future__ import annotations

import copy
import random

import torch
from torch import nn
from torchvision.models.resnet import Bottleneck, resnet50

__all__ = ["BatchDrop", "BFE", "randomize_", "official_features", "eval_func_gpu", "official_evaluate"]


class BatchDrop(nn.Module):
    """models/networks.py BatchDrop; ``rounding=int`` is the code before 2019-03-15, ``round`` after."""

    def __init__(self, h_ratio: float, w_ratio: float, rounding=round) -> None:
        super().__init__()
        self.h_ratio, self.w_ratio, self.rounding = h_ratio, w_ratio, rounding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            h, w = x.size()[-2:]
            rh = self.rounding(self.h_ratio * h)
            rw = self.rounding(self.w_ratio * w)
            sx = random.randint(0, h - rh)
            sy = random.randint(0, w - rw)
            mask = x.new_ones(x.size())
            mask[:, :, sx:sx + rh, sy:sy + rw] = 0
            x = x * mask
        return x


class BFE(nn.Module):
    """models/networks.py BFE(num_classes, width_ratio, height_ratio), with random weights."""

    def __init__(self, num_classes: int, width_ratio: float = 0.5, height_ratio: float = 0.5) -> None:
        super().__init__()
        resnet = resnet50(weights=None)
        self.backbone = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool, resnet.layer1,
                                      resnet.layer2, resnet.layer3)
        self.res_part = nn.Sequential(
            Bottleneck(1024, 512, stride=1, downsample=nn.Sequential(
                nn.Conv2d(1024, 2048, kernel_size=1, stride=1, bias=False), nn.BatchNorm2d(2048))),
            Bottleneck(2048, 512),
            Bottleneck(2048, 512),
        )
        self.res_part.load_state_dict(resnet.layer4.state_dict())
        reduction = nn.Sequential(nn.Conv2d(2048, 512, 1), nn.BatchNorm2d(512), nn.ReLU())
        self.global_avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.global_softmax = nn.Linear(512, num_classes)
        self.global_reduction = copy.deepcopy(reduction)
        self.res_part2 = Bottleneck(2048, 512)
        self.part_maxpool = nn.AdaptiveMaxPool2d((1, 1))
        self.batch_crop = BatchDrop(height_ratio, width_ratio)
        self.reduction = nn.Sequential(nn.Linear(2048, 1024, 1), nn.BatchNorm1d(1024), nn.ReLU())
        self.softmax = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor):
        x = self.backbone(x)
        x = self.res_part(x)
        predict, triplet_features, softmax_features = [], [], []
        glob = self.global_avgpool(x)
        global_triplet_feature = self.global_reduction(glob).squeeze()
        softmax_features.append(self.global_softmax(global_triplet_feature))
        triplet_features.append(global_triplet_feature)
        predict.append(global_triplet_feature)
        x = self.res_part2(x)
        x = self.batch_crop(x)
        triplet_feature = self.part_maxpool(x).squeeze()
        feature = self.reduction(triplet_feature)
        softmax_features.append(self.softmax(feature))
        triplet_features.append(feature)
        predict.append(feature)
        if self.training:
            return triplet_features, softmax_features
        return torch.cat(predict, 1)


def randomize_(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """Every parameter and BatchNorm buffer random (so a wrongly mapped tensor cannot go unnoticed)."""
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                tensor.fill_(7)
            elif name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif tensor.dim() > 1:
                fan_in = tensor[0].numel()
                tensor.copy_(torch.randn(tensor.shape, generator=generator) / fan_in ** 0.5)
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.1
                             + (1.0 if name.endswith("weight") else 0.0))
    return model


def official_features(model: nn.Module, images: torch.Tensor, flip: bool) -> torch.Tensor:
    """ResNetEvaluator.evaluate's feature of a batch: the plain feature, or (at the published commits) the mean of
    the features of the images and of their mirror images (TestTransform(flip=True) applies hflip)."""
    model.eval()
    with torch.no_grad():
        feature0 = model(images)
        if not flip:
            return feature0
        feature1 = model(images.flip(-1))
        return (feature0 + feature1) / 2.0


def eval_func_gpu(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """trainers/evaluator.py ResNetEvaluator.eval_func_gpu, as written (float tensors of ids)."""
    num_q, num_g = distmat.size()
    if num_g < max_rank:
        max_rank = num_g
    _, indices = torch.sort(distmat, dim=1)
    matches = g_pids[indices] == q_pids.view([num_q, -1])
    keep = ~((g_pids[indices] == q_pids.view([num_q, -1])) & (g_camids[indices] == q_camids.view([num_q, -1])))
    results = []
    num_rel = []
    for i in range(num_q):
        m = matches[i][keep[i]]
        if m.any():
            num_rel.append(m.sum())
            results.append(m[:max_rank].unsqueeze(0))
    matches = torch.cat(results, dim=0).float()
    num_rel = torch.Tensor(num_rel)
    cmc = matches.cumsum(dim=1)
    cmc[cmc > 1] = 1
    all_cmc = cmc.sum(dim=0) / cmc.size(0)
    pos = torch.Tensor(range(1, max_rank + 1))
    temp_cmc = matches.cumsum(dim=1) / pos * matches
    AP = temp_cmc.sum(dim=1) / num_rel
    mAP = AP.sum() / AP.size(0)
    return all_cmc.numpy(), mAP.item()


def official_evaluate(qf, gf, q_pids, g_pids, q_camids, g_camids):
    """The rest of ResNetEvaluator.evaluate without re-ranking: squared Euclidean distances, then eval_func_gpu."""
    m, n = qf.size(0), gf.size(0)
    q_g_dist = torch.pow(qf, 2).sum(dim=1, keepdim=True).expand(m, n) + \
        torch.pow(gf, 2).sum(dim=1, keepdim=True).expand(n, m).t()
    q_g_dist.addmm_(qf, gf.t(), beta=1, alpha=-2)
    return eval_func_gpu(q_g_dist, torch.Tensor(q_pids.tolist()), torch.Tensor(g_pids.tolist()),
                         torch.Tensor(q_camids.tolist()), torch.Tensor(g_camids.tolist()))
