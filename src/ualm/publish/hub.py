"""Publishing to a Hugging Face dataset repo through `huggingface_hub`.

What is there is read from the repo tree: LFS files carry their sha256, other files their git
blob id, so a file is skipped when its bytes are already on the branch. Each batch is one commit
(`create_commit` uploads the batch's LFS objects first, then commits them); an interrupted batch
leaves its uploaded objects on the Hub, and the LFS batch endpoint answers "already there" for
them when the batch is redone, so no byte is sent twice. The token comes from HF_TOKEN or the
user's login and is only ever handed to `huggingface_hub`.
"""

from __future__ import annotations

import os
from typing import Any

from ualm.errors import UalmError
from ualm.publish.destinations import HubDestination
from ualm.publish.plan import FileEntry, git_blob_sha1


def _hub_error(action: str, exc: Exception) -> UalmError:
    """One line naming the HTTP status, never the request headers (they hold the token)."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    first = (str(exc).splitlines() or [type(exc).__name__])[0]
    if status in (401, 403):
        return UalmError(f"the Hub refused to {action} ({status}): {first}",
                         fix="set HF_TOKEN to a token with write access to the repo, or run "
                             "`hf auth login`")
    return UalmError(f"could not {action}: {first}",
                     fix="check the network and the repo, then rerun the same command: what "
                         "already arrived is kept and not sent again")


class HubStore:
    """A dataset repo branch as a publish destination."""

    def __init__(self, destination: HubDestination, private: bool = False) -> None:
        from huggingface_hub import HfApi, get_token
        from huggingface_hub.utils import disable_progress_bars

        from ualm.manifests.storage import check_online

        check_online()
        disable_progress_bars()  # one line per batch is ours to print

        self.destination, self.private = destination, private
        token = get_token()
        if not token:
            raise UalmError("no Hugging Face token found",
                            fix="set HF_TOKEN to a token with write access, or run "
                                "`hf auth login`")
        self.api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None, token=token)
        self.commits = 0

    @property
    def url(self) -> str:
        return self.destination.url

    def prepare(self) -> None:
        """Creates the repo (private when asked) and the branch, if they do not exist yet."""
        d = self.destination
        try:
            self.api.create_repo(d.repo_id, repo_type="dataset", private=self.private,
                                 exist_ok=True)
            if d.revision != "main":
                self.api.create_branch(d.repo_id, branch=d.revision, repo_type="dataset",
                                       exist_ok=True)
        except Exception as exc:
            raise _hub_error(f"create {d.url}", exc) from exc

    def existing(self) -> dict[str, Any]:
        """What the branch holds: path -> RepoFile (size, blob id, LFS sha256)."""
        d = self.destination
        try:
            tree = self.api.list_repo_tree(d.repo_id, recursive=True, revision=d.revision,
                                           repo_type="dataset")
            return {f.path: f for f in tree if hasattr(f, "blob_id")}
        except Exception as exc:
            raise _hub_error(f"list {d.url}", exc) from exc

    @staticmethod
    def matches(remote: Any, entry: FileEntry) -> bool:
        if remote is None or remote.size != entry.size:
            return False
        if remote.lfs is not None:
            return remote.lfs.sha256 == entry.sha256
        return remote.blob_id == git_blob_sha1(entry.read())

    def send(self, batch: list[FileEntry], message: str) -> None:
        """One commit adding the batch's files."""
        from huggingface_hub import CommitOperationAdd

        d = self.destination
        operations = [CommitOperationAdd(path_in_repo=e.path,
                                         path_or_fileobj=e.data if e.data is not None
                                         else str(e.local)) for e in batch]
        # Files with the same bytes (empty manifest parts, say) would each be uploaded when
        # they share a batch: upload the first of each sha256 beforehand, and the commit finds
        # the others' objects already on the Hub.
        first: dict[str, Any] = {}
        for entry, op in zip(batch, operations, strict=True):
            first.setdefault(entry.sha256, op)
        try:
            if len(first) < len(operations):
                self.api.preupload_lfs_files(d.repo_id, additions=list(first.values()),
                                             repo_type="dataset", revision=d.revision,
                                             free_memory=False)
            self.api.create_commit(d.repo_id, operations, commit_message=message,
                                   repo_type="dataset", revision=d.revision)
        except Exception as exc:
            raise _hub_error(f"commit {len(batch)} files to {d.url}", exc) from exc
        self.commits += 1

    def close(self) -> None:
        pass
