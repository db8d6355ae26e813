"""The run configuration: YAML file + ``key=value`` overrides → a frozen :class:`RunConfig`,
validated against the registries. The whole config is copied into the summary manifest so
that a run can be reproduced (and resumed) from its directory alone."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .data.spec import DatasetSpec
from .errors import ConfigError, SummaryError, XaiError
from .labels import LabelPolicy
from .models.spec import ModelSpec
from .budget import BudgetSpec, parse_budget
from .sampling import SampleSpec, parse_sample
from .stopping import StopSpec, parse_stop
from .threads import check_threads


@dataclass(frozen=True)
class PluginSpec:
    """One explainer or metric instance: registry ``type``, user-chosen unique ``name``."""

    type: str
    name: str
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class UncertaintySpec:
    """MC-dropout prediction uncertainty per explained label (off by default); ``tta_shift``
    (px) / ``tta_noise`` (σ) add test-time augmentation, which alone (``dropout: 0``) also
    works for forward-only models (ONNX)."""

    enabled: bool = False
    passes: int = 10
    dropout: float = 0.1
    tta_shift: int = 0
    tta_noise: float = 0.0

    def validate(self) -> None:
        if self.passes < 2 or not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"uncertainty: passes {self.passes} / dropout {self.dropout}; expected passes ≥ 2 and 0 ≤ dropout < 1")
        if self.tta_shift < 0 or self.tta_noise < 0:
            raise ConfigError(f"uncertainty: tta_shift {self.tta_shift} / tta_noise {self.tta_noise}; expected ≥ 0")
        if self.dropout == 0 and not (self.tta_shift or self.tta_noise):
            raise ConfigError("uncertainty: dropout is 0 and there is no test-time augmentation; "
                              "give dropout > 0, or tta_shift / tta_noise > 0")


@dataclass(frozen=True)
class CounterfactualSpec:
    """Hierarchical-occlusion counterfactuals for labels above the threshold (off by default)."""

    enabled: bool = False
    layers: int = 3

    def validate(self) -> None:
        if not 1 <= self.layers <= 5:
            raise ConfigError(f"counterfactual.layers is {self.layers}; expected 1 to 5")


@dataclass(frozen=True)
class SanitySpec:
    """Cascading-randomisation sanity check per explainer, on the first ``images`` items."""

    enabled: bool = False
    images: int = 8
    # cascading stages (groups of layers randomised together, output first): the last stage
    # randomises every layer whatever the grouping, so the verdict does not depend on it;
    # fewer stages cost fewer passes (each stage explains the images again)
    steps: int = 16

    def validate(self) -> None:
        if self.images < 1:
            raise ConfigError(f"sanity.images is {self.images}; expected ≥ 1")
        if self.steps < 1:
            raise ConfigError(f"sanity.steps is {self.steps}; expected ≥ 1 (cascading stages)")


@dataclass(frozen=True)
class RunConfig:
    model: ModelSpec
    dataset: DatasetSpec
    explainers: tuple[PluginSpec, ...]
    metrics: tuple[PluginSpec, ...] = ()
    labels: LabelPolicy = LabelPolicy()
    uncertainty: UncertaintySpec = UncertaintySpec()
    counterfactual: CounterfactualSpec = CounterfactualSpec()
    sanity: SanitySpec = SanitySpec()
    # which (image, label) pairs are explained, per tag (xai_core/sampling.py); default all
    sample: SampleSpec = SampleSpec()
    # at most this many predicted seconds or model passes: what is cut, and in which order (budget.py)
    budget: BudgetSpec | None = None
    # end the run early once the explainers' ranking is settled (stopping.py)
    stop_when: StopSpec | None = None
    batch_size: int = 16
    # Pairs per explanation chunk and images per forward pass: "auto" is 64 on the CPU and the
    # largest batch that fits (probed at start) on a GPU — models/batching.py.
    explain_batch_size: int | str = "auto"
    seed: int = 0
    out: str = ""
    # Stop the run when the model returns NaN/inf inside an explanation or a metric, instead of
    # storing the scores it spoils as n/a with the reason (xai_core/finite.py).
    strict: bool = False
    # intra-op CPU threads of torch and ONNX Runtime; None: $OMP_NUM_THREADS, else the cores
    # this process may use (xai_core/threads.py). Not part of what a run computes.
    threads: int | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def instantiate(self):
        """(explainers, metrics) objects; raises ConfigError for unknown types or params."""
        from .explainers import EXPLAINERS
        from .metrics import METRICS

        try:
            exps = [EXPLAINERS.get(p.type)(p.params, instance_name=p.name) for p in self.explainers]
            mets = [METRICS.get(p.type)(p.params, instance_name=p.name) for p in self.metrics]
        except XaiError as e:
            raise ConfigError(str(e)) from e
        return exps, mets


def _plugins(entries: Any, section: str) -> tuple[PluginSpec, ...]:
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise ConfigError(f"{section} is {type(entries).__name__}; expected a list of names or {{type, name, params}} maps")
    out, seen = [], set()
    for i, e in enumerate(entries):
        if isinstance(e, str):
            e = {"type": e}
        if not isinstance(e, dict) or "type" not in e:
            raise ConfigError(f"{section}[{i}] is {e!r}; expected a name or a map with a `type` key")
        extra = set(e) - {"type", "name", "params"}
        if extra:
            raise ConfigError(f"{section}[{i}]: unknown key {sorted(extra)[0]!r}; expected type, name, params")
        name = str(e.get("name") or e["type"])
        if name in seen:
            raise ConfigError(f"{section}: name {name!r} is used twice; give each instance a unique `name`")
        seen.add(name)
        params = e.get("params") or {}
        if not isinstance(params, dict):
            raise ConfigError(f"{section}[{i}] ({name}): params is {params!r}; expected a map")
        out.append(PluginSpec(str(e["type"]), name, dict(params)))
    return tuple(out)


def _type_name(tp) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _type_name(a) for a in args)
    if origin is tuple:
        plural = {int: "integers", float: "numbers", str: "strings", bool: "booleans"}
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {plural.get(args[0], 'values')}"
        if len(set(args)) == 1:
            return f"a list of {len(args)} {plural.get(args[0], 'values')}"
        return f"a list of {len(args)} values"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string",
            dict: "a map"}.get(tp, getattr(tp, "__name__", str(tp)))


def _fits(value, tp) -> bool:
    """Does ``value`` (parsed YAML, lists already made tuples) have type ``tp``? Strict: an
    int field takes neither ``true`` nor ``1.7``; a float field takes ints."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if tp is type(None):
        return value is None
    if tp is Any:
        return True
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_fits(v, args[0]) for v in value)
        return len(value) == len(args) and all(_fits(v, a) for v, a in zip(value, args))
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin is dict or tp is dict:
        return isinstance(value, dict)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True  # a type this checker does not know: the section's own validate() decides


def check_types(cls, values: dict, section: str) -> None:
    """ConfigError naming ``section.key``, the value and the expected type, for the first value
    in ``values`` whose type does not match the dataclass field of ``cls``."""
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        tp = hints.get(key)
        if tp is not None and not _fits(value, tp):
            where = f"{section}.{key}" if section else key
            raise ConfigError(f"{where} is {value!r}; expected {_type_name(tp)}")


def _section(raw: dict, key: str, cls, convert=None):
    values = raw.get(key) or {}
    if not isinstance(values, dict):
        raise ConfigError(f"`{key}` is {values!r}; expected a map")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"{key}: unknown key {unknown[0]!r}; expected some of {sorted(names)}")
    values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items()}
    check_types(cls, values, key)
    if convert:
        values = convert(values)
    return cls(**values)


def config_from_dict(raw: dict, *, base_dir: Path | None = None) -> RunConfig:
    """Build and validate a RunConfig from a plain dict (parsed YAML or a manifest copy)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"the configuration is {type(raw).__name__}; expected a YAML map")
    known = {"model", "dataset", "explainers", "metrics", "labels", "uncertainty", "counterfactual", "sanity",
             "sample", "budget", "stop_when", "batch_size", "explain_batch_size", "seed", "out", "strict", "threads"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"unknown top-level key {unknown[0]!r}; expected some of {sorted(known)}")

    def rel(path):
        # Paths in a config file are relative to that file.
        if not path:
            return path
        p = Path(path)
        if base_dir is not None and not p.is_absolute():
            p = base_dir / p
        return str(p.resolve())

    named_classes = []

    def model_conv(v):
        for k in ("weights", "torchscript", "onnx", "hf"):
            if v.get(k):
                v[k] = rel(v[k])
        if v.get("timm") or v.get("hf"):  # the model's own preprocessing and labels (models/named.py)
            from .models.named import fill_model_section

            named_classes.append(fill_model_section(v))
        path = v.get("factory_path")
        if isinstance(path, str):
            path = (path,)
        if path:
            v["factory_path"] = tuple(rel(d) for d in path)
        elif v.get("factory") and base_dir is not None:
            v["factory_path"] = (rel("."),)  # the factory's module is found beside the config file first
        return v

    def data_conv(v):
        if v.get("classes") is None and named_classes and named_classes[0]:
            c = named_classes[0]
            v["classes"] = c if isinstance(c, str) else tuple(c)
        if v.get("path"):
            v["path"] = rel(v["path"])
        if isinstance(v.get("classes"), str) and Path(v["classes"]).suffix.lower() in (".json", ".txt"):
            v["classes"] = rel(v["classes"])  # a class file; a bare name is a bundled list
        return v

    top = {k: raw[k] for k in ("batch_size", "explain_batch_size", "seed", "out", "strict", "threads") if k in raw}
    if top.get("out") is None:
        top.pop("out", None)
    check_types(RunConfig, top, "")
    try:
        cfg = RunConfig(
            model=_section(raw, "model", ModelSpec, model_conv),
            dataset=_section(raw, "dataset", DatasetSpec, data_conv),
            explainers=_plugins(raw.get("explainers"), "explainers"),
            metrics=_plugins(raw.get("metrics"), "metrics"),
            labels=_section(raw, "labels", LabelPolicy),
            uncertainty=_section(raw, "uncertainty", UncertaintySpec),
            counterfactual=_section(raw, "counterfactual", CounterfactualSpec),
            sanity=_section(raw, "sanity", SanitySpec),
            sample=parse_sample(raw.get("sample")),
            budget=parse_budget(raw.get("budget")),
            stop_when=parse_stop(raw.get("stop_when")),
            batch_size=int(raw.get("batch_size", 16)),
            explain_batch_size=_explain_batch(raw.get("explain_batch_size", "auto")),
            seed=int(raw.get("seed", 0)),
            out=str(rel(raw.get("out", "")) or ""),
            strict=bool(raw.get("strict", False)),
            threads=raw.get("threads"),
        )
    except (TypeError, ValueError) as e:
        raise ConfigError(f"invalid configuration: {e}") from e
    validate(cfg)
    return cfg


def _explain_batch(value) -> int | str:
    if value == "auto":
        return value
    if isinstance(value, str):
        raise ConfigError(f"explain_batch_size is {value!r}; expected a positive integer or auto")
    return int(value)


def validate(cfg: RunConfig) -> None:
    try:
        cfg.model.validate()
        cfg.dataset.validate()
    except XaiError as e:
        raise ConfigError(str(e)) from e
    cfg.labels.validate()
    cfg.uncertainty.validate()
    cfg.counterfactual.validate()
    cfg.sanity.validate()
    if not cfg.explainers:
        raise ConfigError("explainers is empty; expected at least one (see `xai-core list explainers`)")
    if cfg.batch_size < 1 or (cfg.explain_batch_size != "auto" and cfg.explain_batch_size < 1):
        raise ConfigError(f"batch_size {cfg.batch_size} / explain_batch_size {cfg.explain_batch_size}: expected ≥ 1")
    check_threads(cfg.threads)
    cfg.instantiate()


def _yaml_kind(value) -> str:
    kind = {list: "a list", str: "a string", bool: "a boolean"}.get(type(value))
    return kind or ("a number" if isinstance(value, (int, float)) else type(value).__name__)


def set_override(raw: dict, assignment: str) -> None:
    """Apply ``a.b.c=value`` (value parsed as YAML) to a nested dict in place."""
    if "=" not in assignment:
        raise ConfigError(f"override {assignment!r}: expected key.path=value")
    key, value = assignment.split("=", 1)
    parts = key.strip().split(".")
    node = raw
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {assignment!r}: {p!r} is not a map")
    node[parts[-1]] = yaml.safe_load(value)


def load_config(path: str | Path, overrides: list[str] = ()) -> RunConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from e
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {str(path)!r} cannot be read ({getattr(e, 'strerror', None) or e})") from e
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):  # before --set / --out edit it as a map
        raise ConfigError(f"{path}: the configuration is {_yaml_kind(raw)}; expected a YAML map of sections "
                          "(model:, dataset:, explainers:, …)")
    for o in overrides:
        set_override(raw, o)
    return config_from_dict(raw, base_dir=path.parent)


def resume_config(run_dir: str | Path) -> RunConfig:
    """The configuration stored in a run, to finish it exactly as it was started."""
    from .summary.reader import read_manifest

    manifest = read_manifest(run_dir)
    if "config" not in manifest:
        raise SummaryError(f"{run_dir}: the manifest holds no configuration; cannot resume")
    raw = dict(manifest["config"])
    raw["explainers"] = [dict(p) for p in raw["explainers"]]
    raw["metrics"] = [dict(p) for p in raw["metrics"]]
    return config_from_dict(raw)
