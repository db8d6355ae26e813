"""Explain what matters: ``sample: {FP: all, FN: all, TP: 0.1, TN: 0}`` (issue 24).

The prediction pass runs on every image (the samples table keeps every image's
probabilities); the explanations, their metrics and the label-agnostic metrics only on the
chosen (image, label) pairs. Per tag (TP / FP / FN / TN, :mod:`.labels`):

* ``all`` (the default of an unnamed tag) keeps every pair of the tag;
* a decimal ``0.1`` keeps that fraction, ``0`` none (``0.0`` too);
* an integer ``50`` keeps at most that many pairs of the tag in the run (a count).

The choice is seeded and depends on nothing but (``seed``, the image's id, the label): each
pair draws u ∈ [0, 1) from a hash of the three and is kept when u < the tag's cut-off. A
fraction is its own cut-off; a count's cut-off is found once, before the first part, from a
prediction pass over the whole dataset (the count-th smallest u of the tag), and recorded in
the manifest's ``sample`` so that a resumed run keeps exactly the same pairs. Torch-free.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError
from .labels import TAGS

ALL = "all"


@dataclass(frozen=True)
class SampleSpec:
    """Per tag: ``"all"``, a fraction (float in [0, 1]) or a count (int ≥ 0); module doc."""

    TP: Any = ALL
    FP: Any = ALL
    FN: Any = ALL
    TN: Any = ALL

    def validate(self) -> None:
        for tag in TAGS:
            v = getattr(self, tag)
            if v == ALL:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ConfigError(f"sample.{tag} is {v!r}; expected 'all', a fraction 0 … 1 (0.1) or a count ≥ 0 (50)")
            if v < 0 or (isinstance(v, float) and v > 1):
                raise ConfigError(f"sample.{tag} is {v!r}; expected 'all', a fraction 0 … 1 (0.1) or a count ≥ 0 (50)")

    @property
    def enabled(self) -> bool:
        return any(getattr(self, t) != ALL for t in TAGS)

    @property
    def counts(self) -> dict[str, int]:
        """{tag: count} of the tags given as counts (they need the pre-pass)."""
        return {t: v for t in TAGS if isinstance(v := getattr(self, t), int) and not isinstance(v, bool) and v != ALL}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def parse_sample(raw) -> SampleSpec:
    """``sample:`` of a configuration → :class:`SampleSpec`; one-line ConfigError otherwise."""
    if raw is None:
        return SampleSpec()
    if not isinstance(raw, dict):
        raise ConfigError(f"`sample` is {raw!r}; expected a map of tags, e.g. {{FP: all, FN: all, TP: 0.1, TN: 0}}")
    bad = [k for k in raw if str(k).upper() not in TAGS]
    if bad:
        raise ConfigError(f"sample: unknown tag {bad[0]!r}; expected some of {list(TAGS)}")
    values = {str(k).upper(): (str(v).lower() if isinstance(v, str) else v) for k, v in raw.items()}
    spec = SampleSpec(**values)
    spec.validate()
    return spec


def draw(seed: int, sample_id: str, label: int) -> float:
    """u ∈ [0, 1) of one (image, label) pair: a hash of (seed, image id, label)."""
    h = hashlib.blake2b(f"{int(seed)}\0{sample_id}\0{int(label)}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2.0**64


class Sampler:
    """The cut-off per tag of a run (u < cut-off: explained) and the pairs it kept."""

    def __init__(self, spec: SampleSpec, seed: int, cutoffs: dict[str, float]):
        self.spec, self.seed, self.cutoffs = spec, int(seed), dict(cutoffs)
        self.kept: dict[int, int] | None = None  # sample index → pairs kept, when a pre-pass saw them

    def keeps(self, sample_id: str, row) -> bool:
        return draw(self.seed, sample_id, row.label) < self.cutoffs[row.tag]

    def keep(self, chosen: list[list], sample_ids: list[str]) -> list[list]:
        """``chosen`` (per image, its :class:`~.labels.ExplainedLabel` rows) without the pairs
        the sample leaves out."""
        return [[r for r in rows if self.keeps(sid, r)] for rows, sid in zip(chosen, sample_ids)]

    def record(self) -> dict:
        """The manifest's ``sample``: the spec, the seed and the cut-offs (FORMAT.md)."""
        return {"spec": self.spec.to_dict(), "seed": self.seed, "cutoffs": dict(self.cutoffs)}


def fixed_cutoffs(spec: SampleSpec) -> dict[str, float]:
    """Cut-offs of the tags not given as counts: all → 2 (every u < 2), a fraction → itself."""
    out = {}
    for t in TAGS:
        v = getattr(spec, t)
        out[t] = 2.0 if v == ALL else None if t in spec.counts else float(v)
    return out


def count_cutoffs(counts: dict[str, int], draws: dict[str, list[float]]) -> dict[str, float]:
    """A count's cut-off: just above the count-th smallest draw of the tag (all: 2.0)."""
    out = {}
    for t, n in counts.items():
        us = sorted(draws.get(t, []))
        out[t] = 0.0 if n == 0 else 2.0 if n >= len(us) else (us[n - 1] + us[n]) / 2.0
    return out


def sampler_from_record(record: dict) -> Sampler:
    return Sampler(parse_sample(record["spec"]), record["seed"], record["cutoffs"])

