"""One trainer per run directory: an exclusive lock on `RUN_DIR/.ademvl-train.lock`.

Two trainers writing one run directory (two seeds started with the same
--output-dir) interleave checkpoints, metrics and the adapter. The lock is an
`flock` on a file holding the owner's pid: the kernel drops it when that
process ends however it ends (kill -9 included), so a lock left by a crash is
taken over, never waited on; the pid only names the owner in the message. On
file systems without `flock` the pid decides: a lock whose pid is not a live
process is stale. Only the main process of a launch takes it (the other ranks
of the same run share it), and the file is removed when the lock is released.
"""
from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from .errors import TrainingError

LOCK_NAME = ".ademvl-train.lock"


class RunDirBusy(TrainingError):
    """Another trainer holds the run directory."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_pid(fd: int) -> int | None:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 64).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


class RunLock:
    """`with RunLock(run_dir, option):` holds the run directory or raises `RunDirBusy` before anything is written."""

    def __init__(self, run_dir: Path, option: str = "--output-dir"):
        self.path = Path(run_dir) / LOCK_NAME
        self.option = option
        self.fd: int | None = None
        self.stale_pid: int | None = None  # the pid of a crashed trainer whose lock was taken over

    def _busy(self, pid: int | None) -> RunDirBusy:
        owner = f" (pid {pid})" if pid else ""
        return RunDirBusy(f"run dir '{self.path.parent}' is in use by another trainer{owner}: wait for it to "
                          f"finish, or choose another {self.option}")

    def acquire(self) -> "RunLock":
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = _read_pid(fd)
                os.close(fd)
                raise self._busy(pid) from None
            except OSError as error:  # no flock here (some network file systems): the pid decides
                if error.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                    os.close(fd)
                    raise
                pid = _read_pid(fd)
                if pid and pid != os.getpid() and _pid_alive(pid):
                    os.close(fd)
                    raise self._busy(pid) from None
            try:  # the holder before may have removed the file between our open and flock: lock the new one
                if os.fstat(fd).st_ino != os.stat(self.path).st_ino:
                    os.close(fd)
                    continue
            except FileNotFoundError:
                os.close(fd)
                continue
            previous = _read_pid(fd)
            self.stale_pid = previous if previous and previous != os.getpid() else None
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, f"{os.getpid()}\n".encode())
            self.fd = fd
            return self

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.path)  # while still held, so no one locks the file being removed
        except FileNotFoundError:
            pass
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
