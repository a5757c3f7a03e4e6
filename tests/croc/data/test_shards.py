"""Parquet shards: round trip, undecodable images listed, crash-safe resume, clear errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import croc.data.shards as shards
from croc.data.pretrain_images import ImageRecord
from croc.errors import InputError


def write_images(folder: Path, count: int, corrupt: tuple[int, ...] = ()) -> list[ImageRecord]:
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    rng = np.random.default_rng(0)
    for i in range(count):
        path = folder / f"{i:04d}.jpg"
        if i in corrupt:
            path.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
        else:
            size = (20 + i, 16 + 2 * i)  # (width, height)
            Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path, quality=90)
        records.append(ImageRecord(f"img/{i:04d}", "train2017", path))
    return records


def test_round_trip_keeps_bytes_and_sizes(tmp_path: Path) -> None:
    records = write_images(tmp_path / "images", 7)
    manifest = shards.write_shards(records, tmp_path / "out", images_per_shard=3, kind="folder")
    assert [s["rows"] for s in manifest["shards"]] == [3, 3, 1]
    assert manifest["num_images"] == 7 and manifest["num_skipped"] == 0
    rows = list(shards.iter_rows(shards.shard_paths(tmp_path / "out")))
    assert [r["id"] for r in rows] == [r.id for r in records]
    for row, record in zip(rows, records, strict=True):
        assert row["image"] == record.path.read_bytes()  # stored as encoded, never re-encoded
        with Image.open(io.BytesIO(row["image"])) as image:
            assert (row["width"], row["height"]) == image.size
        assert row["source"] == "train2017"
    assert shards.load_manifest(tmp_path / "out")["fingerprint"] == manifest["fingerprint"]


def test_undecodable_images_are_listed_not_fatal(tmp_path: Path) -> None:
    records = write_images(tmp_path / "images", 5, corrupt=(1, 4))
    (tmp_path / "images" / "0002.jpg").write_bytes((tmp_path / "images" / "0002.jpg").read_bytes()[:60])  # cut
    manifest = shards.write_shards(records, tmp_path / "out", images_per_shard=10)
    skipped = {s["id"] for shard in manifest["shards"] for s in shard["skipped"]}
    assert skipped == {"img/0001", "img/0002", "img/0004"}
    assert manifest["num_images"] == 2 and manifest["num_skipped"] == 3
    saved = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert saved["shards"][0]["skipped"][0]["path"].endswith("0001.jpg")


def test_resume_after_a_crash_skips_finished_shards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    records = write_images(tmp_path / "images", 10)
    out = tmp_path / "out"
    original = shards._encode_shard
    calls = {"n": 0}

    def crash_on_third(images):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated crash")
        return original(images)

    monkeypatch.setattr(shards, "_encode_shard", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        shards.write_shards(records, out, images_per_shard=3)
    assert not (out / "manifest.json").exists()
    assert sorted(p.name for p in out.glob("shard-*.parquet")) == ["shard-00000.parquet", "shard-00001.parquet"]
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))  # nothing half-written survives
    # A half-written shard without its sidecar (a crash between the two renames) is redone.
    (out / "shard-00002.parquet").write_bytes(b"garbage")
    finished = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-0000[01].parquet")}

    monkeypatch.setattr(shards, "_encode_shard", original)
    manifest = shards.write_shards(records, out, images_per_shard=3)
    assert manifest["num_images"] == 10 and len(manifest["shards"]) == 4
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("shard-0000[01].parquet")} == finished
    assert [r["id"] for r in shards.iter_rows(shards.shard_paths(out))] == [r.id for r in records]


def test_a_different_input_in_the_same_folder_is_refused(tmp_path: Path) -> None:
    records = write_images(tmp_path / "images", 4)
    shards.write_shards(records, tmp_path / "out", images_per_shard=2)
    with pytest.raises(InputError, match="different input"):
        shards.write_shards(records[:3], tmp_path / "out", images_per_shard=2)


def test_parallel_writing_gives_the_same_shards(tmp_path: Path) -> None:
    records = write_images(tmp_path / "images", 6)
    a = shards.write_shards(records, tmp_path / "a", images_per_shard=2, workers=1)
    b = shards.write_shards(records, tmp_path / "b", images_per_shard=2, workers=2)
    assert a["fingerprint"] == b["fingerprint"]
    for name in ("shard-00000.parquet", "shard-00002.parquet"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_manifest_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"manifest\.json not found"):
        shards.load_manifest(tmp_path)
    records = write_images(tmp_path / "images", 3)
    shards.write_shards(records, tmp_path / "out", images_per_shard=2)
    (tmp_path / "out" / "shard-00001.parquet").unlink()
    with pytest.raises(InputError, match=r"shard-00001\.parquet"):
        shards.load_manifest(tmp_path / "out")
    with pytest.raises(InputError, match="no images"):
        shards.write_shards([], tmp_path / "empty")


def _prepared(tmp_path: Path) -> tuple[Path, dict]:
    records = write_images(tmp_path / "images", 5)
    manifest = shards.write_shards(records, tmp_path / "out", images_per_shard=2)
    return tmp_path / "out", manifest


def _rewrite(folder: Path, manifest: dict, **changes) -> None:
    (folder / "manifest.json").write_text(json.dumps({**manifest, **changes}))


def test_a_manifest_that_is_not_json_or_lacks_its_fields_is_refused(tmp_path: Path) -> None:
    folder, manifest = _prepared(tmp_path)
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(InputError, match="not a JSON manifest"):
        shards.load_manifest(folder)
    for broken in ({k: v for k, v in manifest.items() if k != "shards"}, {**manifest, "shards": "x"},
                   {**manifest, "num_images": "5"}, [1, 2]):
        (folder / "manifest.json").write_text(json.dumps(broken))
        with pytest.raises(InputError, match="'shards' list and an integer 'num_images'"):
            shards.load_manifest(folder)
    for entry in ({"file": "../elsewhere.parquet", "rows": 2}, {"file": "shard-00000.parquet", "rows": -1},
                  {"file": "..", "rows": 0}, {"rows": 2}):
        _rewrite(folder, manifest, shards=[entry, *manifest["shards"][1:]])
        with pytest.raises(InputError, match="bad shard entry"):
            shards.load_manifest(folder)


def test_a_manifest_that_claims_more_images_than_its_shards_hold_is_refused(tmp_path: Path) -> None:
    folder, manifest = _prepared(tmp_path)
    _rewrite(folder, manifest, num_images=7)  # 5 rows listed
    with pytest.raises(InputError, match="num_images is 7 but its shards list 5 rows"):
        shards.load_manifest(folder)
    entries = [dict(s) for s in manifest["shards"]]
    entries[0]["rows"] = 3  # the shard's footer says 2
    _rewrite(folder, manifest, shards=entries, num_images=6)
    with pytest.raises(InputError, match=r"shard-00000\.parquet holds 2 rows but the manifest lists 3"):
        shards.load_manifest(folder)


def test_a_truncated_or_foreign_shard_is_refused_before_training(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder, _ = _prepared(tmp_path)
    shard = folder / "shard-00001.parquet"
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])  # truncated: the footer is gone
    with pytest.raises(InputError, match=r"shard-00001\.parquet is not a readable parquet shard"):
        shards.load_manifest(folder)
    pq.write_table(pa.table({"id": ["a", "b"], "pixels": [b"x", b"y"]}), shard)  # another schema, 2 rows
    with pytest.raises(InputError, match=r"shard-00001\.parquet: not a shard of this project.*image: binary"):
        shards.load_manifest(folder)
    shard.write_bytes(data)
    assert shards.load_manifest(folder)["num_images"] == 5


def test_an_oversized_image_is_listed_as_skipped_without_decoding(tmp_path: Path, monkeypatch) -> None:
    """A 12000 x 12000 PNG (144 MP; compressed to a few KB) is refused from its header and listed like an
    undecodable image; the other images are sharded."""
    records = write_images(tmp_path / "images", 2)
    huge = tmp_path / "images" / "huge.png"
    Image.new("1", (12000, 12000)).save(huge)
    records.append(ImageRecord("img/huge", "train2017", huge))
    with monkeypatch.context() as patch:  # refused from the header: decoding it would fail this test
        patch.setattr(Image.Image, "load", lambda self: pytest.fail("the oversized image was decoded"))
        with pytest.raises(ValueError, match="12000x12000 = 144,000,000 pixels, over the limit of 64,000,000"):
            shards.probe_image(huge.read_bytes())
    manifest = shards.write_shards(records, tmp_path / "out", images_per_shard=4)
    assert manifest["num_images"] == 2 and manifest["num_skipped"] == 1
    (skipped,) = manifest["shards"][0]["skipped"]
    assert skipped["id"] == "img/huge" and "over the limit" in skipped["error"]
