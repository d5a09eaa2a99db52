"""A Beam pipeline run while its worker processes are watched.

The direct runner in multi-processing mode starts one SDK worker process per core; when one dies
(killed for memory, SIGKILLed, a crash in native code), the runner's thread that started it
raises "Worker subprocess exited with return code N" and the pipeline waits forever for the
bundles it held. Here the pipeline runs in a thread of its own while this one listens for that
error: on it, the stage stops with one line, and a rerun resumes from the units that finished
(a managed runner, Dataflow or Flink, replaces lost workers itself and never raises it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ualm.errors import UalmError

R = TypeVar("R")

WORKER_DIED = "Worker subprocess exited with return code"
"""The start of the error the direct runner's worker thread raises when its worker dies."""
CONTROL_THREAD = "beam_control_read"
"""The runner's thread that reads a worker's control stream: it raises grpc's RpcError when the
worker's connection drops (sometimes before, or instead of, the exit notice above)."""
GRACE_SECONDS = 10.0
"""How long a pipeline may still take to end by itself after a worker died (its last bundle
may have been done; a worker that exits non-zero as the pipeline shuts down is harmless)."""


def run_watched(run: Callable[[], R], label: str, poll: float = 0.2) -> R:
    """`run()` (a pipeline run to its end) in a daemon thread; its result, or its error. A
    worker process that dies meanwhile is a `UalmError` once the pipeline has not ended within
    GRACE_SECONDS (the stuck thread is left behind: the command is about to exit)."""
    died: list[str] = []
    previous = threading.excepthook

    def hook(args: Any) -> None:
        if args.exc_type is RuntimeError and str(args.exc_value).startswith(WORKER_DIED):
            died.append(str(args.exc_value).rsplit(" ", 1)[-1])  # the one line below says it
        elif (getattr(args.thread, "name", "").startswith(CONTROL_THREAD)
              and type(args.exc_value).__name__ == "RpcError"):
            died.append("unknown")  # its control stream broke: the worker is gone
        else:
            previous(args)

    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = run()
        except BaseException as exc:
            outcome["error"] = exc

    threading.excepthook = hook
    try:
        thread = threading.Thread(target=target, name=f"beam-{label}", daemon=True)
        thread.start()
        while thread.is_alive():
            thread.join(poll)
            if died and thread.is_alive():
                thread.join(GRACE_SECONDS)
                if thread.is_alive():
                    _stop_workers()  # left alone, they print gRPC tracebacks as this exits
                    raise _worker_died(died, label)
        if "error" in outcome:
            # the runner may fail instead of waiting ("Channel closed prematurely"): when a
            # worker died, that is what to say; its notice can trail the error a little
            for _ in range(int(1 / poll)):
                if died:
                    _stop_workers()
                    raise _worker_died(died, label) from outcome["error"]
                time.sleep(poll)
            raise outcome["error"]
    finally:
        threading.excepthook = previous
    return outcome["result"]


def _worker_died(notices: list[str], label: str) -> UalmError:
    """The one line for a dead worker, its exit code as the runner gave it (or "unknown")."""
    code = next((c for c in notices if c != "unknown"), notices[0])
    return UalmError(f"a Beam worker process died during {label} (exit code {code}: "
                     f"{_cause(code)}); the direct runner cannot finish without it",
                     fix="rerun the same command: finished units are kept (for memory, pass "
                         "fewer --direct_num_workers)")


def _stop_workers() -> None:
    """SIGKILLs the direct runner's SDK worker processes still running (this process's
    descendants), and the shells that started them."""
    import psutil

    for child in psutil.Process().children(recursive=True):
        try:
            if any("sdk_worker_main" in part for part in child.cmdline()):
                child.kill()
        except psutil.Error:  # exited meanwhile
            pass


def _cause(code: str) -> str:
    return {"unknown": "its connection dropped",
            "137": "killed, as by SIGKILL or the out-of-memory killer",
            "-9": "killed, as by SIGKILL or the out-of-memory killer",
            "139": "a segmentation fault", "-11": "a segmentation fault"}.get(code, "it failed")
