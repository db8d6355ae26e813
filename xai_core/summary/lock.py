"""The run lock: one writer per run directory at a time.

``<run>/.lock`` is a small JSON file ``{pid, host, started}`` created with ``O_CREAT | O_EXCL``
(atomic on local filesystems and NFSv3+), so two runners started on the same directory cannot
both own it. A lock left by a process that died is detected when it names this host and a pid
that no longer exists; a lock from another host is never broken automatically (we cannot tell
whether that process lives), the message says which file to delete.
"""

from __future__ import annotations

import errno
import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path

from ..errors import SummaryError

LOCK = ".lock"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return True
    return True


def _holder(path: Path) -> dict | None:
    """The lock's content, or None when it cannot be read as a lock (half written, garbage)."""
    try:
        info = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return info if isinstance(info, dict) else None


def writer_gone(run_dir: str | Path) -> bool:
    """Whether ``run_dir``'s lock names a process of this host that no longer exists: a run that
    says "running" with such a lock was killed (SIGKILL, power loss) and is finished by --resume."""
    info = _holder(Path(run_dir) / LOCK)
    pid = info.get("pid") if info else None
    return (isinstance(pid, int) and not isinstance(pid, bool) and info.get("host") == socket.gethostname()
            and not _pid_alive(pid))


class RunLock:
    """Held while a process writes a run; use as a context manager or call :meth:`release`."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK
        self.held = False

    def acquire(self) -> "RunLock":
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        for _ in range(3):  # a stale lock removed by us (or a racing process) is retried
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                self._break_if_stale(me["host"])
                continue
            except OSError as e:
                raise SummaryError(f"{self.run_dir}: cannot create the run lock {self.path.name} "
                                   f"({e.strerror or e}); expected a writable directory") from e
            try:
                with os.fdopen(fd, "w") as f:
                    json.dump(me, f)
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as e:
                self.path.unlink(missing_ok=True)
                raise SummaryError(f"{self.path}: cannot write the run lock ({e.strerror or e})") from e
            self.held = True
            return self
        raise SummaryError(f"{self.path}: could not take the run lock; another process keeps creating it")

    def _break_if_stale(self, host: str) -> None:
        info = _holder(self.path)
        if info is None:
            raise SummaryError(f"{self.path}: a run lock that cannot be read is in the way; if no runner is "
                               "writing this run, delete that file and try again")
        pid, lhost = info.get("pid"), info.get("host")
        if lhost == host and isinstance(pid, int) and not _pid_alive(pid):
            try:  # that process died without releasing the lock
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            except OSError as e:  # a read-only file system, a directory we may not write
                raise SummaryError(f"{self.path}: the run lock of process {pid}, which is gone, cannot be removed "
                                   f"({e.strerror or e}); the run directory must be writable to finish the run "
                                   "(remount it read-write, or copy the run elsewhere and resume the copy)") from e
            return
        raise SummaryError(f"{self.run_dir} is being written by process {pid} on {lhost} "
                           f"(since {info.get('started')}); wait for it to finish, or, if that process is gone, "
                           f"delete {self.path}")

    def release(self) -> None:
        if not self.held:
            return
        info = _holder(self.path)
        if info is not None and info.get("pid") == os.getpid():
            try:
                os.unlink(self.path)
            except OSError as e:
                if e.errno != errno.ENOENT:
                    raise
        self.held = False

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
