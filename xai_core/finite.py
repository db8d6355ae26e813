"""Non-finite model outputs inside explanations and metric evaluations.

A model can return NaN or ±inf logits for some inputs only — per-image standardisation on a
constant channel (which deletion curves create), an overflow on extreme perturbations — while
its predictions on the dataset's images are finite. The scores computed from such passes come
out NaN, which would read the same as "does not apply". Each explanation and each metric
evaluation is therefore watched: the model handle counts the passes whose logits are not
finite (:meth:`~xai_core.models.handle.ClassifierHandle.take_nonfinite`), and a score left
NaN by them is stored with a reason (``nan_reason``, FORMAT.md); with ``strict: true`` the run
stops instead, with one line.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

from .errors import ModelError


@dataclass
class Watched:
    """What one watched evaluation saw: passes whose logits were not finite, of all passes."""

    what: str
    bad: int = 0
    passes: int = 0

    @property
    def reason(self) -> str | None:
        """The ``nan_reason`` of a score this evaluation left NaN, or None when every pass was finite."""
        if not self.bad:
            return None
        return f"the model returned non-finite outputs on {self.bad} of {self.passes} passes ({self.what})"


@dataclass
class PassWatch:
    """Watches the evaluations of one part on ``model`` (a handle). ``strict``: raise a
    one-line ModelError naming ``where`` instead of letting non-finite outputs through."""

    model: object
    where: str
    strict: bool = False
    seen: dict = field(default_factory=dict)  # what -> [bad, passes], evaluations with non-finite outputs

    def _take(self) -> int:
        take = getattr(self.model, "take_nonfinite", None)
        return take() if take is not None else 0

    @contextmanager
    def watch(self, what: str):
        """``with watch("explainer occlusion") as w:`` → ``w.reason`` after the block."""
        self._take()  # what came before belongs to someone else (and was checked there)
        w, p0 = Watched(what), int(self.model.passes)
        yield w
        w.bad, w.passes = self._take(), int(self.model.passes) - p0
        if not w.bad:
            return
        self.seen[what] = [w.bad, w.passes]
        if self.strict:
            raise ModelError(f"{self.where}, {what}: the model returned NaN or infinite outputs on {w.bad} of "
                             f"{w.passes} passes; strict: true stops the run (set strict: false to store the scores "
                             "they spoil as n/a, with the reason)")


def combine(*reasons: str | None) -> str | None:
    """One ``nan_reason`` from several (an explainer's and a metric's), None when none."""
    kept = [r for r in reasons if r]
    return "; ".join(kept) if kept else None
