"""``xai-core``: run, demo, inspect and list. Errors print one line and exit 2 (``XAI_DEBUG=1``
adds the traceback); Ctrl-C prints one line and exits 130."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import traceback
from pathlib import Path

from .errors import XaiError


def _cmd_run(args) -> int:
    from .config import load_config
    from .runner import resume_config, run

    if args.resume:
        if args.config:
            raise XaiError("give either --config (a new run) or --resume DIR (finish a run), not both")
        # A resumed run must equal an uninterrupted one: its stored configuration is final.
        given = [flag for flag, v in (("--set", args.set), ("--limit", args.limit), ("--out", args.out),
                                      ("--overwrite", args.overwrite)) if v not in (None, False, [])]
        if given:
            raise XaiError(f"--resume finishes a run with its stored configuration; {given[0]} cannot change it. "
                           "Start a new run with --config (and --out) instead")
        cfg = resume_config(args.resume)
        out = args.resume
    else:
        if args.force:
            raise XaiError("--force only applies to --resume")
        if not args.config:
            raise XaiError("missing --config run.yaml (or --resume DIR)")
        overrides = list(args.set or [])
        if args.limit is not None:
            overrides.append(f"dataset.limit={args.limit}")
        if args.out:
            overrides.append(f"out={Path(args.out).resolve()}")
        cfg = load_config(args.config, overrides)
        out = cfg.out
        if not out:
            raise XaiError("no output directory: set `out:` in the config or pass --out DIR")
    if args.workers or args.scheduler:
        from .distributed import run_distributed

        run_distributed(cfg, out, resume=bool(args.resume), overwrite=args.overwrite,
                        workers=args.workers, scheduler=args.scheduler, progress=not args.quiet, force=args.force)
    else:
        run(cfg, out, resume=bool(args.resume), overwrite=args.overwrite, progress=not args.quiet, force=args.force)
    print(f"summary written to {out}{_time_text(out)}")
    return 0


def _time_text(out) -> str:
    """" (setup 2.1 s: model 0.4 s, fast-forward decision 1.7 s; parts 12.0 s)" from the
    finished run's manifest; "" when it has no timing."""
    from .summary.manifest import read_manifest

    timing = read_manifest(out).get("timing") or {}
    setup = timing.get("setup_s") or {}
    parts = f"parts {timing['seconds']:.1f} s" if isinstance(timing.get("seconds"), (int, float)) else ""
    if not setup:
        return f" ({parts})" if parts else ""
    names = {"model": "model", "fast_forward": "fast-forward decision",
             "model_and_fast_forward": "model and fast-forward decision on a worker"}
    each = ", ".join(f"{names.get(k, k)} {v:.1f} s" for k, v in setup.items())
    return f" (setup {sum(setup.values()):.1f} s: {each}" + (f"; {parts})" if parts else ")")


def _cmd_demo(args) -> int:
    if args.photos:
        from .demo.photos import run_photos_demo

        out = run_photos_demo(limit=args.limit, out=args.out or "summaries/photos", data=args.data or "data/photos",
                              progress=not args.quiet, overwrite=not args.keep, explainers=args.explainers,
                              metrics=args.metrics)
        print(f"photos demo summary written to {out}")
        return 0
    from .demo.runner import run_demo

    out = run_demo(limit=args.limit, out=args.out or "summaries/demo", data=args.data or "data/demo", progress=not args.quiet,
                   overwrite=not args.keep, explainers=args.explainers, metrics=args.metrics,
                   analyses=not args.no_analyses)
    print(f"demo summary written to {out}")
    return 0


def _cmd_inspect(args) -> int:
    from .inspect import inspect_run

    info = inspect_run(args.run_dir)
    if args.verify:
        from .summary.reader import RunReader

        info["verified"] = RunReader(args.run_dir).verify()
    if args.json:
        print(json.dumps(strict_json(info), indent=2, allow_nan=False))
    else:
        print(f"{info['path']}: {info['status']}, format v{info['format_version']}, "
              f"{info['n_samples']} samples, {info['n_explained']} explained labels")
        print("tags: " + ", ".join(f"{k}={v}" for k, v in info["tags"].items()))
        if "verified" in info:
            v = info["verified"]
            older = [f"{v['without_record']} older parts have none (checked for links only)"] if v["without_record"] else []
            if v.get("without_table_checksums"):
                older.append(f"{v['without_table_checksums']} parts written before format 2 have no table checksums")
            print(f"verified the manifest and {v['parts']} parts: every file matches its checksum"
                  + (f" ({'; '.join(older)})" if older else ""))
        for e, row in info["scores"].items():
            cells = ", ".join(f"{m}={v:.3f}" if v is not None else f"{m}=n/a" for m, v in row.items())
            print(f"  {e}: {cells}")
        if info.get("backends"):
            print("parts by backend: " + ", ".join(f"{b}={n}" for b, n in info["backends"].items()))
        if info.get("model_nan"):
            cells = ", ".join(f"{e}/{m} {n}" for e, row in info["model_nan"].items() for m, n in row.items())
            print(f"scores n/a because the model returned non-finite outputs: {cells} "
                  f"(e.g. {info['model_nan_example']})")
    return 0


def strict_json(obj):
    """``obj`` with non-finite floats made valid JSON for other tools (jq, browsers): an
    unbounded range end becomes the string "inf" / "-inf", a missing value (NaN) null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    return obj


def _cmd_list(args) -> int:
    from .explainers import EXPLAINERS
    from .metrics import METRICS

    reg = EXPLAINERS if args.kind == "explainers" else METRICS
    items = [cls.metadata() for cls in reg]
    if args.json:
        print(json.dumps(strict_json(items), indent=2, allow_nan=False))
    else:
        for it in items:
            print(f"{it['name']:24s} {it['display_name']}  {it.get('paper', '')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xai-core", description="Explain and evaluate an image classifier into a summary directory.")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run a configuration (YAML) or resume a run")
    r.add_argument("--config", help="run configuration YAML")
    r.add_argument("--resume", metavar="DIR", help="finish an interrupted run in DIR with its stored configuration")
    r.add_argument("--out", help="output run directory (overrides `out:`)")
    r.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value, e.g. --set labels.top_k=5")
    r.add_argument("--limit", type=int, help="only the first N dataset items")
    r.add_argument("--overwrite", action="store_true", help="replace an existing run in the output directory")
    r.add_argument("--force", action="store_true",
                   help="with --resume: finish the run even though the dataset file or model weights changed")
    r.add_argument("--workers", type=int, default=0, help="run on a local Dask cluster of N workers (127.0.0.1)")
    r.add_argument("--scheduler", help="run on an existing Dask cluster, tcp://HOST:PORT")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=_cmd_run)

    d = sub.add_parser("demo", help="build the demo data and model if missing and run the default configuration")
    d.add_argument("--limit", type=int, help="only the first N test images")
    d.add_argument("--photos", action="store_true",
                   help="the real-photos demo: EfficientNet-Lite0 (bundled ImageNet weights) on scikit-image's photos")
    d.add_argument("--out", help="output run directory (default summaries/demo, or summaries/photos)")
    d.add_argument("--data", help="demo dataset folder (default data/demo, or data/photos)")
    d.add_argument("--keep", action="store_true", help="resume an existing demo run instead of replacing it")
    d.add_argument("--explainers", nargs="+", metavar="NAME", help="explainers instead of the default set")
    d.add_argument("--metrics", nargs="+", metavar="NAME", help="metrics instead of the default set")
    d.add_argument("--no-analyses", action="store_true",
                   help="skip uncertainty, counterfactuals and the sanity check")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=_cmd_demo)

    i = sub.add_parser("inspect", help="print an overview of a run")
    i.add_argument("run_dir")
    i.add_argument("--json", action="store_true")
    i.add_argument("--verify", action="store_true",
                   help="check every part against its commit record (row counts, chunk sizes and CRC-32)")
    i.set_defaults(func=_cmd_inspect)

    lst = sub.add_parser("list", help="list the registered explainers or metrics")
    lst.add_argument("kind", choices=["explainers", "metrics"])
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=_cmd_list)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except XaiError as e:
        if os.environ.get("XAI_DEBUG"):  # the chained traceback, for bug reports
            traceback.print_exc()
        print(f"xai-core: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("xai-core: interrupted; what was committed is kept (finish a run with --resume DIR)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
