"""``xai-core``: run, demo, inspect, report, list, serve (the dashboard) and explainer (the
service). Errors print one line and exit 2 (``XAI_DEBUG=1`` adds the traceback); Ctrl-C prints
one line and exits 130."""

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
    # The configuration is read and checked before torch is imported (runner → engine →
    # torch): a wrong path or value answers in a fraction of a second.
    from .budget import budget_text
    from .config import load_config, resume_config

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
        if args.threads is not None:  # how many cores, not what is computed: a resume may change it
            import dataclasses

            cfg = dataclasses.replace(cfg, threads=args.threads)
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
        if args.threads is not None:
            overrides.append(f"threads={args.threads}")
        if args.budget:  # 2h, 90min, 50000passes (xai_core/budget.py)
            overrides += [f"budget.{k}={v}" for k, v in budget_text(args.budget).items()]
        cfg = load_config(args.config, overrides)
        out = cfg.out
        if not out:
            raise XaiError("no output directory: set `out:` in the config or pass --out DIR")
    from .runner import run

    if args.plan:  # print what the run would cost; nothing is written
        if args.resume or args.workers or args.scheduler:
            raise XaiError("--plan applies to a new single-process run (--config), not to --resume or --workers")
        run(cfg, out, plan_only=True)
        return 0
    if args.workers or args.scheduler:
        from .distributed import run_distributed

        run_distributed(cfg, out, resume=bool(args.resume), overwrite=args.overwrite,
                        workers=args.workers, scheduler=args.scheduler, progress=not args.quiet, force=args.force,
                        pipelined=not args.no_pipeline)
    else:
        run(cfg, out, resume=bool(args.resume), overwrite=args.overwrite, progress=not args.quiet, force=args.force,
            pipelined=not args.no_pipeline)
    print(f"summary written to {out}")
    return 0


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
        if info.get("error"):
            print(f"error: {info['error']}")
        print("tags: " + ", ".join(f"{k}={v}" for k, v in info["tags"].items()))
        if info.get("named_model"):
            print(f"model: {info['named_model']}")
        if info.get("device"):
            d = info["device"]
            print(f"device: {d['resolved'] or 'per worker'}" + (f" ({d['name']})" if d.get("name") else "")
                  + f", {d.get('precision') or 'fp32'}, batch {d.get('explain_batch_size') or '?'}"
                  + (f", {d['forward_backoffs']} out-of-memory back-offs" if d.get("forward_backoffs") else "")
                  + f" — {d['requested']}: {d.get('reason')}")
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
        for e, text in info.get("resolved_text", {}).items():
            print(f"  {e}: {text}")
        for line in info.get("warnings", []):
            print(f"  WARNING {line}")
        if info.get("plan"):
            print(info["plan"]["text"])
        if info.get("backends"):
            print("parts by backend: " + ", ".join(f"{b}={n}" for b, n in info["backends"].items()))
        if info.get("model_nan"):
            cells = ", ".join(f"{e}/{m} {n}" for e, row in info["model_nan"].items() for m, n in row.items())
            print(f"scores n/a because the model returned non-finite outputs: {cells} "
                  f"(e.g. {info['model_nan_example']})")
    return 0


def _tag_list(text: str | None, flag: str) -> tuple[str, ...] | None:
    if text is None:
        return None
    from .labels import TAGS

    tags = tuple(t.strip().upper() for t in text.split(",") if t.strip())
    bad = [t for t in tags if t not in TAGS]
    if bad:
        raise XaiError(f"{flag} {text!r}: unknown tag(s) {bad}; expected a comma-separated list of {', '.join(TAGS)}")
    return tags


def _weights(items: list[str] | None) -> dict[str, float] | None:
    if not items:
        return None
    out = {}
    for it in items:
        name, sep, value = it.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise XaiError(f"--weight {it!r}: expected METRIC=WEIGHT, e.g. --weight deletion_auc=2")
    return out


def _cmd_report(args) -> int:
    from .dashboard.assessment import LOCALISATION_TAGS, RowFilter
    from .report import ReportOptions, write_report

    run_dir = Path(args.run_dir)
    loc = _tag_list(args.localisation_tags, "--localisation-tags")
    gallery = _tag_list(args.gallery_tags, "--gallery-tags")
    opts = ReportOptions(weights=_weights(args.weight), metric=args.metric, per_explainer=args.per_explainer,
                         rows_filter=RowFilter(_tag_list(args.tags, "--tags") or (),
                                               LOCALISATION_TAGS if loc is None else loc),
                         **({} if gallery is None else {"gallery_tags": gallery}))
    out = Path(args.out) if args.out else Path(f"{run_dir.resolve().name}-report.{'pdf' if args.pdf else 'html'}")
    write_report(run_dir, out, opts, pdf=args.pdf)
    print(f"report written to {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


def _cmd_serve(args) -> int:
    from .dashboard_server import serve_forever

    return serve_forever(args.logdir, port=args.port, host=args.host)


def _numbers(text: str, what: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        raise XaiError(f"{what} is {text!r}; expected comma-separated numbers") from None


def _service_config(args):
    import yaml

    from .data.classes import resolve_classes
    from .service import Limits, ServiceConfig

    if (args.classes is None) == (args.num_classes is None):
        raise XaiError("give the predictor's classes: --classes FILE|imagenet|a,b,c or --num-classes K")
    if args.num_classes is not None:
        if args.num_classes < 1:
            raise XaiError(f"--num-classes is {args.num_classes}; expected ≥ 1")
        classes = [str(i) for i in range(args.num_classes)]
    elif Path(args.classes).is_file() or args.classes == "imagenet":
        classes = resolve_classes(args.classes)
    else:
        classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    entries = [{"type": n.strip(), "params": {}} for n in args.explainers.split(",") if n.strip()]
    for assignment in args.set or []:
        key, sep, value = assignment.partition("=")
        name, dot, param = key.strip().partition(".")
        entry = next((e for e in entries if e["type"] == name), None)
        if not (sep and dot and param) or entry is None:
            raise XaiError(f"--set {assignment!r}: expected EXPLAINER.PARAM=VALUE for one of --explainers "
                           f"({', '.join(e['type'] for e in entries)})")
        entry["params"][param] = yaml.safe_load(value)
    size = tuple(int(v) for v in _numbers(args.input_size, "--input-size"))
    return ServiceConfig(
        model_name=args.model_name, predictor_host=args.predictor_host, classes=tuple(classes),
        explainers=tuple(entries), metrics=tuple(m.strip() for m in (args.metrics or "").split(",") if m.strip()),
        protocol=args.protocol, activation=args.activation, input_size=size * 2 if len(size) == 1 else size,
        mean=_numbers(args.mean, "--mean"), std=_numbers(args.std, "--std"), outputs=args.outputs,
        resize=args.resize, top_k=args.top_k, timeout=args.timeout, binary_data=args.binary_data,
        log_run=str(Path(args.log_run).resolve()) if args.log_run else None,
        limits=Limits(max_instances=args.max_instances, max_pixels=args.max_pixels,
                      max_body_bytes=int(args.max_body_mb * (1 << 20)), max_passes=args.max_passes))


def _cmd_explainer(args) -> int:
    from .service import serve_service

    serve_service(_service_config(args), host=args.host, port=args.port)
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
    r.add_argument("--workers", type=int, default=0,
                   help="run on a local Dask cluster of N workers (127.0.0.1); with GPUs, one worker per visible GPU")
    r.add_argument("--scheduler", help="run on an existing Dask cluster, tcp://HOST:PORT")
    r.add_argument("--threads", type=int, metavar="N",
                   help="intra-op CPU threads of torch and ONNX Runtime (overrides `threads:`; default "
                        "$OMP_NUM_THREADS, else the cores this process may use; per worker with --workers)")
    r.add_argument("--no-pipeline", action="store_true",
                   help="read, compute and write each part in turn (no background reader and writer threads)")
    r.add_argument("--quiet", action="store_true", help="no progress bars or lines")
    r.add_argument("--budget", metavar="LIMIT", help="at most this predicted time (2h, 90min) or passes (50000passes)")
    r.add_argument("--plan", action="store_true",
                   help="print the run's plan (model passes, predicted time) from a probe of its first part; write nothing")
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

    rp = sub.add_parser("report", help="write one self-contained HTML file (or PDF) about a run, to hand on")
    rp.add_argument("run_dir")
    rp.add_argument("--out", help="output file (default: <run>-report.html in the current directory)")
    rp.add_argument("--pdf", action="store_true", help="write PDF (WeasyPrint; without the interactive charts)")
    rp.add_argument("--weight", action="append", metavar="METRIC=W",
                    help="a metric's weight in the ranking (the others keep 1); repeat for several")
    rp.add_argument("--tags", metavar="TP,FN", help="tags averaged for label-specific metrics (default: every tag)")
    rp.add_argument("--localisation-tags", metavar="TP", help="tags averaged for localisation metrics (default: TP)")
    rp.add_argument("--metric", help="the gallery's metric (default: the first faithfulness metric)")
    rp.add_argument("--per-explainer", type=int, default=3, metavar="N",
                    help="best and worst samples per explainer in the gallery (default 3)")
    rp.add_argument("--gallery-tags", metavar="TP", help="tags of the labels the gallery ranks (default: TP)")
    rp.set_defaults(func=_cmd_report)

    sv = sub.add_parser("serve", help="serve the dashboard for the runs under a log directory")
    sv.add_argument("--logdir", default="summaries", help="the folder of runs (default: summaries)")
    sv.add_argument("--port", type=int, default=8501, help="port (default 8501; 0: a free one)")
    sv.add_argument("--host", default="127.0.0.1",
                    help="address to listen on (default 127.0.0.1; whoever reaches it reads every run)")
    sv.set_defaults(func=_cmd_serve)

    x = sub.add_parser("explainer", help="serve explanations over HTTP beside a predictor (KServe explainer protocol)")
    x.add_argument("--model-name", "--model_name", required=True, help="the predictor's model name (NAME in the URLs)")
    x.add_argument("--predictor-host", "--predictor_host", required=True, help="the predictor, HOST:PORT (or a URL)")
    x.add_argument("--protocol", choices=["v1", "v2"], default="v1", help="how the predictor is called (default v1)")
    x.add_argument("--explainers", default="occlusion", help="comma-separated (default occlusion); forward-only ones")
    x.add_argument("--set", action="append", metavar="EXPLAINER.PARAM=VALUE", help="an explainer's default parameter")
    x.add_argument("--metrics", default="", help="comma-separated metrics to score each map with (default none)")
    x.add_argument("--classes", help="the predictor's classes: a .json/.txt file, imagenet, or a,b,c")
    x.add_argument("--num-classes", type=int, help="instead of --classes: K classes named 0 … K-1")
    x.add_argument("--activation", choices=["sigmoid", "softmax"], default="softmax")
    x.add_argument("--outputs", choices=["logits", "probabilities"], default="logits",
                   help="what the predictor returns (default logits)")
    x.add_argument("--input-size", default="224", help="H[,W] the predictor takes (default 224)")
    x.add_argument("--mean", default="0,0,0", help="per-channel mean applied before sending (default 0,0,0)")
    x.add_argument("--std", default="1,1,1", help="per-channel std (default 1,1,1)")
    x.add_argument("--resize", choices=["stretch", "center_crop"], default="stretch")
    x.add_argument("--top-k", type=int, default=1, help="labels explained when a request names none (default 1)")
    x.add_argument("--log-run", metavar="DIR", help="append every request to a run under DIR (the dashboard's logdir)")
    x.add_argument("--binary-data", action="store_true", help="V2 binary tensors to the predictor")
    x.add_argument("--timeout", type=float, default=30.0, help="seconds per predictor request (default 30)")
    x.add_argument("--max-instances", type=int, default=16, help="images per request (default 16)")
    x.add_argument("--max-pixels", type=int, default=4096 * 4096, help="pixels per image (default 4096²)")
    x.add_argument("--max-body-mb", type=float, default=64.0, help="request body in MiB (default 64)")
    x.add_argument("--max-passes", type=int, default=20_000,
                   help="model passes an explainer may make per image and label (default 20000)")
    x.add_argument("--port", "--http_port", type=int, default=8080, help="port (default 8080)")
    x.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    x.set_defaults(func=_cmd_explainer)

    lst = sub.add_parser("list", help="list the registered explainers or metrics")
    lst.add_argument("kind", choices=["explainers", "metrics"])
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=_cmd_list)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        rc = args.func(args)
        sys.stdout.flush()  # inside the try: a closed pipe raises here, not at interpreter exit
        return rc
    except BrokenPipeError:
        # `xai-core list explainers | head`: the reader has gone, which is no error of ours. Point
        # stdout at devnull so that Python's own flush at exit does not raise again (the
        # recipe of Python's signal documentation).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
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
