"""The served app in a real browser (Debian chromium driven by playwright): runs page →
saliency page → FP filter → overlay toggle → label chip → assessment page → weight change →
counterfactual page.
A screenshot of each step goes to test-artifacts/browser/ (XAI_TEST_ARTIFACTS)."""

import re

import pytest

import dash_runs

pytestmark = pytest.mark.browser
WAIT = 45_000  # ms; the first plotly chart loads a large bundle on a small machine


def _rows_text(page):
    return page.locator("[class*='st-key-sal_row_']")


def _snap(page, path):
    """Screenshot once Streamlit has drawn everything: no loading skeletons, images decoded,
    no script run in progress."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stSkeleton\"]')"
        " && [...document.images].every(i => i.complete)"
        " && !document.querySelector('[data-testid=\"stStatusWidget\"] [data-testid=\"stStatusWidgetRunningIcon\"]')",
        timeout=WAIT)
    page.screenshot(path=str(path))


def test_walk_through_the_dashboard(browser, server, shots):
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1500, "height": 1000})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        # 0. a shared link is the first request this server sees: app.py's frame still wraps it
        page.goto(server + "/saliency?run=toy%2Fcolour", wait_until="domcontentloaded")
        expect(page.get_by_text("of 12 images match")).to_be_visible(timeout=WAIT)
        expect(page.get_by_role("link", name="Comprehensive assessment")).to_be_visible(timeout=WAIT)
        expect(page.get_by_role("link", name="common")).to_have_count(0)
        _snap(page, shots / "00_shared_link.png")

        # 1. runs page
        page.goto(server + "/", wait_until="domcontentloaded")
        row = page.locator("[class*='st-key-runs_row_']", has_text=dash_runs.RUNNER_RUN)
        expect(row).to_be_visible(timeout=WAIT)
        expect(page.locator("[class*='st-key-runs_row_']", has_text="broken/newer")).to_contain_text("upgrade")
        _snap(page, shots / "01_runs.png")

        # 2. saliency page of the toy run; the run is in the URL
        row.get_by_role("link", name="Saliency maps").click()          # a link (issue 18 item 2)
        expect(page.get_by_text("of 12 images match")).to_be_visible(timeout=WAIT)
        assert "run=toy%2Fcolour" in page.url or "run=toy/colour" in page.url
        expect(_rows_text(page)).to_have_count(12, timeout=WAIT)
        _snap(page, shots / "02_saliency.png")

        # 3. only FP: one click on its pill (none selected means every tag)
        page.locator(".st-key-sal_tags button", has_text=re.compile(r"^FP \(")).click()
        expect(page.get_by_text("1 of 12 images match")).to_be_visible(timeout=WAIT)
        expect(_rows_text(page)).to_have_count(1, timeout=WAIT)
        _snap(page, shots / "03_filter_fp.png")

        # 4. overlay off: the map tiles change
        row = _rows_text(page).first
        tile = row.locator("img").nth(1)
        before = tile.get_attribute("src")
        page.locator(".st-key-sal_overlay label").click()
        expect(tile).not_to_have_attribute("src", before, timeout=WAIT)
        _snap(page, shots / "04_overlay_off.png")

        # 5. click a label chip that is not active: it becomes active and the maps follow
        inactive = page.locator("button:not([data-testid='stBaseButton-primary'])")
        holder = row.locator("[class*='st-key-sal_chip_']").filter(has=inactive).first
        key = re.search(r"st-key-(sal_chip_\d+_\d+)", holder.get_attribute("class")).group(1)
        name = holder.inner_text().split()[1]            # "FP red 0.119" → "red"
        before = tile.get_attribute("src")
        holder.locator("button").click()
        expect(page.locator(f".st-key-{key} button")).to_have_attribute("data-testid", "stBaseButton-primary", timeout=WAIT)
        expect(tile).not_to_have_attribute("src", before, timeout=WAIT)
        expect(_rows_text(page).first).to_contain_text(f"· {name}")
        _snap(page, shots / "05_label_chip.png")

        # 6. comprehensive assessment page through the navigation menu; the run follows
        page.get_by_role("link", name="Comprehensive assessment").click()
        expect(page.get_by_role("heading", name="Comprehensive assessment")).to_be_visible(timeout=WAIT)
        ranking = page.locator(".st-key-cmp_rank .ytick text")
        expect(ranking.first).to_be_visible(timeout=WAIT)
        page.wait_for_function("() => /run=/.test(location.search)", timeout=WAIT)
        _snap(page, shots / "06_assessment.png")
        best_before = ranking.all_inner_texts()[-1]          # bars are drawn best on top (last tick)

        # 7. change the weights: sparseness only (gradcam wins deletion, loses sparseness)
        for key in ("deletion_auc", "insertion_auc", "pointing_game", "iosr", "class_sensitivity", "sparseness"):
            box = page.locator(f".st-key-cmp_w_{key} input")
            box.fill("1" if key == "sparseness" else "0")
            box.press("Enter")
            page.wait_for_timeout(300)
        expect(page.get_by_text(re.compile(r"normalised:.*Sparseness \(Gini\) 1\.000"))).to_be_visible(timeout=WAIT)
        page.wait_for_function(
            "(b) => { const t = [...document.querySelectorAll('.st-key-cmp_rank .ytick text')]; "
            "return t.length && t[t.length - 1].textContent !== b; }", arg=best_before, timeout=WAIT)
        _snap(page, shots / "07_weights.png")

        # 8. counterfactual page of the analyses run: the layer strip of the first listed image
        run = dash_runs.ANALYSES_RUN.replace("/", "%2F")
        page.goto(f"{server}/counterfactual?run={run}", wait_until="domcontentloaded")
        expect(page.get_by_text("of 12 images listed")).to_be_visible(timeout=WAIT)
        expect(page.get_by_text(re.compile(r"^original · "))).to_be_visible(timeout=WAIT)
        expect(page.get_by_text(re.compile(r"^layer 2 · "))).to_be_visible(timeout=WAIT)
        _snap(page, shots / "08_counterfactual.png")
        assert not errors, errors
    finally:
        page.close()
