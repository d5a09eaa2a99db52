"""Where a corpus is published: a Hugging Face dataset repo, an object store or a folder.

>>> parse_destination("hf://datasets/org/sounds@v1").repo_id
'org/sounds'
>>> parse_destination("s3://bucket/corpora/sounds/").url
's3://bucket/corpora/sounds'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ualm.errors import UalmError

_REPO_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


@dataclass(frozen=True)
class HubDestination:
    repo_id: str
    revision: str
    """The branch commits go to (created from main when missing)."""

    @property
    def url(self) -> str:
        suffix = "" if self.revision == "main" else f"@{self.revision}"
        return f"hf://datasets/{self.repo_id}{suffix}"


@dataclass(frozen=True)
class StoreDestination:
    url: str
    """An fsspec URL (s3://, gs://, ...) or an absolute local path, without a trailing slash."""


Destination = HubDestination | StoreDestination


def parse_destination(to: str, revision: str | None = None) -> Destination:
    """The destination named by `--to` (and `--revision`), checked for form, not for access."""
    text = to.strip()
    if not text:
        raise UalmError("no destination given", fix="pass --to hf://datasets/ORG/NAME, "
                                                    "s3://BUCKET/PREFIX or a folder")
    if text.startswith("hf://"):
        return _hub(text, revision)
    if revision is not None:
        raise UalmError(f"--revision applies to Hub destinations, not {text}",
                        fix="drop --revision, or publish to hf://datasets/ORG/NAME")
    if "://" in text and not text.startswith("file://"):
        scheme, rest = text.split("://", 1)
        if not rest.strip("/"):
            raise UalmError(f"{text} names no bucket", fix=f"use {scheme}://BUCKET/PREFIX")
        return StoreDestination(f"{scheme}://{rest.rstrip('/')}")
    path = Path(text[len("file://"):] if text.startswith("file://") else text)
    return StoreDestination(str(path.expanduser().resolve()))


def _hub(text: str, revision: str | None) -> HubDestination:
    parts = text[len("hf://"):].strip("/").split("/")
    if len(parts) != 3 or parts[0] != "datasets":
        kind = parts[0] if parts and parts[0] in ("models", "spaces") else None
        raise UalmError(f"cannot publish to {text}" + (f": {kind} repos hold no corpora" if kind
                                                       else ""),
                        fix="use hf://datasets/ORG/NAME (a dataset repo; --revision BRANCH for "
                            "another branch)")
    org, name = parts[1], parts[2]
    if "@" in name:
        name, at = name.split("@", 1)
        if revision is not None and revision != at:
            raise UalmError(f"{text} names revision {at!r} and --revision says {revision!r}",
                            fix="give the revision once")
        revision = at
    for part in (org, name):
        if not _REPO_PART.match(part) or ".." in part or part.endswith((".git", ".")):
            raise UalmError(f"{part!r} is not a valid Hub name in {text}",
                            fix="use letters, digits, '-', '_' and '.' (at most 96 characters)")
    revision = revision or "main"
    if not revision.strip() or revision.startswith(("/", "refs/pr/")) or ".." in revision:
        raise UalmError(f"cannot publish to revision {revision!r}",
                        fix="pass a branch name with --revision (it is created if missing)")
    return HubDestination(f"{org}/{name}", revision)
