"""Per-patch colour and texture statistics: hand-computed values, the filter bank's selectivity, the spec."""

from __future__ import annotations

import math

import pytest
import torch

from croc.errors import InputError
from croc.eval.backbones import load_backbone
from croc.eval.features import IMAGENET_MEAN, IMAGENET_STD, normalize_images
from croc.eval.patch_statistics import ORIENTATIONS, WAVELENGTHS, PatchStatistics, gabor_bank
from croc.eval.tasks import EvalProtocol, run_task


def test_colour_statistics_are_the_patch_mean_and_std():
    # 2 x 2 patches of 4 px; the top-left patch holds two values per channel (std = half their difference).
    image = torch.zeros(1, 3, 8, 8)
    image[0, :, :4, :4] = torch.tensor([0.2, 0.4, 0.6]).view(3, 1, 1)
    image[0, 0, :2, :4] = 0.8  # red: half the patch 0.8, half 0.2 -> mean 0.5, std 0.3
    image[0, :, 4:, 4:] = 1.0
    out = PatchStatistics("colour", patch_size=4)(normalize_images(image))
    assert out.shape == (1, 6, 2, 2)
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)  # statistics in normalised units
    torch.testing.assert_close(out[0, :3, 0, 0], (torch.tensor([0.5, 0.4, 0.6]) - mean) / std, atol=1e-5, rtol=0)
    torch.testing.assert_close(out[0, 3:, 0, 0], torch.tensor([0.3, 0.0, 0.0]) / std, atol=2e-3, rtol=0)
    torch.testing.assert_close(out[0, :3, 1, 1], (1 - mean) / std, atol=1e-5, rtol=0)
    torch.testing.assert_close(out[0, :3, 0, 1], -mean / std, atol=1e-5, rtol=0)
    torch.testing.assert_close(out[0, 3:, 0, 1], torch.zeros(3), atol=2e-3, rtol=0)


def test_flat_colour_has_no_texture_energy():
    image = torch.full((1, 3, 32, 32), 0.3)
    out = PatchStatistics("texture", patch_size=16)(normalize_images(image))
    assert out.shape == (1, 6 + len(WAVELENGTHS) * len(ORIENTATIONS), 2, 2)
    torch.testing.assert_close(out[:, 6:], torch.zeros_like(out[:, 6:]), atol=1e-4, rtol=0)


@pytest.mark.parametrize(("wavelength", "degrees"), [(4.0, 0.0), (8.0, 90.0), (4.0, 45.0)])
def test_texture_energy_peaks_at_the_stripes_wavelength_and_orientation(wavelength, degrees):
    r = torch.arange(64, dtype=torch.float32)
    y, x = torch.meshgrid(r, r, indexing="ij")
    theta = math.radians(degrees)
    stripes = 0.5 + 0.3 * torch.cos(2 * math.pi * (x * math.cos(theta) + y * math.sin(theta)) / wavelength)
    out = PatchStatistics("texture", patch_size=16)(normalize_images(stripes.expand(1, 3, 64, 64)))
    energy = out[0, 6:, 1:3, 1:3].mean(dim=(1, 2))  # inner patches, away from the padded border
    channels = [(w, o) for w in WAVELENGTHS for o in ORIENTATIONS]
    assert channels[int(energy.argmax())] == (wavelength, degrees)


def test_gabor_bank_is_zero_mean_and_unit_norm():
    bank = gabor_bank()
    assert bank.shape[0] == 2 * len(WAVELENGTHS) * len(ORIENTATIONS)
    torch.testing.assert_close(bank.sum(dim=(1, 2, 3)), torch.zeros(bank.shape[0]), atol=1e-5, rtol=0)
    torch.testing.assert_close(bank.flatten(1).norm(dim=1), torch.ones(bank.shape[0]), atol=1e-5, rtol=0)


def test_spec_loads_and_names_errors():
    backbone = load_backbone("stats:colour:8")
    assert (backbone.arch, backbone.patch_size, backbone.model.channels) == ("stats:colour", 8, 6)
    assert load_backbone("stats:texture").patch_size == 16
    for bad in ("stats:shape", "stats:colour:x", "stats:colour:8:1"):
        with pytest.raises(InputError, match="stats:"):
            load_backbone(bad)


def test_statistics_run_through_the_segmentation_tasks(tmp_path):
    from croc.eval.linear_probe import LinearProbeConfig
    from croc.eval.unsupervised import UnsupervisedConfig
    from croc.synthetic.benchmark import SynthSpec, generate_benchmark

    root = tmp_path / "synth"
    generate_benchmark(root, SynthSpec(voc_train=6, voc_val=3, coco_train=0, coco_val=0, coco_unlabeled=0,
                                       videos_train=0, videos_val=0, height=64, width=96))
    protocol = EvalProtocol(linear=LinearProbeConfig(image_size=64, epochs=2, batch_size=4, classes="present"),
                            linear_epochs={"voc": 2},
                            unsup=UnsupervisedConfig(image_size=64, mask_size=16, seeds=(0,), iterations=5,
                                                     restarts=1, classes="present"))  # pca_dim 50 > 22 channels
    backbone = load_backbone("stats:texture:16")
    for task in ("linear:voc", "unsup:voc"):
        outcome = run_task(task, backbone, protocol, {"voc": str(root / "voc")}, tmp_path / task, pictures=1)
        assert 0.0 <= outcome.headline <= 1.0
