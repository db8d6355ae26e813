"""Faults every page must turn into one line (issue 25): a ``?run=`` value that is a traversal
or an encoded path, a run that says "running" but has not been updated for hours, class names
carrying HTML."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

import dash_runs
from apptest_util import open_page
from pages._common import NO_RUN, PAGES
from xai_core.summary.manifest import read_manifest, write_manifest

# As the browser hands them to the page (Streamlit decodes the query string once): a traversal,
# absolute paths, an encoded and a double-encoded "..", "//", a NUL, a name with a NUL appended.
BAD = ["../x", "/etc/passwd", "%2e%2e", "%2e%2e%2fsynthetic", "%252e%252e", "//", "//synthetic", "\x00",
       "synthetic\x00", "synthetic/../synthetic", "./synthetic"]
EVIL = ['<script>alert("c")</script>', '<img src=x onerror=alert(1)>', "</div><b>x</b>"]


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    dash_runs.write_synthetic(root / "synthetic")
    dash_runs.write_synthetic(root / "evil", classes=EVIL)
    stale = dash_runs.write_synthetic(root / "stale")
    m = read_manifest(stale)  # the process died hours ago, before it finished the run
    m.update(status="running", updated=(datetime.now(timezone.utc) - timedelta(hours=3)).isoformat(timespec="seconds"))
    write_manifest(stale, m)
    return root


@pytest.mark.parametrize("page", [p for p, _, _ in PAGES])
def test_a_bad_run_name_in_the_url_says_no_run_named_on_every_page(monkeypatch, logdir, page):
    at = open_page(monkeypatch, logdir, None)
    for value in BAD:
        at.query_params["run"] = value
        at.switch_page(page).run()
        assert not at.exception, (value, [e.value for e in at.exception])
        assert [w.value for w in at.sidebar.warning] == [NO_RUN], value
        shown = [t.value for t in at.sidebar.text]
        assert len(shown) == 1 and "\x00" not in shown[0], value  # plain text, control characters escaped
        assert "run" not in at.query_params, value  # never opened, dropped from the URL


@pytest.mark.parametrize("page", [p for p, _, _ in PAGES if p != "pages/runs.py"])
def test_a_stale_running_run_warns_on_every_page(monkeypatch, logdir, page):
    at = open_page(monkeypatch, logdir, page, "stale")
    stale = [w.value for w in at.warning if "has not updated it since" in w.value]
    assert len(stale) == 1 and "--resume" in stale[0], page


@pytest.mark.parametrize("page", [p for p, _, _ in PAGES if p != "pages/runs.py"])
def test_class_names_carrying_html_open_every_page(monkeypatch, logdir, page):
    at = open_page(monkeypatch, logdir, page, "evil")  # no exception box
    assert all("\n" not in e.value for e in at.error)  # compare: "no class name in common", one line
