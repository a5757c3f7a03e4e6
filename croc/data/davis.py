"""DAVIS-2017 video object segmentation: videos, sorted frames, indexed instance annotations and their palette.

Annotations are indexed PNGs (0 = background, 1..K = objects, 255 = void if present), read as raw palette
indices. The whole layout is checked at construction: every listed video needs its frame and annotation folders,
every annotation its frame, and in train/val (where every frame is annotated) the frames and annotations must
match one to one.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from PIL import Image

from croc.data.layout import (
    LayoutError,
    check_same_size,
    files_by_stem,
    read_label,
    read_rgb,
    read_split_file,
    require_dir,
)
from croc.errors import InputError

SPLITS = ("train", "val", "test-dev", "test-challenge")
FULLY_ANNOTATED = ("train", "val")
VOID = 255

DAVIS_LAYOUT = """\
<root>/                              (DAVIS)
  ImageSets/2017/                    train.txt  val.txt  (one video name per line)
  JPEGImages/{resolution}/<video>/   00000.jpg 00001.jpg ...
  Annotations/{resolution}/<video>/  00000.png 00001.png ...  (indexed PNG, 0 = background, 1..K objects)"""


class Davis2017:
    """The videos of one DAVIS-2017 split, with their frame and annotation paths (checked at construction)."""

    def __init__(self, root: str | os.PathLike, split: str = "val", resolution: str = "480p") -> None:
        if split not in SPLITS:
            raise InputError(f"Davis2017 split must be one of {', '.join(SPLITS)}; got {split!r}")
        self.split, self.resolution = split, resolution
        layout = DAVIS_LAYOUT.replace("{resolution}", resolution)
        self.root = require_dir(root, "DAVIS root", layout)
        frame_root = require_dir(self.root / "JPEGImages" / resolution, f"DAVIS {resolution} frame folder", layout)
        mask_root = require_dir(self.root / "Annotations" / resolution, f"DAVIS {resolution} annotation folder",
                                layout)
        self.videos = read_split_file(self.root / "ImageSets" / "2017" / f"{split}.txt",
                                      f"DAVIS-2017 {split} video list", layout)
        if len(set(self.videos)) != len(self.videos):
            raise LayoutError(f"{self.root / 'ImageSets' / '2017' / f'{split}.txt'} lists a video twice")
        self._frames: dict[str, list[Path]] = {}
        self._annotations: dict[str, list[Path]] = {}
        for video in self.videos:
            frame_dir = require_dir(frame_root / video, f"frame folder of video {video!r}", layout)
            mask_dir = require_dir(mask_root / video, f"annotation folder of video {video!r}", layout)
            frames = files_by_stem(frame_dir, (".jpg", ".jpeg"), "frame")
            masks = files_by_stem(mask_dir, (".png",), "annotation")
            if not frames:
                raise LayoutError(f"no .jpg frames in {frame_dir}\nexpected layout:\n{layout}")
            if not masks:
                raise LayoutError(f"no .png annotations in {mask_dir}\nexpected layout:\n{layout}")
            for stem in sorted(masks):
                if stem not in frames:
                    raise LayoutError(f"annotation {masks[stem]} has no frame: expected {frame_dir / (stem + '.jpg')}")
            if split in FULLY_ANNOTATED:
                for stem in sorted(frames):
                    if stem not in masks:
                        raise LayoutError(f"frame {frames[stem]} has no annotation (every {split} frame is "
                                          f"annotated): expected {mask_dir / (stem + '.png')}")
            frame_stems = sorted(frames)
            if min(masks) != frame_stems[0]:
                raise LayoutError(f"the first frame {frames[frame_stems[0]]} of video {video!r} has no annotation: "
                                  f"expected {mask_dir / (frame_stems[0] + '.png')}")
            self._frames[video] = [frames[s] for s in frame_stems]
            self._annotations[video] = [masks[s] for s in sorted(masks)]

    def __len__(self) -> int:
        return len(self.videos)

    def _check(self, video: str) -> None:
        if video not in self._frames:
            raise InputError(f"video {video!r} is not in the DAVIS-2017 {self.split} split ({len(self.videos)} videos)")

    def frames(self, video: str) -> list[Path]:
        """The frame paths of `video`, sorted by name (i.e. in time order)."""
        self._check(video)
        return list(self._frames[video])

    def annotation_paths(self, video: str) -> list[Path]:
        """The annotation paths of `video`, sorted (one per frame in train/val; at least the first otherwise)."""
        self._check(video)
        return list(self._annotations[video])

    def first_annotation(self, video: str) -> torch.Tensor:
        """The first frame's annotation, int64 [H, W] raw instance ids."""
        return self.load_annotation(self.annotation_paths(video)[0])

    @staticmethod
    def load_frame(path: str | os.PathLike) -> torch.Tensor:
        """A frame as uint8 [3, H, W] RGB."""
        return read_rgb(Path(path))

    @staticmethod
    def load_annotation(path: str | os.PathLike) -> torch.Tensor:
        """An annotation as int64 [H, W] raw palette indices (0 background, 1..K objects, 255 void)."""
        return torch.from_numpy(read_label(Path(path)))

    def palette(self, video: str) -> list[int]:
        """The palette (flat RGB list, as PIL's getpalette) of the first annotation, to write predictions alike."""
        path = self.annotation_paths(video)[0]
        with Image.open(path) as image:
            palette = image.getpalette() if image.mode == "P" else None
        if palette is None:
            raise LayoutError(f"annotation {path} is not an indexed (palette) PNG, so it has no palette to reuse")
        return palette

    def num_objects(self, video: str) -> int:
        """The number of objects: the largest instance id in the first annotation (255 = void is not an object)."""
        ids = self.first_annotation(video).numpy()
        ids = ids[ids != VOID]
        return int(ids.max()) if ids.size else 0

    def load_pair(self, video: str, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Annotation `index` of `video` and its frame: (uint8 [3, H, W], int64 [H, W]); sizes must agree."""
        mask_path = self.annotation_paths(video)[index]
        frame_path = self._frames[video][[p.stem for p in self._frames[video]].index(mask_path.stem)]
        frame, annotation = self.load_frame(frame_path), self.load_annotation(mask_path)
        check_same_size(frame, annotation, frame_path, mask_path)
        return frame, annotation
