"""The person and metric-learning transform recipes, Cutout and PadToSquare."""

from __future__ import annotations

import pytest
import torch
import torchvision.transforms as T
from PIL import Image

from bdb_ext.data import IMAGENET_MEAN, IMAGENET_STD, Cutout, PadToSquare, build_transforms


def test_cutout_fills_one_square_inside_the_image() -> None:
    torch.manual_seed(0)
    cutout = Cutout(p=1.0, size=4, value=0.0)
    for _ in range(20):
        out = cutout(torch.ones(3, 10, 7))
        zero = (out == 0).all(0)
        rows, cols = zero.nonzero(as_tuple=True)
        assert zero.sum() == 16 and rows.max() - rows.min() == 3 and cols.max() - cols.min() == 3
    image = torch.ones(3, 10, 7)
    assert torch.equal(Cutout(p=0.0)(image), image)
    assert torch.equal(Cutout(p=1.0, size=7)(image), image)  # not smaller than the image: left alone
    assert torch.equal(image, torch.ones(3, 10, 7))  # the input is not modified in place


def test_cutout_probability() -> None:
    torch.manual_seed(1)
    hits = sum(bool((Cutout(p=0.5, size=2)(torch.ones(1, 5, 5)) == 0).any()) for _ in range(400))
    # torch's CPU generator gives the same draws on every x86-64 CPU, and the bounds are +-5 standard deviations of
    # 400 fair draws anyway.
    assert 150 < hits < 250
    with pytest.raises(ValueError, match="p must be in"):
        Cutout(p=1.5)
    with pytest.raises(TypeError, match="apply it after ToTensor"):
        Cutout()(Image.new("RGB", (4, 4)))


def test_pad_to_square_centres_content() -> None:
    image = Image.new("RGB", (4, 8), (255, 255, 255))
    square = PadToSquare()(image)
    assert square.size == (8, 8)
    assert square.getpixel((1, 4)) == (0, 0, 0) and square.getpixel((2, 4)) == (255, 255, 255)
    assert square.getpixel((5, 4)) == (255, 255, 255) and square.getpixel((6, 4)) == (0, 0, 0)
    tensor = PadToSquare()(torch.ones(3, 3, 8))
    assert tensor.shape == (3, 8, 8) and tensor[:, :2].sum() == 0 and tensor[:, 2:5].min() == 1


def test_person_recipe() -> None:
    image = Image.new("RGB", (64, 128), (120, 30, 200))
    torch.manual_seed(0)
    out = build_transforms("person", train=True)(image)
    assert out.shape == (3, 384, 128) and out.dtype == torch.float32
    test = build_transforms("person", train=False)
    expected = T.Normalize(IMAGENET_MEAN, IMAGENET_STD)(T.ToTensor()(image.resize((128, 384), Image.BILINEAR)))
    # A one-colour image keeps its colour under any interpolation, so the comparison does not depend on how a CPU
    # vectorises the resize; the tolerance only absorbs uint8 rounding (1/255 / std ~ 0.02).
    assert torch.allclose(test(image), expected, atol=0.05)
    names = [type(t).__name__ for t in build_transforms("person", True, random_erasing=True).transforms]
    assert names == ["Resize", "RandomHorizontalFlip", "ToTensor", "Normalize", "Cutout", "RandomErasing"]
    names = [type(t).__name__ for t in build_transforms("person", True, cutout=False, flip=False).transforms]
    assert names == ["Resize", "ToTensor", "Normalize"]


def test_metric_recipe() -> None:
    image = Image.new("RGB", (300, 200))
    steps = build_transforms("metric", train=True).transforms
    assert [type(t).__name__ for t in steps] == ["PadToSquare", "Resize", "RandomCrop", "RandomHorizontalFlip",
                                                 "ToTensor", "Normalize", "RandomErasing"]
    erasing = steps[-1]
    assert (erasing.p, erasing.scale, erasing.ratio, erasing.value) == (0.5, (0.02, 0.4), (0.3, 3.33), 0)
    assert build_transforms("metric", train=True)(image).shape == (3, 224, 224)
    assert build_transforms("metric", train=False)(image).shape == (3, 256, 256)
    assert build_transforms("metric", train=False, dataset="sop")(image).shape == (3, 224, 224)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="recipe must be 'person' or 'metric'"):
        build_transforms("car", train=True)
    with pytest.raises(ValueError, match="height must be a positive int"):
        build_transforms("person", train=True, height=0)
    with pytest.raises(ValueError, match="crop .* must not exceed resize"):
        build_transforms("metric", train=True, resize=200, crop=224)
