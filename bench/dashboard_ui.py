"""Dashboard interactions, timed server-side: each page and each widget change of a user's
walk through the demo run, run by Streamlit's AppTest (the script time the server spends
before the browser gets its answer; the browser's own drawing is not included).

Goal (issue 12): every interaction under 1 s, the image detail view under 2 s, on the demo.

    python bench/dashboard_ui.py --logdir summaries --run demo     # after `make demo-run`

Without that run it first builds a small demo (``xai-core demo --limit 8``) in a temporary folder.

Prints one ``name: seconds`` line per interaction, in the order a user meets them; the first
visit of a page includes its imports (Streamlit reruns a page's script, Python imports once).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import figure, header  # noqa: E402

TIMEOUT = 300


def _timed(results: dict, name: str, fn) -> None:
    t0 = time.perf_counter()
    at = fn()
    dt = time.perf_counter() - t0
    if at is not None and at.exception:
        raise SystemExit(f"{name}: the page raised {[e.value for e in at.exception]}")
    results[name] = dt
    figure(name, dt, "s", "< 2 s" if "detail" in name else "< 1 s")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--logdir", default="summaries")
    ap.add_argument("--run", default="demo")
    args = ap.parse_args(argv)
    if not (Path(args.logdir) / args.run / "manifest.json").is_file():
        tmp = Path(tempfile.mkdtemp(prefix="bench_dashboard_ui_"))
        print(f"   no run {args.run!r} under {args.logdir}: building a small demo in {tmp}", flush=True)
        subprocess.run([sys.executable, "-m", "xai_core.cli", "demo", "--limit", "8", "--out", str(tmp / "demo"),
                        "--data", str(tmp / "data"), "--quiet"], check=True, cwd=ROOT)
        args.logdir, args.run = str(tmp), "demo"
    os.environ["XAI_LOGDIR"] = str(Path(args.logdir).resolve())
    os.chdir(ROOT)
    from streamlit.testing.v1 import AppTest

    try:  # app.py preloads plotly and torch in a thread at server start; a server up for a few
        from xai_core.dashboard import preload  # seconds has them: wait as it would have
        preload().join()
    except ImportError:  # an older checkout without the preload (a baseline measurement)
        pass

    header("dashboard interactions, server-side (AppTest)",
           f"python bench/dashboard_ui.py --logdir {args.logdir} --run {args.run}")
    res: dict = {}

    def page(path):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
        at.query_params["run"] = args.run
        at.run()
        return at.switch_page(path)

    def multi(at, key, value):
        at.multiselect(key=key).set_value(value)
        apply = [b for b in at.button if b.key == f"{key}_apply"]   # in a form: one rerun on Apply
        return apply[0].click().run() if apply else at.run()

    sal = page("pages/saliency.py")
    _timed(res, "saliency: first load", sal.run)
    every = sal.pills(key="sal_tags").value
    _timed(res, "saliency: tag pill", lambda: sal.pills(key="sal_tags").set_value(["FN"]).run())
    _timed(res, "saliency: all tags again", lambda: sal.pills(key="sal_tags").set_value(every).run())
    labels = sal.multiselect(key="sal_labels").options
    _timed(res, "saliency: one label entry", lambda: multi(sal, "sal_labels", [labels[0]]))
    _timed(res, "saliency: label cleared", lambda: multi(sal, "sal_labels", []))
    _timed(res, "saliency: sort by score", lambda: sal.selectbox(key="sal_sort").set_value("score").run())
    _timed(res, "saliency: ascending", lambda: sal.radio(key="sal_order").set_value("ascending").run())
    exps = sal.multiselect(key="sal_explainers").options
    _timed(res, "saliency: all explainers", lambda: multi(sal, "sal_explainers", list(exps)))
    _timed(res, "saliency: opacity", lambda: sal.slider(key="sal_opacity").set_value(0.7).run())
    _timed(res, "saliency: polarity signed", lambda: sal.selectbox(key="sal_polarity").set_value("signed").run())
    if any(w.key == "sal_display" for w in sal.segmented_control):   # issue 18 (absent from older checkouts)
        _timed(res, "saliency: outlines", lambda: sal.segmented_control(key="sal_display").set_value("outlines").run())
        _timed(res, "saliency: heat map again", lambda: sal.segmented_control(key="sal_display").set_value("heatmap").run())
    dets = [b for b in sal.button if b.key and b.key.startswith("sal_det_")]
    _timed(res, "saliency: first detail view", lambda: dets[0].click().run())
    dets = [b for b in sal.button if b.key and b.key.startswith("sal_det_")]
    _timed(res, "saliency: second detail view", lambda: dets[1].click().run())

    cmp = page("pages/comprehensive.py")
    _timed(res, "comprehensive: first load", cmp.run)
    w = next(n for n in cmp.number_input if n.key and n.key.startswith("cmp_w_"))
    _timed(res, "comprehensive: one weight", lambda: w.set_value(0.9).run())
    cls = page("pages/classification.py")
    _timed(res, "classification: first load", cls.run)
    cf = page("pages/counterfactual.py")
    _timed(res, "counterfactual: first load", cf.run)
    slow = {k: v for k, v in res.items() if v > (2.0 if "detail" in k else 1.0)}
    print(f"  over the goal: {', '.join(slow) or 'none'}", flush=True)
    return res


if __name__ == "__main__":
    main()
