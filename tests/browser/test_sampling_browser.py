"""A run that explained only the model's mistakes (``sample``, issue 24) in a real browser:
the pages say "n of N images explained", the grid lists only explained images, and the
assessment counts only the labels it saw."""

import pytest

import dash_runs
import toy
from appserver import serve

pytestmark = pytest.mark.browser
WAIT = 60_000  # ms; a fresh server on a small shared machine
SETTLED = ("() => !document.querySelector('[data-testid=\"stSkeleton\"]')"
           " && !document.querySelector('[data-stale=\"true\"]')"
           " && [...document.images].every(i => i.complete)")


@pytest.fixture(scope="module")
def sampled(tmp_path_factory):
    """(logdir, run name, RunReader) of a toy run whose true positives and negatives are left out."""
    import torch

    from xai_core.config import config_from_dict
    from xai_core.runner import run
    from xai_core.summary.reader import RunReader

    root = tmp_path_factory.mktemp("sampled")
    data = dash_runs._tag_dataset(root / "_data")  # one FP and one FN among 12 images
    cfg = toy.toy_config(data, root / "logs" / "mistakes", explainers=["gradient"], metrics=["sparseness"],
                         labels={"threshold": 0.5, "top_k": 3}, sample={"TP": 0, "TN": 0})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = run(config_from_dict(cfg), root / "logs" / "mistakes", progress=False)
    finally:
        torch.set_num_threads(threads)
    return root / "logs", "mistakes", RunReader(out)


def test_a_run_of_the_mistakes_only_says_what_it_explained(browser, sampled, tmp_path_factory, shots):
    from playwright.sync_api import expect

    logdir, name, r = sampled
    labels = r.labels()
    n, total = labels["sample_index"].nunique(), len(r.samples())
    assert 0 < n < total and set(labels["tag"]) <= {"FP", "FN"}, labels["tag"].value_counts()
    with serve(logdir, tmp_path_factory.mktemp("streamlit_sampled")) as url:
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.set_default_timeout(WAIT)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            page.goto(f"{url}/saliency?run={name}", wait_until="domcontentloaded")
            expect(page.get_by_text(f"{n} of {total} images explained").first).to_be_visible(timeout=WAIT)
            # The grid lists the explained images only, each with a map.
            expect(page.get_by_text(f"{n} of {total} images match", exact=True)).to_be_visible(timeout=WAIT)
            expect(page.locator("[class*='st-key-sal_row_']")).to_have_count(n, timeout=WAIT)
            page.wait_for_function(SETTLED, timeout=WAIT)
            page.screenshot(path=str(shots / "sampled_saliency.png"))
            # The assessment weighs the labels it saw: n (explained labels) per explainer × metric.
            page.goto(f"{url}/comprehensive?run={name}", wait_until="domcontentloaded")
            expect(page.get_by_text(f"{n} of {total} images explained").first).to_be_visible(timeout=WAIT)
            page.wait_for_function(SETTLED, timeout=WAIT)
            page.screenshot(path=str(shots / "sampled_comprehensive.png"))
            assert not errors, errors
        finally:
            page.close()
