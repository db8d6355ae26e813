"""A columnar, read-only view of one run, built once per run version and shared by every
page and session (the pages cache it with ``st.cache_resource``).

Everything an interaction needs is a numpy column here, so filtering, sorting and
aggregating are vectorised and never re-read or copy the run (MindInsight deep-copies and
re-sorts every sample on each page turn, ANCHORS.md §5).

Row spaces:
* sample position ``pos`` — row of ``samples`` (sorted by ``sample_index``);
* label row ``lrow`` — row of ``labels``, grouped by ``pos`` (rows of sample ``pos`` are
  ``starts[pos]:starts[pos + 1]``, in the order the runner wrote them: decreasing probability);
* score rows, grouped by (explainer, metric) so one pair is one contiguous slice.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from ..errors import SummaryError
from ..labels import TAGS
from ..summary.format import MANIFEST, SCHEMAS, arrays_path, table_path
from ..summary.parts import check_table_files, table_parts
from ..summary.reader import RunReader
from .runs import ensure_inside


# Optional labels columns of MC-dropout uncertainty (FORMAT.md); null when the run has none.
UNCERTAINTY = ("prob_std", "ci_low", "ci_high")


def run_stamp(run_dir: str | Path) -> int:
    """Changes whenever the writer commits progress (it rewrites the manifest atomically), so
    it keys the caches of a run that is still being written."""
    try:
        st = (Path(run_dir) / MANIFEST).stat()
    except OSError:
        return 0
    return st.st_mtime_ns ^ st.st_size


def _read_table(run_dir: Path, root: Path, name: str, parts: list[int], columns: list[str],
                optional: tuple[str, ...] = (), dictionary: tuple[str, ...] = (), records: dict | None = None) -> pa.Table:
    """Only the needed columns of every committed part, in part order, read as one dataset
    (pyarrow reads the files in parallel). ``optional`` columns are kept when the files have
    them (later format additions such as ``prob_std``); parts without them read as null."""
    files = [str(ensure_inside(root, table_path(run_dir, name, p))) for p in parts]
    check_table_files(run_dir, name, parts, records)  # a changed byte is damage, not data (FORMAT.md)
    if not files:
        return SCHEMAS[name].empty_table().select(columns)
    try:
        have = set(pq.read_schema(files[0]).names) | set(pq.read_schema(files[-1]).names)
        cols = columns + [c for c in optional if c in have]
        schema = pa.schema([SCHEMAS[name].field(c) if c in SCHEMAS[name].names else pq.read_schema(files[-1]).field(c)
                            for c in cols])
        fmt = pads.ParquetFileFormat(read_options=pads.ParquetReadOptions(
            dictionary_columns=[c for c in dictionary if c in cols]))
        if dictionary:  # dictionary-encoded on read: strings arrive as categoricals, not objects
            schema = pa.schema([pa.field(f.name, pa.dictionary(pa.int32(), f.type)) if f.name in dictionary else f
                                for f in schema])
        return pads.dataset(files, schema=schema, format=fmt).to_table(columns=cols)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as e:
        raise SummaryError(_which_part_is_bad(files, parts, name, e)) from e


def _which_part_is_bad(files: list[str], parts: list[int], name: str, error: Exception) -> str:
    for f, p in zip(files, parts):
        try:
            pq.read_metadata(f)
        except (pa.ArrowInvalid, OSError) as e:
            return f"{f}: part {p} of table {name!r} is corrupt or missing ({e}); re-run that part with --resume"
    return f"{Path(files[0]).parent}: table {name!r} cannot be read ({error}); re-run the damaged parts with --resume"


def _label_row(lab: pd.DataFrame, pos: np.ndarray, label: np.ndarray, missing: int = -1) -> np.ndarray:
    """Row of ``lab`` (columns pos, label) holding each (pos, label) pair, ``missing`` where none."""
    out = np.full(len(pos), missing, np.int64)
    if not len(lab) or not len(pos):
        return out
    k = int(max(label.max(), lab["label"].max())) + 1
    lkey = lab["pos"].to_numpy().astype(np.int64) * k + lab["label"].to_numpy()
    lorder = np.argsort(lkey, kind="stable")
    key = pos.astype(np.int64) * k + label
    hit = lorder[np.minimum(np.searchsorted(lkey[lorder], key), len(lkey) - 1)]
    return np.where(lkey[hit] == key, hit, missing)


@dataclass(eq=False)
class RunTables:
    """Tables of one run; build with :meth:`load`. Treat as read-only: it is shared between
    sessions."""

    run_dir: Path
    manifest: dict
    samples: pd.DataFrame          # sample_index, sample_id, source, part, offset, height, width
    extra: pa.Table                # per sample, not converted: gt_labels, probs, boxes
    labels: pd.DataFrame           # pos, sample_index, label, prob, tag, is_gt, part, map_offset[, UNCERTAINTY]
    starts: np.ndarray             # (n_samples + 1,) int64 offsets of each sample's label rows
    scores: pd.DataFrame           # explainer, metric, pos, lrow, label, raw, score[, nan_reason]
    pair_slices: dict              # (explainer, metric) -> slice of `scores`
    root: Path | None = None       # the logdir bounding every path read later (lazy tables)
    parts: tuple[int, ...] = ()    # committed parts at load time
    stamp: int = 0                 # run_stamp() before loading: the version these tables are of
    records: dict = field(default_factory=dict, repr=False)  # {part: commit record}, read once at load
    steps: tuple[int, ...] = ()    # the run's steps (FORMAT.md "Steps"); (0,) for a run of one step
    step: int = 0                  # the step these tables are of
    run_root: Path | None = None   # the run's directory (run_dir is a step's directory in a run of steps)
    _cache: dict = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # ---- loading -------------------------------------------------------------------------
    @classmethod
    def load(cls, run_dir: str | Path, *, root: str | Path | None = None, step: int | None = None) -> "RunTables":
        """Read the committed parts of ``run_dir`` at ``step`` (a run of several steps; None:
        the newest); ``root`` (the logdir) bounds every path read."""
        run_dir = Path(run_dir)
        root = Path(root) if root is not None else run_dir
        ensure_inside(root, run_dir)
        ensure_inside(root, run_dir / MANIFEST)
        stamp = run_stamp(run_dir)
        reader = RunReader(run_dir, step=step)  # reads + migrates the manifest; refuses newer formats
        if reader.run_dir != run_dir:  # a step of a run of steps: a run directory of its own (FORMAT.md)
            run_dir = reader.run_dir
            ensure_inside(root, run_dir / MANIFEST)
            stamp = run_stamp(run_dir)
        parts = reader.parts()
        for p in parts:
            ensure_inside(root, arrays_path(run_dir, p))

        records: dict = {}  # the parts' commit records, read once for the three tables
        s = _read_table(run_dir, root, "samples", parts,
                        ["sample_index", "sample_id", "source", "part", "offset", "height", "width", "gt_labels", "probs", "boxes"],
                        records=records)
        order = pa.compute.sort_indices(s, [("sample_index", "ascending")])
        s = s.take(order)
        samples = s.select(["sample_index", "sample_id", "source", "part", "offset", "height", "width"]).to_pandas()
        extra = s.select(["gt_labels", "probs", "boxes"])
        sidx = samples["sample_index"].to_numpy()
        if len(sidx) and (np.diff(sidx) == 0).any():
            raise SummaryError(f"{run_dir}: a sample appears in two parts; the run directory was damaged")

        lab = _read_table(run_dir, root, "labels", parts,
                          ["sample_index", "label", "prob", "tag", "is_gt", "part", "map_offset"],
                          optional=UNCERTAINTY, dictionary=("tag",), records=records).to_pandas()
        # Uncertainty columns are optional and null when the run did not compute them.
        lab = lab.drop(columns=[c for c in UNCERTAINTY if c in lab and lab[c].isna().all()])
        lpos = np.searchsorted(sidx, lab["sample_index"].to_numpy())
        if len(lab) and ((lpos >= len(sidx)) | (sidx[np.minimum(lpos, len(sidx) - 1)] != lab["sample_index"].to_numpy())).any():
            raise SummaryError(f"{run_dir}: the labels table names samples missing from the samples table")
        lab.insert(0, "pos", lpos.astype(np.int32))
        lab = lab.iloc[np.argsort(lpos, kind="stable")].reset_index(drop=True)
        # Codes in TAGS order whatever order the file's dictionary has (astype to an unordered
        # CategoricalDtype with the same categories would keep the file's order).
        lab["tag"] = pd.Categorical(lab["tag"].astype(object), categories=list(TAGS))
        starts = np.searchsorted(lab["pos"].to_numpy(), np.arange(len(sidx) + 1)).astype(np.int64)

        sc = _read_table(run_dir, root, "scores", parts,
                         ["sample_index", "label", "explainer", "metric", "raw", "score"],
                         optional=("nan_reason",), dictionary=("explainer", "metric"), records=records).to_pandas()
        scores = cls._index_scores(sc, sidx, lab)
        pairs = {}
        if len(scores):
            codes = scores["explainer"].cat.codes.to_numpy().astype(np.int64) * 65536 + scores["metric"].cat.codes.to_numpy()
            _, first, counts = np.unique(codes, return_index=True, return_counts=True)
            for f, c in zip(first, counts):
                pairs[(str(scores["explainer"].iat[f]), str(scores["metric"].iat[f]))] = slice(int(f), int(f + c))
        # The Arrow tables were transient; give their pages back instead of keeping them pooled
        # (about 100 MiB on a 100,000-sample run).
        pa.default_memory_pool().release_unused()
        return cls(run_dir, reader.manifest, samples, extra, lab, starts, scores, pairs, root, tuple(parts), stamp, records,
                   steps=tuple(reader.steps), step=reader.step, run_root=reader.root)

    @staticmethod
    def _index_scores(sc: pd.DataFrame, sidx: np.ndarray, lab: pd.DataFrame) -> pd.DataFrame:
        """Adds ``pos`` and ``lrow`` (−1 for label-agnostic rows) and groups rows by pair."""
        n = len(sc)
        si = sc["sample_index"].to_numpy()
        spos = np.searchsorted(sidx, si) if n else np.zeros(0, np.int64)
        ok = spos < len(sidx)
        ok[ok] = sidx[spos[ok]] == si[ok]
        spos = np.where(ok, spos, 0)
        label = sc["label"].to_numpy().astype(np.int64)
        lrow = np.full(n, -1, np.int64)
        spec = label >= 0
        lrow[spec] = _label_row(lab, spos[spec], label[spec], missing=-2)
        keep = ok & (lrow != -2)  # scores of rows unknown to the other tables are dropped
        out = pd.DataFrame({
            "explainer": sc["explainer"].astype("category"),
            "metric": sc["metric"].astype("category"),
            "pos": spos.astype(np.int32),
            "lrow": lrow.astype(np.int32),
            "label": label.astype(np.int32),
            "raw": sc["raw"].to_numpy(np.float64),
            "score": sc["score"].to_numpy(np.float64),
            # why a NaN score is NaN when the model misbehaved (FORMAT.md); absent in older runs
            **({"nan_reason": sc["nan_reason"].to_numpy(object)} if "nan_reason" in sc and sc["nan_reason"].notna().any()
               else {}),
        })[keep]
        codes = out["explainer"].cat.codes.to_numpy().astype(np.int64) * 65536 + out["metric"].cat.codes.to_numpy()
        return out.iloc[np.argsort(codes, kind="stable")].reset_index(drop=True)

    # ---- manifest shortcuts --------------------------------------------------------------
    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.manifest.get("classes", [])]

    def class_name(self, label: int) -> str:
        c = self.classes
        return c[label] if 0 <= label < len(c) else str(label)

    @property
    def explainers(self) -> list[str]:
        """Instance names, in run order (the saliency arrays are stored under these names)."""
        return [str(e["name"]) for e in self.manifest.get("explainers", [])]

    def explainer_meta(self, name: str) -> dict:
        return next((e for e in self.manifest.get("explainers", []) if e.get("name") == name), {})

    @property
    def metrics(self) -> list[dict]:
        return [m for m in self.manifest.get("metrics", []) if isinstance(m, dict)]

    @property
    def n_samples(self) -> int:
        return len(self.samples)

    @property
    def n_explained_images(self) -> int:
        """Images with at least one explained label (a sampled run explains fewer than it predicts)."""
        return int(self.labels["sample_index"].nunique()) if len(self.labels) else 0

    @property
    def images_text(self) -> str:
        """"64 images", or "12 of 64 explained" for a run whose ``sample`` left images out."""
        n, total = self.n_explained_images, self.n_samples
        return f"{n} of {total} images explained" if self.manifest.get("sample") else f"{total} images"

    @property
    def has_uncertainty(self) -> bool:
        return "prob_std" in self.labels.columns

    # ---- derived columns (computed once, kept) ---------------------------------------------
    def _memo(self, key, fn):
        v = self._cache.get(key)
        if v is None:
            v = fn()
            with self._lock:
                self._cache[key] = v
        return v

    def lcol(self, name: str) -> np.ndarray:
        """A ``labels`` column as a read-only numpy array (``tag``: codes into TAGS);
        row access through pandas costs ~10 µs a value, numpy ~0.1 µs."""
        def build():
            c = self.labels[name]
            a = c.cat.codes.to_numpy() if name == "tag" else c.to_numpy()
            a.flags.writeable = False
            return a
        return self._memo(("lcol", name), build)

    def scol(self, name: str) -> np.ndarray:
        """A ``samples`` column as a read-only numpy array."""
        def build():
            a = self.samples[name].to_numpy(dtype=object if name in ("sample_id", "source") else None)
            a.flags.writeable = False
            return a
        return self._memo(("scol", name), build)

    def pair_values(self, explainer: str, metric: str, column: str = "score") -> np.ndarray:
        """(n_label_rows,) float64 ``column`` of one explainer × metric aligned to label rows,
        NaN where absent. Label-agnostic metrics are broadcast to every label of the image."""
        def build():
            out = np.full(len(self.labels), np.nan)
            sl = self.pair_slices.get((explainer, metric))
            if sl is None:
                return out
            part = self.scores.iloc[sl]
            lrow = part["lrow"].to_numpy()
            vals = part[column].to_numpy()
            spec = lrow >= 0
            out[lrow[spec]] = vals[spec]
            if (~spec).any():
                per_sample = np.full(self.n_samples, np.nan)
                per_sample[part["pos"].to_numpy()[~spec]] = vals[~spec]
                out = np.where(np.isnan(out), per_sample[self.labels["pos"].to_numpy()], out)
            out.flags.writeable = False
            return out
        return self._memo(("pair", explainer, metric, column), build)

    def id_rank(self) -> np.ndarray:
        """(n_samples,) int64 rank of each sample id in natural string order."""
        def build():
            r = np.empty(self.n_samples, np.int64)
            r[np.argsort(self.samples["sample_id"].to_numpy(dtype=str), kind="stable")] = np.arange(self.n_samples)
            r.flags.writeable = False
            return r
        return self._memo(("id_rank",), build)

    def predicted_class(self) -> np.ndarray:
        """(n_samples,) int64 argmax class of each sample: the class label-agnostic metrics
        explain (the engine passes ``probs.argmax(1)`` to them)."""
        def build():
            probs = self.extra["probs"].combine_chunks()
            k = len(self.classes)
            flat = probs.flatten().to_numpy(zero_copy_only=False)
            lengths = probs.value_lengths().to_numpy(zero_copy_only=False) if len(probs) else np.zeros(0, int)
            if k and len(probs) and (lengths == k).all():
                out = flat.reshape(-1, k).argmax(1).astype(np.int64)
            else:  # ragged (should not happen): one at a time
                out = np.array([int(np.argmax(p)) if p else -1 for p in probs.to_pylist()], dtype=np.int64)
            out.flags.writeable = False
            return out
        return self._memo(("pred",), build)

    def _optional_table(self, name: str, columns: list[str]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """An optional table (format.OPTIONAL_TABLES) from the committed parts that have it:
        (rows, each row's sample position, whether that sample is in the samples table)."""
        root = self.root if self.root is not None else self.run_dir
        try:
            have = [p for p in table_parts(self.run_dir, name, self.parts, self.records)
                    if ensure_inside(root, table_path(self.run_dir, name, p))]
            df = _read_table(self.run_dir, root, name, have, columns, records=self.records).to_pandas()
        except SummaryError:
            if not self.replaced():
                raise  # damage: said as such
            # Read lazily, after a writer replaced the run these tables are of (issue 18: an
            # overwritten run read as damage): its old files are gone, which is not damage. The
            # table reads as empty for this old version; the page's next load reads the new one.
            df = _read_table(self.run_dir, root, name, [], columns).to_pandas()
        sidx, si = self.samples["sample_index"].to_numpy(), df["sample_index"].to_numpy()
        spos = np.minimum(np.searchsorted(sidx, si), max(len(sidx) - 1, 0))
        known = sidx[spos] == si if len(sidx) else np.zeros(len(si), bool)
        return df, spos, known

    def replaced(self) -> bool:
        """Whether the run on disk is no longer the version these tables were loaded from (a
        writer committed a part or replaced the run since)."""
        return run_stamp(self.run_dir) != self.stamp

    def counterfactuals(self) -> pd.DataFrame:
        """The optional ``counterfactuals`` table (FORMAT.md), read on first use and kept:
        sample_index, label, layer, side, prob, boxes plus ``pos`` and ``lrow`` (its labels
        row), sorted by (pos, label row, layer). Empty when the run has none; rows naming an
        (image, label) the labels table lacks are dropped."""
        def build():
            cf, spos, known = self._optional_table("counterfactuals", ["sample_index", "label", "layer", "side", "prob", "boxes"])
            lrow = _label_row(self.labels, spos, cf["label"].to_numpy())
            lrow[~known] = -1
            cf.insert(0, "pos", spos.astype(np.int32))
            cf.insert(1, "lrow", lrow)
            cf = cf[lrow >= 0]
            return cf.iloc[np.lexsort((cf["layer"].to_numpy(), cf["lrow"].to_numpy()))].reset_index(drop=True)
        return self._memo(("counterfactuals",), build)

    def details(self) -> dict[tuple[int, int, str], dict[str, float]]:
        """The optional ``details`` table (FORMAT.md) as {(pos, label, explainer): {key: value}},
        read on first use and kept; empty when the run has none."""
        def build():
            d, spos, known = self._optional_table("details", ["sample_index", "label", "explainer", "key", "value"])
            out: dict[tuple[int, int, str], dict[str, float]] = {}
            for ok, pos, lab, exp, key, val in zip(known, spos, *(d[c].tolist() for c in ("label", "explainer", "key", "value"))):
                if ok:
                    out.setdefault((int(pos), int(lab), exp), {})[key] = float(val)
            return out
        return self._memo(("details",), build)

    def label_rows(self, pos: int) -> pd.DataFrame:
        return self.labels.iloc[self.starts[pos]: self.starts[pos + 1]]

    def boxes(self, pos: int) -> list[tuple[int, float, float, float, float]]:
        """[(label, x_min, y_min, x_max, y_max)] at stored resolution."""
        return [(int(b[0]), *map(float, b[1:5])) for b in (self.extra["boxes"][pos].as_py() or []) if len(b) >= 5]

    def gt_labels(self, pos: int) -> list[int]:
        return [int(x) for x in (self.extra["gt_labels"][pos].as_py() or [])]
