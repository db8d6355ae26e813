"""Reading and rendering the maps of the visible page only, behind bounded LRU caches.

One :class:`MapStore` per run is shared by every session (the pages keep it in
``st.cache_resource``). A page turn reads at most page_size × (1 + explainers) rows (one zarr
chunk each), all at once, and encodes only tiles not rendered before with the same style.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from ..errors import SummaryError, XaiError
from ..summary.format import arrays_path
from ..summary.integrity import commit_record, verify_arrays
from ..summary.reader import read_manifest
from .overlay import OverlayStyle, png_bytes, render, scale_values, thumbnail, upscale_factor
from .query import ImageRow
from .runs import ensure_inside


class LRU:
    """A thread-safe bounded mapping; ``get(key, make)`` computes on a miss."""

    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self._d: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def peek(self, key):
        """The value, or None, without counting or computing."""
        with self._lock:
            return self._d.get(key)

    def put(self, key, value) -> None:
        with self._lock:
            self._d[key] = value
            self._d.move_to_end(key)
            while len(self._d) > self.max_entries:
                self._d.popitem(last=False)

    def get(self, key, make: Callable[[], object]):
        with self._lock:
            if key in self._d:
                self._d.move_to_end(key)
                self.hits += 1
                return self._d[key]
        value = make()
        with self._lock:
            self.misses += 1
        self.put(key, value)
        return value

    def __contains__(self, key) -> bool:
        return key in self._d

    def __len__(self) -> int:
        return len(self._d)


@dataclass
class Grid:
    """Rendered page: ``pictures`` {pos: PNG}, ``tiles`` {(pos, explainer): PNG or None},
    ``scales`` {(pos, explainer): clip value}, ``errors`` one line per map that failed."""

    pictures: dict = field(default_factory=dict)
    tiles: dict = field(default_factory=dict)
    scales: dict = field(default_factory=dict)
    errors: list = field(default_factory=list)


def _image_key(part: int, offset: int) -> tuple:
    return ("images", int(part), int(offset))


def _map_key(explainer: str, part: int, map_offset: int) -> tuple:
    return (f"saliency/{explainer}", int(part), int(map_offset))


# Chunk checks and tile rendering: file reads, CRCs, zlib and most numpy work release the GIL.
_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="xai-render")


def _outcome(fn):
    """``fn()``, or the exception it raised (so a failure is cached like a result)."""
    try:
        return fn()
    except (XaiError, OSError) as e:
        return e


class MapStore:
    """Images and raw maps of one run, kept in bounded caches.

    Rows are keyed ``(array, part, row)`` with array ``"images"`` or ``"saliency/<name>"``.
    Missing rows of a page are fetched together in one round trip to zarr's event loop,
    which reads their chunks concurrently: zarr v3 is asynchronous underneath, and one
    synchronous read per row (an event-loop hand-off each) dominated a cold page."""

    def __init__(self, run_dir: str | Path, *, max_rows: int = 4096, max_tiles: int = 2048, max_arrays: int = 512):
        self.run_dir = Path(run_dir)
        self._explainers = {str(e.get("name")) for e in read_manifest(self.run_dir).get("explainers", [])}
        self._rows = LRU(max_rows)
        self._tiles = LRU(max_tiles)
        self._arrays = LRU(max_arrays)   # open zarr AsyncArray handles
        # ("record", part) -> commit record or damage; (array, part, chunk) -> None or damage
        self._checked = LRU(max_rows + max_arrays)

    def _array_path(self, name: str, part: int) -> Path:
        if name != "images" and name.removeprefix("saliency/") not in self._explainers:
            raise SummaryError(f"{self.run_dir}: no saliency maps for explainer {name.removeprefix('saliency/')!r}; "
                               f"expected one of {sorted(self._explainers)}")
        # explainer names come from the manifest: never let one point outside the run
        return ensure_inside(self.run_dir, arrays_path(self.run_dir, part) / name)

    def _verify(self, name: str, part: int, row: int) -> XaiError | None:
        """None when the chunk holding ``row`` may be read, else the damage (cached per chunk)."""
        def record():  # once per part
            return commit_record(self.run_dir, part) or {}

        def chunk(rec):
            verify_arrays(self.run_dir, part, name, rows=[row], record=rec)

        try:
            self._array_path(name, part)
            rec = self._checked.get(("record", part), lambda: _outcome(record))
            if isinstance(rec, Exception):
                raise rec
            size = (rec.get("chunk_rows") or {}).get(name)
            key = (name, part, int(row) // size) if size else (name, part)  # older runs: whole array
            err = self._checked.get(key, lambda: _outcome(lambda: chunk(rec)))
            if isinstance(err, Exception):
                raise err
        except XaiError as e:
            return e
        except OSError as e:
            return SummaryError(f"{self.run_dir}: part {part}, array {name!r} cannot be read ({e.strerror or e})")
        return None

    def prefetch(self, keys: Sequence[tuple]) -> dict:
        """Read every key not cached yet, concurrently; returns {key: error} for rows that failed."""
        todo = [k for k in dict.fromkeys(keys) if k not in self._rows]
        if not todo:
            return {}
        # Every chunk is checked against the part's commit record once, before its first read:
        # a missing or changed chunk is reported as damage instead of reading as zeros.
        # Checked concurrently: reading and CRC-ing chunk files releases the GIL.
        damage = dict(zip(todo, _POOL.map(lambda k: self._verify(*k), todo)))
        errors = {k: d for k, d in damage.items() if d is not None}
        todo = [k for k in todo if damage[k] is None]
        if not todo:
            return errors
        import zarr.api.asynchronous as za

        async def one(key):
            name, part, row = key
            try:
                arr = self._arrays.peek((name, part))
                if arr is None:
                    arr = await za.open_array(store=str(self._array_path(name, part)), mode="r")
                    self._arrays.put((name, part), arr)
                return np.asarray(await arr.getitem(row))
            except Exception as e:  # noqa: BLE001 - reported per row by the caller
                return e

        async def gather():
            return await asyncio.gather(*(one(k) for k in todo))

        try:
            from zarr.core.sync import sync  # zarr's own loop and thread pool, reused across pages
        except ImportError:  # pragma: no cover - if zarr moves it, a private loop works too
            sync = asyncio.run
        for key, value in zip(todo, sync(gather())):
            if isinstance(value, Exception):
                errors[key] = value
            else:
                value.flags.writeable = False
                self._rows.put(key, value)
        return errors

    def _row(self, key: tuple, what: str) -> np.ndarray:
        err = self.prefetch([key]).get(key)
        if err is not None:
            if isinstance(err, XaiError):
                raise err
            raise SummaryError(f"{self.run_dir}: {what} is unreadable ({type(err).__name__}: {err}); "
                               "the run directory may be damaged") from err
        return self._rows.get(key, lambda: None)

    def image(self, part: int, offset: int) -> np.ndarray:
        """(H, W, 3) uint8, read-only."""
        return self._row(_image_key(part, offset), f"image {offset} of part {part}")

    def saliency(self, explainer: str, part: int, map_offset: int) -> np.ndarray:
        """(H, W) float32 raw map, read-only."""
        return self._row(_map_key(explainer, part, map_offset), f"map {map_offset} of {explainer!r} in part {part}")

    def grid(self, rows: Sequence[ImageRow], active: Mapping[int, int | None], explainers: Sequence[str],
             style: OverlayStyle, *, target_px: int = 128, scales=None) -> Grid:
        """Pictures and one tile per (row, explainer) showing the row's active label.
        ``scales``: a function of ({(pos, explainer): (explainer, map)}, {pos: chip}) giving
        the clip values instead of ``style.scale`` over these maps (e.g. shared across steps)."""
        out = Grid()
        chips = {r.pos: r.chip(active.get(r.pos, r.default_label())) for r in rows}
        keys = [_image_key(r.part, r.offset) for r in rows]
        keys += [_map_key(e, c.part, c.map_offset) for c in chips.values() if c is not None for e in explainers]
        self.prefetch(keys)  # one concurrent read of everything the page lacks
        maps: dict = {}
        images: dict = {}
        for r in rows:
            try:
                images[r.pos] = img = self.image(r.part, r.offset)
            except XaiError as e:
                out.errors.append(f"{r.sample_id}: {e}")
                continue
            up = upscale_factor(*img.shape[:2], target=target_px)
            out.pictures[r.pos] = self._tiles.get(("picture", r.part, r.offset, up),
                                                  lambda img=img, up=up: png_bytes(thumbnail(img, upscale=up)))
            chip = chips[r.pos]
            for e in explainers:
                out.tiles[(r.pos, e)] = None
                if chip is None:
                    continue
                try:
                    maps[(r.pos, e)] = (e, self.saliency(e, chip.part, chip.map_offset))
                except XaiError as err:
                    out.errors.append(f"{r.sample_id} / {chip.name} / {e}: {err}")
        out.scales = scale_values(maps, style) if scales is None else scales(maps, chips)
        by_pos = {r.pos: r for r in rows}
        jobs = {}
        for (pos, e), (_, m) in maps.items():
            r, chip, img, vmax = by_pos[pos], chips[pos], images[pos], out.scales[(pos, e)]
            up = upscale_factor(*img.shape[:2], target=target_px)
            jobs[(pos, e)] = (("tile", e, chip.part, chip.map_offset, r.part, r.offset, style, vmax, up), img, m, vmax, up)
        # Tiles not rendered before are drawn concurrently: PNG encoding (zlib) and most of the
        # numpy work release the GIL, so a cold page of 72 tiles uses both cores.
        todo = [k for k, (key, *_rest) in jobs.items() if self._tiles.peek(key) is None]
        drawn = dict(zip(todo, _POOL.map(
            lambda k: png_bytes(render(jobs[k][1], jobs[k][2], jobs[k][3], style, upscale=jobs[k][4])), todo)))
        for k, (key, *_rest) in jobs.items():
            out.tiles[k] = self._tiles.get(key, lambda k=k: drawn[k])
        return out

    def cache_info(self) -> dict:
        return {"rows": len(self._rows), "tiles": len(self._tiles), "arrays": len(self._arrays),
                "tile_hits": self._tiles.hits, "tile_misses": self._tiles.misses}


def detail_maps(store: MapStore, row: ImageRow, label: int, explainers: Sequence[str],
                style: OverlayStyle) -> tuple[np.ndarray, dict, list[str]]:
    """(image, {explainer: (raw map, clip value)}, errors) for one label of one image at
    stored resolution, scaled per ``style.scale`` across these maps."""
    chip = row.chip(label)
    keys = [_image_key(row.part, row.offset)]
    if chip is not None:
        keys += [_map_key(e, chip.part, chip.map_offset) for e in explainers]
    store.prefetch(keys)
    image = store.image(row.part, row.offset)
    maps, errors = {}, []
    if chip is not None:
        for e in explainers:
            try:
                maps[e] = (e, store.saliency(e, chip.part, chip.map_offset))
            except XaiError as err:
                errors.append(f"{e}: {err}")
    scales = scale_values(maps, style)
    return image, {e: (m, scales[e]) for e, (_, m) in maps.items()}, errors


BOX_RGB = (0, 229, 255)


def label_font_px(width: int) -> int:
    """Box-label size for a picture ``width`` pixels wide, drawn in a third of a large dialog
    (~300 px on screen): about 4.5 % of the width, so it reads at 12–14 screen px whatever the
    image's size (issue 18: PIL's 10 px bitmap font was 6 px high on a 224 px photo)."""
    return max(11, int(round(0.045 * width)))


def _with_boxes(rgb: np.ndarray, boxes: Sequence[tuple], scale: int, highlight: str | None) -> np.ndarray:
    """``rgb`` with the ground-truth boxes (name, x0, y0, x1, y1; max exclusive) outlined and
    labelled on a dark plate."""
    if not boxes:
        return rgb
    from PIL import Image, ImageDraw, ImageFont

    im = Image.fromarray(np.ascontiguousarray(rgb))
    d = ImageDraw.Draw(im)
    font = ImageFont.load_default(size=label_font_px(im.width))
    for name, x0, y0, x1, y1 in boxes:
        width = max(1, scale // 2) * (2 if name == highlight else 1)
        d.rectangle([x0 * scale, y0 * scale, x1 * scale - 1, y1 * scale - 1], outline=BOX_RGB, width=width)
        left, top, right, bottom = d.textbbox((x0 * scale + width + 2, y0 * scale + width + 1), str(name), font=font)
        d.rectangle([left - 2, top - 1, right + 2, bottom + 1], fill=(0, 0, 0))
        d.text((x0 * scale + width + 2, y0 * scale + width + 1), str(name), fill=BOX_RGB, font=font)
    return np.asarray(im)


def detail_pictures(image: np.ndarray, maps: Mapping[str, tuple[np.ndarray, float]], style: OverlayStyle,
                    boxes: Sequence[tuple] = (), *, highlight: str | None = None,
                    target_px: int = 320) -> tuple[bytes, dict[str, bytes]]:
    """PNGs of the detail view: the image with its boxes, and each explainer's map at stored
    resolution ({explainer: (raw map, clip value)}, from :func:`detail_maps`), pixels repeated
    up to about ``target_px``. Static pictures: a page of them is drawn at once, where one
    interactive heatmap per explainer took the browser seconds (issue 12)."""
    up = upscale_factor(*image.shape[:2], target=target_px)
    picture = png_bytes(_with_boxes(thumbnail(image, upscale=up), boxes, up, highlight))
    tiles = {e: png_bytes(_with_boxes(render(image, m, v, style, upscale=up), boxes, up, highlight))
             for e, (m, v) in maps.items()}
    return picture, tiles
