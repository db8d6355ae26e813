import pytest

from xai_core.errors import RegistryError
from xai_core.explainers import EXPLAINERS, Explainer
from xai_core.metrics import METRICS
from xai_core.registry import Registry


def test_duplicate_name_fails_at_registration():
    reg = Registry("explainer", "xai_core.explainers")

    @reg.register
    class A(Explainer):
        name = "same"

    with pytest.raises(RegistryError, match="duplicate explainer name 'same'"):
        @reg.register
        class B(Explainer):
            name = "same"


def test_unknown_name_lists_choices():
    with pytest.raises(RegistryError, match="unknown explainer 'nope'; expected one of: .*gradcam"):
        EXPLAINERS.get("nope")


@pytest.mark.parametrize("cls", list(EXPLAINERS), ids=lambda c: c.name)
def test_explainer_metadata_complete(cls):
    meta = cls.metadata()
    assert meta["name"] and meta["display_name"] and meta["paper"]
    assert isinstance(meta["needs_gradients"], bool)


@pytest.mark.parametrize("cls", list(METRICS), ids=lambda c: c.name)
def test_metric_metadata_complete(cls):
    from xai_core.metrics.base import CATEGORIES, NEEDS

    meta = cls.metadata()
    assert meta["category"] in CATEGORIES
    assert isinstance(meta["higher_is_better"], bool)
    lo, hi = meta["value_range"]
    assert lo < hi
    assert set(meta["needs"]) <= set(NEEDS)
