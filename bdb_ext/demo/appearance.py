"""Procedural people and cameras for the synthetic re-ID data set: what an identity and a camera look like.

An identity is a fixed set of attributes (body shape, skin, hair, clothing colours and patterns, bag); a camera
is a fixed scene (background, floor, lighting, blur and scale habits). Images vary the pose, position, scale,
lighting and occluders around those.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

__all__ = ["Identity", "Camera", "random_identity", "random_camera"]

RGB = tuple[int, int, int]

_SKIN = [(255, 224, 189), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36), (92, 58, 30)]
_HAIR = [(20, 20, 20), (60, 40, 20), (110, 70, 30), (200, 170, 90), (150, 150, 150), (130, 30, 20)]
TOP_PATTERNS = ("solid", "hstripes", "vstripes", "checks", "two_tone", "logo")
BOTTOMS = ("trousers", "shorts", "skirt")
BAGS = ("none", "backpack", "shoulder", "handbag")


def _colour(rng: np.random.Generator, saturation: tuple[float, float] = (0.3, 1.0),
            value: tuple[float, float] = (0.25, 0.95)) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(*saturation), rng.uniform(*value))
    return int(r * 255), int(g * 255), int(b * 255)


def _neutral_or_colour(rng: np.random.Generator) -> RGB:
    # Real clothing is often black, white, grey, denim or beige; mixing those in makes colour alone less decisive.
    if rng.random() < 0.35:
        palette = [(25, 25, 30), (235, 235, 235), (128, 128, 128), (50, 70, 120), (200, 180, 140)]
        base = palette[rng.integers(len(palette))]
        return tuple(int(np.clip(c + rng.integers(-20, 21), 0, 255)) for c in base)  # type: ignore[return-value]
    return _colour(rng)


@dataclass(frozen=True)
class Identity:
    """The fixed look of one person."""

    height: float  # fraction of the nominal person height
    width: float  # body width factor
    skin: RGB
    hair: RGB
    long_hair: bool
    hat: RGB | None
    top: RGB
    top_pattern: str
    top_accent: RGB
    long_sleeves: bool
    bottom: RGB
    bottom_kind: str
    shoes: RGB
    bag: str
    bag_colour: RGB
    bag_side: int  # -1 left, +1 right


@dataclass(frozen=True)
class Camera:
    """The fixed scene of one camera."""

    sky: RGB
    floor: RGB
    horizon: float  # fraction of the image height where the floor starts
    props: tuple[tuple[float, float, float, float, RGB], ...]  # background boxes (x0, y0, x1, y1) as fractions
    gain: float  # overall brightness
    cast: tuple[float, float, float]  # per-channel colour cast
    blur: float  # typical blur radius (pixels at output size)
    scale: float  # typical person height as a fraction of the image


def random_identity(rng: np.random.Generator) -> Identity:
    """A new person, drawn from ``rng``."""
    return Identity(
        height=float(rng.uniform(0.86, 1.0)), width=float(rng.uniform(0.8, 1.25)),
        skin=_SKIN[rng.integers(len(_SKIN))], hair=_HAIR[rng.integers(len(_HAIR))],
        long_hair=bool(rng.random() < 0.35), hat=_colour(rng) if rng.random() < 0.15 else None,
        top=_neutral_or_colour(rng), top_pattern=TOP_PATTERNS[rng.integers(len(TOP_PATTERNS))],
        top_accent=_neutral_or_colour(rng), long_sleeves=bool(rng.random() < 0.5),
        bottom=_neutral_or_colour(rng), bottom_kind=BOTTOMS[rng.choice(3, p=[0.6, 0.2, 0.2])],
        shoes=_neutral_or_colour(rng), bag=BAGS[rng.choice(4, p=[0.4, 0.25, 0.2, 0.15])],
        bag_colour=_neutral_or_colour(rng), bag_side=int(rng.choice([-1, 1])),
    )


def random_camera(rng: np.random.Generator) -> Camera:
    """A new camera scene, drawn from ``rng``."""
    props = tuple((float(x0), float(y0), float(x0 + rng.uniform(0.1, 0.5)), float(y0 + rng.uniform(0.1, 0.4)),
                   _colour(rng, (0.0, 0.5), (0.3, 0.9)))
                  for x0, y0 in zip(rng.uniform(-0.2, 0.9, 4), rng.uniform(0.0, 0.5, 4)))
    return Camera(sky=_colour(rng, (0.0, 0.4), (0.4, 0.95)), floor=_colour(rng, (0.0, 0.35), (0.2, 0.7)),
                  horizon=float(rng.uniform(0.55, 0.8)), props=props, gain=float(rng.uniform(0.65, 1.25)),
                  cast=tuple(float(c) for c in rng.uniform(0.85, 1.15, 3)), blur=float(rng.uniform(0.0, 1.2)),
                  scale=float(rng.uniform(0.78, 0.95)))
