"""``xai-core`` killed by SIGKILL at a commit point, for the fault-matrix tests:

    python kill_at_commit.py N TABLE PID -- ARGS…

runs ``xai-core ARGS…`` and sends SIGKILL to process PID (0: itself) right after its N-th
write of a file under ``tables/TABLE/``: with TABLE ``samples``, just after part N−1 commits;
with ``scores``, when a part's arrays and scores are on disk but its samples table (the commit)
is not. The writes are the runner's own (the real writer, the real files); only the moment of
the kill is chosen, so the test does not depend on timing.
"""

import os
import signal
import sys

from xai_core.summary import writer

n, table, pid = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]) or os.getpid()
assert sys.argv[4] == "--"
real, seen = writer.atomic_write_bytes, [0]


def atomic_write_bytes(path, data):
    real(path, data)
    if f"/tables/{table}/" in str(path):
        seen[0] += 1
        if seen[0] == n:
            os.kill(pid, signal.SIGKILL)


writer.atomic_write_bytes = atomic_write_bytes
from xai_core.cli import main  # noqa: E402

sys.exit(main(sys.argv[5:]))
