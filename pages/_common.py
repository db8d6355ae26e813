"""Streamlit glue shared by the pages: the logdir, the bounded caches around
``xai_core.dashboard`` and the active-run selector kept in the URL (``?run=<name>``).

Every page starts with ``require_frame(__file__)`` then :func:`active_run`. The run name in
the URL is only ever matched against the runs listed under the logdir, never used as a path.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import sys

import streamlit as st

from pages._frame import FRAME, PAGES, frame_extras, narrow_layout, nav_pages, require_frame  # noqa: F401 (the pages' one import)
from xai_core.dashboard import OpenRun, RunInfo, list_runs, open_run, parse_logdir, run_stamp
from xai_core.dashboard import state as S
from xai_core.errors import XaiError

RUN_PARAM = "run"
_SESSION_RUN = "_active_run"
_SELECT = "run_select"
NO_RUN = "No run named as below under the log directory; choose another."


def printable(text: str, limit: int = 200) -> str:
    """A name from the URL as plain, visible text: control characters (NUL…) shown escaped."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[:limit] + "…"


def logdir():
    """``--logdir`` after ``--`` on the streamlit command line, else XAI_LOGDIR, else summaries."""
    return parse_logdir(sys.argv[1:])


@st.cache_data(ttl=3, max_entries=16, show_spinner=False)
def runs(logdir_str: str) -> list[RunInfo]:
    """The runs under the logdir, re-listed at most every 3 s (a run being written changes)."""
    return list_runs(logdir_str)


@st.cache_resource(max_entries=4, show_spinner="Loading the run…")
def _open(logdir_str: str, name: str, stamp: int, step: int | None = None) -> OpenRun:
    # ``stamp`` changes whenever the writer commits progress, so a running run reloads.
    return open_run(logdir_str, name, runs(logdir_str), step)


def stepped(run: OpenRun) -> bool:
    """Whether the run is one written step by step (xai_core.Monitor, the training callbacks)."""
    return run.tables.run_root is not None and run.tables.run_root != run.tables.run_dir


def step_slider(run: OpenRun, prefix: str, label: str = "Step") -> OpenRun:
    """For a run of several steps, a slider choosing the step shown (following the newest step
    while it is left on it, so a run written while a model trains shows each new step); the
    run at that step. Other runs come back as they are."""
    steps = list(run.tables.steps)
    if len(steps) < 2:
        return run
    key, newest = f"{prefix}_step", f"{prefix}_step_newest"
    if st.session_state.get(key) not in steps or st.session_state.get(key) == st.session_state.get(newest):
        st.session_state[key] = steps[-1]
    st.session_state[newest] = steps[-1]
    step = st.select_slider(label, steps, key=key, help="the training step whose maps, tags and scores are shown "
                                                         "(left on the newest, the page follows new steps)")
    if step == run.tables.step:
        return run
    return _open(str(logdir()), run.info.name, run.stamp, int(step))


def breakable(text: str) -> str:
    """Zero-width spaces after the separators of identifiers (``integrated_gradients``,
    ``xai_core.demo.model:load``), so long names wrap between their parts, not mid-word."""
    for sep in ("_", ".", ":", "/", ","):
        text = text.replace(sep, sep + "\u200b")
    return text


def open_named(name: str) -> OpenRun:
    """Another run of the logdir by name (the compare page's run B), cached like the active
    one; raises XaiError when it is not listed or cannot be read."""
    ld = str(logdir())
    all_runs = runs(ld)
    info = next((r for r in all_runs if r.name == name), None)
    if info is None:
        raise XaiError(f"No run named {printable(name)!r} under the log directory; choose another.")
    return _read(ld, name, info)  # read again, like the active run, when a writer was at work


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
        st.sidebar.warning(NO_RUN)
        st.sidebar.text(printable(wanted))
        wanted = None
    st.session_state[_SELECT] = wanted
    st.sidebar.selectbox("Run", names, key=_SELECT, index=None, placeholder="choose a run", on_change=_on_select)
    set_active(wanted)
    st.sidebar.caption(f"log directory: `{logdir()}`")
    return wanted


def no_runs_hint(ld) -> str:
    """What to say when the served logdir holds no run: the exact command that writes one
    there (issue 18: "make demo" writes to summaries/, whatever logdir is served)."""
    where = shlex.quote(str(ld))
    return (f"The log directory `{ld}` holds no runs yet. Write one there with `xai-core demo --out {where}/demo` "
            f"(the bundled demo, a few minutes) or `xai-core run --config CONFIG.yaml --out {where}/NAME`; "
            "the Runs page lists it as soon as it starts.")


def active_run(*, require: bool = True) -> OpenRun | None:
    """The run chosen in the URL or session, loaded (cached per run version). Shows why when
    there is none or it cannot be read, and stops the page when ``require``."""
    ld = str(logdir())
    all_runs = runs(ld)
    name = run_selector(all_runs)
    if name is None:
        if require:
            if not logdir().is_dir():
                st.error(f"The log directory `{ld}` does not exist; start the app with `-- --logdir DIR` or set "
                         "XAI_LOGDIR.")
            elif not all_runs:
                st.info(no_runs_hint(ld))
            else:
                st.info("Choose a run in the sidebar or on the Runs page.")
            st.stop()
        return None
    info = next(r for r in all_runs if r.name == name)
    try:
        run = _read(ld, name, info)
    except XaiError as e:
        if _being_written(ld, name):
            st.warning(f"The run `{name}` is being written or rewritten right now and could not be read in this "
                       f"instant ({e}); this page tries again in a few seconds.")
            _retry_soon()
        else:
            st.error(str(e))
        if require:
            st.stop()
        return None
    show_failure(run)
    show_stale(run)
    return run


def show_stale(run: OpenRun) -> None:
    """Every page of a run that says "running" but has not been updated for long says so."""
    if run.info.status == "running" and run.info.stale:
        st.warning(f"This run says it is running but its process is gone or has not updated it since "
                   f"{run.info.updated}. Finish it with `xai-core run --resume {run.info.path}`.")


def _read(ld: str, name: str, info: RunInfo) -> OpenRun:
    """The run, read once more from a fresh listing when the first read fails while its
    manifest changed since the (cached) listing: a writer committing a part or replacing the
    run is not damage (issue 18: an overwritten run read as "part 0 … corrupt or missing")."""
    stamp = run_stamp(info.path)
    try:
        return _open(ld, name, stamp)
    except XaiError:
        if run_stamp(info.path) == stamp and info.status != "running":
            raise
    return _open(ld, name, run_stamp(info.path))


def _being_written(ld: str, name: str) -> bool:
    fresh = next((r for r in list_runs(ld) if r.name == name), None)
    return fresh is not None and fresh.status == "running"


def _retry_soon(every_s: float = 3.0) -> None:
    @st.fragment(run_every=every_s)
    def _retry():
        if getattr(_retry, "armed", False):
            st.rerun(scope="app")
        _retry.armed = True

    _retry()


# ---- page state in the URL and the session (xai_core.dashboard.state) --------------------
_KEPT = "_page_state"  # {widget key: value}: a plain copy, which Streamlit does not forget
_UNDRAWN = "_page_undrawn"  # the fields whose widget the last run did not draw


def restore(fields: list[S.Field]) -> None:
    """Before the widgets: give each its value (live, else URL, else this session's copy,
    else default). The widgets are then drawn without a ``default``/``value`` argument."""
    kept = st.session_state.setdefault(_KEPT, {})
    undrawn = st.session_state.get(_UNDRAWN, ())
    for f in fields:
        # A widget not drawn in the last run comes back with its first value, not the user's:
        # its copy (URL, session) is the truth (the outline clip range after the heat map).
        live = f.key in st.session_state and f.key not in undrawn
        v = S.resolve(f, st.session_state.get(f.key), live, st.query_params.get_all(f.key), kept.get(f.key), f.key in kept)
        if f.key not in st.session_state or st.session_state[f.key] != v:
            st.session_state[f.key] = v


def remember(fields: list[S.Field], *, hidden: tuple[str, ...] = (), undrawn: tuple[str, ...] = ()) -> None:
    """After the widgets: keep a copy of their values for the next visit and put the
    non-default ones in the URL (``hidden``: fields not drawn this run stay out of it;
    ``undrawn``: fields not drawn this run that keep their place in the URL)."""
    kept = st.session_state.setdefault(_KEPT, {})
    st.session_state[_UNDRAWN] = tuple(undrawn)
    values = {f.key: (kept[f.key] if f.key in undrawn and f.key in kept else st.session_state[f.key])
              for f in fields if f.key in st.session_state}
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
    if run.info.status != "running" and not stepped(run):  # a run of steps grows while a model trains
        return
    if run.info.stale:  # active_run said so
        return
    seen = run_stamp(run.info.path)

    @st.fragment(run_every=max(every_s, 5.0 * run.load_s))
    def _watch():
        if run_stamp(run.info.path) != seen:
            st.rerun(scope="app")
        if run.info.status == "running":
            st.caption(f"Run in progress: {run.tables.n_samples} samples so far; this page refreshes by itself.")

    _watch()


def axiom_banner(warnings: dict[str, list[str]]) -> None:
    """One warning box listing the explainers whose maps break their own method's axiom
    (xai_core/axioms.py; thresholds in the README, "Axiom diagnostics"); nothing otherwise."""
    lines = [ln for ls in warnings.values() for ln in ls]
    if lines:
        st.warning("Explanations that break their own method's axiom — their scores describe broken maps:\n\n"
                   + "\n".join(f"- {ln}" for ln in lines), icon=":material/warning:")
