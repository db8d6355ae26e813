"""The colour legend under a column of saliency maps: its colour bar, the values at its ends
and what a colour means for the page's polarity, clipping and display (:mod:`.overlay`)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable

import numpy as np

from .overlay import OverlayStyle, colourise, png_bytes

POLARITY_TEXT = {
    "absolute": "|s|: how strongly a pixel counts, whatever its sign",
    "positive": "max(s, 0): evidence for the label only",
    "negative": "max(−s, 0): evidence against the label only",
    "signed": "s with its sign: the middle colour is 0, the right end (+) raises the label's score, "
              "the left end (−) lowers it",
}


@dataclass(frozen=True)
class Legend:
    """The colour bar of one explainer column: ``low``/``high`` are the values at its ends
    (None when every map has its own scale), ``text`` says what a colour means."""

    bar: bytes
    low: float | None
    high: float | None
    text: str
    label: str = ""      # shown instead of the end values (outlines have no value scale)

    @property
    def ends(self) -> str:
        if self.label:
            return self.label
        if self.high is None:
            return "0 … each map's max" if self.low == 0.0 else "−max … 0 … +max of each map"
        return f"{self.low:.3g} … {self.high:.3g}"


@lru_cache(maxsize=64)
def colour_bar(cmap: str, width: int = 160, height: int = 10) -> bytes:
    """PNG of the colour map from its low (left) to its high (right) end."""
    row = colourise(np.linspace(0.0, 1.0, width, dtype=np.float32), cmap)
    return png_bytes(np.ascontiguousarray(np.broadcast_to(row[None], (height, width, 3))))


def legend(style: OverlayStyle, clip_values: Iterable[float], *, signed_maps: bool = True) -> Legend:
    """The legend of maps drawn with ``style`` and these clip values (one per map of the
    column). ``signed_maps`` False (the explainer's maps are ≥ 0) is said in signed mode."""
    vals = sorted({float(v) for v in clip_values})
    shared = style.scale != "map" and len(vals) == 1
    high = vals[0] if shared else None
    if shared:
        low = -high if style.signed else 0.0
    else:
        low = None if style.signed else 0.0
    text = POLARITY_TEXT[style.polarity]
    if style.signed and not signed_maps:
        text += "; this explainer's maps are never negative"
    if style.outlines:
        text += (f"; outlines enclose the smallest region holding {style.outline_mass:g} % of each map's mass once "
                 f"clipped to its {style.clip_low:g}th–{style.clip_percentile:g}th percentiles"
                 + ("; + regions in the right-end colour, − regions in the left-end one" if style.signed else ""))
        return Legend(colour_bar(style.colormap), None, None, text, f"outline: {style.outline_mass:g} % of the mass")
    if not shared:
        text += "; each map has its own scale"
    text += f"; values beyond the {style.clip_percentile:g}th percentile of |s| saturate"
    if style.clip_low > 0:
        text += f"; values below each map's {style.clip_low:g}th percentile are not highlighted"
    return Legend(colour_bar(style.colormap), low, high, text)
