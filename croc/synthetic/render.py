"""Rendering of the synthetic benchmark: its spec, scenes (image + exact labels), videos and label maps.

Vectorised numpy; each item is drawn from its own generator seeded by (seed, stream, index). The files in the
official layouts are written by croc.synthetic.benchmark.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np

from croc.data.palette import voc_palette
from croc.errors import InputError
from croc.synthetic.textures import (
    STUFF_CATALOGUE,
    THING_CATALOGUE,
    StuffClass,
    TextureInstance,
    ThingClass,
    draw_texture,
    paint,
    shape_extent,
    shape_mask,
    smooth_field,
)

VERSION = "croc-synthetic-2"  # 2: object-centric VOC scenes (voc_objects, voc_object_scale)
OTHER_ID = 183  # COCO-Stuff "other": every thing pixel in the stuff pixel maps
VOC_IGNORE = 255


COCO_ID_BASE = {"train": 0, "val": 600_000, "unlabeled": 800_000}
_COCO_SPLIT_MAX = {"train": 600_000, "val": 200_000, "unlabeled": 200_000}


@dataclass(frozen=True)
class SynthSpec:
    """What to generate: the seed, sizes, counts and how many classes (real COCO categories) to use."""

    seed: int = 0
    height: int = 192
    width: int = 256
    coco_train: int = 256
    coco_val: int = 64
    coco_unlabeled: int = 32
    voc_train: int = 48
    voc_val: int = 24
    videos_train: int = 1
    videos_val: int = 3
    frames: int = 12
    video_height: int = 128
    video_width: int = 192
    video_objects: int = 3
    n_thing_classes: int = 6
    n_stuff_classes: int = 5
    objects_min: int = 2
    objects_max: int = 6
    stuff_regions_max: int = 4
    object_scale: tuple[float, float] = (0.07, 0.22)  # object radius range, fraction of min(height, width)
    # VOC scenes are object-centric, as PASCAL VOC's photos are: fewer, larger objects (background about 74 % of the
    # valid pixels, against about 88 % with the COCO settings above)
    voc_objects: tuple[int, int] = (1, 3)
    voc_object_scale: tuple[float, float] = (0.2, 0.45)
    voc_border: int = 1  # half-width (pixels) of the 255 band around VOC objects
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        checks = {
            "height >= 16 and width >= 16": self.height >= 16 and self.width >= 16,
            "video_height >= 16 and video_width >= 16": self.video_height >= 16 and self.video_width >= 16,
            f"1 <= n_thing_classes <= {len(THING_CATALOGUE)}": 1 <= self.n_thing_classes <= len(THING_CATALOGUE),
            f"1 <= n_stuff_classes <= {len(STUFF_CATALOGUE)}": 1 <= self.n_stuff_classes <= len(STUFF_CATALOGUE),
            "0 <= objects_min <= objects_max": 0 <= self.objects_min <= self.objects_max,
            "stuff_regions_max >= 1": self.stuff_regions_max >= 1,
            "frames >= 2 and video_objects >= 2": self.frames >= 2 and self.video_objects >= 2,
            "0 < object_scale[0] <= object_scale[1] < 1": 0 < self.object_scale[0] <= self.object_scale[1] < 1,
            "1 <= voc_objects[0] <= voc_objects[1]": 1 <= self.voc_objects[0] <= self.voc_objects[1],
            "0 < voc_object_scale[0] <= voc_object_scale[1] < 1":
                0 < self.voc_object_scale[0] <= self.voc_object_scale[1] < 1,
            "1 <= jpeg_quality <= 100": 1 <= self.jpeg_quality <= 100,
            "voc_border >= 0": self.voc_border >= 0,
            "counts >= 0": min(self.coco_train, self.coco_val, self.coco_unlabeled, self.voc_train, self.voc_val,
                               self.videos_train, self.videos_val) >= 0,
            "coco counts within the id ranges": all(
                getattr(self, f"coco_{s}") <= m for s, m in _COCO_SPLIT_MAX.items()),
        }
        bad = [rule for rule, ok in checks.items() if not ok]
        if bad:
            raise InputError(f"invalid SynthSpec: needs {'; '.join(bad)} (got {self})")

    @classmethod
    def tiny(cls, seed: int = 0) -> SynthSpec:
        """A few small items of every kind (tests, smoke runs)."""
        return cls(seed=seed, height=64, width=96, coco_train=4, coco_val=3, coco_unlabeled=2, voc_train=3,
                   voc_val=2, videos_train=1, videos_val=1, frames=8, video_height=64, video_width=96)

    def voc_scenes(self) -> SynthSpec:
        """This spec with the VOC layout's object count and sizes in place of the COCO ones."""
        return replace(self, objects_min=self.voc_objects[0], objects_max=self.voc_objects[1],
                       object_scale=self.voc_object_scale)

    @property
    def things(self) -> tuple[ThingClass, ...]:
        return THING_CATALOGUE[: self.n_thing_classes]

    @property
    def stuff(self) -> tuple[StuffClass, ...]:
        return STUFF_CATALOGUE[: self.n_stuff_classes]


# ---------------------------------------------------------------------------------------------- rendering
class Scene(NamedTuple):
    """One rendered image. `stuff_ids` is the stuff layer everywhere (also under the things)."""

    image: np.ndarray  # uint8 [H, W, 3]
    thing_ids: np.ndarray  # uint8 [H, W]: COCO thing category id, 0 where stuff shows
    stuff_ids: np.ndarray  # uint8 [H, W]: COCO-Stuff category id (92..182) of the background
    instances: np.ndarray  # int32 [H, W]: 1 + index of the visible thing (in drawing order), 0 on stuff


class VideoClip(NamedTuple):
    frames: np.ndarray  # uint8 [T, H, W, 3]
    instances: np.ndarray  # uint8 [T, H, W]: object id 1..n (fixed over the clip), 0 background
    centres: np.ndarray  # float32 [T, n, 2]: (y, x) of every object's centre
    amodal_area: np.ndarray  # int64 [T, n]: pixels the object covers inside the frame, occluded or not
    category_ids: tuple[int, ...]  # COCO category of each object


@dataclass
class _Thing:
    cls: ThingClass
    tex: TextureInstance
    cy: float
    cx: float
    radius: float
    aspect: float
    rotation: float
    harmonics: np.ndarray = field(repr=False)


def item_rng(seed: int, stream: str, index: int) -> np.random.Generator:
    """The generator of one item: independent of every other item, of the counts and of the generation order."""
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(stream.encode()), index]))


def _as_rng(seed_or_rng: int | np.random.Generator) -> np.random.Generator:
    if isinstance(seed_or_rng, np.random.Generator):
        return seed_or_rng
    return np.random.default_rng(int(seed_or_rng))


def _stuff_layer(rng: np.random.Generator, h: int, w: int, spec: SynthSpec) -> tuple[np.ndarray, np.ndarray]:
    """(float image [H, W, 3], stuff ids uint8 [H, W]): 1-4 regions with smooth irregular boundaries."""
    classes = spec.stuff
    hi = min(spec.stuff_regions_max, len(classes))
    n = int(rng.integers(min(2, hi), hi + 1))
    chosen = rng.choice(len(classes), size=n, replace=False)
    yy = (np.arange(h, dtype=np.float32)[:, None] - h / 2) / max(h, w)
    xx = (np.arange(w, dtype=np.float32)[None, :] - w / 2) / max(h, w)
    fields = []
    for _ in range(n):
        theta = rng.uniform(0, 2 * np.pi)
        ramp = (np.cos(theta) * xx + np.sin(theta) * yy) * rng.uniform(2.0, 4.0)
        cell = max(h, w) * rng.uniform(0.3, 0.55)
        fields.append(0.7 * smooth_field(rng, h, w, cell) + ramp)
    region = np.argmax(np.stack(fields), axis=0)
    ids = np.array([classes[i].id for i in chosen], np.uint8)[region]
    image = np.zeros((h, w, 3), np.float32)
    py, px = np.mgrid[0:h, 0:w].astype(np.float32)
    for k, i in enumerate(chosen):
        tex = draw_texture(classes[i].look, rng)
        mask = region == k
        image[mask] = paint(tex, py[mask], px[mask])
    return image, ids


def _sample_thing(rng: np.random.Generator, cls: ThingClass, h: int, w: int, spec: SynthSpec) -> _Thing:
    lo, hi = spec.object_scale
    radius = float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) * min(h, w)
    return _Thing(cls=cls, tex=draw_texture(cls.look, rng), cy=float(rng.uniform(0.05, 0.95) * h),
                  cx=float(rng.uniform(0.05, 0.95) * w), radius=radius,
                  aspect=cls.look.aspect * float(rng.uniform(0.85, 1.15)), rotation=float(rng.uniform(-0.35, 0.35)),
                  harmonics=rng.uniform(0, 2 * np.pi, size=4))


def _thing_mask(thing: _Thing, h: int, w: int) -> tuple[slice, slice, np.ndarray, np.ndarray, np.ndarray] | None:
    """(rows, cols, mask, q, p) of `thing` inside an h x w frame: its bounding box, the shape inside it, and the
    object-frame coordinates (q along its height, p along its width); None when nothing of it is in the frame."""
    ext = shape_extent(thing.cls.look.shape, thing.aspect) * thing.radius
    y0, y1 = max(0, int(np.floor(thing.cy - ext))), min(h, int(np.ceil(thing.cy + ext)) + 1)
    x0, x1 = max(0, int(np.floor(thing.cx - ext))), min(w, int(np.ceil(thing.cx + ext)) + 1)
    if y0 >= y1 or x0 >= x1:
        return None
    dy = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(thing.cy)
    dx = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(thing.cx)
    c, s = np.float32(np.cos(thing.rotation)), np.float32(np.sin(thing.rotation))
    p, q = dx * c + dy * s, dy * c - dx * s
    sa = np.float32(np.sqrt(thing.aspect))
    mask = shape_mask(thing.cls.look.shape, p / (thing.radius * sa), q * sa / thing.radius, thing.harmonics)
    if not mask.any():
        return None
    return slice(y0, y1), slice(x0, x1), mask, q, p


def _draw_thing(thing: _Thing, image: np.ndarray, thing_ids: np.ndarray, instances: np.ndarray, index: int) -> int:
    """Paint `thing` over what is there (occluding it); return its amodal area inside the frame."""
    found = _thing_mask(thing, *thing_ids.shape)
    if found is None:
        return 0
    rows, cols, mask, q, p = found
    image[rows, cols][mask] = paint(thing.tex, q[mask], p[mask])
    thing_ids[rows, cols][mask] = thing.cls.id
    instances[rows, cols][mask] = index
    return int(mask.sum())


def _finish(image: np.ndarray, illumination: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shading and sensor noise, then uint8."""
    noisy = image * illumination[..., None] + np.float32(0.01) * rng.standard_normal(image.shape, np.float32)
    return np.round(np.clip(noisy, 0, 1) * 255).astype(np.uint8)


def _illumination(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return 1 + 0.06 * smooth_field(rng, h, w, max(h, w) * 0.8)


def render_scene(seed_or_rng: int | np.random.Generator, height: int, width: int, spec: SynthSpec | None = None,
                 *, require_voc: bool = False) -> Scene:
    """Render one scene: stuff regions, then `objects_min..objects_max` things drawn in order (later ones occlude).

    With `require_voc`, redraw (from the same generator) until a thing with a VOC class is visible, when the spec
    has such classes. Deterministic for a seed (or for the generator's state).
    """
    rng = _as_rng(seed_or_rng)
    spec = spec or SynthSpec()
    wants_voc = require_voc and any(c.voc for c in spec.things)
    voc_ids = np.array([c.id for c in spec.things if c.voc], np.uint8)
    for _attempt in range(20):
        image, stuff_ids = _stuff_layer(rng, height, width, spec)
        thing_ids = np.zeros((height, width), np.uint8)
        instances = np.zeros((height, width), np.int32)
        n = int(rng.integers(spec.objects_min, spec.objects_max + 1))
        classes = rng.integers(0, len(spec.things), size=n)
        for k, c in enumerate(classes):
            _draw_thing(_sample_thing(rng, spec.things[c], height, width, spec), image, thing_ids, instances, k + 1)
        pixels = _finish(image, _illumination(rng, height, width), rng)
        if not wants_voc or np.isin(thing_ids, voc_ids).sum() >= 16:
            break
    return Scene(pixels, thing_ids, stuff_ids, instances)


_MAX_SPEED = 0.045  # fastest move of the crossing pair, fraction of the frame width per frame


def _ease(t: np.ndarray) -> np.ndarray:
    return (1 - np.cos(np.pi * np.clip(t, 0, 1))) / 2


def render_video(seed_or_rng: int | np.random.Generator, spec: SynthSpec | None = None) -> VideoClip:
    """A static stuff background and `video_objects` things moving along smooth paths, `frames` frames.

    Objects 1 and 2 cross each other on nearby rows (one occludes the other midway; the fewer the frames, the
    shorter their travel, so that no step exceeds 4.5% of the width); the others follow slow sinusoids. Sizes and
    rotations vary slowly; the depth order is fixed for the clip.
    """
    rng = _as_rng(seed_or_rng)
    spec = spec or SynthSpec()
    h, w, n_frames, n = spec.video_height, spec.video_width, spec.frames, spec.video_objects
    background, _stuff_ids = _stuff_layer(rng, h, w, spec)
    illumination = _illumination(rng, h, w)
    classes = rng.choice(len(spec.things), size=n, replace=n > len(spec.things))
    t = np.arange(n_frames, dtype=np.float64)
    s = _ease(t / (n_frames - 1))
    row = rng.uniform(0.38, 0.62) * h
    span = min(0.56, _MAX_SPEED * (n_frames - 1) * 2 / np.pi)  # the crossing pair's travel, at most _MAX_SPEED
    paths, things = [], []
    for k, c in enumerate(classes):
        thing = _sample_thing(rng, spec.things[c], h, w, spec)
        thing.radius = float(rng.uniform(0.12, 0.19)) * min(h, w)
        phase, spin = rng.uniform(0, 2 * np.pi, size=2)
        wobble = np.sin(2 * np.pi * t / (1.5 * n_frames) + phase)
        if k < 2:
            cx = w * (0.5 + (span if k else -span) * (0.5 - s))
            cy = row + (k - 0.5) * 0.12 * min(h, w) + 0.04 * h * wobble
        else:  # above or below the crossing pair, so that it shows in the first frame
            cx = rng.uniform(0.25, 0.75) * w + 0.12 * w * np.sin(2 * np.pi * t / (rng.uniform(1.5, 2.5) * n_frames)
                                                                 + spin)
            side = 1 if rng.uniform() < 0.5 else -1
            cy = np.clip(row + side * rng.uniform(0.25, 0.35) * h, 0.18 * h, 0.82 * h) + 0.06 * h * wobble
        scale = 1 + 0.08 * np.sin(2 * np.pi * t / (2 * n_frames) + spin)
        rotation = thing.rotation + rng.uniform(-0.04, 0.04) * t
        paths.append((cy, cx, scale, rotation))
        things.append(thing)
    order = rng.permutation(n)  # depth: drawn first = furthest
    frames = np.zeros((n_frames, h, w, 3), np.uint8)
    instances = np.zeros((n_frames, h, w), np.uint8)
    centres = np.zeros((n_frames, n, 2), np.float32)
    amodal = np.zeros((n_frames, n), np.int64)
    base_radius = [thing.radius for thing in things]
    for f in range(n_frames):
        image = background.copy()
        thing_ids = np.zeros((h, w), np.uint8)
        inst = np.zeros((h, w), np.int32)
        for k in order:
            cy, cx, scale, rotation = paths[k]
            thing = things[k]
            thing.cy, thing.cx, thing.radius, thing.rotation = cy[f], cx[f], base_radius[k] * scale[f], rotation[f]
            centres[f, k] = (cy[f], cx[f])
            amodal[f, k] = _draw_thing(thing, image, thing_ids, inst, int(k) + 1)
        frames[f] = _finish(image, illumination, rng)
        instances[f] = inst
    return VideoClip(frames, instances, centres, amodal, tuple(int(spec.things[c].id) for c in classes))


# ---------------------------------------------------------------------------------------------- labels
def semantic_map(scene: Scene) -> np.ndarray:
    """Panoptic semantic PNG content: the thing id where a thing shows, else the stuff id (0 = unlabeled)."""
    return np.where(scene.thing_ids > 0, scene.thing_ids, scene.stuff_ids).astype(np.uint8)


def stuff_pixelmap(scene: Scene) -> np.ndarray:
    """COCO-Stuff pixel map: stuff ids 92..182, 183 ("other") on every thing pixel."""
    return np.where(scene.thing_ids > 0, OTHER_ID, scene.stuff_ids).astype(np.uint8)


def panoptic_ids(scene: Scene) -> np.ndarray:
    """Segment ids: category * 1000 + instance for things, category * 1000 for each stuff category (uint32)."""
    stuff = scene.stuff_ids.astype(np.uint32) * 1000
    things = scene.thing_ids.astype(np.uint32) * 1000 + scene.instances.astype(np.uint32)
    return np.where(scene.thing_ids > 0, things, stuff)


def _voc_lookup(spec: SynthSpec) -> np.ndarray:
    table = np.zeros(256, np.uint8)
    for c in spec.things:
        table[c.id] = c.voc
    return table


def voc_label(scene: Scene, spec: SynthSpec) -> np.ndarray:
    """VOC class indices (things without a VOC class and all stuff are background 0), 255 on a band of half-width
    `spec.voc_border` around every VOC object's visible outline."""
    label = _voc_lookup(spec)[scene.thing_ids]
    r = spec.voc_border
    if r == 0:
        return label
    inst = np.pad(scene.instances, r, mode="edge")
    voc = np.pad(label > 0, r, mode="edge")
    h, w = label.shape
    band = np.zeros((h, w), bool)
    centre_inst, centre_voc = inst[r:r + h, r:r + w], voc[r:r + h, r:r + w]
    for oy in range(-r, r + 1):
        for ox in range(-r, r + 1):
            if oy or ox:
                other_inst = inst[r + oy:r + oy + h, r + ox:r + ox + w]
                other_voc = voc[r + oy:r + oy + h, r + ox:r + ox + w]
                band |= (other_inst != centre_inst) & (centre_voc | other_voc)
    return np.where(band, VOC_IGNORE, label).astype(np.uint8)


def palette() -> list[int]:
    """The PASCAL VOC / DAVIS colour map, 256 RGB triplets flattened."""
    return voc_palette()
