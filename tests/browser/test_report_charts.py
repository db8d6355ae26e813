"""The report's charts as a browser draws them (issue 25): the file ``xai-core report`` writes
and the one the dashboard makes (a process that imported Streamlit, whose plotly template has
placeholder colours) draw the same colours and labels, and every chart fits its cell."""

import subprocess
import sys

import pytest

import dash_runs

pytestmark = pytest.mark.browser
WAIT = 60_000
DASHBOARD = ("import sys, streamlit  # what the dashboard process has imported\n"
             "from xai_core.dashboard import RunTables\n"
             "from xai_core.report import report_html\n"
             "open(sys.argv[2], 'w').write(report_html(RunTables.load(sys.argv[1]), 'synthetic'))\n")
LOOK = """() => Object.fromEntries(['fig_ranking', 'fig_radar'].map(id => {
  const fig = document.getElementById(id), cell = fig.closest('.charts > div');
  const svg = fig.querySelector('.main-svg').getBoundingClientRect();
  const fills = [...fig.querySelectorAll('.bars path, .scatterlayer path.js-line')]
    .map(p => getComputedStyle(p).fill === 'none' ? getComputedStyle(p).stroke : getComputedStyle(p).fill);
  const texts = [...fig.querySelectorAll('.xtitle, .angularaxistick text, .ytick text')];
  return [id, {svg: svg.width, cell: cell.getBoundingClientRect().width, right: svg.right,
               cellRight: cell.getBoundingClientRect().right, fills,
               labels: texts.map(t => t.textContent), labelFills: texts.map(t => getComputedStyle(t).fill)}];
}))"""


def _rgb(css: str) -> tuple[int, ...]:
    return tuple(int(float(v)) for v in css[css.index("(") + 1:css.index(")")].split(",")[:3])


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    root = tmp_path_factory.mktemp("report_charts")
    run = dash_runs.write_synthetic(root / "synthetic")
    cli, dash = root / "cli.html", root / "dashboard.html"
    subprocess.run([sys.executable, "-m", "xai_core", "report", str(run), "--out", str(cli)], check=True, timeout=300)
    subprocess.run([sys.executable, "-c", DASHBOARD, str(run), str(dash)], check=True, timeout=300)
    return cli, dash


def test_both_reports_draw_the_same_labelled_coloured_charts_that_fit(browser, reports, shots):
    seen = {}
    for path in reports:
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.set_default_timeout(WAIT)
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            page.goto(path.as_uri(), wait_until="load")
            page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot .main-svg').length >= 3")
            page.wait_for_timeout(300)  # the load handler's resize
            seen[path.stem] = page.evaluate(LOOK)
            page.screenshot(path=str(shots / f"report_charts_{path.stem}.png"), full_page=True)
        finally:
            page.close()
        assert not errors, errors
    for name, figs in seen.items():
        for fig, got in figs.items():
            assert got["svg"] <= got["cell"] + 1 and got["right"] <= got["cellRight"] + 1, (name, fig, got)
            assert got["fills"] and all(max(_rgb(c)) > 40 for c in got["fills"]), (name, fig, got["fills"])
            assert got["labels"] and all(t.strip() for t in got["labels"]), (name, fig)
        assert "comprehensive score (higher is better)" in figs["fig_ranking"]["labels"]
    assert seen["cli"] == seen["dashboard"]  # one template: same colours, labels and sizes
