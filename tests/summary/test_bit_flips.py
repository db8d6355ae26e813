"""Every single-bit flip in any file of a run is reported (issue 19 item 2): `xai-core inspect
--verify` checks the manifest's own checksum, every table file against its part's commit record
(the samples table, which holds the record, against a checksum of its own bytes) and every zarr
file; a flipped bit never reads back as a different number."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from toy import toy_config
from xai_core.cli import main
from xai_core.config import config_from_dict
from xai_core.runner import run

FLIPS_PER_FILE = 25  # × 18 files of the run below: 440 flips (has_mask's chunk has only 15 bytes), seeded


def kind_of(run_dir: Path, f: Path) -> str:
    rel = f.relative_to(run_dir).parts
    if rel[0] == "tables":
        return f"table {rel[1]}"
    if rel[0] == "arrays":
        inner = rel[2:]
        array = "/".join(inner[:2]) if inner[0] == "saliency" and len(inner) > 2 else inner[0]
        return f"zarr {'metadata' if f.name == 'zarr.json' else 'chunk'} {array if len(inner) > 1 else '(group)'}"
    return f.name


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One part of every file kind: all five tables (counterfactuals and details included),
    the images, two explainers' maps, the object masks, and their zarr metadata."""
    from toy import make_dataset

    root = tmp_path_factory.mktemp("flips")
    data = make_dataset(root / "data", n=3)
    cfg = config_from_dict(toy_config(data, root / "run", batch_size=3, explainers=["random", "gradient"],
                                      metrics=["pointing_game", {"type": "deletion_auc", "params": {"steps": 4}}],
                                      counterfactual={"enabled": True, "layers": 1}))
    return run(cfg, cfg.out, progress=False)


def test_every_single_bit_flip_in_any_file_is_reported(tiny_run, capsys):
    files = sorted(f for f in Path(tiny_run).rglob("*") if f.is_file() and f.name != ".lock")
    kinds = Counter(kind_of(tiny_run, f) for f in files)
    assert {"manifest.json", "table samples", "table labels", "table scores", "table details",
            "table counterfactuals", "zarr chunk images", "zarr chunk masks", "zarr chunk has_mask",
            "zarr chunk saliency/random", "zarr metadata (group)"} <= set(kinds), kinds
    assert main(["inspect", str(tiny_run), "--verify"]) == 0
    capsys.readouterr()
    rng = np.random.default_rng(19)
    reported, missed, total = Counter(), [], Counter()
    for f in files:
        original = f.read_bytes()
        # The first and last bytes (magic numbers, Parquet's footer length) and seeded others;
        # every byte of a file shorter than FLIPS_PER_FILE.
        inner = rng.choice(np.arange(1, len(original) - 1), min(FLIPS_PER_FILE, len(original)) - 2, replace=False)
        for pos in sorted({0, len(original) - 1, *inner.tolist()}):
            bit = int(rng.integers(8))
            damaged = bytearray(original)
            damaged[pos] ^= 1 << bit
            f.write_bytes(bytes(damaged))
            try:
                rc = main(["inspect", str(tiny_run), "--verify"])
            finally:
                f.write_bytes(original)
            # (only the CLI's own lines: a stray server thread of another test may write to stderr too)
            err = "\n".join(line for line in capsys.readouterr().err.splitlines() if line.startswith("xai-core:"))
            total[kind_of(tiny_run, f)] += 1
            if rc == 2 and len(err.splitlines()) == 1 and err.startswith("xai-core: error: "):
                reported[kind_of(tiny_run, f)] += 1
            else:
                missed.append(f"{f.relative_to(tiny_run)} byte {pos} bit {bit}: rc {rc} {err[:200]!r}")
    print("bit flips reported / total, per file kind:",
          ", ".join(f"{k} {reported[k]}/{n}" for k, n in sorted(total.items())))
    assert not missed, f"{len(missed)} of {sum(total.values())} flips read back silently:\n" + "\n".join(missed[:20])
    assert sum(total.values()) >= 430
    assert main(["inspect", str(tiny_run), "--verify"]) == 0  # every file restored
