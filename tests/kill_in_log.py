"""A training loop with ``xai_core.Monitor`` killed by SIGKILL in the middle of a ``log`` call,
for the crash tests of runs of steps:

    python kill_in_log.py OUT WHERE

logs steps 0 and 1, then kills itself while step 2 is written: WHERE ``part`` right after the
step's samples table is written (its part committed, the step not), ``placed`` right after the
step's directory is renamed into place (the run's manifest not yet rewritten). The writes are
the real ones; only the moment of the kill is chosen, so the test does not depend on timing.
"""

import os
import signal
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
import xai_core  # noqa: E402
from xai_core import monitor_write  # noqa: E402
from xai_core.summary import writer  # noqa: E402

from steps_fixtures import CLASSES, TinyCNN, squares  # noqa: E402

out, where = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
images, labels = squares(6)
model = TinyCNN()
mon = xai_core.Monitor(images, labels=labels.tolist(), classes=CLASSES, out=out)
mon.log(model, step=0)
mon.log(model, step=1)


def die(*_):
    os.kill(os.getpid(), signal.SIGKILL)


if where == "part":
    real_write = writer.atomic_write_bytes

    def atomic_write_bytes(path, data):
        real_write(path, data)
        if "/tables/samples/" in str(path):
            die()

    writer.atomic_write_bytes = atomic_write_bytes
else:
    real_place = monitor_write.place_step

    def place_step(*a):
        real_place(*a)
        die()

    monitor_write.place_step = place_step
mon.log(model, step=2)
sys.exit(3)  # not reached
