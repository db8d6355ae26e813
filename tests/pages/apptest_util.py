"""Helpers for the AppTest page tests."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 90  # seconds per script run; the CI machine is small and shared


def open_page(monkeypatch, logdir: Path, page: str | None, run: str | None = None) -> AppTest:
    """The app (frame + navigation) on ``page`` (e.g. "pages/saliency.py") with ``?run=``."""
    monkeypatch.setenv("XAI_LOGDIR", str(logdir))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    if run is not None:
        at.query_params["run"] = run
    at.run()
    if page is not None:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def pictures(at: AppTest) -> list[str]:
    """Sample ids of the grid's pictures, in display order (map tiles have "·" captions)."""
    return [c for img in at.image for c in img.captions if c and "·" not in c]  # colour bars have no caption


def tiles(at: AppTest) -> dict[str, str]:
    """{caption "explainer · label" of each map tile: its media URL}, in display order."""
    out = {}
    for i, img in enumerate(at.image):
        for c, u in zip(img.captions, img.value):
            if "·" in c:
                out[f"{i}:{c}"] = u
    return out


def texts(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)
