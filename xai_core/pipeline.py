"""The part pipeline: the model never waits on the disk.

While the calling thread computes part k, a *reader* thread reads and decodes part k + 1
(``load``: image files, resizing, pinned memory on CUDA) and a *writer* thread commits part
k − 1 (``write``: zarr encoding, fsync, Parquet, the atomic renames of
:func:`~xai_core.summary.writer.write_part`). Both hand-overs are bounded (``depth`` parts,
default 1): at most one decoded part waits for the model and at most one computed part waits
for the disk, so memory stays at about three parts whatever the run's length.

What the run promises is unchanged, because the writer thread calls the same ``write_part``
in part order and nothing else writes:

* a part is committed only once its chunks are durable (``write_part`` itself);
* ``on_commit`` (progress) runs in the writer thread after each commit, in part order;
* an error in the writer thread stops the run: the next :meth:`PartPipeline.commit` (or
  :meth:`~PartPipeline.drain`) raises it in the calling thread, with
  :attr:`~PartPipeline.failed_part` naming the part; parts handed over after it are dropped,
  never half-written, and everything committed before it stays;
* an error reading part k is raised when the caller reaches part k, as if it had read it
  itself; nothing after it is read;
* leaving the ``with`` block on an error of the caller (a model error, Ctrl-C) first commits
  the parts already computed (so they are not lost), then stops both threads; a second Ctrl-C
  while it waits stops waiting (a write in flight is atomic: it lands whole or not at all,
  and ``--resume`` removes its temporaries).

Reading must not draw random numbers: compute_part seeds torch and numpy per part, and a
reader running ahead would otherwise consume the next part's stream (``prepare_batch`` draws
none; tests/test_pipeline.py checks it). ``background=False`` runs the same steps one after
the other in the calling thread (``xai-core run --no-pipeline``; the benchmark's baseline).
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable, Iterable, Iterator

# Waits block without polling: a thread woken ten times a second takes the GIL from the model's
# Python code each time, and on a loaded machine it can be preempted while it holds it.
_JOIN_S = 0.5  # how long closing waits for a reader still decoding (read-only: it may finish alone)
_END = object()


class PartPipeline:
    """Reads, computes (the caller) and writes ``parts`` in order; see the module docstring.

    load(part) -> batch; write(part, result); on_commit(part) after each commit. Use as a
    context manager: ``for part, batch in pipe.batches(): pipe.commit(part, compute(...))``.
    ``stats`` holds seconds: ``read``/``write`` spent by the two steps, ``read_wait`` and
    ``write_wait`` the calling thread spent blocked on them.
    """

    def __init__(self, parts: Iterable[int], load: Callable[[int], Any], write: Callable[[int, Any], None], *,
                 on_commit: Callable[[int], None] | None = None, background: bool = True, depth: int = 1):
        self.parts = list(parts)
        self.load, self.write, self.on_commit = load, write, on_commit
        self.background = background
        self.depth = max(1, int(depth))
        self.stats = {"read": 0.0, "write": 0.0, "read_wait": 0.0, "write_wait": 0.0}
        self.failed_part: int | None = None  # the part whose read or write failed
        self._failure: BaseException | None = None  # the writer thread's error, raised by the caller
        self._stop = threading.Event()
        # Hand-overs: the reader takes a read slot before it reads a part, the caller gives it
        # back when it takes the part; the caller takes a write slot before it hands a part to
        # the writer, which gives it back once the part is committed.
        self._ready: queue.Queue = queue.Queue()
        self._read_slots = threading.Semaphore(self.depth)
        self._todo: queue.Queue = queue.Queue()
        self._slots = threading.BoundedSemaphore(self.depth)
        self._handed = self._processed = 0  # parts given to the writer / done with (committed or dropped)
        self._progress = threading.Condition()
        self._abandoned = False
        self._threads: list[threading.Thread] = []

    # ---- context ----------------------------------------------------------------------------
    def __enter__(self) -> "PartPipeline":
        if self.background:
            self._threads = [threading.Thread(target=self._read_loop, name="xai-read", daemon=True),
                             threading.Thread(target=self._write_loop, name="xai-write", daemon=True)]
            for t in self._threads:
                t.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop.set()  # the reader stops before its next part
        self._read_slots.release()  # (waking it if it waits for room)
        wait = True
        try:
            if self._failure is None:
                self.drain()  # commit what was computed, also when the caller failed
        except KeyboardInterrupt:
            wait = False  # a second Ctrl-C: stop waiting for the disk
            raise
        finally:
            self._close(wait)

    def _close(self, wait: bool) -> None:
        if not self.background:
            return
        reader, writer = self._threads
        if not wait:
            self._abandoned = True  # the writer drops what is queued
        self._todo.put(_END)
        if wait:
            writer.join()
        reader.join(timeout=_JOIN_S)

    # ---- the caller's side ----------------------------------------------------------------
    def batches(self) -> Iterator[tuple[int, Any]]:
        """(part, batch) in order. An error reading a part is raised here, at that part."""
        for part in self.parts:
            if not self.background:
                batch = self._timed("read", self._load_marking, part)
                yield part, batch
                continue
            t0 = time.perf_counter()
            got, batch, error = self._take()
            self.stats["read_wait"] += time.perf_counter() - t0
            assert got == part, (got, part)  # one reader, one queue: order is kept
            if error is not None:
                self.failed_part = part
                raise error
            yield part, batch

    def commit(self, part: int, result: Any) -> None:
        """Hand ``result`` to the writer (or write it now, ``background=False``); raises an
        earlier write's error instead, with :attr:`failed_part` set."""
        self._raise_failure()
        if not self.background:
            try:
                self._timed("write", self.write, part, result)
                if self.on_commit is not None:
                    self.on_commit(part)
            except BaseException:
                self.failed_part = part
                raise
            return
        t0 = time.perf_counter()
        self._slots.acquire()  # the writer gives it back after each part, failed or not
        self.stats["write_wait"] += time.perf_counter() - t0
        if self._failure is not None:
            self._slots.release()
            self._raise_failure()
        self._todo.put((part, result))
        self._handed += 1

    def drain(self) -> None:
        """Wait until every part handed over is committed; raises a write's error."""
        if self.background:
            t0 = time.perf_counter()
            writer = self._threads[1]
            with self._progress:
                # Counts, not slots: a Ctrl-C between taking a slot and handing the part over
                # leaves a slot taken for a part that never comes.
                while self._processed < self._handed and self._failure is None and writer.is_alive():
                    self._progress.wait(timeout=1.0)  # notified after each part; the timeout is a safety net
            self.stats["write_wait"] += time.perf_counter() - t0
        self._raise_failure()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _take(self):
        item = self._ready.get()  # the reader hands over every part, or an error, before it stops
        self._read_slots.release()
        return item

    # ---- the threads ------------------------------------------------------------------------
    def _timed(self, key: str, fn, *args):
        t0 = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.stats[key] += time.perf_counter() - t0

    def _load_marking(self, part: int):
        try:
            return self.load(part)
        except BaseException:
            self.failed_part = part
            raise

    def _read_loop(self) -> None:
        for part in self.parts:
            self._read_slots.acquire()
            if self._stop.is_set():
                return
            try:
                item = (part, self._timed("read", self.load, part), None)
            except BaseException as e:  # handed to the caller, raised at this part
                item = (part, None, e)
            self._ready.put(item)
            if item[2] is not None:
                return

    def _write_loop(self) -> None:
        while True:
            item = self._todo.get()
            if item is _END:
                return
            part, result = item
            try:
                if self._failure is None and not self._abandoned:
                    self._timed("write", self.write, part, result)
                    if self.on_commit is not None:
                        self.on_commit(part)
            except BaseException as e:
                self.failed_part, self._failure = part, e
            finally:
                del item, result  # the part's arrays are freed before the next one arrives
                self._slots.release()
                with self._progress:
                    self._processed += 1
                    self._progress.notify_all()
