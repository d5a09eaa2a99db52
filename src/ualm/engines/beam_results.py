"""How a Beam pipeline's unit results reach the driver: one pickle per unit in a folder that the
workers and the driver both see. That is a local path when they share a disk (the corpus's
`_work` folder, or this machine's temporary folder) and a store URL when they share nothing but
the network (the corpus's `_work/engine/` in its bucket): a worker on another machine, or in a
worker pool with a temporary folder of its own, cannot write into the driver's.

A retried bundle rewrites a unit's result whole (a rename on disk, one put in a store), so the
driver never reads half of one.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ualm.errors import UalmError
from ualm.manifests import storage

POLL_SECONDS = 0.25
STORE_POLL_SECONDS = 1.0
"""A store is listed once a second (one LIST request), a local folder four times."""


class ResultFolder:
    """A folder of results, `location` a local path or a store URL. Pickles as its location:
    each worker opens the store with its own credentials."""

    def __init__(self, location: str) -> None:
        self.location = location
        self.remote = storage.is_remote(location)
        self._fs: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"location": self.location}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["location"])  # type: ignore[misc]

    @property
    def fs(self) -> tuple[Any, str]:
        """(filesystem, folder inside it) of a store folder, opened on first use."""
        if self._fs is None:
            self._fs = storage.filesystem(self.location)
        return self._fs

    def _name(self, index: int) -> str:
        return f"{index:09d}.pkl"

    def create(self) -> None:
        if not self.remote:
            Path(self.location).mkdir(parents=True)

    def put(self, index: int, result: Any) -> None:
        data = pickle.dumps(result)
        if self.remote:
            fs, inner = self.fs
            fs.pipe_file(f"{inner}/{self._name(index)}", data)
            return
        path = Path(self.location) / self._name(index)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def indices(self) -> list[int]:
        """Units whose result is there, in order."""
        if self.remote:
            names = storage.fs_list_names(*self.fs, self.location, ".pkl")
        else:
            names = [p.name for p in Path(self.location).glob("*.pkl")]
        return sorted(int(name[:-len(".pkl")]) for name in names)

    def get(self, index: int) -> Any:
        if self.remote:
            fs, inner = self.fs
            return pickle.loads(fs.cat_file(f"{inner}/{self._name(index)}"))
        return pickle.loads((Path(self.location) / self._name(index)).read_bytes())

    def remove(self) -> None:
        if not self.remote:
            shutil.rmtree(self.location, ignore_errors=True)
            return
        fs, inner = self.fs
        # none there when no unit wrote one; one left behind under _work is invisible to readers
        with contextlib.suppress(OSError):
            fs.rm(inner, recursive=True)


class ResultWatcher:
    """Reads results as workers write them, calling on_result once per unit."""

    def __init__(self, folder: ResultFolder, on_result: Callable[[Any], None] | None) -> None:
        self.folder, self.on_result = folder, on_result
        self.results: dict[int, Any] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._lock = threading.Lock()
        self._poll = STORE_POLL_SECONDS if folder.remote else POLL_SECONDS

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._scan()

    def _loop(self) -> None:
        while not self._stop.wait(self._poll):
            try:
                self._scan()
            except Exception:  # a store's passing error: the next scan, or stop()'s, reads it
                continue

    def _scan(self) -> None:
        with self._lock:
            for index in self.folder.indices():
                if index in self.results:
                    continue
                self.results[index] = self.folder.get(index)
                if self.on_result is not None:
                    self.on_result(self.results[index])

    def collect(self, count: int) -> list[Any]:
        missing = [i for i in range(count) if i not in self.results]
        if missing:
            raise UalmError(f"the Beam pipeline finished without results for units {missing[:10]}",
                            fix="see the runner's log, then rerun: finished units are kept")
        return [self.results[i] for i in range(count)]
