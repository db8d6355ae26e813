"""The README's screenshots of the pages beyond browsing, taken in Debian chromium (playwright)
on the demo: ``make demo-run`` first; the second demo run of the comparison
(``summaries/demo-seed1``, :func:`make_run_b`) is made when missing.

    python docs/make_screenshots.py [--logdir summaries]

Writes docs/screenshots/{compare,explain,report}.png (palette PNGs, a few hundred kB).
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "browser")]
from appserver import serve  # noqa: E402  (tests/browser/appserver.py: the test server helper)

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
OUT = ROOT / "docs" / "screenshots"
WAIT = 120_000
DECODED = "() => [...document.images].length > 0 && [...document.images].every(i => i.complete && i.naturalWidth > 0)"


def make_run_b(logdir: Path, name: str) -> None:
    """The second demo run: seed 1, Occlusion with a 12 px window and 6 px stride, 20-step
    curves, no analyses (about a tenth of the default demo's cost)."""
    from xai_core.config import config_from_dict
    from xai_core.demo.runner import demo_config_dict
    from xai_core.runner import run

    cfg = demo_config_dict((ROOT / "data" / "demo").resolve(), (logdir / name).resolve(), limit=64, analyses=False,
                           explainers=["gradient", "gradcam", {"type": "occlusion", "params": {"window": 12, "stride": 6}},
                                       "random"],
                           metrics=[{"type": "deletion_auc", "params": {"steps": 20}},
                                    {"type": "insertion_auc", "params": {"steps": 20}}, "pointing_game", "iosr",
                                    "relevance_mass_accuracy", "sparseness", "complexity"])
    cfg["seed"] = 1
    run(config_from_dict(cfg), cfg["out"], overwrite=True, progress=True)


def small(png: bytes, path: Path) -> None:
    from PIL import Image

    im = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    im.save(path, optimize=True)
    print(f"{path}: {path.stat().st_size / 1e3:.0f} kB")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--logdir", default="summaries")
    ap.add_argument("--a", default="demo")
    ap.add_argument("--b", default="demo-seed1")
    args = ap.parse_args()
    from playwright.sync_api import expect, sync_playwright

    if not (Path(args.logdir) / args.b / "manifest.json").is_file():
        make_run_b(Path(args.logdir), args.b)

    OUT.mkdir(parents=True, exist_ok=True)
    image = sorted((ROOT / "data" / "demo" / "images").glob("test-0012*.png"))[0]
    with tempfile.TemporaryDirectory() as tmp, serve(Path(args.logdir).resolve(), Path(tmp)) as url, \
            sync_playwright() as pw:
        b = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = b.new_page(viewport={"width": 1440, "height": 900}, accept_downloads=True)
        # Compare runs: occlusion of both runs side by side
        page.goto(f"{url}/compare?run={args.a}&vs_run={args.b}&vs_exp_a=occlusion&vs_exp_b=occlusion&vs_changed=0",
                  wait_until="domcontentloaded")
        expect(page.get_by_text(re.compile(r"^B: occlusion · "))).to_be_visible(timeout=WAIT)
        page.wait_for_function(DECODED, timeout=WAIT)
        page.get_by_role("heading", name="Maps side by side").scroll_into_view_if_needed()
        page.wait_for_timeout(1500)
        small(page.screenshot(full_page=False), OUT / "compare.png")
        # Explain an image: an upload explained by the demo run's model
        page.goto(f"{url}/explain?run={args.a}", wait_until="domcontentloaded")
        page.locator(".st-key-live_files input[type=file]").set_input_files(str(image))
        page.get_by_role("button", name="Explain").click()
        expect(page.get_by_text(re.compile(r"^occlusion · "))).to_be_visible(timeout=WAIT)
        page.wait_for_function(DECODED, timeout=WAIT)
        page.locator(".st-key-live_go").scroll_into_view_if_needed()
        page.mouse.wheel(0, 250)
        page.wait_for_timeout(1500)
        small(page.screenshot(full_page=False), OUT / "explain.png")
        # The report, downloaded from the assessment page and opened from disk
        page.goto(f"{url}/comprehensive?run={args.a}", wait_until="domcontentloaded")
        button = page.get_by_role("button", name=re.compile(r"Download report \(HTML\)"))
        expect(button).to_be_visible(timeout=WAIT)
        with page.expect_download(timeout=WAIT) as dl:
            button.click()
        report = Path(tmp) / "report.html"
        dl.value.save_as(report)
        page.goto(report.as_uri(), wait_until="load")
        page.wait_for_function(DECODED, timeout=WAIT)
        page.locator("#ranking").scroll_into_view_if_needed()
        page.wait_for_timeout(2000)
        small(page.screenshot(full_page=False), OUT / "report.png")
        b.close()


if __name__ == "__main__":
    main()
