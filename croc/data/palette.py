"""The PASCAL VOC / DAVIS colour map for palette ('P') PNGs."""

from __future__ import annotations


def voc_palette() -> list[int]:
    """256 RGB triplets, flattened: index bits interleaved into the high bits of R, G and B."""
    out = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out += [r, g, b]
    return out
