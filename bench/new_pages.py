"""The pages beyond browsing (issue 18): the Compare page's first load, one live explanation,
the report's size.

* Compare runs, first load, server side (Streamlit AppTest, as ``dashboard_ui.py``): a fresh
  session opening the page on run A with run B chosen (both tables loaded, matched, the tag
  table, the maps of the first row, bootstrap differences of every explainer × metric). The
  baseline is the comprehensive assessment's first load on run A in the same process.
  Goal: < 1 s on the demo.
* Live explanation of one 64 × 64 demo image with Gradient, Grad-CAM and Occlusion and the
  map-only metrics, torch on two threads, through the page's core (``xai_core.dashboard.live``),
  model loaded once: first call (engine built) and the median of 5 more. The baseline is the
  same image through ``xai_core.explain`` (the runner writing a one-image run). Goal: < 3 s.
* The report of run A (``xai_core.report``): bytes and seconds, HTML and PDF. Goal: < 10 MB for
  the 64-image demo.

    python bench/new_pages.py --logdir summaries --a demo --b demo-seed1   # after `make demo-run`

Without those runs it builds two small demo runs (six images, two seeds) in a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import figure, header  # noqa: E402

TIMEOUT = 300


def _small_runs() -> tuple[str, str, str]:
    sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "dashboard")]
    import pages_runs

    root = Path(tempfile.mkdtemp(prefix="bench_new_pages_"))
    print(f"   no runs given: two small demo runs in {root}", flush=True)
    pages_runs.build_demo_pair(root)
    return str(root), pages_runs.DEMO_A, pages_runs.DEMO_B


def compare_first_load(logdir: str, a: str, b: str) -> dict:
    import shutil

    from streamlit.testing.v1 import AppTest

    from xai_core.dashboard import preload

    preload().join()   # a server up for a few seconds has plotly and torch imported

    def first(ld: Path, page: str, params: dict) -> float:
        os.environ["XAI_LOGDIR"] = str(ld)
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
        for k, v in params.items():
            at.query_params[k] = v
        at.run()
        at.switch_page(page)
        t0 = time.perf_counter()
        at.run()
        dt = time.perf_counter() - t0
        if at.exception or at.error:
            raise SystemExit(f"{page}: {[e.value for e in at.exception] or [e.value for e in at.error]}")
        return dt

    # Every cache is keyed by the logdir and the run: a fresh copy of the two runs under a new
    # logdir makes each load a first one (tables read, matched, bootstrapped), as on a new server.
    tmp = Path(tempfile.mkdtemp(prefix="bench_compare_"))
    times, base = [], []
    try:
        for k in range(4):
            ld = tmp / f"copy{k}"
            for r in (a, b):
                shutil.copytree(Path(logdir) / r, ld / r)
            base.append(first(ld, "pages/comprehensive.py", {"run": a}))
            times.append(first(ld, "pages/compare.py", {"run": a, "vs_run": b}))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    times, base = times[1:], base[1:]   # the first of each also imported the page's modules
    out = {"compare": statistics.median(times), "baseline": statistics.median(base)}
    figure("compare runs: first load (median of 3, fresh copies of both runs)", out["compare"], "s", "< 1 s")
    figure("comprehensive assessment: first load of run A (baseline, same process)", out["baseline"], "s")
    figure("ratio compare / comprehensive", out["compare"] / out["baseline"], "x")
    return out


def live_latency(logdir: str, a: str) -> dict:
    import numpy as np
    import torch

    import xai_core
    from xai_core.dashboard import RunTables
    from xai_core.dashboard import live as L
    from xai_core.dashboard import live_inputs as I
    from xai_core.dashboard.render import MapStore
    from xai_core.demo import MEAN, STD
    from xai_core.demo.model import load_demo_model

    torch.set_num_threads(2)
    t = RunTables.load(Path(logdir) / a, root=logdir)
    image = np.array(MapStore(t.run_dir).image(int(t.scol("part")[0]), int(t.scol("offset")[0])))
    model = I.model_of_run(t.manifest, a)
    t0 = time.perf_counter()
    handle = L.load_handle(model)
    load_s = time.perf_counter() - t0
    req = L.LiveRequest((("gradient", ()), ("gradcam", ()), ("occlusion", ())), top_k=3)
    item = L.upload_item(image, "bench.png")
    t0 = time.perf_counter()
    engine = L.make_engine(model, handle, req)
    L.explain_images(engine, model, req, [item])
    cold = time.perf_counter() - t0
    warm, cpu = [], []
    for _ in range(5):
        t0, c0 = time.perf_counter(), time.process_time()
        L.explain_images(engine, model, req, [item])
        warm.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    passes = time.perf_counter()
    x = torch.rand(64, 3, *model.input_size)
    handle.predict(x)
    per_pass = (time.perf_counter() - passes) / 64
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        xai_core.explain(load_demo_model(), [image], classes=list(model.classes), activation="sigmoid", mean=MEAN,
                         std=STD, explainers=["gradient", "gradcam", "occlusion"], metrics=["sparseness", "complexity"],
                         top_k=3, out=Path(tmp) / "r", progress=False, fast_forward="off")
        api = time.perf_counter() - t0
    figure("live: model load (once per model)", load_s, "s")
    figure("live: one 64×64 image, Gradient + Grad-CAM + Occlusion, first call", cold, "s", "< 3 s")
    figure("live: the same, median of 5 more", statistics.median(warm), "s", "< 3 s")
    figure("live: CPU time of that call (process, both threads; ≥ its wall time on 2 idle cores)",
           statistics.median(cpu), "s")
    figure("forward pass per image at batch 64, measured now (BENCHMARKS.md, quiet: 0.72 ms)", per_pass * 1e3, "ms")
    figure("baseline: xai_core.explain of that image (a one-image run)", api, "s")
    figure("ratio live (median) / xai_core.explain", statistics.median(warm) / api, "x")
    return {"cold": cold, "warm": statistics.median(warm), "api": api}


def report_size(logdir: str, a: str) -> dict:
    from xai_core.report import write_report

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("html", "pdf"):
            t0 = time.perf_counter()
            try:
                p = write_report(Path(logdir) / a, Path(tmp) / f"r.{kind}", name=a, pdf=kind == "pdf")
            except Exception as e:  # noqa: BLE001 - the PDF needs WeasyPrint; say so and go on
                print(f"  report {kind}: not made ({e})", flush=True)
                continue
            out[kind] = (p.stat().st_size, time.perf_counter() - t0)
            figure(f"report ({kind}) of {a}", p.stat().st_size / 1e6, "MB", "< 10 MB" if kind == "html" else "")
            figure(f"report ({kind}) time", out[kind][1], "s")
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--logdir", default="summaries")
    ap.add_argument("--a", default="demo")
    ap.add_argument("--b", default="demo-seed1")
    args = ap.parse_args(argv)
    logdir, a, b = args.logdir, args.a, args.b
    if not all((Path(logdir) / r / "manifest.json").is_file() for r in (a, b)):
        logdir, a, b = _small_runs()
    os.chdir(ROOT)
    header("new pages: compare, live explanation, report",
           f"python bench/new_pages.py --logdir {logdir} --a {a} --b {b}")
    return {"compare": compare_first_load(logdir, a, b), "live": live_latency(logdir, a),
            "report": report_size(logdir, a)}


if __name__ == "__main__":
    main()
