"""The pages beyond browsing, in a real browser (Debian chromium driven by playwright) on a
served app: compare two demo runs made with two seeds and two occlusion windows, download the
report from the assessment page and open it from disk (file://): every picture decoded, the
charts drawn, no request leaving file://; explain an uploaded image live, add it to a run and
find it in that run's grid. Screenshots go to test-artifacts/browser/ (XAI_TEST_ARTIFACTS)."""

import re

import pytest

import pages_runs
from appserver import serve

pytestmark = pytest.mark.browser
WAIT = 60_000  # ms; a fresh server on a small shared machine

SETTLED = ("() => !document.querySelector('[data-testid=\"stSkeleton\"]')"
           " && [...document.images].every(i => i.complete)"
           " && !document.querySelector('[data-testid=\"stStatusWidget\"] [data-testid=\"stStatusWidgetRunningIcon\"]')")
DECODED = "() => [...document.images].length > 0 && [...document.images].every(i => i.complete && i.naturalWidth > 0)"


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    return pages_runs.pages_logdir(tmp_path_factory)


@pytest.fixture(scope="module")
def app(tmp_path_factory, browser, logdir):
    with serve(logdir, tmp_path_factory.mktemp("streamlit_pages")) as url:
        yield url


def _snap(page, path):
    page.wait_for_function(SETTLED, timeout=WAIT)
    page.screenshot(path=str(path))


def _q(name: str) -> str:
    return name.replace("/", "%2F")


def _page(browser, **options):
    """A 1440 × 900 page with the default wait, and the list its page errors go to."""
    page = browser.new_page(viewport={"width": 1440, "height": 900}, **options)
    page.set_default_timeout(WAIT)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page, errors


def test_compare_two_demo_runs(browser, app, shots):
    from playwright.sync_api import expect

    page, errors = _page(browser)
    try:
        page.goto(f"{app}/compare?run={_q(pages_runs.DEMO_A)}", wait_until="domcontentloaded")
        expect(page.get_by_role("heading", name="Compare runs")).to_be_visible(timeout=WAIT)
        # run B defaults to the run over the same images, and goes into the URL
        expect(page.get_by_text(f"{pages_runs.DEMO_IMAGES} common samples")).to_be_visible(timeout=WAIT)
        page.wait_for_function("(b) => new URLSearchParams(location.search).get('vs_run') === b",
                               arg=pages_runs.DEMO_B, timeout=WAIT)
        # same model, same predictions: no tag changes; every label once the filter is off
        expect(page.get_by_text(re.compile(r"^0 of \d+ labels"))).to_be_visible(timeout=WAIT)
        page.locator(".st-key-vs_changed label").click()
        expect(page.get_by_text(re.compile(r"^(\d+) of \1 labels"))).to_be_visible(timeout=WAIT)
        # occlusion in both: A's 8 px window against B's 12 px one, side by side on one scale; a
        # link carries the page's state (the toggle above is in it already)
        page.wait_for_function("() => new URLSearchParams(location.search).get('vs_changed') === '0'", timeout=WAIT)
        page.goto(page.url + "&vs_exp_a=occlusion&vs_exp_b=occlusion", wait_until="domcontentloaded")
        expect(page.get_by_text(re.compile(r"^(\d+) of \1 labels"))).to_be_visible(timeout=WAIT)
        expect(page.get_by_text(re.compile(r"^A: occlusion · "))).to_be_visible(timeout=WAIT)
        expect(page.get_by_text(re.compile(r"^B: occlusion · "))).to_be_visible(timeout=WAIT)
        expect(page.get_by_text("one colour scale for both maps")).to_be_visible(timeout=WAIT)
        page.wait_for_function(DECODED, timeout=WAIT)
        # the score differences: one interval per explainer × metric in the forest plot
        ticks = page.locator(".st-key-vs_forest .ytick text")
        expect(ticks.first).to_be_visible(timeout=WAIT)
        assert "occlusion · Deletion (1 − AUC)" in ticks.all_text_contents()
        _snap(page, shots / "20_compare.png")
        # the filter of the tags: TP in A only
        page.locator(".st-key-vs_tags_a button", has_text=re.compile(r"^TP$")).click()
        page.wait_for_function("() => new URLSearchParams(location.search).get('vs_tags_a') === 'TP'", timeout=WAIT)
        assert not errors, errors
    finally:
        page.close()


def test_report_downloads_and_opens_offline(browser, app, shots, tmp_path):
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1440, "height": 900}, accept_downloads=True)
    page.set_default_timeout(WAIT)
    try:
        page.goto(f"{app}/comprehensive?run={_q(pages_runs.DEMO_A)}", wait_until="domcontentloaded")
        button = page.get_by_role("button", name=re.compile("Download report \\(HTML\\)"))
        expect(button).to_be_visible(timeout=WAIT)
        with page.expect_download(timeout=WAIT) as dl:
            button.click()
        path = tmp_path / dl.value.suggested_filename
        dl.value.save_as(path)
        assert path.name == "demo_seed0-report.html" and path.stat().st_size < 10e6
    finally:
        page.close()

    # offline: a fresh context that refuses every request that is not file: or data:
    ctx = browser.new_context(viewport={"width": 1300, "height": 900}, offline=True)
    page = ctx.new_page()
    requests, errors = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    ctx.route(re.compile(r"^(?!file:|data:)"), lambda route: (requests.append("BLOCKED " + route.request.url),
                                                             route.abort()))
    try:
        page.goto(path.as_uri(), wait_until="load")
        expect(page.get_by_role("heading", name=f"Explanation report: {pages_runs.DEMO_A}")).to_be_visible(timeout=WAIT)
        page.wait_for_function(DECODED, timeout=WAIT)
        n = page.evaluate("document.images.length")
        assert n == 3 * 2 * 3 * 2        # 3 explainers × (3 best + 3 worst) × (image, map)
        expect(page.locator(".js-plotly-plot .main-svg").first).to_be_visible(timeout=WAIT)
        assert page.locator(".js-plotly-plot").count() == 3           # ranking, radar, per-class heatmap
        page.screenshot(path=str(shots / "21_report.png"), full_page=True)
        leaving = [u for u in requests if not (u.startswith("file:") or u.startswith("data:"))]
        assert leaving == [] and requests and not errors, (leaving, errors)
    finally:
        ctx.close()


def test_explain_an_uploaded_image_add_it_to_a_run_and_find_it_in_the_grid(browser, app, shots, logdir, tmp_path):
    from playwright.sync_api import expect

    import shutil

    shutil.rmtree(logdir / "scratch", ignore_errors=True)     # the grid must hold this image only
    png = tmp_path / "my digit.png"
    png.write_bytes(pages_runs.png_bytes(pages_runs.demo_image(logdir, 4)))
    page, errors = _page(browser)
    try:
        page.goto(f"{app}/explain?run={_q(pages_runs.DEMO_A)}", wait_until="domcontentloaded")
        expect(page.get_by_text("Model: the model of run demo/seed0")).to_be_visible(timeout=WAIT)
        page.locator(".st-key-live_files input[type=file]").set_input_files(str(png))
        # .first: the file chip, and once the upload is read the caption below it, both carry the name
        expect(page.get_by_text("my digit.png").first).to_be_visible(timeout=WAIT)
        page.get_by_role("button", name="Explain").click()
        for e in ("gradient", "gradcam", "occlusion"):
            expect(page.get_by_text(re.compile(rf"^{e} · "))).to_be_visible(timeout=WAIT)
        expect(page.get_by_text(re.compile(r"^1 image\(s\) in [\d.]+ s"))).to_be_visible(timeout=WAIT)
        page.wait_for_function(DECODED, timeout=WAIT)
        _snap(page, shots / "22_explain.png")

        page.get_by_role("button", name="Add to a run").click()
        link = page.get_by_role("link", name=re.compile(r"^Open scratch\/demo_seed0-.* in Saliency maps"))
        expect(link).to_be_visible(timeout=WAIT)
        link.click()
        expect(page.get_by_text("1 of 1 images match")).to_be_visible(timeout=WAIT)
        expect(page.get_by_text(re.compile(r"^my digit-[0-9a-f]{6}$"))).to_be_visible(timeout=WAIT)
        assert "run=scratch" in page.url
        _snap(page, shots / "23_explained_in_grid.png")
        assert not errors, errors
    finally:
        page.close()
