"""ROAD, least relevant first."""

from __future__ import annotations

from . import register
from ._road import RoadMetric


@register
class RoadLeRF(RoadMetric):
    """Mean p(target) as the least relevant 10 %, 20 %, …, 90 % of pixels are removed and
    filled by noisy linear imputation (ROAD, LeRF order).

    Rong et al., ICML 2022. Raw ∈ [0, 1]: the average of the LeRF curve over
    ``fractions``; a faithful map removes only unimportant pixels first, so the probability
    stays up and HIGHER is better. Score: x. Forward passes: P × len(fractions).
    """

    name = "road_lerf"
    display_name = "ROAD (LeRF)"
    higher_is_better = True
    most_relevant_first = False
