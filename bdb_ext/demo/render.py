"""Drawing one image of an identity seen by a camera (Pillow, 2x supersampled, then resized)."""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .appearance import Camera, Identity

__all__ = ["render_person", "render_background"]

_SUPERSAMPLE = 2


def _shade(colour: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    return tuple(int(np.clip(c * factor, 0, 255)) for c in colour)  # type: ignore[return-value]


def _box(x0: float, y0: float, x1: float, y1: float) -> list[float]:
    """A rectangle with its corners ordered, whichever side of the body it was measured from."""
    return [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]


def render_background(camera: Camera, rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """The camera's scene at ``size`` = (width, height), shifted a little per image (the box is a crop)."""
    width, height = size
    image = Image.new("RGB", size, camera.sky)
    draw = ImageDraw.Draw(image)
    dx, dy = rng.uniform(-0.15, 0.15) * width, rng.uniform(-0.05, 0.05) * height
    for x0, y0, x1, y1, colour in camera.props:
        draw.rectangle([x0 * width + dx, y0 * height + dy, x1 * width + dx, y1 * height + dy], fill=colour)
    horizon = camera.horizon * height + dy
    draw.rectangle([0, horizon, width, height], fill=camera.floor)
    for i in range(1, 4):  # floor tiles give the floor some texture
        y = horizon + (height - horizon) * i / 4
        draw.line([0, y, width, y], fill=_shade(camera.floor, 0.8), width=_SUPERSAMPLE)
    return image


def _torso_pattern(draw: ImageDraw.ImageDraw, who: Identity, box: tuple[float, float, float, float]) -> None:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    accent = who.top_accent
    if who.top_pattern == "hstripes":
        step = h / 6
        for i in range(0, 6, 2):
            draw.rectangle([x0, y0 + i * step, x1, y0 + (i + 1) * step], fill=accent)
    elif who.top_pattern == "vstripes":
        step = w / 5
        for i in range(0, 5, 2):
            draw.rectangle([x0 + i * step, y0, x0 + (i + 1) * step, y1], fill=accent)
    elif who.top_pattern == "checks":
        sx, sy = w / 4, h / 5
        for i in range(4):
            for j in range(5):
                if (i + j) % 2:
                    draw.rectangle([x0 + i * sx, y0 + j * sy, x0 + (i + 1) * sx, y0 + (j + 1) * sy], fill=accent)
    elif who.top_pattern == "two_tone":
        draw.rectangle([x0, y0 + h * 0.5, x1, y1], fill=accent)
    elif who.top_pattern == "logo":
        cx, cy, r = (x0 + x1) / 2, y0 + h * 0.4, min(w, h) * 0.22
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=accent)


@dataclasses.dataclass(frozen=True)
class _Pose:
    """Where one person stands in one (supersampled) image, and which way they face."""

    cx: float  # horizontal centre of the body
    top: float  # top of the head
    ph: float  # person height in pixels
    bw: float  # half the shoulder width
    facing_back: bool  # seen from behind: the backpack shows, the logo does not
    stride: float  # how far the feet are apart (signed)

    def y(self, fraction: float) -> float:
        """The image row at ``fraction`` of the person's height from the top of the head."""
        return self.top + fraction * self.ph


def _draw_pose(who: Identity, camera: Camera, rng: np.random.Generator, width: int, height: int) -> _Pose:
    ph = height * camera.scale * who.height * rng.uniform(0.9, 1.06)
    top = (height - ph) * rng.uniform(0.25, 0.75)
    cx = width / 2 + rng.uniform(-0.08, 0.08) * width
    facing_back = rng.random() < 0.4
    stride = rng.uniform(-0.08, 0.08) * ph
    return _Pose(cx=cx, top=top, ph=ph, bw=ph * 0.13 * who.width, facing_back=facing_back, stride=stride)


def _draw_backpack(draw: ImageDraw.ImageDraw, who: Identity, pose: _Pose) -> None:
    """The backpack's body behind the torso when seen from behind, or peeking out at one side from the front."""
    cx, bw, y = pose.cx, pose.bw, pose.y
    if pose.facing_back:
        draw.rectangle([cx - bw * 0.8, y(0.2), cx + bw * 0.8, y(0.45)], fill=who.bag_colour)
    else:
        side = who.bag_side
        draw.rectangle(_box(cx + side * bw * 0.85, y(0.2), cx + side * bw * 1.25, y(0.42)), fill=who.bag_colour)


def _draw_legs(draw: ImageDraw.ImageDraw, who: Identity, pose: _Pose) -> None:
    """Legs (trousers, shorts or bare legs under a skirt), then shoes, then the skirt over them."""
    cx, bw, ph, y = pose.cx, pose.bw, pose.ph, pose.y
    hip, knee, foot = y(0.5), y(0.73), y(0.96)
    leg_w = bw * 0.42
    if who.bottom_kind == "trousers":
        colour_upper = colour_lower = who.bottom
    elif who.bottom_kind == "shorts":
        colour_upper, colour_lower = who.bottom, who.skin
    else:
        colour_upper = colour_lower = who.skin
    for sign in (-1, 1):
        lx = cx + sign * bw * 0.45
        fx = lx + sign * pose.stride * 0.5
        mid = (lx + fx) / 2
        draw.polygon([(lx - leg_w, hip), (lx + leg_w, hip), (mid + leg_w * 0.9, knee), (mid - leg_w * 0.9, knee)],
                     fill=colour_upper)
        draw.polygon([(mid - leg_w * 0.9, knee), (mid + leg_w * 0.9, knee), (fx + leg_w * 0.8, foot),
                      (fx - leg_w * 0.8, foot)], fill=colour_lower)
        draw.ellipse([fx - leg_w * 1.2, foot - ph * 0.02, fx + leg_w * 1.3, foot + ph * 0.035], fill=who.shoes)
    if who.bottom_kind == "skirt":
        draw.polygon([(cx - bw * 0.95, hip - ph * 0.02), (cx + bw * 0.95, hip - ph * 0.02),
                      (cx + bw * 1.3, y(0.68)), (cx - bw * 1.3, y(0.68))], fill=who.bottom)


def _draw_arms(draw: ImageDraw.ImageDraw, who: Identity, pose: _Pose, swing: float) -> None:
    """Sleeves in the top's colour, skin below the elbow for short sleeves, and the hands."""
    cx, bw, y = pose.cx, pose.bw, pose.y
    for sign in (-1, 1):
        ax = cx + sign * bw * 1.05
        hand = (ax + sign * bw * 0.15 + swing * sign, y(0.52))
        elbow = (ax + sign * bw * 0.1, y(0.35))
        draw.line([(ax, y(0.19)), elbow], fill=who.top, width=int(bw * 0.5))
        draw.line([elbow, hand], fill=who.top if who.long_sleeves else who.skin, width=int(bw * 0.42))
        draw.ellipse([hand[0] - bw * 0.18, hand[1] - bw * 0.18, hand[0] + bw * 0.18, hand[1] + bw * 0.18],
                     fill=who.skin)


def _draw_torso(draw: ImageDraw.ImageDraw, who: Identity, pose: _Pose) -> None:
    """The torso with its pattern (a logo is on the front only)."""
    torso = (pose.cx - pose.bw, pose.y(0.17), pose.cx + pose.bw, pose.y(0.52))
    draw.rounded_rectangle(torso, radius=pose.bw * 0.3, fill=who.top)
    if not (pose.facing_back and who.top_pattern == "logo"):
        _torso_pattern(draw, who, torso)


def _draw_head(draw: ImageDraw.ImageDraw, who: Identity, pose: _Pose) -> None:
    """Neck, head (the back of it is hair), hair, hat."""
    cx, y = pose.cx, pose.y
    head_r = pose.ph * 0.065
    hy = y(0.09)
    draw.rectangle([cx - head_r * 0.4, hy + head_r * 0.6, cx + head_r * 0.4, y(0.18)], fill=who.skin)
    if who.long_hair:
        draw.rectangle([cx - head_r * 1.05, hy, cx + head_r * 1.05, y(0.24)], fill=who.hair)
    draw.ellipse([cx - head_r * 0.85, hy - head_r, cx + head_r * 0.85, hy + head_r],
                 fill=who.hair if pose.facing_back else who.skin)
    draw.chord([cx - head_r * 0.9, hy - head_r * 1.1, cx + head_r * 0.9, hy + head_r * 0.6], 180, 360,
               fill=who.hair)
    if who.hat is not None:
        draw.rectangle([cx - head_r, hy - head_r * 1.15, cx + head_r, hy - head_r * 0.35], fill=who.hat)


def _draw_carried_bag(draw: ImageDraw.ImageDraw, who: Identity, pose: _Pose) -> None:
    """A shoulder bag with its strap, or a handbag at the hand (a backpack is drawn behind the body)."""
    cx, bw, y = pose.cx, pose.bw, pose.y
    if who.bag == "shoulder":
        side = who.bag_side
        draw.line([(cx - side * bw * 0.8, y(0.18)), (cx + side * bw * 1.1, y(0.47))], fill=who.bag_colour,
                  width=max(2, int(bw * 0.15)))
        draw.rectangle(_box(cx + side * bw * 0.8, y(0.45), cx + side * bw * 1.45, y(0.58)), fill=who.bag_colour)
    elif who.bag == "handbag":
        hx = cx + who.bag_side * bw * 1.3
        draw.rectangle([hx - bw * 0.3, y(0.52), hx + bw * 0.3, y(0.64)], fill=who.bag_colour)


def _draw_occluder(draw: ImageDraw.ImageDraw, rng: np.random.Generator, width: int, height: int) -> None:
    """A partial occluder in a quarter of the images: a passer-by's shoulder, a pole or a car bonnet."""
    if rng.random() >= 0.25:
        return
    kind = rng.integers(3)
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
    if kind == 0:
        x0 = rng.choice([-0.1, 0.7]) * width
        draw.rectangle([x0, rng.uniform(0.2, 0.5) * height, x0 + rng.uniform(0.3, 0.45) * width, height],
                       fill=colour)
    elif kind == 1:
        x0 = rng.uniform(0.1, 0.8) * width
        draw.rectangle([x0, 0, x0 + 0.1 * width, height], fill=colour)
    else:
        draw.rectangle([0, rng.uniform(0.7, 0.85) * height, width, height], fill=colour)


def _camera_effects(image: Image.Image, camera: Camera, rng: np.random.Generator, width: int,
                    height: int) -> Image.Image:
    """Mirror (walking left or right), downsample to ``width`` x ``height``, blur, gain, colour cast and noise."""
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    image = image.resize((width, height), Image.Resampling.LANCZOS)
    blur = camera.blur * rng.uniform(0.5, 1.5)
    if blur > 0.3:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    pixels = np.asarray(image, dtype=np.float32)
    gain = camera.gain * rng.uniform(0.85, 1.15)
    pixels = pixels * gain * np.asarray(camera.cast, dtype=np.float32) + rng.normal(0, 4, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def render_person(who: Identity, camera: Camera, rng: np.random.Generator, height: int = 128,
                  width: int = 64) -> Image.Image:
    """One RGB image (``width`` x ``height``) of ``who`` seen by ``camera``, with per-image pose, placement,
    lighting, blur and (sometimes) an occluder.

    The parts are drawn back to front; the draws from ``rng`` happen in a fixed order (pose, arm swing,
    occluder, camera effects), so a seed gives the same image whatever else changes in the drawing code.
    """
    big_w, big_h = width * _SUPERSAMPLE, height * _SUPERSAMPLE
    image = render_background(camera, rng, (big_w, big_h))
    draw = ImageDraw.Draw(image)
    pose = _draw_pose(who, camera, rng, big_w, big_h)
    if who.bag == "backpack":
        _draw_backpack(draw, who, pose)
    _draw_legs(draw, who, pose)
    _draw_arms(draw, who, pose, swing=rng.uniform(-0.06, 0.06) * pose.ph)
    _draw_torso(draw, who, pose)
    _draw_head(draw, who, pose)
    _draw_carried_bag(draw, who, pose)
    _draw_occluder(draw, rng, big_w, big_h)
    return _camera_effects(image, camera, rng, width, height)
