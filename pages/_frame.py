"""The frame around the pages: the page list (app.py builds the navigation from it), the check
that app.py's navigation frames a page, and the browser-side guards and CSS the frame installs.
Page helpers (the active run, page state in the URL) are in :mod:`pages._common`."""

from __future__ import annotations

import threading

import streamlit as st

# (file, title, icon); the first is the default page. app.py builds the navigation from it.
PAGES = (
    ("pages/runs.py", "Runs", ":material/folder_open:"),
    ("pages/saliency.py", "Saliency maps", ":material/image_search:"),
    ("pages/counterfactual.py", "Counterfactuals", ":material/filter_center_focus:"),
    ("pages/comprehensive.py", "Comprehensive assessment", ":material/leaderboard:"),
    ("pages/classification.py", "Classification assessment", ":material/bar_chart:"),
    ("pages/steps.py", "Scores over steps", ":material/timeline:"),
    ("pages/compare.py", "Compare runs", ":material/compare:"),
    ("pages/explain.py", "Explain an image", ":material/add_photo_alternate:"),
)
FRAME = threading.local()  # FRAME.active is True while app.py runs a page (one script thread per session)


def nav_pages() -> list:
    return [st.Page(f, title=t, icon=i, default=(k == 0)) for k, (f, t, i) in enumerate(PAGES)]


def require_frame(page_file: str) -> None:
    """Make sure app.py's navigation frames this page.

    Until some session has called ``st.navigation``, Streamlit serves a ``pages/`` folder the
    old way (each file a page of its own, app.py skipped), so the first visit to a shared
    link like ``/saliency?run=x`` on a fresh server would get the wrong menu. Registering the
    navigation here and rerunning switches the server to app.py's frame for good."""
    if getattr(FRAME, "active", False):
        st.session_state.pop("_frame_retry", None)
        return
    from streamlit import config as st_config  # AppTest patches this module's get_option

    if st_config.get_option("global.appTest"):
        # AppTest restarts in folder mode on every run and runs a switched-to page on its
        # own; switching here would drop the interaction under test. Pages work unframed.
        return
    if st.session_state.get("_frame_retry"):  # already tried once: show the page unframed
        return
    st.session_state["_frame_retry"] = True
    st.navigation(nav_pages(), position="hidden")
    # every value of a repeated parameter (to_dict() keeps only the last: ?sal_explainers=a&…=b)
    st.switch_page(page_file, query_params={k: st.query_params.get_all(k) for k in st.query_params})


# Two browser-side guards, installed once per tab by the frame:
# * Streamlit pushes a browser-history entry for every change of the query string, so a page
#   switch cost two entries (/page, then /page?run=…) and every filter click one more: the back
#   button needed two presses per page (issue 18). Query-only changes replace the current
#   entry; a new page still gets one.
# * A page must never go blank without a message (issue 18 item 2: a Streamlit redraw race left
#   only the page menu). If the main area stays empty for 4 s while no script runs, say so and
#   reload once (a second blank within 30 s only gets the message).
_FRAME_JS = """<script>(() => {
  if (window.__xaiboardFrame) return; window.__xaiboardFrame = true;
  const push = window.history.pushState.bind(window.history);
  window.history.pushState = function (state, title, url) {
    try {
      if (url != null && new URL(url, window.location.href).pathname === window.location.pathname)
        return window.history.replaceState(state, title, url);
    } catch (e) { /* a URL we cannot parse: let the browser decide */ }
    return push(state, title, url);
  };
  // A window under 900 px wide (a laptop split screen, a tablet) starts with the sidebar
  // collapsed: Streamlit collapses it only under 768 px, and at 800 px it took 300 px of them.
  if (window.innerWidth < 900 && !window.sessionStorage.getItem('xaiboardSidebarFolded')) {
    window.sessionStorage.setItem('xaiboardSidebarFolded', '1');
    const fold = () => {
      const b = document.querySelector('[data-testid="stSidebarCollapseButton"] button');
      if (b) b.click(); else window.setTimeout(fold, 250);
    };
    window.setTimeout(fold, 250);
  }
  let emptyFor = 0;
  window.setInterval(() => {
    const main = document.querySelector('[data-testid="stMainBlockContainer"]');
    const status = document.querySelector('[data-testid="stStatusWidget"]');
    const running = status && /Running|Stop/.test(status.innerText);
    const empty = main && !main.querySelector('[data-testid="stElementContainer"], .xaiboard-blank');
    emptyFor = empty && !running ? emptyFor + 1 : 0;
    if (emptyFor !== 4) return;
    const last = Number(window.sessionStorage.getItem('xaiboardBlankReload') || 0);
    const again = Date.now() - last < 30000;
    const note = document.createElement('div');
    note.className = 'xaiboard-blank';
    note.setAttribute('role', 'alert');
    note.style.cssText = 'padding:1rem;margin:1rem 0;border-radius:0.5rem;background:#fff3cd;color:#664d03';
    note.textContent = again ? 'This page lost its content again. Reload it (F5) or pick a page in the menu.'
                             : 'This page lost its content (a redraw race in the browser); reloading it…';
    main.prepend(note);
    if (!again) { window.sessionStorage.setItem('xaiboardBlankReload', String(Date.now())); window.location.reload(); }
  }, 1000);
})();</script>"""


def frame_extras() -> None:
    """Called by app.py before each page: the frame's browser guards and CSS (in a hidden
    sidebar box)."""
    with st.sidebar.container(key="xai_frame"):
        st.html(_FRAME_CSS + _FRAME_JS, unsafe_allow_javascript=True)


# Wrapping instead of squeezing (issue 18, 1024 px windows): narrow windows give the page the
# width Streamlit's wide layout keeps as padding; pills wrap onto a second line instead of
# scrolling out of sight.
_FRAME_CSS = """<style>
.st-key-xai_frame {display: none;}
@media (max-width: 1280px) {.block-container {padding-left: 1.5rem; padding-right: 1.5rem;}}
[data-testid="stButtonGroup"] [role="toolbar"] {flex-wrap: wrap; overflow-x: visible;}
.st-key-cmp_scores {overflow-x: auto;}
</style>"""
# The saliency grid and its controls: rows of controls wrap onto a second line rather than hide
# one; the image and labels columns keep a readable width and the map columns share the rest;
# buttons, chips and captions wrap between words, never inside one.
_NARROW_CSS = """<style>
.st-key-sal_filters [data-testid="stHorizontalBlock"], .st-key-sal_sorts [data-testid="stHorizontalBlock"]
  {flex-wrap: wrap; row-gap: 0.5rem;}
.st-key-sal_filters [data-testid="stColumn"], .st-key-sal_sorts [data-testid="stColumn"] {min-width: 8.5rem;}
.st-key-sal_head [data-testid="stHorizontalBlock"], [class*='st-key-sal_row_'] [data-testid="stHorizontalBlock"]
  {flex-wrap: nowrap;}
.st-key-sal_head [data-testid="stHorizontalBlock"] > [data-testid="stColumn"],
[class*='st-key-sal_row_'] [data-testid="stHorizontalBlock"] > [data-testid="stColumn"] {min-width: 0;}
.st-key-sal_head [data-testid="stHorizontalBlock"] > [data-testid="stColumn"]:nth-child(1),
[class*='st-key-sal_row_'] [data-testid="stHorizontalBlock"] > [data-testid="stColumn"]:nth-child(1) {min-width: 5.5rem;}
.st-key-sal_head [data-testid="stHorizontalBlock"] > [data-testid="stColumn"]:nth-child(2),
[class*='st-key-sal_row_'] [data-testid="stHorizontalBlock"] > [data-testid="stColumn"]:nth-child(2) {min-width: 7.5rem;}
[class*='st-key-sal_chip_'] button p, [class*='st-key-sal_det_'] button p
  {white-space: normal; word-break: normal; overflow-wrap: normal; text-overflow: clip;}
[class*='st-key-sal_chip_'] button div, [class*='st-key-sal_det_'] button div {overflow: visible;}
[class*='st-key-sal_det_'] {container-type: inline-size;}
@container (max-width: 6rem) {[class*='st-key-sal_det_'] span:has(> [data-testid="stIconMaterial"]) {display: none;}}
.st-key-sal_head {border-color: transparent !important;}
[class*='st-key-sal_legend_'] p, [data-testid='stImageCaption'] p {word-break: normal; overflow-wrap: normal; hyphens: auto;}
[class*='st-key-sal_legend_'] {overflow-x: clip;}
@media (max-width: 1280px) {[class*='st-key-sal_legend_'] strong {font-size: 0.85rem;}}
</style>"""


def narrow_layout() -> None:
    st.html(_NARROW_CSS)
