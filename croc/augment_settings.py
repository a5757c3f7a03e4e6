"""The augmentation's settings and constants, without torch (the config schema is generated from them).

The geometric stage's crop scale and the photometric stage's strengths; croc/augment.py applies them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from croc.settings import check_pair, check_settings, setting

GLOBAL_SCALE = (0.25, 1.0)  # random resized crop: area fraction of the two global views
BLUR_SIGMA = (0.1, 2.0)  # DINO's blur sigma range, in pixels of a 224 px view
REFERENCE_VIEW = 224  # the view size DINO's blur range is meant for


@dataclass(frozen=True)
class Photometric:
    """Strengths and probabilities of the photometric stage; the defaults are DINO's (and the authors').

    Views 1 and 2 differ in blur and solarisation probabilities (index 0 / 1 of the pairs). The blur sigma range
    is in pixels of the view: DINO's (0.1, 2.0) is meant for 224 px views, so smaller views (the synthetic
    benchmark's 96 px) scale it with the view size (`blur_scales_with_view`), or blur would erase textures a
    224 px view keeps.
    """

    jitter_p: float = setting(0.8, ge=0, le=1)
    brightness: float = setting(0.4, ge=0, lt=1)
    contrast: float = setting(0.4, ge=0, lt=1)
    saturation: float = setting(0.2, ge=0, lt=1)
    hue: float = setting(0.1, ge=0, le=0.5)  # a full turn of the hue circle is +-0.5
    grayscale_p: float = setting(0.2, ge=0, le=1)
    blur_sigma: tuple[float, float] = BLUR_SIGMA  # pixels of a 224 px view
    blur_p: tuple[float, float] = setting((1.0, 0.1), ge=0, le=1)  # view 1, view 2
    solarize_p: tuple[float, float] = setting((0.0, 0.2), ge=0, le=1)  # view 1, view 2
    blur_scales_with_view: bool = False  # true: `for_view(size)` scales blur_sigma by size / 224 (size < 224)

    def __post_init__(self) -> None:
        for name in ("blur_sigma", "blur_p", "solarize_p"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        what, section = "photometric augmentation", "data.photometric"
        check_settings(self, section, what)
        check_pair(section, "blur_sigma", self.blur_sigma, f"0 < low <= high <= {BLUR_SIGMA[1]} (the blur kernel's "
                   "reach)", lambda low, high: 0 < low <= high <= BLUR_SIGMA[1], what)
        for name in ("blur_p", "solarize_p"):
            check_pair(section, name, getattr(self, name), "two probabilities, view 1 and view 2",
                       lambda _a, _b: True, what)

    def scaled_blur(self, view_size: int, reference: int = REFERENCE_VIEW) -> Photometric:
        """The same settings with the blur sigma range scaled from `reference` px views to `view_size` px."""
        lo, hi = self.blur_sigma
        factor = min(1.0, view_size / reference)
        return replace(self, blur_sigma=(lo * factor, hi * factor))

    def for_view(self, view_size: int) -> Photometric:
        """The settings applied to `view_size` px views: blur scaled when `blur_scales_with_view` says so."""
        return self.scaled_blur(view_size) if self.blur_scales_with_view else self
