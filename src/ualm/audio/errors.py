"""The one exception the audio layer raises for files that cannot become audio."""

from __future__ import annotations


class AudioRejected(Exception):
    """A file that cannot become audio, with a namespaced reason and a human detail.

    ``reason`` is a stable machine key (e.g. ``"decode/not_audio"``) that reports count and
    tests match exactly; ``detail`` is free text for humans and may change between versions.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple[type[AudioRejected], tuple[str, str]]:
        # Keep both fields when the error crosses a process boundary (dask workers pickle it).
        return (type(self), (self.reason, self.detail))
