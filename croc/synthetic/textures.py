"""Procedural textures, shapes, colours and the class catalogue of the embedded synthetic benchmark (numpy only).

A class decides its texture statistics (pattern type, period, orientation, contrast) and, for things, its shape and
aspect ratio; every instance draws its base colour (hue, saturation, brightness) independently of its class, so
colour alone says little about the class. Textures live in the coordinates of their instance (an object's texture
moves and turns with it), and a pattern is roughly zero-mean around the instance's base colour.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PATTERNS = ("stripes", "bars", "checks", "dots", "grain", "speckle", "waves", "plaid", "rings", "smooth",
            "streaks", "bricks", "grid")
SHAPES = ("ellipse", "rectangle", "triangle", "star", "ring", "blob", "diamond", "cross", "crescent", "hexagon",
          "dome", "capsule")
_LATTICE = 64  # value-noise lattice side (the noise tiles with period _LATTICE * cell pixels)
_NOISE_GAIN = 1.9  # brings bilinear value noise of unit-variance lattice values to about unit std


@dataclass(frozen=True)
class Appearance:
    """What a class looks like: texture statistics (and, for things, shape and aspect width/height)."""

    pattern: str
    period: float  # pixels
    angle: float  # degrees, orientation of the pattern in the instance's frame
    amp: float  # luminance modulation amplitude (image in [0, 1])
    shape: str = "ellipse"
    aspect: float = 1.0

    def __post_init__(self) -> None:
        if self.pattern not in PATTERNS or self.shape not in SHAPES:
            raise ValueError(f"unknown pattern {self.pattern!r} or shape {self.shape!r}")


@dataclass(frozen=True)
class TextureInstance:
    """One instance's draw of its class's texture: colour, jittered statistics, phase and noise lattice."""

    appearance: Appearance
    colour: np.ndarray  # (3,) float RGB in [0, 1]
    period: float
    angle: float  # radians
    amp: float
    offset: np.ndarray  # (2,) pixels, the pattern's phase
    lattice: np.ndarray  # (_LATTICE, _LATTICE) float32 unit normal values


def hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    """One HSV colour (each in [0, 1]) as RGB floats in [0, 1]."""
    i = int(h * 6.0) % 6
    f = h * 6.0 - int(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i], np.float32)


def random_colour(rng: np.random.Generator) -> np.ndarray:
    """A base colour independent of any class: uniform hue, moderate saturation and brightness."""
    return hsv_to_rgb(float(rng.uniform()), float(rng.uniform(0.15, 0.75)), float(rng.uniform(0.3, 0.8)))


def draw_texture(appearance: Appearance, rng: np.random.Generator) -> TextureInstance:
    """An instance of a class texture: random colour, period/amplitude jitter of +-15%, angle jitter of +-10 deg."""
    colour = random_colour(rng)
    period = appearance.period * float(rng.uniform(0.85, 1.15))
    angle = np.deg2rad(appearance.angle + float(rng.uniform(-10, 10)))
    amp = appearance.amp * float(rng.uniform(0.85, 1.15))
    offset = rng.uniform(0, 64, size=2).astype(np.float32)
    lattice = rng.standard_normal((_LATTICE, _LATTICE)).astype(np.float32)
    return TextureInstance(appearance, colour, period, float(angle), amp, offset, lattice)


def value_noise(lattice: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Smooth (smoothstep-bilinear) interpolation of a periodic lattice at continuous lattice coordinates."""
    gh, gw = lattice.shape
    y0f, x0f = np.floor(y), np.floor(x)
    ty, tx = y - y0f, x - x0f
    ty, tx = ty * ty * (3 - 2 * ty), tx * tx * (3 - 2 * tx)
    y0, x0 = y0f.astype(np.int64) % gh, x0f.astype(np.int64) % gw
    y1, x1 = (y0 + 1) % gh, (x0 + 1) % gw
    a, b = lattice[y0, x0], lattice[y0, x1]
    c, d = lattice[y1, x0], lattice[y1, x1]
    return (a + (b - a) * tx + (c - a) * ty + (a - b - c + d) * tx * ty) * _NOISE_GAIN


def _frac(a: np.ndarray) -> np.ndarray:
    return a - np.floor(a)


def pattern_values(tex: TextureInstance, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """The pattern (about zero-mean, within about [-1, 1]) at offsets (dy, dx) from the texture's origin (pixels)."""
    kind, p = tex.appearance.pattern, tex.period
    ca, sa = np.cos(tex.angle), np.sin(tex.angle)
    u = (dx * ca + dy * sa + tex.offset[0]).astype(np.float32)
    v = (-dx * sa + dy * ca + tex.offset[1]).astype(np.float32)
    two_pi = np.float32(2 * np.pi)
    if kind == "stripes":
        return np.sin(two_pi * u / p)
    if kind == "bars":
        return np.where(_frac(u / p) < 0.5, 0.8, -0.8)
    if kind == "checks":
        return np.where((_frac(u / p) < 0.5) ^ (_frac(v / p) < 0.5), 0.8, -0.8)
    if kind == "dots":
        return np.where((_frac(u / p) - 0.5) ** 2 + (_frac(v / p) - 0.5) ** 2 < 0.09, 1.0, -0.4)
    if kind == "grain":
        return value_noise(tex.lattice, v / p, u / p)
    if kind == "speckle":
        return value_noise(tex.lattice, v, u)
    if kind == "waves":
        return np.sin(two_pi * u / p + 1.6 * np.sin(two_pi * v / (3 * p)))
    if kind == "plaid":
        return 0.6 * (np.sin(two_pi * u / p) + np.sin(two_pi * v / p))
    if kind == "rings":
        return np.sin(two_pi * np.sqrt(dx * dx + dy * dy) / p + tex.offset[0])
    if kind == "smooth":
        return 0.6 * value_noise(tex.lattice, v / p, u / p)
    if kind == "streaks":
        return value_noise(tex.lattice, v / p, u / (8 * p))
    if kind == "bricks":
        row = np.floor(v / (p / 2))
        fu = _frac((u + (row % 2) * (p / 2)) / p)
        fv = _frac(v / (p / 2))
        return np.where((fu < 0.12) | (fv < 0.2), -1.0, 0.4)
    if kind == "grid":
        return np.where((_frac(u / p) < 0.15) | (_frac(v / p) < 0.15), 1.0, -0.38)
    raise ValueError(f"unknown pattern {kind!r}")


def paint(tex: TextureInstance, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """RGB floats [..., 3] of the textured instance: its base colour modulated in luminance by its pattern."""
    values = pattern_values(tex, dy, dx).astype(np.float32)
    return tex.colour + (tex.amp * values)[..., None]


def shape_mask(shape: str, u: np.ndarray, v: np.ndarray, harmonics: np.ndarray) -> np.ndarray:
    """Inside-test of a unit-size shape at normalised object coordinates (u right, v down, radius about 1).

    `harmonics` (4 floats in [0, 2 pi)) perturbs the blob outline per instance.
    """
    r2 = u * u + v * v
    if shape == "ellipse":
        return r2 <= 1
    if shape == "rectangle":
        return (np.abs(u) <= 0.9) & (np.abs(v) <= 0.9)
    if shape == "triangle":
        return (v <= 0.85) & (np.abs(u) <= (v + 1.0) * 0.55)
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= 1.1
    if shape == "cross":
        return ((np.abs(u) <= 0.33) & (np.abs(v) <= 1)) | ((np.abs(v) <= 0.33) & (np.abs(u) <= 1))
    if shape == "ring":
        return (r2 <= 1) & (r2 >= 0.3)
    if shape == "crescent":
        return (r2 <= 1) & ((u - 0.5) ** 2 + (v + 0.15) ** 2 > 0.62)
    if shape == "hexagon":
        au, av = np.abs(u), np.abs(v)
        return (av <= 0.87) & (0.87 * au + 0.5 * av <= 0.87)
    if shape == "dome":
        return (r2 <= 1) & (v <= 0.3)
    if shape == "capsule":
        cv = np.clip(v, -0.55, 0.55)
        return u * u + (v - cv) ** 2 <= 0.45**2 * 2.2
    theta = np.arctan2(v, u)
    r = np.sqrt(r2)
    if shape == "star":
        return r <= 0.45 + 0.55 * (0.5 + 0.5 * np.cos(5 * theta + harmonics[0])) ** 2
    if shape == "blob":
        radius = 0.8 + 0.12 * np.cos(2 * theta + harmonics[0]) + 0.08 * np.cos(3 * theta + harmonics[1])
        return r <= radius + 0.05 * np.cos(5 * theta + harmonics[2])
    raise ValueError(f"unknown shape {shape!r}")


def shape_extent(shape: str, aspect: float) -> float:
    """A bound (in radii) of how far a shape of this aspect reaches from its centre in any direction.

    Every unit shape lies within normalised radius 1.35 (the triangle's base corners reach 1.33).
    """
    return 1.35 * float(np.sqrt(max(aspect, 1.0 / aspect)))


def _interpolation(n: int, cell: float, offset: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lattice indices i0, i1 and smoothstep weight of n samples at (i / cell + offset) of a periodic lattice."""
    t = np.arange(n, dtype=np.float64) / cell + offset
    t0 = np.floor(t)
    frac = t - t0
    i0 = t0.astype(np.int64) % _LATTICE
    return i0, (i0 + 1) % _LATTICE, (frac * frac * (3 - 2 * frac)).astype(np.float32)


def smooth_field(rng: np.random.Generator, height: int, width: int, cell: float) -> np.ndarray:
    """Low-frequency value noise [H, W] (features about `cell` pixels), about unit std; separable, so cheap.

    (Gathers rather than matrix products: a multi-threaded BLAS on a busy machine is far slower for these sizes.)
    """
    lattice = rng.standard_normal((_LATTICE, _LATTICE)).astype(np.float32)
    oy, ox = rng.uniform(0, _LATTICE, size=2)
    r0, r1, fy = _interpolation(height, cell, oy)
    c0, c1, fx = _interpolation(width, cell, ox)
    rows = lattice[r0] * (1 - fy)[:, None] + lattice[r1] * fy[:, None]  # [H, _LATTICE]
    return (rows[:, c0] * (1 - fx) + rows[:, c1] * fx) * np.float32(_NOISE_GAIN)


# ---------------------------------------------------------------------------------------------- catalogue
VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")


@dataclass(frozen=True)
class ThingClass:
    id: int
    name: str
    supercategory: str
    voc: int  # PASCAL VOC class index, 0 when the category has none
    look: Appearance


@dataclass(frozen=True)
class StuffClass:
    id: int
    name: str
    supercategory: str
    look: Appearance


def _t(cid: int, name: str, sup: str, voc: int, shape: str, aspect: float, pattern: str, period: float,
       angle: float, amp: float) -> ThingClass:
    return ThingClass(cid, name, sup, voc, Appearance(pattern, period, angle, amp, shape, aspect))


def _s(cid: int, name: str, sup: str, pattern: str, period: float, angle: float, amp: float) -> StuffClass:
    return StuffClass(cid, name, sup, Appearance(pattern, period, angle, amp))


# Real COCO thing categories; the first twelve cover the twelve supercategories, the first nine have a VOC class.
THING_CATALOGUE: tuple[ThingClass, ...] = (
    _t(1, "person", "person", 15, "ellipse", 0.55, "stripes", 6, 0, 0.22),
    _t(3, "car", "vehicle", 7, "rectangle", 1.8, "checks", 8, 0, 0.18),
    _t(18, "dog", "animal", 12, "blob", 1.3, "grain", 3, 0, 0.25),
    _t(62, "chair", "furniture", 9, "triangle", 1.0, "bars", 10, 90, 0.2),
    _t(44, "bottle", "kitchen", 5, "capsule", 0.5, "rings", 5, 0, 0.22),
    _t(72, "tv", "electronic", 20, "diamond", 1.2, "plaid", 7, 45, 0.2),
    _t(28, "umbrella", "accessory", 0, "dome", 1.4, "waves", 9, 0, 0.22),
    _t(37, "sports ball", "sports", 0, "ring", 1.0, "dots", 6, 0, 0.22),
    _t(52, "banana", "food", 0, "crescent", 1.0, "stripes", 4, 60, 0.2),
    _t(78, "microwave", "appliance", 0, "cross", 1.0, "speckle", 1, 0, 0.2),
    _t(85, "clock", "indoor", 0, "star", 1.0, "checks", 4, 30, 0.2),
    _t(13, "stop sign", "outdoor", 0, "hexagon", 1.0, "bars", 4, 135, 0.2),
    _t(19, "horse", "animal", 13, "ellipse", 1.6, "waves", 5, 100, 0.2),
    _t(6, "bus", "vehicle", 6, "rectangle", 2.2, "dots", 10, 0, 0.2),
    _t(63, "couch", "furniture", 18, "capsule", 2.0, "grain", 7, 0, 0.25),
    _t(47, "cup", "kitchen", 0, "triangle", 0.8, "stripes", 10, 30, 0.22),
    _t(38, "kite", "sports", 0, "diamond", 0.8, "checks", 12, 0, 0.2),
    _t(53, "apple", "food", 0, "blob", 1.0, "plaid", 4, 0, 0.2),
    _t(73, "laptop", "electronic", 0, "hexagon", 1.4, "waves", 12, 20, 0.22),
    _t(79, "oven", "appliance", 0, "rectangle", 1.0, "rings", 9, 0, 0.2),
    _t(84, "book", "indoor", 0, "rectangle", 0.7, "bars", 6, 0, 0.2),
    _t(10, "traffic light", "outdoor", 0, "capsule", 0.4, "dots", 4, 0, 0.22),
    _t(27, "backpack", "accessory", 0, "dome", 1.0, "grain", 12, 0, 0.25),
)

# Real COCO-Stuff categories; the first fifteen cover the fifteen stuff supercategories.
STUFF_CATALOGUE: tuple[StuffClass, ...] = (
    _s(157, "sky-other", "sky", "smooth", 40, 0, 0.12),
    _s(124, "grass", "plant", "streaks", 2, 90, 0.22),
    _s(149, "road", "ground", "grain", 1.5, 0, 0.12),
    _s(171, "wall-brick", "wall", "bricks", 14, 0, 0.2),
    _s(155, "sea", "water", "waves", 11, 90, 0.14),
    _s(118, "floor-wood", "floor", "streaks", 3, 0, 0.2),
    _s(96, "building-other", "building", "grid", 10, 0, 0.2),
    _s(103, "ceiling-tile", "ceiling", "grid", 18, 0, 0.15),
    _s(181, "window-other", "window", "plaid", 14, 0, 0.18),
    _s(150, "rock", "solid", "grain", 6, 0, 0.25),
    _s(113, "fence", "structural", "bars", 8, 0, 0.25),
    _s(109, "curtain", "textile", "stripes", 12, 0, 0.16),
    _s(122, "fruit", "food-stuff", "dots", 9, 0, 0.22),
    _s(165, "table", "furniture-stuff", "streaks", 6, 0, 0.18),
    _s(132, "metal", "raw-material", "streaks", 1, 0, 0.08),
    _s(106, "clouds", "sky", "grain", 24, 0, 0.2),
    _s(169, "tree", "plant", "grain", 3, 0, 0.3),
    _s(154, "sand", "ground", "speckle", 1, 0, 0.1),
    _s(172, "wall-concrete", "wall", "grain", 2, 0, 0.08),
    _s(148, "river", "water", "stripes", 16, 100, 0.14),
    _s(101, "carpet", "floor", "speckle", 1, 0, 0.25),
    _s(128, "house", "building", "bricks", 8, 0, 0.2),
    _s(102, "ceiling-other", "ceiling", "smooth", 20, 0, 0.15),
    _s(180, "window-blind", "window", "bars", 5, 90, 0.2),
    _s(135, "mountain", "solid", "grain", 16, 0, 0.25),
    _s(146, "railing", "structural", "bars", 12, 0, 0.25),
    _s(104, "cloth", "textile", "plaid", 6, 30, 0.18),
    _s(170, "vegetable", "food-stuff", "dots", 5, 45, 0.22),
    _s(98, "cabinet", "furniture-stuff", "grid", 22, 0, 0.2),
    _s(139, "paper", "raw-material", "smooth", 8, 0, 0.06),
)
