"""The dashboard over steps in a real browser, on a run written by xai_core.Monitor in a plain
training loop (three epochs, one step each): the saliency grid's step slider changes the maps,
the "Scores over steps" page draws its chart and sorts the images by how much their maps
changed, and a step logged while the page is open shows up without a reload."""

import re
import sys
from pathlib import Path

import pytest

from appserver import serve

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from steps_fixtures import TinyCNN, monitor_run  # noqa: E402

pytestmark = pytest.mark.browser
WAIT = 60_000
DECODED = "() => [...document.images].length > 0 && [...document.images].every(i => i.complete && i.naturalWidth > 0)"


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("steps_browser")
    monitor_run(root / "training", epochs=3, probe=4)
    return root


@pytest.fixture(scope="module")
def app(tmp_path_factory, browser, logdir):
    with serve(logdir, tmp_path_factory.mktemp("streamlit_steps")) as url:
        yield url


def _tiles(page) -> list[str]:
    return page.locator("[class*='st-key-sal_row_'] img").evaluate_all("els => els.map(e => e.src)")


def test_slider_page_and_changed_most(browser, app, logdir, shots):
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.set_default_timeout(WAIT)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{app}/saliency?run=training", wait_until="domcontentloaded")
        expect(page.get_by_role("heading", name="Saliency maps")).to_be_visible(timeout=WAIT)
        thumb = page.get_by_role("slider", name=re.compile(r"^Step"))
        expect(thumb).to_have_attribute("aria-valuetext", "2", timeout=WAIT)
        page.wait_for_function(DECODED, timeout=WAIT)
        newest = _tiles(page)
        thumb.focus()
        page.keyboard.press("Home")  # step 0
        expect(thumb).to_have_attribute("aria-valuetext", "0", timeout=WAIT)
        page.wait_for_function("(old) => { const now = [...document.querySelectorAll(\"[class*='st-key-sal_row_'] img\")]"
                               ".map(e => e.src); return now.length === old.length && now.join() !== old.join(); }",
                               arg=newest, timeout=WAIT)
        page.screenshot(path=str(shots / "40_steps_slider.png"))

        page.goto(f"{app}/steps?run=training", wait_until="domcontentloaded")
        expect(page.get_by_role("heading", name="Scores over steps")).to_be_visible(timeout=WAIT)
        expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=WAIT)
        expect(page.get_by_text("Images sorted by how much their gradient map changed")).to_be_visible(timeout=WAIT)
        expect(page.get_by_text("labels changed tag from step 0 to step 2")).to_be_visible(timeout=WAIT)
        page.screenshot(path=str(shots / "41_scores_over_steps.png"))

        # the training goes on: the page shows the new step by itself
        import xai_core
        from steps_fixtures import CLASSES, squares

        images, labels = squares(24)
        mon = xai_core.Monitor(images[:4], labels=labels[:4].tolist(), classes=CLASSES, out=logdir / "training")
        assert mon.log(TinyCNN(), step=3)
        expect(page.get_by_text("steps 0, 1, 2, 3")).to_be_visible(timeout=WAIT)
        assert not errors, errors
    finally:
        page.close()
