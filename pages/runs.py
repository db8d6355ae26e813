"""Runs page: every run under the logdir with its status; open one on the other pages."""

import streamlit as st

from pages._common import key_of, logdir, require_frame, run_selector, runs, set_active

require_frame(__file__)

st.title("Runs")
ld = logdir()
all_runs = runs(str(ld))
run_selector(all_runs)

if not ld.is_dir():
    st.error(f"The log directory {str(ld)!r} does not exist; start the app with `-- --logdir DIR` or set XAI_LOGDIR.")
    st.stop()
if not all_runs:
    st.info(f"No runs under `{ld}` yet. Create one with `xai-core run --config CONFIG.yaml --out {ld}/NAME` "
            "(or `make demo`); this page refreshes by itself.")

STATUS_ICON = {"complete": ":green-badge[complete]", "running": ":blue-badge[running]",
               "failed": ":red-badge[failed]", "interrupted": ":orange-badge[interrupted]",
               "unreadable": ":orange-badge[unreadable]"}


def _open(name: str, page: str) -> None:
    set_active(name)
    st.switch_page(page, query_params={"run": name})


@st.fragment(run_every=2 if any(r.status == "running" for r in all_runs) else 10)
def run_list():
    # Re-listed inside the fragment so progress moves without rerunning the whole page.
    current = runs(str(ld)) if all_runs else []
    if any(r.status == "running" for r in current):
        st.caption("A run is being written; this list refreshes every 2 s.")
    head = st.columns([3, 3, 3, 3, 2, 3])
    for col, text in zip(head, ["run", "status", "model · samples", "explainers · metrics", "updated", "open"]):
        col.markdown(f"**{text}**")
    for r in current:
        k = key_of(r.name)
        with st.container(key=f"runs_row_{k}", border=True):
            c = st.columns([3, 3, 3, 3, 2, 3], vertical_alignment="center")
            c[0].markdown(f"`{r.name}`")
            c[1].markdown(STATUS_ICON.get(r.status, r.status))
            if r.status == "running" and r.progress is not None:
                c[1].progress(r.progress, text=r.status_text)
            elif r.error:
                (c[1].error if r.status == "unreadable" else c[1].warning)(r.error)
            if r.warnings:  # explainers that break their own axiom: their scores describe broken maps
                c[1].markdown(":orange-badge[:material/warning: axioms]", help="\n\n".join(r.warnings))
            samples = f"{r.done_samples}/{r.total_samples}" if r.total_samples else "–"
            c[2].markdown(f"{r.model or '–'}  \n{samples} samples")
            c[3].markdown(f"{', '.join(r.explainers) or '–'}  \n{', '.join(r.metrics) or '–'}")
            c[4].caption((r.updated or "–").replace("T", " ").replace("+00:00", " UTC"))
            usable = r.readable and bool(r.done_samples)
            if c[5].button("Saliency maps", key=f"runs_sal_{k}", disabled=not usable, width="stretch",
                           icon=":material/image_search:"):
                _open(r.name, "pages/saliency.py")
            if c[5].button("Assessment", key=f"runs_cmp_{k}", disabled=not (usable and r.metrics), width="stretch",
                           icon=":material/leaderboard:"):
                _open(r.name, "pages/comprehensive.py")


run_list()
