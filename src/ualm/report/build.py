"""`ualm report`: corpora and training runs → one self-contained HTML page.

    >>> write_report(["corpora/sounds", "runs/ualm"], "report.html")  # doctest: +SKIP
    PosixPath('report.html')
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from ualm import __version__
from ualm.errors import UalmError
from ualm.manifests.layout import atomic_write_bytes
from ualm.manifests.storage import is_remote
from ualm.report import html
from ualm.report.audio import listen_to, pick
from ualm.report.gather import gather_corpus, gather_run, is_corpus, is_run
from ualm.report.sections import Section, corpus_sections, run_sections


def render_report(paths: Sequence[str | Path], samples: int = 3, blend: str | Path | None = None,
                  device: str | None = None, title: str = "ualm report",
                  stamp: str | None = None) -> str:
    """The page's HTML. Each path is a corpus folder or a training run folder; `samples` audio
    samples per corpus get players. `stamp` (default: now, UTC) is the only part that varies
    between two renders of the same folders."""
    if not paths:
        raise UalmError("nothing to report on", fix="pass corpus folders and/or run folders")
    sections: list[Section] = []
    where = [str(p).rstrip("/") if is_remote(p) else Path(p) for p in paths]  # s3:// stays a URL
    names = _names(where)
    for path, name in zip(where, names, strict=True):
        if is_corpus(path):
            facts = gather_corpus(path)
            heard = listen_to(path, pick(facts.samples, samples), facts.tokens, device)
            sections += corpus_sections(facts, name, heard)
        elif isinstance(path, Path) and is_run(path):
            sections += run_sections(gather_run(path, blend), name)
        else:
            raise UalmError(f"{path} is neither a corpus (corpus.json) nor a training run "
                            "(logs/metrics.csv, realised_blend.json)",
                            fix="pass folders that `ualm build` or `ualm train` wrote")
    stamp = stamp or datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    subtitle = f"{', '.join(str(p) for p in paths)} · ualm {__version__} · {stamp}"
    return html.page(title, subtitle, sections)


def write_report(paths: Sequence[str | Path], out: str | Path, **options: object) -> Path:
    """Renders and writes the page atomically; returns its path."""
    out = Path(out)
    atomic_write_bytes(out, render_report(paths, **options).encode())  # type: ignore[arg-type]
    return out


def _names(paths: Sequence[str | Path]) -> list[str]:
    """Short unique section prefixes: the folder names, numbered when two are alike."""
    names, seen = [], {}
    for p in paths:
        name = p.rsplit("/", 1)[-1] if isinstance(p, str) else p.resolve().name
        base = (name or "root").replace(" ", "-")
        seen[base] = seen.get(base, 0) + 1
        names.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return names
