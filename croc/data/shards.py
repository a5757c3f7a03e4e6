"""Parquet shards of encoded images (one row per image: id, source, bytes, width, height) and their manifest.

Writing is resumable and crash-safe: each shard is written to a temporary file and renamed into place, then
its small sidecar (`shard-XXXXX.json`: rows, skipped images, plan fingerprint) is written the same way. A shard
counts as finished only when its sidecar exists, so a rerun skips finished shards and redoes the rest. The
manifest (`manifest.json`, counts per shard) is written last and marks a complete output.
Images are stored as their original encoded bytes (never re-encoded); images that cannot be decoded are left
out and listed in the manifest.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from croc.data.pretrain_images import ImageRecord
from croc.errors import InputError
from croc.files import write_atomically

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
SCHEMA = pa.schema([("id", pa.string()), ("source", pa.string()), ("image", pa.binary()),
                    ("width", pa.int32()), ("height", pa.int32())])


MAX_IMAGE_PIXELS = 64_000_000  # larger images are listed as skipped, like undecodable ones (COCO's are < 0.5 MP)


def probe_image(data: bytes) -> tuple[int, int]:
    """Fully decode encoded image bytes -> (width, height); raises on anything that is not a readable image, and
    on an image over MAX_IMAGE_PIXELS (checked from the header, before decoding: a 12000 x 12000 PNG costs about
    10 s to decode on every epoch)."""
    with warnings.catch_warnings():  # PIL's DecompressionBombWarning: the limit below is the project's rule
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = Image.open(io.BytesIO(data))
    with image:
        width, height = image.size
        if width * height > MAX_IMAGE_PIXELS:
            raise ValueError(f"{width}x{height} = {width * height:,} pixels, over the limit of "
                             f"{MAX_IMAGE_PIXELS:,} (croc.data.shards.MAX_IMAGE_PIXELS)")
        image.load()
        return image.size


def plan_fingerprint(images: Sequence[ImageRecord], images_per_shard: int) -> str:
    digest = hashlib.sha256(f"{FORMAT_VERSION}:{images_per_shard}".encode())
    for image in images:
        digest.update(f"\n{image.id}\t{image.source}".encode())
    return digest.hexdigest()[:16]


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.parquet"


def _encode_shard(images: Sequence[ImageRecord]) -> tuple[bytes, int, list[dict[str, str]]]:
    """Read and check the images of one shard -> (parquet bytes, rows, skipped)."""
    rows: dict[str, list[Any]] = {name: [] for name in SCHEMA.names}
    skipped = []
    for image in images:
        try:
            data = image.path.read_bytes()
            width, height = probe_image(data)
        except Exception as error:  # unreadable or not an image: listed, never fatal
            skipped.append({"id": image.id, "path": str(image.path), "error": f"{type(error).__name__}: {error}"})
            continue
        for name, value in zip(SCHEMA.names, (image.id, image.source, data, width, height), strict=True):
            rows[name].append(value)
    buffer = io.BytesIO()
    pq.write_table(pa.table(rows, schema=SCHEMA), buffer, compression="none", row_group_size=256)
    return buffer.getvalue(), len(rows["id"]), skipped


def _write_shard(out_dir: Path, index: int, images: Sequence[ImageRecord], fingerprint: str) -> dict[str, Any]:
    payload, count, skipped = _encode_shard(images)
    write_atomically(out_dir / shard_name(index), payload)
    entry = {"file": shard_name(index), "rows": count, "skipped": skipped, "fingerprint": fingerprint}
    write_atomically(out_dir / f"shard-{index:05d}.json", json.dumps(entry).encode())
    return entry


def _finished_entry(out_dir: Path, index: int, fingerprint: str) -> dict[str, Any] | None:
    sidecar, shard = out_dir / f"shard-{index:05d}.json", out_dir / shard_name(index)
    if not (sidecar.exists() and shard.exists()):
        return None
    entry = json.loads(sidecar.read_text())
    if entry.get("fingerprint") != fingerprint:
        raise InputError(f"{out_dir} holds shards prepared from a different input or shard size "
                         f"({sidecar.name}): choose a new --out, or delete the folder to start again")
    return entry


def write_shards(images: Sequence[ImageRecord], out_dir: str | Path, images_per_shard: int = 1000,
                 workers: int = 1, kind: str = "folder", root: str = "",
                 progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Shard `images` into out_dir; resumable. progress(done_shards, total_shards). -> the manifest."""
    if not images:
        raise InputError(f"no images to shard from {root or 'the given list'}")
    if images_per_shard < 1:
        raise InputError(f"images_per_shard={images_per_shard}: must be >= 1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fingerprint = plan_fingerprint(images, images_per_shard)
    chunks = [images[i:i + images_per_shard] for i in range(0, len(images), images_per_shard)]
    entries: dict[int, dict[str, Any]] = {}
    for index in range(len(chunks)):
        entry = _finished_entry(out, index, fingerprint)
        if entry is not None:
            entries[index] = entry
    todo = [i for i in range(len(chunks)) if i not in entries]
    if progress:
        progress(len(entries), len(chunks))
    if workers > 1 and len(todo) > 1:
        with ProcessPoolExecutor(workers) as pool:
            futures = {i: pool.submit(_write_shard, out, i, chunks[i], fingerprint) for i in todo}
            for i, future in futures.items():
                entries[i] = future.result()
                if progress:
                    progress(len(entries), len(chunks))
    else:
        for i in todo:
            entries[i] = _write_shard(out, i, chunks[i], fingerprint)
            if progress:
                progress(len(entries), len(chunks))
    shards = [entries[i] for i in range(len(chunks))]
    manifest = {
        "format_version": FORMAT_VERSION, "kind": kind, "root": str(root), "fingerprint": fingerprint,
        "images_per_shard": images_per_shard, "num_images": sum(s["rows"] for s in shards),
        "num_skipped": sum(len(s["skipped"]) for s in shards), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "shards": [{"file": s["file"], "rows": s["rows"], "skipped": s["skipped"]} for s in shards],
    }
    write_atomically(out / MANIFEST, json.dumps(manifest, indent=1).encode())
    return manifest


def load_manifest(shard_dir: str | Path) -> dict[str, Any]:
    """Read and check a shard folder's manifest against its shards, before any training resource starts.

    Checked: the manifest is JSON with a `shards` list of {file, rows}; every listed shard exists inside the folder;
    each shard's parquet footer is readable, holds the listed rows and the shard schema; the rows add up to
    `num_images`, which is not 0. Footers only: cheap, and no image is decoded.
    """
    folder = Path(shard_dir)
    path = folder / MANIFEST
    if not path.exists():
        raise InputError(f"{path} not found: prepare shards first (`croc data prepare ... --out {folder}`)")
    manifest = _read_manifest(path)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise InputError(f"{path}: format_version {manifest.get('format_version')}, expected {FORMAT_VERSION}")
    entries = manifest["shards"]
    missing = [s["file"] for s in entries if not (folder / s["file"]).exists()]
    if missing:
        raise InputError(f"{folder}: shards listed in the manifest are missing: {', '.join(missing[:5])}")
    listed = sum(s["rows"] for s in entries)
    if manifest["num_images"] != listed:
        raise InputError(f"{path}: num_images is {manifest['num_images']} but its shards list {listed} rows; "
                         "prepare the shards again")
    for entry in entries:
        _check_footer(folder / entry["file"], entry["rows"])
    if manifest["num_images"] == 0:
        raise InputError(f"{folder}: the shards hold no images (all {manifest.get('num_skipped', 0)} were unreadable)")
    return manifest


def _read_manifest(path: Path) -> dict[str, Any]:
    """The manifest's JSON, with the fields training relies on present and typed."""
    try:
        manifest = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path} is not a JSON manifest ({error}); prepare the shards again") from None
    entries = manifest.get("shards") if isinstance(manifest, dict) else None
    if not isinstance(entries, list) or not isinstance(manifest.get("num_images"), int):
        raise InputError(f"{path}: a manifest needs a 'shards' list and an integer 'num_images'; prepare the "
                         "shards again")
    for entry in entries:
        ok = (isinstance(entry, dict) and isinstance(entry.get("file"), str) and isinstance(entry.get("rows"), int)
              and entry["rows"] >= 0 and entry["file"] not in ("", ".", "..")
              and Path(entry["file"]).name == entry["file"])  # a plain name: nothing outside the folder
        if not ok:
            raise InputError(f"{path}: bad shard entry {entry!r} (needs a file name inside the folder and rows >= 0)")
    return manifest


def _check_footer(shard: Path, rows: int) -> None:
    """The shard's parquet footer is readable, has the shard schema and `rows` rows."""
    try:
        metadata = pq.ParquetFile(shard).metadata
        schema = metadata.schema.to_arrow_schema()
    except (pa.ArrowException, OSError) as error:
        raise InputError(f"{shard} is not a readable parquet shard ({error}); prepare the shards again") from None
    absent = [f"{field.name}: {field.type}" for field in SCHEMA
              if field.name not in schema.names or schema.field(field.name).type != field.type]
    if absent:
        raise InputError(f"{shard}: not a shard of this project (missing or mistyped columns {', '.join(absent)})")
    if metadata.num_rows != rows:
        raise InputError(f"{shard} holds {metadata.num_rows} rows but the manifest lists {rows}; prepare the "
                         "shards again")


def shard_paths(shard_dir: str | Path, manifest: dict[str, Any] | None = None) -> list[Path]:
    manifest = manifest or load_manifest(shard_dir)
    return [Path(shard_dir) / s["file"] for s in manifest["shards"] if s["rows"] > 0]


def iter_rows(paths: Iterable[Path]) -> Iterable[dict[str, Any]]:
    """Rows of the given shards in order (for tools and tests; training streams them with Ray Data)."""
    for path in paths:
        yield from pq.read_table(path).to_pylist()
