"""``make bench``: run every benchmark script in ``bench/`` one after the other, each in its own
process, and print their figures. Files starting with ``_`` are helpers, not benchmarks.

    python bench/run_all.py                    # every benchmark (tens of minutes on 2 cores)
    python bench/run_all.py runner scaling     # only these
    BENCH_QUICK=1 python bench/run_all.py      # smaller sizes: a smoke run of every script

Scripts run sequentially, never side by side: their figures are timings of a shared machine.
The exit status is non-zero when a script fails; the others still run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Order: the cheap, issue-level figures first.
ORDER = ("runner", "scaling", "memory", "explainers", "metrics", "dashboard", "dashboard_ui")
# BENCH_QUICK: sizes that make every script finish in about a minute (figures are noisier).
QUICK = {"BENCH_IMAGES": "4", "BENCH_SCALING_IMAGES": "4", "BENCH_MEMORY_SIZES": "100,1000",
         "BENCH_DASHBOARD_SAMPLES": "5000", "BENCH_EXPLAINER_MODELS": "demo", "BENCH_METRIC_PAIRS": "8",
         "BENCH_REMOTE_IMAGES": "16", "BENCH_SERVICE_REPEATS": "2", "BENCH_PLAN_IMAGES": "2"}


def scripts(wanted: list[str]) -> list[Path]:
    found = {p.stem: p for p in HERE.glob("*.py") if not p.stem.startswith("_") and p.stem != "run_all"}
    unknown = [w for w in wanted if w not in found]
    if unknown:
        raise SystemExit(f"bench: no benchmark named {', '.join(unknown)}; expected some of {sorted(found)}")
    names = wanted or sorted(found, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))
    return [found[n] for n in names]


def main(argv: list[str]) -> int:
    env = dict(os.environ)
    if env.get("BENCH_QUICK"):
        env = {**QUICK, **env}
    failed = []
    for path in scripts(argv):
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, str(path)], env=env, cwd=HERE.parent)
        print(f"   ({path.name}: {time.perf_counter() - t0:.0f} s{'' if rc == 0 else f', exit {rc}'})\n", flush=True)
        if rc:
            failed.append(path.name)
    if failed:
        print(f"bench: failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
