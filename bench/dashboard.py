"""Dashboard speed at scale: filter + sort + render of one saliency page on a 100,000-sample run.

Writes a synthetic summary in the real format (``RunWriter.create`` + ``write_part``, the
runner's own writer), then times what one interaction on the saliency page costs on the
server: the vectorised filter and sort (``query.select``), the tag counts, the page rows and
the rendering of the visible tiles (``MapStore.grid``), cold (tiles never rendered) and warm
(tiles cached). The baseline is what MindInsight does per page turn (ANCHORS.md §5): deep-copy
every sample and re-sort them in pandas. Goal: a cold page under 300 ms.

    python bench/dashboard.py                 # 100,000 samples, 64×64, 2 explainers (~3 min to write)
    python bench/dashboard.py --n 20000 --keep summaries/bench   # smaller; keep the run to open in the app

``BENCH_DASHBOARD_SAMPLES`` sets the default size (``make bench`` runs every script).
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _report import dir_bytes, env_int, figure, header  # noqa: E402  (torch-free, unlike _common)
from xai_core.dashboard import MapStore, RunTables  # noqa: E402
from xai_core.dashboard import assessment as A  # noqa: E402
from xai_core.dashboard import query as Q  # noqa: E402
from xai_core.dashboard.overlay import OverlayStyle  # noqa: E402
from xai_core.labels import LabelPolicy, select_labels  # noqa: E402
from xai_core.summary.writer import RunWriter, write_part  # noqa: E402

METRICS = [  # three per (image, label) and one label-agnostic, as the real registry declares them
    {"name": "deletion_auc", "display_name": "Deletion AUC", "category": "faithfulness", "higher_is_better": False,
     "value_range": [0, 1], "label_agnostic": False},
    {"name": "insertion_auc", "display_name": "Insertion AUC", "category": "faithfulness", "higher_is_better": True,
     "value_range": [0, 1], "label_agnostic": False},
    {"name": "pointing_game", "display_name": "Pointing Game", "category": "localization", "higher_is_better": True,
     "value_range": [0, 1], "label_agnostic": False},
    {"name": "class_sensitivity", "display_name": "Class Sensitivity", "category": "sensitivity",
     "higher_is_better": False, "value_range": [-1, 1], "label_agnostic": True},
]


def _blocks(rng, n: int, size: int, channels: int | None, block: int = 8) -> np.ndarray:
    """Smooth synthetic content: random values on a (size/block)² grid, repeated. Compresses
    like real low-frequency maps rather than like noise, so the run fits on a laptop disk."""
    g = size // block
    shape = (n, g, g) + ((channels,) if channels else ())
    a = rng.random(shape, dtype=np.float32)
    return a.repeat(block, axis=1).repeat(block, axis=2)


def write_synthetic_run(out: Path, *, n: int, size: int, classes: int, explainers: int, part_size: int,
                        seed: int = 0) -> Path:
    names = [f"explainer_{i}" for i in range(explainers)]
    manifest = {"classes": [f"class_{c}" for c in range(classes)], "model": {"factory": "bench:synthetic"},
                "dataset": {"kind": "synthetic", "n_items": n},
                "explainers": [{"name": e, "type": e, "signed": True} for e in names], "metrics": METRICS,
                "progress": {"total_samples": n, "done_samples": 0, "total_parts": -(-n // part_size), "done_parts": 0,
                             "batch_size": part_size}}
    w = RunWriter.create(out, manifest, overwrite=True)
    policy = LabelPolicy(threshold=0.5, top_k=1)
    for part, lo in enumerate(range(0, n, part_size)):
        rng = np.random.default_rng(seed * 1_000_003 + part)
        idx = np.arange(lo, min(lo + part_size, n))
        k = len(idx)
        gts = [tuple(sorted(rng.choice(classes, size=rng.integers(1, 3), replace=False).tolist())) for _ in range(k)]
        probs = rng.beta(1, 8, size=(k, classes)).astype(np.float32)
        for i, g in enumerate(gts):
            probs[i, list(g)] = rng.beta(6, 2, size=len(g))   # mostly right, sometimes FN
        chosen = select_labels(probs, gts, policy, "sigmoid")
        rows = [(i, r) for i, labs in enumerate(chosen) for r in labs]
        m = len(rows)
        li = np.array([i for i, _ in rows])
        samples = {"sample_index": idx, "sample_id": [f"img{s:06d}" for s in idx], "source": [f"img/{s}.png" for s in idx],
                   "part": np.full(k, part, np.int32), "offset": np.arange(k, dtype=np.int32),
                   "gt_labels": [list(g) for g in gts], "probs": [p.tolist() for p in probs],
                   "boxes": [[[g[0], 8.0, 8.0, size / 2, size / 2]] for g in gts],
                   "height": np.full(k, size, np.int32), "width": np.full(k, size, np.int32)}
        labels = {"sample_index": idx[li], "label": np.array([r.label for _, r in rows], np.int32),
                  "prob": np.array([r.prob for _, r in rows], np.float32), "tag": [r.tag for _, r in rows],
                  "is_gt": [r.is_gt for _, r in rows], "is_pred": [r.is_pred for _, r in rows],
                  "in_top_k": [r.in_top_k for _, r in rows], "part": np.full(m, part, np.int32),
                  "map_offset": np.arange(m, dtype=np.int32)}
        cols = {c: [] for c in ("sample_index", "label", "explainer", "metric", "raw", "score")}
        for e in names:
            for met in METRICS:
                if met["label_agnostic"]:
                    raw = rng.uniform(-1, 1, k)
                    si, lab, score = idx, np.full(k, -1, np.int32), (1 - raw) / 2
                else:
                    raw = rng.random(m)
                    if met["name"] == "pointing_game":  # ground-truth labels only, NaN elsewhere
                        raw = np.where(np.array(labels["is_gt"]), np.round(raw), np.nan)
                    si, lab = labels["sample_index"], labels["label"]
                    score = 1 - raw if not met["higher_is_better"] else raw
                cols["sample_index"].append(si)
                cols["label"].append(lab)
                cols["explainer"] += [e] * len(raw)
                cols["metric"] += [met["name"]] * len(raw)
                cols["raw"].append(raw)
                cols["score"].append(score)
        scores = {c: (v if c in ("explainer", "metric") else np.concatenate(v)) for c, v in cols.items()}
        images = (_blocks(rng, k, size, 3) * 255).astype(np.uint8)
        saliency = {e: (_blocks(rng, m, size, None) - 0.5) * 10.0 ** j for j, e in enumerate(names)}
        write_part(out, part, samples=samples, labels=labels, scores=scores, images=images, saliency=saliency)
        w.progress(int(idx[-1]) + 1, part + 1)
    w.finish("complete")
    return out


def _rss_mb() -> float:
    """Peak resident set size of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _rss_now_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _tables_mb(t: RunTables) -> float:
    frames = sum(int(df.memory_usage(deep=True).sum()) for df in (t.samples, t.labels, t.scores))
    return (frames + t.extra.nbytes) / 2**20


def interaction(t: RunTables, store: MapStore, flt, sort, page: int, page_size: int, style: OverlayStyle,
                explainers) -> float:
    """Seconds for what the saliency page computes on one rerun (no caching of the order)."""
    t0 = time.perf_counter()
    Q.tag_counts(t, flt)
    sel = Q.select(t, flt, sort)
    view = Q.page_view(t, sel, page, page_size)
    store.grid(view.rows, {}, explainers, style)
    return time.perf_counter() - t0


def baseline(t: RunTables, flt, page: int, page_size: int) -> float:
    """MindInsight per page turn: deep-copy every sample's labels and re-sort them all."""
    t0 = time.perf_counter()
    lab = t.labels.copy(deep=True)
    lab["tag"] = lab["tag"].astype(str)
    ok = lab["tag"].isin(flt.tags) & lab["prob"].between(flt.prob_min, flt.prob_max)
    if flt.labels:
        ok &= lab["label"].isin(flt.labels)
    best = lab[ok].groupby("sample_index")["prob"].max().sort_values(ascending=False)
    best.index[(page - 1) * page_size: page * page_size].tolist()
    return time.perf_counter() - t0


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=env_int("BENCH_DASHBOARD_SAMPLES", 100_000))
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--explainers", type=int, default=2)
    ap.add_argument("--part-size", type=int, default=1000)
    ap.add_argument("--page-size", type=int, default=12)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--keep", type=Path, default=None, help="write (or reuse) the run here instead of a temp dir")
    ap.add_argument("--write-only", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    shape = dict(n=args.n, size=args.size, classes=args.classes, explainers=args.explainers, part_size=args.part_size)
    if args.write_only is not None:  # child process: keeps the writer's memory out of the figures
        write_synthetic_run(args.write_only, **shape)
        return

    header("dashboard: filter + sort + render one saliency page", f"python bench/dashboard.py --n {args.n}")
    tmp = None
    if args.keep is not None and (args.keep / "manifest.json").is_file():
        run = args.keep
        print(f"   reusing {run}")
    else:
        tmp = None if args.keep else Path(tempfile.mkdtemp(prefix="xai-bench-"))
        run = args.keep or tmp / "run"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--write-only", str(run), "--n", str(args.n), "--size", str(args.size),
                        "--classes", str(args.classes), "--explainers", str(args.explainers),
                        "--part-size", str(args.part_size)], check=True)
        figure("synthetic run written", time.perf_counter() - t0, "s")
        figure("synthetic run on disk", dir_bytes(run) / 2**20, "MiB")
    try:
        gc.collect()
        rss0 = _rss_mb()
        t0 = time.perf_counter()
        t = RunTables.load(run)
        figure("tables load (once per run version, cached)", (time.perf_counter() - t0) * 1000, "ms")
        store = MapStore(run)
        print(f"   {t.n_samples:,} samples, {len(t.labels):,} label rows, {len(t.scores):,} score rows, "
              f"{t.extra['probs'][0].as_py().__len__()} classes, {len(t.explainers)} explainers, {args.size}×{args.size} px")
        figure("tables in memory", _tables_mb(t), "MiB")

        style = OverlayStyle()
        exps = t.explainers
        metric = METRICS[0]["name"]
        cases = {
            "all, probability ↓": (Q.SaliencyFilter(), Q.SortSpec()),
            "FP, 3 labels, score ↑": (Q.SaliencyFilter(labels=(0, 1, 2), tags=("FP",)),
                                      Q.SortSpec(Q.SORT_SCORE, False, exps[0], metric)),
            "p∈[.3,.7], sample id": (Q.SaliencyFilter(prob_min=0.3, prob_max=0.7), Q.SortSpec(Q.SORT_ID)),
        }
        interaction(t, store, *cases["all, probability ↓"], 1, args.page_size, style, exps)  # one-time imports
        print(f"   one interaction = tag counts + filter + sort + page of {args.page_size} images × {len(exps)} maps, "
              f"median of {args.repeat}; cold = nothing cached (fresh map store, distinct pages), warm = same page again;")
        print("   baseline = MindInsight's page turn: deep-copy all labels, filter and re-sort them in pandas (no rendering)")
        print(f"   {'case':24s} {'matches':>8s} {'cold ms':>8s} {'warm ms':>8s} {'baseline ms':>12s} {'baseline/warm':>14s}")
        worst = 0.0
        for name, (flt, sort) in cases.items():
            total = Q.select(t, flt, sort).total
            n_pages = max(1, -(-total // args.page_size))
            pages = [2 + (i * 7919) % max(1, n_pages - 1) for i in range(args.repeat)]   # distinct pages: cold tiles
            # cold: a fresh store each time, so nothing of the page is cached (not even open arrays)
            cold = statistics.median(interaction(t, MapStore(run), flt, sort, p, args.page_size, style, exps) for p in pages)
            warm = statistics.median(interaction(t, store, flt, sort, pages[0], args.page_size, style, exps)
                                     for _ in range(args.repeat))
            base = statistics.median(baseline(t, flt, p, args.page_size) for p in pages)
            worst = max(worst, cold)
            print(f"   {name:24s} {total:8,d} {cold * 1000:8.1f} {warm * 1000:8.1f} {base * 1000:12.1f} {base / warm:13.1f}×")
        figure("slowest cold page (filter + sort + render)", worst * 1000, "ms", "< 300 ms")
        t0 = time.perf_counter()
        long = A.explainer_metric_table(t)
        A.per_class(t)
        figure(f"assessment aggregation ({long['ci_method'].iloc[0]} intervals + per class, cached per run version)",
               (time.perf_counter() - t0) * 1000, "ms")
        figure("peak memory (RSS) of the dashboard side", _rss_mb(), "MiB")
        figure("memory held after the interactions (RSS)", _rss_now_mb(), "MiB")
        print(f"   (interpreter and libraries: {rss0:.0f} MiB before loading; caches {store.cache_info()})")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
