"""Runs page: every run under the logdir with its status; open one on the other pages."""

import streamlit as st

from pages._common import breakable, key_of, logdir, no_runs_hint, require_frame, run_selector, runs

require_frame(__file__)

st.title("Runs")
ld = logdir()
all_runs = runs(str(ld))
run_selector(all_runs)

if not ld.is_dir():
    st.error(f"The log directory {str(ld)!r} does not exist; start the app with `-- --logdir DIR` or set XAI_LOGDIR.")
    st.stop()

STATUS_ICON = {"complete": ":green-badge[complete]", "running": ":blue-badge[running]",
               "failed": ":red-badge[failed]", "interrupted": ":orange-badge[interrupted]",
               "unreadable": ":orange-badge[unreadable]"}
# One card per run whose cells wrap onto a second line in a narrow window instead of breaking
# words letter by letter, and whose buttons keep their labels (issue 18, 1024 px: "Sa…").
st.html("""<style>
[class*='st-key-runs_row_'] [data-testid="stHorizontalBlock"] {flex-wrap: wrap; row-gap: 0.25rem;}
[class*='st-key-runs_row_'] [data-testid="stColumn"] {min-width: 9rem;}
[class*='st-key-runs_row_'] p {word-break: normal; overflow-wrap: normal;}
[class*='st-key-runs_row_'] [data-testid="stPageLink"] p {white-space: nowrap;}
[class*='st-key-runs_row_'] [data-testid="stPageLink-NavLink"] {border: 1px solid rgba(49, 51, 63, 0.2); justify-content: center;}
</style>""")


@st.fragment(run_every=2 if any(r.status == "running" for r in all_runs) else 10)
def run_list():
    # Re-listed inside the fragment so progress moves without rerunning the whole page.
    current = runs(str(ld))
    if not current:
        st.info(no_runs_hint(ld) + " This page refreshes by itself.")
        return
    if any(r.status == "running" for r in current):
        st.caption("A run is being written; this list refreshes every 2 s.")
    for r in current:
        k = key_of(r.name)
        with st.container(key=f"runs_row_{k}", border=True):
            c = st.columns([3, 3, 5, 2], vertical_alignment="center")
            c[0].markdown(f"`{r.name}` {STATUS_ICON.get(r.status, r.status)}")
            if r.status == "running" and r.progress is not None:
                c[0].progress(r.progress, text=r.status_text)
            elif r.error:
                (c[0].error if r.status == "unreadable" else c[0].warning)(r.error)
            c[0].caption("updated " + (r.updated or "–").replace("T", " ").replace("+00:00", " UTC"))
            if r.warnings:  # explainers that break their own axiom: their scores describe broken maps
                c[0].markdown(":orange-badge[:material/warning: axioms]", help="\n\n".join(r.warnings))
            samples = f"{r.done_samples}/{r.total_samples}" if r.total_samples else "–"
            c[1].markdown(f"**model** {breakable(r.model or '–')}  \n**samples** {samples}")
            if r.plan:
                c[1].caption(r.plan)
            c[2].markdown(f"**explainers** {breakable(', '.join(r.explainers) or '–')}  \n"
                          f"**metrics** {breakable(', '.join(r.metrics) or '–')}")
            usable = r.readable and bool(r.done_samples)
            # Links, not buttons that switch page: a button inside this auto-refreshing fragment
            # switched page from a fragment run, and the fragment's next timer tick, arriving
            # after the switch under load ("fragment … does not exist anymore"), blanked the
            # new page down to its menu (issue 18 item 2). A link navigates in the browser, which
            # first cancels the fragment's timer.
            with c[3].container(key=f"runs_sal_{k}"):
                st.page_link("pages/saliency.py", label="Saliency maps", icon=":material/image_search:",
                             query_params={"run": r.name}, disabled=not usable, width="stretch")
            with c[3].container(key=f"runs_cmp_{k}"):
                st.page_link("pages/comprehensive.py", label="Assessment", icon=":material/leaderboard:",
                             query_params={"run": r.name}, disabled=not (usable and r.metrics), width="stretch")


run_list()
