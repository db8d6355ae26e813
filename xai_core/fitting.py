"""What needs the loaded model to choose a run's pairs: the sample's pre-pass
(:func:`make_sampler`, :mod:`.sampling`) and fitting a budget (:func:`fit_budget`,
:mod:`.budget`). Kept apart from those two modules, which :mod:`.config` imports: this one
imports the engine and the plan."""

from __future__ import annotations

import dataclasses

from .budget import MIN_SAMPLES, MIN_STEPS, SAMPLE_KEYS, STEP_KEYS, BudgetSpec, _allocate, _with_params
from .errors import ConfigError
from .labels import TAGS
from .sampling import SampleSpec, Sampler, count_cutoffs, draw, fixed_cutoffs, sampler_from_record


def make_sampler(ctx, batches: list[list[int]], recorded: dict | None = None) -> Sampler | None:
    """The run's :class:`Sampler` (None when ``sample`` keeps everything): the recorded one of a
    resumed run, else from the configuration — with a prediction pass over every part first
    when a tag is given as a count. ``ctx``: a built :class:`~xai_core.engine.RunContext`."""
    spec = ctx.config.sample
    if isinstance(recorded, dict) and recorded.get("cutoffs"):
        return sampler_from_record(recorded)
    if not spec.enabled:
        return None
    cutoffs = fixed_cutoffs(spec)
    seen = _prepass(ctx, batches)
    if spec.counts:
        draws: dict[str, list[float]] = {t: [] for t in spec.counts}
        for _, sid, rows in seen:
            for r in rows:
                if r.tag in draws:
                    draws[r.tag].append(draw(ctx.config.seed, sid, r.label))
        cutoffs.update(count_cutoffs(spec.counts, draws))
    sampler = Sampler(spec, ctx.config.seed, cutoffs)
    # the pairs each image will have explained: the plan counts them exactly (plan.py)
    sampler.kept = {i: sum(1 for r in rows if sampler.keeps(sid, r)) for i, sid, rows in seen}
    return sampler


def _prepass(ctx, batches) -> list[tuple[int, str, list]]:
    """(sample index, id, chosen label rows) of every image, from one prediction pass (counted
    in ``model.passes`` before the plan: a fixed cost of a sampled run)."""
    from .devices import model_device, to_device, to_host
    from .engine import load_part
    from .labels import select_labels

    out = []
    for idx in batches:
        batch = load_part(ctx, idx)
        x = to_device(batch.pixels, model_device(ctx.model))
        probs = to_host(ctx.model.predict(x, batch_size=ctx.batch_size)).numpy()
        chosen = select_labels(probs, [s.labels for s in batch.samples], ctx.config.labels, ctx.model.activation)
        out += [(i, s.id, rows) for i, s, rows in zip(batch.indices, batch.samples, chosen)]
    return out


def fit_budget(ctx, batches: list[list[int]], spec: BudgetSpec):
    """Cut ``ctx``'s run until its plan fits ``spec`` (module doc); ``ctx`` is changed in place
    (its config, explainers, metrics and sample). Returns (plan, the manifest's ``budget``);
    ConfigError in one line when the smallest plan does not fit."""
    from .plan import make_plan

    plan = make_plan(ctx, batches)
    record = {"spec": spec.to_dict(), "cuts": [], "planned_before": plan["passes"], "seconds_before": plan["seconds"]}
    if spec.fits(plan):
        return plan, {**record, "fits": True}
    seen = _prepass(ctx, batches)
    seed = ctx.config.seed
    pairs = [(i, sid, r) for i, sid, rows in seen for r in rows if ctx.sample is None or ctx.sample.keeps(sid, r)]
    counts = {t: sum(1 for *_, r in pairs if r.tag == t) for t in TAGS}
    draws = {t: [draw(seed, sid, r.label) for _, sid, r in pairs if r.tag == t] for t in TAGS}

    def sampled(n: int):
        alloc = _allocate(n, counts)
        cut = count_cutoffs(alloc, draws)
        sampler = Sampler(SampleSpec(**alloc), seed, {**fixed_cutoffs(SampleSpec()), **cut})
        sampler.kept = {i: sum(1 for r in rows if sampler.keeps(sid, r)) for i, sid, rows in seen}
        return sampler, alloc

    def plan_for(n: int):
        ctx.sample, alloc = sampled(n)
        return make_plan(ctx, batches), alloc

    lowest = sum(1 for t in TAGS if counts[t])  # one pair of each tag there is
    stages = [("images", None, None), ("curve steps", STEP_KEYS, MIN_STEPS), ("sample counts", SAMPLE_KEYS, MIN_SAMPLES)]
    for stage, keys, minimum in stages:
        if keys is not None:
            cfg, changed = _with_params(ctx.config, keys, minimum)
            if changed:
                ctx.config = cfg
                ctx.explainers, ctx.metrics = cfg.instantiate()
                record["cuts"].append(f"{stage}: " + ", ".join(changed))
        small, alloc = plan_for(lowest)
        if not spec.fits(small):
            continue
        lo, hi = lowest, len(pairs)  # the most pairs that fit: binary search on the plan
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if spec.fits(plan_for(mid)[0]):
                lo = mid
            else:
                hi = mid - 1
        plan, alloc = plan_for(lo)
        if lo < len(pairs):
            kept = ", ".join(f"{t} {alloc[t]} of {counts[t]}" for t in TAGS if counts[t])
            record["cuts"].insert(0, f"images: {lo} of {len(pairs)} pairs explained ({kept}), mistakes first")
        ctx.config = dataclasses.replace(ctx.config, sample=SampleSpec(**alloc))
        return plan, {**record, "fits": True, "pairs": [lo, len(pairs)]}
    raise ConfigError(f"budget {spec}: even the smallest plan ({lowest} pair(s), steps ≤ {MIN_STEPS}, samples ≤ "
                      f"{MIN_SAMPLES}) needs {spec.need(small)}; raise the budget or choose cheaper methods")
