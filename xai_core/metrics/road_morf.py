"""ROAD, most relevant first."""

from __future__ import annotations

from . import register
from ._road import RoadMetric


@register
class RoadMoRF(RoadMetric):
    """Mean p(target) as the most relevant 10 %, 20 %, …, 90 % of pixels are removed and
    filled by noisy linear imputation (ROAD, MoRF order).

    Rong, Leemann, Borisov, Kasneci & Kasneci, "A Consistent and Efficient Evaluation Strategy
    for Attribution Methods", ICML 2022. Raw ∈ [0, 1]: the average of the MoRF curve
    over ``fractions``; a faithful map removes the evidence first, so LOWER is better.
    Score: 1 − x. Forward passes: P × len(fractions).
    """

    name = "road_morf"
    display_name = "ROAD (MoRF)"
    higher_is_better = False
    most_relevant_first = True
