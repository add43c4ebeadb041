"""Child processes of the tests: a free port for a launcher, a SIGKILL at a chosen moment, and `ademvl serve`
ready when its /health answers (also used by benchmarks/serve_bench.py and scripts/serve_screenshot.py)."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sigkill_when(proc: subprocess.Popen, ready, what: str, timeout: float = 120.0, group: bool = False) -> None:
    """SIGKILL `proc` (its whole process group with `group`) once `ready()` holds, or after `timeout` s;
    it must not end by itself before then."""
    kill = (lambda: os.killpg(proc.pid, signal.SIGKILL)) if group else (lambda: os.kill(proc.pid, signal.SIGKILL))
    try:
        deadline = time.time() + timeout
        while not ready() and time.time() < deadline:
            assert proc.poll() is None, f"{what} ended before it could be killed"
            time.sleep(0.02)
        kill()
        proc.wait()
    finally:
        if proc.poll() is None:
            kill()
            proc.wait()


@contextlib.contextmanager
def running_server(*argv: str, threads: int = 1, timeout: float = 300.0, quiet: bool = True):
    """Yield the base URL of `ademvl serve ARGV` on 127.0.0.1:<free port>; stop it afterwards.

    `threads` sets the child's torch threads; with `quiet` its output is kept and
    shown only if it fails to start.
    """
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    output = subprocess.PIPE if quiet else None
    proc = subprocess.Popen([sys.executable, "-m", "ademvl.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                             "--threads", str(threads), "--log-level", "warning", *argv],
                            stdout=output, stderr=subprocess.STDOUT if quiet else None, env=env, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                log = proc.stdout.read() if quiet else ""
                raise RuntimeError(f"ademvl serve exited with {proc.returncode}:\n{log}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"ademvl serve did not answer on {url} within {timeout:.0f} s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if quiet and proc.stdout:
            proc.stdout.close()
