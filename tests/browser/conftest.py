import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dashboard"))

import dash_runs  # noqa: E402
from appserver import serve  # noqa: E402

CHROMIUM = os.environ.get("XAI_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _missing(reason: str):
    # In CI a missing browser is a failure (.ci/run installs chromium), elsewhere a skip.
    if os.environ.get("CI"):
        pytest.fail(f"browser test cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed")
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        _missing(f"no chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, browser):
    """`streamlit run app.py` on 127.0.0.1 over the test logdir; yields its base URL."""
    with serve(dash_runs.shared_logdir(tmp_path_factory), tmp_path_factory.mktemp("streamlit")) as url:
        yield url


@pytest.fixture(scope="module")
def shots():
    d = Path(os.environ.get("XAI_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "browser"
    d.mkdir(parents=True, exist_ok=True)
    return d
