"""A narrow window (issue 25): at 800 px the sidebar starts collapsed and the assessment's score
table, axioms column included, stays inside its box; at 1440 px the sidebar stays open."""

import sys
from pathlib import Path

import pytest

from appserver import serve

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from archs import axiom_run  # noqa: E402

pytestmark = pytest.mark.browser
WAIT = 90_000
LOOK = """() => { const box = document.querySelector('.st-key-cmp_scores');
  const cells = [...box.querySelectorAll('td')].filter(td => td.innerText.includes('⚠'));
  const side = document.querySelector('[data-testid=stSidebar]');
  return {boxRight: box.getBoundingClientRect().right, cells: cells.map(c => c.getBoundingClientRect().right),
          sidebar: side ? side.getBoundingClientRect().width : 0}; }"""


@pytest.fixture(scope="module")
def app(tmp_path_factory, browser):
    logdir = axiom_run(tmp_path_factory.mktemp("narrow"))[0]
    with serve(logdir, tmp_path_factory.mktemp("streamlit_narrow")) as url:
        yield url


@pytest.mark.parametrize("width", [800, 1440])
def test_the_sidebar_folds_and_the_axioms_column_stays_in_its_box(browser, app, width):
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.set_default_timeout(WAIT)
    try:
        page.goto(f"{app}/comprehensive?run=axioms", wait_until="domcontentloaded")
        page.wait_for_selector(".st-key-cmp_scores table")
        if width < 900:
            page.wait_for_function("() => { const s = document.querySelector('[data-testid=stSidebar]');"
                                   " return !s || s.getBoundingClientRect().width < 10; }")
        got = page.evaluate(LOOK)
        assert got["cells"] and all(r <= got["boxRight"] + 1 for r in got["cells"]), got
        assert (got["sidebar"] < 10) == (width < 900), got
    finally:
        page.close()
