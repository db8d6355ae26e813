"""Streamlit glue shared by the pages: the logdir, the bounded caches around
``xai_core.dashboard`` and the active-run selector kept in the URL (``?run=<name>``).

Every page starts with ``require_frame(__file__)`` then :func:`active_run`. The run name in
the URL is only ever matched against the runs listed under the logdir, never used as a path.
"""

from __future__ import annotations

import hashlib
import re
import sys
import threading

import streamlit as st

from xai_core.dashboard import OpenRun, RunInfo, list_runs, open_run, parse_logdir, run_stamp
from xai_core.dashboard import state as S
from xai_core.errors import XaiError

# (file, title, icon); the first is the default page. app.py builds the navigation from it.
PAGES = (
    ("pages/runs.py", "Runs", ":material/folder_open:"),
    ("pages/saliency.py", "Saliency maps", ":material/image_search:"),
    ("pages/counterfactual.py", "Counterfactuals", ":material/filter_center_focus:"),
    ("pages/comprehensive.py", "Comprehensive assessment", ":material/leaderboard:"),
    ("pages/classification.py", "Classification assessment", ":material/bar_chart:"),
    ("pages/compare.py", "Compare runs", ":material/compare:"),
    ("pages/explain.py", "Explain an image", ":material/add_photo_alternate:"),
)
FRAME = threading.local()  # FRAME.active is True while app.py runs a page (one script thread per session)
RUN_PARAM = "run"
_SESSION_RUN = "_active_run"
_SELECT = "run_select"


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


def logdir():
    """``--logdir`` after ``--`` on the streamlit command line, else XAI_LOGDIR, else summaries."""
    return parse_logdir(sys.argv[1:])


@st.cache_data(ttl=3, max_entries=16, show_spinner=False)
def runs(logdir_str: str) -> list[RunInfo]:
    """The runs under the logdir, re-listed at most every 3 s (a run being written changes)."""
    return list_runs(logdir_str)


@st.cache_resource(max_entries=4, show_spinner="Loading the run…")
def _open(logdir_str: str, name: str, stamp: int) -> OpenRun:
    # ``stamp`` changes whenever the writer commits progress, so a running run reloads.
    return open_run(logdir_str, name, runs(logdir_str))


def open_named(name: str) -> OpenRun:
    """Another run of the logdir by name (the compare page's run B), cached like the active
    one; raises XaiError when it is not listed or cannot be read."""
    ld = str(logdir())
    all_runs = runs(ld)
    info = next((r for r in all_runs if r.name == name), None)
    if info is None:
        raise XaiError("No run of this name under the log directory; choose another.")
    return _open(ld, name, run_stamp(info.path))


def key_of(name: str) -> str:
    """A widget-key / CSS-safe token for a run name."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:40]
    return f"{safe}_{hashlib.sha1(name.encode()).hexdigest()[:6]}"


def set_active(name: str | None) -> None:
    st.session_state[_SESSION_RUN] = name
    if name:
        st.query_params[RUN_PARAM] = name
    elif RUN_PARAM in st.query_params:
        del st.query_params[RUN_PARAM]


def _on_select() -> None:
    set_active(st.session_state.get(_SELECT))


def run_selector(all_runs: list[RunInfo]) -> str | None:
    """Sidebar select box of runs; the choice lives in the URL (shareable) and in the session
    (the navigation menu drops query parameters). Unknown names are never opened."""
    names = [r.name for r in all_runs]
    wanted = st.query_params.get(RUN_PARAM) or st.session_state.get(_SESSION_RUN)
    if wanted and wanted not in names:
        # The name comes from the URL: shown as plain text, never as markdown (links, images).
        st.sidebar.warning("No run of this name under the log directory; choose another.")
        st.sidebar.text(wanted[:200])
        wanted = None
    st.session_state[_SELECT] = wanted
    st.sidebar.selectbox("Run", names, key=_SELECT, index=None, placeholder="choose a run", on_change=_on_select)
    set_active(wanted)
    st.sidebar.caption(f"log directory: `{logdir()}`")
    return wanted


def active_run(*, require: bool = True) -> OpenRun | None:
    """The run chosen in the URL or session, loaded (cached per run version). Shows why when
    there is none or it cannot be read, and stops the page when ``require``."""
    ld = str(logdir())
    all_runs = runs(ld)
    name = run_selector(all_runs)
    if name is None:
        if require:
            st.info("Choose a run in the sidebar or on the Runs page.")
            st.stop()
        return None
    try:
        run = _open(ld, name, run_stamp(next(r.path for r in all_runs if r.name == name)))
    except XaiError as e:
        st.error(str(e))
        if require:
            st.stop()
        return None
    show_failure(run)
    return run


# ---- page state in the URL and the session (xai_core.dashboard.state) --------------------
_KEPT = "_page_state"  # {widget key: value}: a plain copy, which Streamlit does not forget


def restore(fields: list[S.Field]) -> None:
    """Before the widgets: give each its value (live, else URL, else this session's copy,
    else default). The widgets are then drawn without a ``default``/``value`` argument."""
    kept = st.session_state.setdefault(_KEPT, {})
    for f in fields:
        v = S.resolve(f, st.session_state.get(f.key), f.key in st.session_state, st.query_params.get_all(f.key),
                      kept.get(f.key), f.key in kept)
        if f.key not in st.session_state or st.session_state[f.key] != v:
            st.session_state[f.key] = v


def remember(fields: list[S.Field], *, hidden: tuple[str, ...] = ()) -> None:
    """After the widgets: keep a copy of their values for the next visit and put the
    non-default ones in the URL (``hidden``: fields not drawn this run stay out of it)."""
    kept = st.session_state.setdefault(_KEPT, {})
    values = {f.key: st.session_state[f.key] for f in fields if f.key in st.session_state}
    kept.update(values)
    want = S.encode([f for f in fields if f.key not in hidden], values)
    for f in fields:
        have = st.query_params.get_all(f.key)
        if f.key in want:
            if have != want[f.key]:
                st.query_params[f.key] = want[f.key]
        elif have:
            del st.query_params[f.key]


def show_failure(run: OpenRun) -> None:
    """A failed run says why above whatever it computed before failing."""
    if run.info.status == "failed":
        st.error(f"This run failed: {run.info.error or 'no reason recorded'}. "
                 f"{'Its ' + str(run.tables.n_samples) + ' finished images are shown below.' if run.tables.n_samples else ''}")
        if not run.tables.n_samples:
            st.stop()


def show_error(e: XaiError) -> None:
    st.error(str(e))


def refresh_while_running(run: OpenRun, every_s: float = 3.0) -> None:
    """While the run is being written, rerun the page whenever the writer commits progress
    (at most every ``every_s`` s, and never more often than 5× the run's load time, so a
    large run being written is not reloaded back to back)."""
    if run.info.status != "running":
        return
    if run.info.stale:
        st.warning(f"This run says it is running but has not been updated since {run.info.updated}; its process may "
                   f"have died. Finish it with `xai-core run --resume {run.info.path}`.")
        return
    seen = run_stamp(run.info.path)

    @st.fragment(run_every=max(every_s, 5.0 * run.load_s))
    def _watch():
        if run_stamp(run.info.path) != seen:
            st.rerun(scope="app")
        st.caption(f"Run in progress: {run.tables.n_samples} samples so far; this page refreshes by itself.")

    _watch()
