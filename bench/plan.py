"""Plan accuracy (issue 24): predicted against actual model passes and seconds.

For each configuration the plan is made alone first (``plan_only``: what ``--plan`` prints,
timed: what the plan itself costs), then the run is made, and its manifest's ``plan`` (made
by the run, before its first part) is compared with what it paid: ``timing.model_passes``
plus the sanity check's randomised copies (``xai_core.inspect.planned_vs_actual``), and the
run's wall seconds (``timing.seconds``, which excludes setup). Goals (issue 24, on a quiet
machine): passes within 10 %, seconds within 25 %. Also the passes per image by entry of the
default demo configuration.

Configurations: the default demo (``BENCH_PLAN_IMAGES``, default 4 images in parts of 2, so
that the probe part stands for another one), the same with the sanity check (2 images), a
sampled demo (mistakes only), and ``bench/runner.py``'s light configuration (64 images).

Run: ``python bench/plan.py`` (``BENCH_PLAN_IMAGES=N``).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from _common import demo_config, env_int, figure, header, manifest

LIGHT = dict(explainers=["gradient", "gradcam", "random"], metrics=["pointing_game", "iosr", "sparseness", "complexity"],
             uncertainty={"enabled": False}, counterfactual={"enabled": False})


def measure(name: str, raw: dict, out: Path) -> dict:
    from xai_core.config import config_from_dict
    from xai_core.inspect import planned_vs_actual
    from xai_core.runner import run

    cfg = config_from_dict(raw)
    t0 = time.perf_counter()
    alone = run(cfg, out, plan_only=True, progress=False)
    plan_s = time.perf_counter() - t0
    run(cfg, out, progress=False, overwrite=True)
    m = manifest(out)
    pva = planned_vs_actual(m)
    (p_plan, p_act), (s_plan, s_act) = pva["passes"], pva["seconds"]
    lo, hi = pva["seconds_range"]
    print(f"-- {name}: {m['plan']['images']} images, {m['plan']['labels_per_image']} labels per image", flush=True)
    figure("planned passes (alone / in the run)", f"{alone['passes']:,} / {p_plan:,}")
    figure("actual passes", f"{p_act:,}")
    figure("passes error", f"{100 * (p_plan - p_act) / max(1, p_act):+.1f} %", goal="within ±10 %")
    figure("planned seconds", f"{s_plan:.1f} s (range {lo:.1f} – {hi:.1f} s)")
    figure("actual seconds (timing.seconds)", f"{s_act:.1f} s")
    figure("seconds error", f"{100 * (s_plan - s_act) / max(1e-9, s_act):+.1f} %", goal="within ±25 %")
    figure("actual within the range", lo <= s_act <= hi)
    figure("cost of the plan alone", f"{plan_s:.1f} s")
    return m


def main() -> None:
    n = env_int("BENCH_PLAN_IMAGES", 4)
    header(f"Plan accuracy — predicted vs actual passes and seconds ({n} demo images)",
           f"BENCH_PLAN_IMAGES={n} python bench/plan.py")
    tmp = Path(tempfile.mkdtemp(prefix="bench-plan-"))
    try:
        demo = demo_config(tmp / "demo", limit=n, batch_size=2)
        m = measure("default demo", demo, tmp / "demo")
        print("-- passes per image of the default demo configuration, by entry (plan)", flush=True)
        for key, v in sorted(m["plan"]["per_image"].items(), key=lambda kv: -kv[1])[:12]:
            figure(key, f"{v:,.0f}")
        figure("total per image", f"{m['plan']['passes_per_image']:,.0f}")
        sane = demo_config(tmp / "sanity", limit=2, batch_size=2)
        sane["sanity"] = {"enabled": True, "images": 2, "steps": 4}  # the demo's 4 cascading stages
        measure("default demo + sanity check (2 images, 4 stages)", sane, tmp / "sanity")
        measure("demo, mistakes only (sample: {TP: 0, TN: 0})",
                demo_config(tmp / "mist", limit=max(n, 8), batch_size=4, sample={"TP": 0, "TN": 0}), tmp / "mist")
        measure("bench/runner.py light configuration (64 images)",
                demo_config(tmp / "light", limit=64, **LIGHT), tmp / "light")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
