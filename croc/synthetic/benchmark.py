"""The embedded synthetic benchmark: scene-centric images, exact labels and videos, in the official layouts.

`generate_benchmark(out_dir, spec)` writes, from a seed, a COCO-style folder (images, panoptic semantic PNGs, stuff
pixel maps, category jsons), a PASCAL-VOC-2012-style folder (palette PNGs with a 255 boundary band) and a
DAVIS-2017-style folder (frames, instance palette PNGs), so the real readers read it exactly like the real datasets:

    OUT/coco/{train2017,val2017,unlabeled2017}/000000000001.jpg ...
    OUT/coco/annotations/panoptic_annotations/semantic_segmentation_{train,val}2017/<stem>.png   (uint8 'L')
    OUT/coco/annotations/panoptic_annotations/panoptic_{train,val}2017/<stem>.png + panoptic_{train,val}2017.json
    OUT/coco/annotations/stuff_{train,val}2017_pixelmaps/<stem>.png + stuff_{train,val}2017.json   (uint8 'L')
    OUT/coco/annotations/instances_{train,val}2017.json, image_info_unlabeled2017.json
    OUT/voc/{JPEGImages,SegmentationClassAug,SegmentationClass}/, ImageSets/Segmentation/{trainaug,val}.txt
    OUT/davis/{JPEGImages,Annotations}/480p/<video>/00000.{jpg,png}, ImageSets/2017/{train,val}.txt
    OUT/manifest.json   (written last: its presence marks a complete output)

Every item is drawn from its own generator seeded by (seed, stream, index), so the output does not depend on the
order of generation or on the counts; files are written to a temporary name and renamed, existing files are kept,
and a complete output with the same spec is left untouched. Category ids and names are real COCO / COCO-Stuff ones.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from croc.errors import InputError
from croc.files import write_atomically
from croc.synthetic.render import (
    COCO_ID_BASE,
    OTHER_ID,
    VERSION,
    VOC_IGNORE,
    Scene,
    SynthSpec,
    VideoClip,
    item_rng,
    palette,
    panoptic_ids,
    render_scene,
    render_video,
    semantic_map,
    stuff_pixelmap,
    voc_label,
)
from croc.synthetic.textures import STUFF_CATALOGUE, THING_CATALOGUE, VOC_CLASSES, StuffClass, ThingClass

__all__ = ["OTHER_ID", "STUFF_CATALOGUE", "THING_CATALOGUE", "VERSION", "VOC_CLASSES", "VOC_IGNORE", "Scene",
           "StuffClass", "SynthSpec", "ThingClass", "VideoClip", "generate_benchmark", "item_rng", "manifest_of",
           "palette", "panoptic_ids", "render_scene", "render_video", "semantic_map", "stuff_pixelmap", "voc_label"]


def segments_info(pan: np.ndarray, semantic: np.ndarray, things: set[int]) -> list[dict[str, Any]]:
    """COCO panoptic `segments_info` of a segment-id map and its semantic map."""
    out = []
    for seg in np.unique(pan):
        if seg == 0:
            continue
        ys, xs = np.nonzero(pan == seg)
        cat = int(semantic[ys[0], xs[0]])
        x0, y0 = int(xs.min()), int(ys.min())
        out.append({"id": int(seg), "category_id": cat, "iscrowd": 0, "area": len(ys), "isthing": int(cat in things),
                    "bbox": [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1]})
    return out


# ---------------------------------------------------------------------------------------------- files
def _jpeg(array: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, "RGB").save(buf, format="JPEG", quality=quality, subsampling=0, optimize=False)
    return buf.getvalue()


def _png(array: np.ndarray, mode: str, colours: list[int] | None = None) -> bytes:
    if mode == "P":
        image = Image.frombytes("P", (array.shape[1], array.shape[0]), np.ascontiguousarray(array, np.uint8).tobytes())
        image.putpalette(colours or palette())
    else:
        image = Image.fromarray(np.ascontiguousarray(array))
        if image.mode != mode:
            raise ValueError(f"expected a {mode} image, got {image.mode} from {array.dtype} {array.shape}")
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def _write_json(path: Path, obj: Any) -> None:
    write_atomically(path, (json.dumps(obj, indent=1, sort_keys=False) + "\n").encode())


def _read_png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def _rgb_to_ids(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.uint32)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def _ids_to_rgb(ids: np.ndarray) -> np.ndarray:
    return np.stack([ids % 256, (ids // 256) % 256, ids // 65536], axis=-1).astype(np.uint8)


class _Writer:
    """Writes the items of one output folder, skipping files that already exist."""

    def __init__(self, out: Path, spec: SynthSpec) -> None:
        self.out, self.spec = out, spec
        self.written = 0

    def put(self, path: Path, make: Callable[[], bytes]) -> None:
        if not path.exists():
            write_atomically(path, make())
            self.written += 1

    # ---- COCO
    def coco_item(self, split: str, index: int) -> dict[str, Any]:
        spec, root = self.spec, self.out / "coco"
        image_id = COCO_ID_BASE[split] + index + 1
        stem = f"{image_id:012d}"
        info = {"id": image_id, "file_name": f"{stem}.jpg", "width": spec.width, "height": spec.height}
        jpg = root / f"{split}2017" / f"{stem}.jpg"
        if split == "unlabeled":
            if not jpg.exists():
                scene = render_scene(item_rng(spec.seed, f"coco/{split}", index), spec.height, spec.width, spec)
                self.put(jpg, lambda: _jpeg(scene.image, spec.jpeg_quality))
            return {"image": info}
        pan_root = root / "annotations" / "panoptic_annotations"
        sem = pan_root / f"semantic_segmentation_{split}2017" / f"{stem}.png"
        pan = pan_root / f"panoptic_{split}2017" / f"{stem}.png"
        stuff = root / "annotations" / f"stuff_{split}2017_pixelmaps" / f"{stem}.png"
        if all(p.exists() for p in (jpg, sem, pan, stuff)):
            pan_ids, semantic = _rgb_to_ids(_read_png(pan)), _read_png(sem)
        else:
            scene = render_scene(item_rng(spec.seed, f"coco/{split}", index), spec.height, spec.width, spec)
            semantic, pan_ids = semantic_map(scene), panoptic_ids(scene)
            self.put(jpg, lambda: _jpeg(scene.image, spec.jpeg_quality))
            self.put(sem, lambda: _png(semantic, "L"))
            self.put(stuff, lambda: _png(stuff_pixelmap(scene), "L"))
            self.put(pan, lambda: _png(_ids_to_rgb(pan_ids), "RGB"))
        segments = segments_info(pan_ids, semantic, {c.id for c in spec.things})
        return {"image": info, "annotation": {"image_id": image_id, "file_name": f"{stem}.png",
                                              "segments_info": segments}}

    # ---- VOC
    def voc_item(self, split: str, index: int) -> str:
        spec, root = self.spec, self.out / "voc"
        name = f"{2011 if split == 'trainaug' else 2012}_{index + 1:06d}"
        targets = [root / "JPEGImages" / f"{name}.jpg", root / "SegmentationClassAug" / f"{name}.png"]
        if split == "val":
            targets.append(root / "SegmentationClass" / f"{name}.png")
        if not all(p.exists() for p in targets):
            scene = render_scene(item_rng(spec.seed, f"voc/{split}", index), spec.height, spec.width,
                                 spec.voc_scenes(), require_voc=True)
            label = voc_label(scene, spec)
            self.put(targets[0], lambda: _jpeg(scene.image, spec.jpeg_quality))
            for target in targets[1:]:
                self.put(target, lambda: _png(label, "P"))
        return name

    # ---- DAVIS
    def davis_item(self, split: str, index: int) -> str:
        spec, root = self.spec, self.out / "davis"
        name = f"synth-{split}-{index:02d}"
        jpgs = [root / "JPEGImages" / "480p" / name / f"{f:05d}.jpg" for f in range(spec.frames)]
        pngs = [root / "Annotations" / "480p" / name / f"{f:05d}.png" for f in range(spec.frames)]
        if not all(p.exists() for p in jpgs + pngs):
            clip = render_video(item_rng(spec.seed, f"davis/{split}", index), spec)
            for f in range(spec.frames):
                self.put(jpgs[f], lambda f=f: _jpeg(clip.frames[f], spec.jpeg_quality))
                self.put(pngs[f], lambda f=f: _png(clip.instances[f], "P"))
        return name


def _category_lists(spec: SynthSpec) -> dict[str, list[dict[str, Any]]]:
    things = [{"id": c.id, "name": c.name, "supercategory": c.supercategory} for c in spec.things]
    stuff = [{"id": c.id, "name": c.name, "supercategory": c.supercategory} for c in spec.stuff]
    return {
        "instances": things,
        "panoptic": [{**c, "isthing": 1} for c in things] + [{**c, "isthing": 0} for c in stuff],
        "stuff": [*stuff, {"id": OTHER_ID, "name": "other", "supercategory": "other"}],
    }


def _info(spec: SynthSpec) -> dict[str, Any]:
    return {"description": f"CrOC embedded synthetic benchmark ({VERSION}), seed {spec.seed}", "version": VERSION,
            "year": 2017, "contributor": "croc.synthetic.benchmark", "url": "", "date_created": ""}


def _spec_dict(spec: SynthSpec) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(spec)))


def manifest_of(spec: SynthSpec) -> dict[str, Any]:
    """The manifest a complete output of `spec` carries (deterministic: no times, no paths)."""
    return {
        "version": VERSION,
        "seed": spec.seed,
        "spec": _spec_dict(spec),
        "counts": {"coco_train": spec.coco_train, "coco_val": spec.coco_val, "coco_unlabeled": spec.coco_unlabeled,
                   "voc_trainaug": spec.voc_train, "voc_val": spec.voc_val, "davis_train": spec.videos_train,
                   "davis_val": spec.videos_val, "frames_per_video": spec.frames},
        "things": [{"id": c.id, "name": c.name, "supercategory": c.supercategory, "voc": c.voc,
                    "voc_name": VOC_CLASSES[c.voc], "shape": c.look.shape, "pattern": c.look.pattern}
                   for c in spec.things],
        "stuff": [{"id": c.id, "name": c.name, "supercategory": c.supercategory, "pattern": c.look.pattern}
                  for c in spec.stuff],
        "voc_classes": list(VOC_CLASSES),
        "layouts": {"coco": "coco", "voc": "voc", "davis": "davis"},
    }


def _clean_temporaries(out: Path) -> None:
    for folder, _dirs, files in os.walk(out):
        for name in files:
            if re.fullmatch(r"\..+\.tmp\d*", name):  # what an interrupted atomic write leaves behind
                os.remove(os.path.join(folder, name))


def generate_benchmark(out_dir: str | os.PathLike, spec: SynthSpec | None = None,
                       progress: Callable[[int, int, str], None] | None = None) -> dict[str, Any]:
    """Write the benchmark of `spec` under `out_dir` (coco/, voc/, davis/, manifest.json); return the manifest.

    Resumable: existing files are kept (every file is written whole under a temporary name, then renamed), so a
    rerun after a crash only writes what is missing; a complete output of the same spec is returned untouched.
    `progress(done, total, stage)` is called after every item. Raises InputError if `out_dir` holds an output (or
    a partial one) of a different spec.
    """
    spec = spec or SynthSpec()
    out = Path(out_dir)
    expected = manifest_of(spec)
    manifest_path, pending_path = out / "manifest.json", out / ".generating.json"
    for path in (manifest_path, pending_path):
        if path.exists():
            found = json.loads(path.read_text())
            if found.get("version") != VERSION or found.get("spec") != expected["spec"]:
                raise InputError(f"{out} already holds a synthetic benchmark of another spec ({path.name}: "
                                 f"{found.get('version')}, {found.get('spec')}); use another folder or delete it")
            if path is manifest_path:
                return found
    out.mkdir(parents=True, exist_ok=True)
    _clean_temporaries(out)
    _write_json(pending_path, {"version": VERSION, "spec": expected["spec"]})
    writer = _Writer(out, spec)
    jobs: list[tuple[str, str, int]] = (
        [("coco", s, i) for s in ("train", "val", "unlabeled") for i in range(getattr(spec, f"coco_{s}"))]
        + [("voc", "trainaug", i) for i in range(spec.voc_train)] + [("voc", "val", i) for i in range(spec.voc_val)]
        + [("davis", "train", i) for i in range(spec.videos_train)]
        + [("davis", "val", i) for i in range(spec.videos_val)])
    results: dict[tuple[str, str], list[Any]] = {}
    for done, (kind, split, index) in enumerate(jobs, 1):
        item = getattr(writer, f"{kind}_item")(split, index)
        results.setdefault((kind, split), []).append(item)
        if progress is not None:
            progress(done, len(jobs), f"{kind}/{split}")
    _write_indexes(out, spec, results)
    _write_json(manifest_path, expected)
    pending_path.unlink(missing_ok=True)
    return expected


def _write_indexes(out: Path, spec: SynthSpec, results: dict[tuple[str, str], list[Any]]) -> None:
    """Category jsons, image lists and split files (rewritten on every run: they are cheap and deterministic)."""
    cats, info, ann = _category_lists(spec), _info(spec), out / "coco" / "annotations"
    for split in ("train", "val"):
        items = results.get(("coco", split), [])
        images = [item["image"] for item in items]
        base = {"info": info, "licenses": [], "images": images}
        _write_json(ann / f"instances_{split}2017.json", {**base, "annotations": [], "categories": cats["instances"]})
        _write_json(ann / "panoptic_annotations" / f"panoptic_{split}2017.json",
                    {**base, "annotations": [item["annotation"] for item in items], "categories": cats["panoptic"]})
        _write_json(ann / f"stuff_{split}2017.json", {**base, "annotations": [], "categories": cats["stuff"]})
        for folder in (out / "coco" / f"{split}2017", ann / "panoptic_annotations" / f"panoptic_{split}2017",
                       ann / "panoptic_annotations" / f"semantic_segmentation_{split}2017",
                       ann / f"stuff_{split}2017_pixelmaps"):
            folder.mkdir(parents=True, exist_ok=True)
    (out / "coco" / "unlabeled2017").mkdir(parents=True, exist_ok=True)
    _write_json(ann / "image_info_unlabeled2017.json",
                {"info": info, "licenses": [], "images": [i["image"] for i in results.get(("coco", "unlabeled"), [])],
                 "categories": cats["instances"]})
    voc = out / "voc"
    for folder in ("JPEGImages", "SegmentationClassAug", "SegmentationClass"):
        (voc / folder).mkdir(parents=True, exist_ok=True)
    for split in ("trainaug", "val"):
        names = results.get(("voc", split), [])
        write_atomically(voc / "ImageSets" / "Segmentation" / f"{split}.txt", "".join(f"{n}\n" for n in names).encode())
    davis = out / "davis"
    for folder in ("JPEGImages/480p", "Annotations/480p"):
        (davis / folder).mkdir(parents=True, exist_ok=True)
    for split in ("train", "val"):
        names = results.get(("davis", split), [])
        write_atomically(davis / "ImageSets" / "2017" / f"{split}.txt", "".join(f"{n}\n" for n in names).encode())


def main(argv: list[str] | None = None) -> int:
    """`python -m croc.synthetic.benchmark --out DIR [--seed N] [--tiny]`: write the benchmark, print its counts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output folder (coco/, voc/, davis/, manifest.json)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="a few small items of every kind")
    args = parser.parse_args(argv)
    spec = SynthSpec.tiny(args.seed) if args.tiny else SynthSpec(seed=args.seed)
    start = time.perf_counter()
    manifest = generate_benchmark(args.out, spec)
    print(f"{args.out}: {manifest['counts']} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
