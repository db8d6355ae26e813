"""The run manifest (``manifest.json``, FORMAT.md): reading it with migration of older format
versions, refusal of newer ones and type checks of the keys readers rely on; writing it with
its checksum (a CRC-32 of the file's own bytes, so a changed or damaged byte reads as damage).

Reader and writer both use these helpers (``--resume`` reopens a manifest), so they live beside
:mod:`.format` and neither side imports the other."""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path
from typing import Callable

from ..errors import FormatVersionError, SummaryError
from .format import FORMAT_VERSION, MANIFEST, atomic_write_bytes, json_default

# version → function turning a manifest of that version into one of version + 1.
MIGRATIONS: dict[int, Callable[[dict], dict]] = {
    # Format 2 adds checksums (manifest, every table file) and optional columns; what a
    # version-1 run holds reads unchanged (its parts carry no table checksums).
    1: lambda m: {**m, "format_version": 2},
    # Format 3 adds the step axis (`steps`, step directories); a run without `steps` is one
    # step at its root (number `step`, else 0), so a version-2 run reads unchanged.
    2: lambda m: {**m, "format_version": 3},
}
#: The manifest's last key: ``"crc32:<8 hex digits>"``, the CRC-32 of the file's bytes with
#: those 8 digits written as zeros. Written from format 2 on, required from it.
CHECKSUM_KEY = "checksum"
_ZEROS = b"00000000"
_SEAL = re.compile(rb'[{,]\n  "checksum": "crc32:([0-9a-f]{8})"\n}\Z')
SEALED_SINCE = 2


def manifest_bytes(manifest: dict) -> bytes:
    """The manifest as written: indented JSON ending with its checksum."""
    body = {k: v for k, v in manifest.items() if k != CHECKSUM_KEY}
    text = json.dumps({**body, CHECKSUM_KEY: "crc32:" + _ZEROS.decode()}, indent=2, default=json_default).encode()
    tail = _ZEROS + b'"\n}'
    assert text.endswith(tail)
    return text[:-len(tail)] + b"%08x" % zlib.crc32(text) + b'"\n}'


def write_manifest(run_dir: str | Path, manifest: dict) -> None:
    """Write ``manifest.json`` atomically (write, fsync, rename), with its checksum."""
    atomic_write_bytes(Path(run_dir) / MANIFEST, manifest_bytes(manifest))


def seal_matches(data: bytes) -> bool | None:
    """Whether the manifest bytes ``data`` match their checksum; None when they carry none."""
    m = _SEAL.search(data)
    if m is None:
        return None
    return zlib.crc32(data[:m.start(1)] + _ZEROS + data[m.end(1):]) == int(m.group(1), 16)


def migrate(manifest: dict, path: Path) -> dict:
    version = manifest.get("format_version")
    if not isinstance(version, int):
        raise SummaryError(f"{path}: manifest has no integer `format_version`; this is not an xaiboard summary")
    if version > FORMAT_VERSION:
        raise FormatVersionError(
            f"{path}: written with summary format {version}, newer than this xaiboard reads ({FORMAT_VERSION}); "
            "upgrade xaiboard (pip install -U xaiboard) to open it"
        )
    while version < FORMAT_VERSION:
        if version not in MIGRATIONS:
            raise SummaryError(f"{path}: summary format {version} is too old to migrate; re-run the runner")
        manifest = MIGRATIONS[version](manifest)
        version = manifest["format_version"]
    return manifest


def read_manifest(run_dir: str | Path) -> dict:
    path = Path(run_dir) / MANIFEST
    if not path.is_file():
        raise SummaryError(f"{run_dir}: no {MANIFEST}; not a run directory (or the run has not started)")
    try:
        data = path.read_bytes()
        manifest = json.loads(data.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SummaryError(f"{path}: corrupt manifest ({e.__class__.__name__}: {e})") from e
    except OSError as e:
        raise SummaryError(f"{path}: cannot be read ({e.strerror or e})") from e
    if not isinstance(manifest, dict):
        raise SummaryError(f"{path}: corrupt manifest (expected a JSON object)")
    written = manifest.get("format_version")
    manifest = migrate(manifest, path)  # refuses newer versions first: their checksums may differ
    sealed = seal_matches(data)
    if sealed is False or (sealed is None and written >= SEALED_SINCE):
        raise SummaryError(f"{path}: the manifest {'does not match its checksum' if sealed is False else 'has no checksum'}"
                           "; the file was changed or damaged since the runner wrote it, so the run cannot be "
                           "trusted (restore the file, or run again)")
    manifest.pop(CHECKSUM_KEY, None)
    return check_manifest(manifest, path)


def _opt(*types):
    return lambda v: v is None or isinstance(v, types)


def _is(*types):
    return lambda v: isinstance(v, types)


def _list_of(kind):
    return lambda v: isinstance(v, list) and all(isinstance(x, kind) for x in v)


def _count(v) -> bool:
    return v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0)


# Types of the manifest keys readers rely on (FORMAT.md). Every key may be absent (older runs);
# a present one of the wrong type makes the run unreadable instead of crashing whoever reads it.
MANIFEST_TYPES = {
    "status": (_is(str), "a string"),
    "error": (_opt(str), "a string or null"),
    "created": (_opt(str), "an ISO-8601 string"),
    "updated": (_opt(str), "an ISO-8601 string"),
    "finished": (_opt(str), "an ISO-8601 string"),
    "xaiboard_version": (_is(str), "a string"),
    "config": (_is(dict), "a map"),
    "model": (_is(dict), "a map"),
    "dataset": (_is(dict), "a map"),
    "classes": (_list_of(str), "a list of strings"),
    "explainers": (_list_of(dict), "a list of maps"),
    "metrics": (_list_of(dict), "a list of maps"),
    "progress": (_is(dict), "a map"),
    "timing": (_opt(dict), "a map"),
    "sanity": (_opt(dict), "a map"),
    "step": (lambda v: _count(v) and v is not None, "a step number ≥ 0"),
    "steps": (lambda v: isinstance(v, list) and all(_step_entry(e) for e in v),
              "a list of {step: int ≥ 0, dir: \"steps/…\"} maps"),
}


def _step_entry(e) -> bool:
    return (isinstance(e, dict) and _count(e.get("step")) and e.get("step") is not None
            and isinstance(e.get("dir"), str) and e["dir"].startswith("steps/") and ".." not in e["dir"].split("/"))
PROGRESS_KEYS = ("total_samples", "done_samples", "total_parts", "done_parts", "batch_size")


def check_manifest(manifest: dict, path: Path) -> dict:
    """``manifest`` when its known keys have the documented types, else SummaryError."""
    for key, (ok, expected) in MANIFEST_TYPES.items():
        if key in manifest and not ok(manifest[key]):
            raise SummaryError(f"{path}: `{key}` is {_short(manifest[key])}; expected {expected}")
    for key in ("explainers", "metrics"):
        for i, e in enumerate(manifest.get(key) or []):
            if not isinstance(e.get("name"), str):
                raise SummaryError(f"{path}: `{key}[{i}].name` is {_short(e.get('name'))}; expected a string")
    for key in PROGRESS_KEYS:
        v = (manifest.get("progress") or {}).get(key)
        if not _count(v):
            raise SummaryError(f"{path}: `progress.{key}` is {_short(v)}; expected a count ≥ 0")
    return manifest


def _short(v) -> str:
    text = json.dumps(v, default=str)
    return text if len(text) <= 40 else text[:37] + "..."
