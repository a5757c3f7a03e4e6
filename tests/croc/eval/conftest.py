"""Fixtures shared by the evaluation tests."""

from __future__ import annotations

import pytest

from croc.data.davis import Davis2017
from croc.synthetic.benchmark import SynthSpec, generate_benchmark


@pytest.fixture(scope="session")
def synthetic_davis(tmp_path_factory) -> Davis2017:
    """Two 5-frame 64x96 validation videos of the synthetic benchmark, in the DAVIS-2017 layout."""
    root = tmp_path_factory.mktemp("synth-davis")
    generate_benchmark(root, SynthSpec(voc_train=2, voc_val=2, coco_train=2, coco_val=2, coco_unlabeled=0,
                                       videos_train=0, videos_val=2, frames=5, video_height=64, video_width=96))
    return Davis2017(root / "davis", "val")
