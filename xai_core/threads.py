"""CPU threads of a run (``threads:`` / ``--threads N``).

torch's intra-op pool and ONNX Runtime's (which reads torch's setting when a session is built:
:func:`xai_core.models.onnx.session_options`) get ``threads`` threads. By default that is
``$OMP_NUM_THREADS`` when set (the usual way to cap a process; Dask's nanny sets it to 1 in
every worker), else the cores this process may run on (``os.sched_getaffinity``: a container
or ``taskset`` limit, not the machine's count, which torch's own default goes by).

Why it matters: an intra-op pool larger than the cores actually free spends its time waiting
at barriers for threads the scheduler has preempted; on a loaded 2-core machine XRAI took 48 s
with torch's default and 3.1 s with one thread (issue 15; ``bench/threads.py`` measures it).
"""

from __future__ import annotations

import os
from contextlib import contextmanager

from .errors import ConfigError


def available_cores() -> int:
    """The cores this process may run on (its affinity mask; ``os.cpu_count()`` where the
    platform has no affinity call)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """``$OMP_NUM_THREADS`` when it is a positive integer, else :func:`available_cores`."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) >= 1:
        return int(env)
    return available_cores()


def check_threads(threads) -> None:
    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"threads is {threads!r}; expected an integer ≥ 1 "
                          "(or leave it unset: the cores this process may use)")


def resolve_threads(threads: int | None) -> int:
    """The intra-op threads a run uses: ``threads``, or :func:`default_threads` when None."""
    check_threads(threads)
    return int(threads) if threads is not None else default_threads()


@contextmanager
def cpu_threads(threads: int | None):
    """Run the block with torch's intra-op threads set to ``resolve_threads(threads)``
    (yielded), and put the caller's setting back afterwards: a run started from Python must
    not change the threads of the rest of the program."""
    import torch

    n = resolve_threads(threads)
    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield n
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
