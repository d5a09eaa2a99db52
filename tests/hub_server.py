"""A Hugging Face Hub on 127.0.0.1 for tests: the parts of the HTTP API that `huggingface_hub`
uses to create a dataset repo and branches, upload LFS objects (preupload, LFS batch, PUT),
commit, list trees (with LFS sha256), answer paths-info and serve files (with ranges).

It stores what it receives and counts every upload per sha256 (LFS PUTs) and every regular file
sent inline in a commit, so a test can check that nothing was sent twice. `fail_after` makes the
server refuse LFS uploads once that many have arrived (a quota, a dying server), and
`fail_commits` refuses that many commits.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

LFS_SUFFIXES = (".tar", ".parquet", ".npy", ".bin", ".gz")


def git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    private: bool
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, dict[str, tuple[str, int]]] = field(default_factory=dict)
    """commit id -> {path: (("lfs", sha256) | ("git", content key), size)}"""
    messages: list[str] = field(default_factory=list)


class HubState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.repos: dict[str, Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self.blobs: dict[str, bytes] = {}
        self.lfs_uploads: Counter[str] = Counter()
        self.regular_sent: Counter[tuple[str, str]] = Counter()
        self.fail_after: int | None = None
        self.fail_commits = 0
        self.page_size = 1000  # tree entries per page, as on the Hub
        self.tokens_seen: set[str] = set()
        self.requests: list[tuple[str, str]] = []

    def tree(self, repo: Repo, rev: str) -> dict[str, tuple[tuple[str, str], int]] | None:
        commit = repo.branches.get(rev, rev if rev in repo.commits else None)
        return None if commit is None else repo.commits[commit]

    def content(self, entry: tuple[tuple[str, str], int]) -> bytes:
        (kind, key), _ = entry
        return self.lfs[key] if kind == "lfs" else self.blobs[key]

    def file_info(self, path: str, entry: tuple[tuple[str, str], int]) -> dict[str, Any]:
        (kind, key), size = entry
        if kind == "lfs":
            pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{key}\nsize {size}\n"
            return {"type": "file", "path": path, "size": size, "oid": git_oid(pointer.encode()),
                    "lfs": {"oid": key, "size": size, "pointerSize": len(pointer)}}
        return {"type": "file", "path": path, "size": size, "oid": git_oid(self.blobs[key])}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: HubState
    base: str

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    # -- plumbing ---------------------------------------------------------------------------
    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, body: Any = b"", headers: dict[str, str] | None = None,
              head: bool = False) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        content_type = "application/json" if not isinstance(body, bytes) else \
            "application/octet-stream"
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not head and self.command != "HEAD":  # a HEAD answer has headers only
            self.wfile.write(data)

    def _error(self, status: int, code: str, message: str) -> None:
        self._send(status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message})

    def _auth(self) -> bool:
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            self._error(401, "Unauthorized", "Invalid credentials in Authorization header")
            return False
        self.state.tokens_seen.add(auth[len("Bearer "):])
        return True

    def _repo(self, repo_id: str) -> Repo | None:
        repo = self.state.repos.get(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
        return repo

    # -- routes -----------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self._get(head=True)

    def do_GET(self) -> None:
        self._get(head=False)

    def _get(self, head: bool) -> None:
        url = urlsplit(self.path)
        path, query = unquote(url.path), parse_qs(url.query)
        self.state.requests.append((self.command, path))
        with self.state.lock:
            if m := re.fullmatch(r"/api/datasets/([^/]+/[^/]+)(?:/revision/(.+))?", path):
                return self._info(m.group(1), m.group(2) or "main")
            if m := re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/tree/([^/]+)(/.*)?", path):
                recursive = query.get("recursive", ["false"])[0].lower() == "true"
                cursor = int(query.get("cursor", ["0"])[0])
                return self._tree(m.group(1), m.group(2), (m.group(3) or "").strip("/"),
                                  recursive, cursor)
            if m := re.fullmatch(r"/datasets/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path):
                return self._resolve(m.group(1), m.group(2), m.group(3), head)
        self._error(404, "EntryNotFound", f"no route for GET {path}")

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        self.state.requests.append((self.command, path))
        body = self._body()
        if not self._auth():
            return
        with self.state.lock:
            if path == "/api/repos/create":
                return self._create(json.loads(body))
            if path == "/api/validate-yaml":
                return self._send(200, {"errors": [], "warnings": []})
            if m := re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/branch/(.+)", path):
                return self._branch(m.group(1), m.group(2), json.loads(body or b"{}"))
            if m := re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/preupload/(.+)", path):
                return self._preupload(m.group(1), json.loads(body))
            if m := re.fullmatch(r"/datasets/([^/]+/[^/]+)\.git/info/lfs/objects/batch", path):
                return self._lfs_batch(m.group(1), json.loads(body))
            if m := re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/commit/(.+)", path):
                return self._commit(m.group(1), m.group(2), body)
            if m := re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/paths-info/(.+)", path):
                return self._paths_info(m.group(1), m.group(2), body)
        self._error(404, "EntryNotFound", f"no route for POST {path}")

    def do_PUT(self) -> None:
        path = unquote(urlsplit(self.path).path)
        self.state.requests.append((self.command, path))
        body = self._body()
        m = re.fullmatch(r"/lfs-upload/([0-9a-f]{64})", path)
        if not m:
            return self._error(404, "EntryNotFound", f"no route for PUT {path}")
        oid = m.group(1)
        with self.state.lock:
            done = sum(self.state.lfs_uploads.values())
            if self.state.fail_after is not None and done >= self.state.fail_after:
                return self._error(507, "QuotaExceeded", "storage quota exceeded (test)")
            if hashlib.sha256(body).hexdigest() != oid:
                return self._error(400, "BadRequest", "content does not match the oid")
            self.state.lfs_uploads[oid] += 1
            self.state.lfs[oid] = body
        self._send(200, {})

    # -- handlers ---------------------------------------------------------------------------
    def _create(self, payload: dict) -> None:
        repo_id = f"{payload['organization']}/{payload['name']}"
        if repo_id in self.state.repos:  # the Hub names the existing repo in its 409
            message = "You already created this dataset repo"
            return self._send(409, {"error": message, "url": f"{self.base}/datasets/{repo_id}"},
                              {"X-Error-Code": "RepoExists", "X-Error-Message": message})
        gitattributes = b"*.tar filter=lfs diff=lfs merge=lfs -text\n"
        self.state.blobs[git_oid(gitattributes)] = gitattributes
        repo = Repo(private=payload.get("visibility") == "private" or bool(payload.get("private")))
        first = hashlib.sha1(repo_id.encode()).hexdigest()
        repo.commits[first] = {".gitattributes": (("git", git_oid(gitattributes)),
                                                  len(gitattributes))}
        repo.branches["main"] = first
        self.state.repos[repo_id] = repo
        self._send(200, {"url": f"{self.base}/datasets/{repo_id}", "name": repo_id})

    def _branch(self, repo_id: str, branch: str, payload: dict) -> None:
        repo = self._repo(repo_id)
        if repo is None:
            return None
        if branch in repo.branches:
            return self._error(409, "BranchExists", f"branch {branch} already exists")
        repo.branches[branch] = repo.branches[payload.get("startingPoint") or "main"]
        return self._send(200, {})

    def _info(self, repo_id: str, rev: str) -> None:
        repo = self._repo(repo_id)
        if repo is None:
            return None
        if rev not in repo.branches and rev not in repo.commits:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        sha = repo.branches.get(rev, rev)
        return self._send(200, {"id": repo_id, "sha": sha, "private": repo.private,
                                "siblings": [{"rfilename": p} for p in sorted(repo.commits[sha])]})

    def _entries(self, tree: dict, prefix: str, recursive: bool) -> list[dict]:
        files, folders = [], set()
        for path in sorted(tree):
            if prefix and not path.startswith(prefix + "/"):
                continue
            rest = path[len(prefix) + 1:] if prefix else path
            parts = rest.split("/")
            for depth in range(1, len(parts)):
                if recursive or depth == 1:
                    folders.add("/".join(([prefix] if prefix else []) + parts[:depth]))
            if recursive or len(parts) == 1:
                files.append(self.state.file_info(path, tree[path]))
        dirs = [{"type": "directory", "path": d, "oid": git_oid(d.encode()), "size": 0}
                for d in sorted(folders)]
        return dirs + files

    def _at(self, repo_id: str, rev: str) -> tuple[Repo, dict] | None:
        """The repo and its tree at `rev`, or None with the 404 sent."""
        repo = self._repo(repo_id)
        tree = None if repo is None else self.state.tree(repo, rev)
        if repo is not None and tree is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        return None if repo is None or tree is None else (repo, tree)

    def _tree(self, repo_id: str, rev: str, prefix: str, recursive: bool, cursor: int) -> None:
        found = self._at(repo_id, rev)
        if found is None:
            return None
        tree = found[1]
        if prefix and not any(p.startswith(prefix + "/") for p in tree):
            return self._error(404, "EntryNotFound", f"{prefix} does not exist")
        entries = self._entries(tree, prefix, recursive)
        page = entries[cursor:cursor + self.state.page_size]
        headers = {}
        if cursor + self.state.page_size < len(entries):  # the Hub pages with a Link header
            query = f"recursive={str(recursive).lower()}&cursor={cursor + self.state.page_size}"
            headers["Link"] = f'<{self.base}{urlsplit(self.path).path}?{query}>; rel="next"'
        return self._send(200, page, headers)

    def _paths_info(self, repo_id: str, rev: str, body: bytes) -> None:
        found = self._at(repo_id, rev)
        if found is None:
            return None
        tree = found[1]
        text = body.decode()
        paths = json.loads(text)["paths"] if text.startswith("{") else parse_qs(text)["paths"]
        out = []
        for p in paths:
            p = p.strip("/")
            if p in tree:
                out.append(self.state.file_info(p, tree[p]))
            elif any(k.startswith(p + "/") for k in tree):
                out.append({"type": "directory", "path": p, "oid": git_oid(p.encode())})
        return self._send(200, out)

    def _resolve(self, repo_id: str, rev: str, path: str, head: bool) -> None:
        found = self._at(repo_id, rev)
        if found is None:
            return None
        repo, tree = found
        if path not in tree:
            return self._error(404, "EntryNotFound", f"{path} does not exist at {rev}")
        data = self.state.content(tree[path])
        (kind, key), size = tree[path]
        headers = {"ETag": f'"{key}"', "X-Repo-Commit": repo.branches.get(rev, rev),
                   "Accept-Ranges": "bytes"}
        if kind == "lfs":
            headers["X-Linked-Size"], headers["X-Linked-Etag"] = str(size), f'"{key}"'
        ranged = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if ranged:
            start = int(ranged.group(1))
            end = min(int(ranged.group(2)) if ranged.group(2) else size - 1, size - 1)
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            return self._send(206, data[start:end + 1], headers, head)
        return self._send(200, data, headers, head)

    def _preupload(self, repo_id: str, payload: dict) -> None:
        if self._repo(repo_id) is None:
            return None
        files = []
        for f in payload["files"]:
            sample = base64.b64decode(f["sample"])
            lfs = f["path"].endswith(LFS_SUFFIXES) or f["size"] > 10 << 20 or b"\0" in sample
            files.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular",
                          "shouldIgnore": False})
        return self._send(200, {"files": files, "commitOid": None})

    def _lfs_batch(self, repo_id: str, payload: dict) -> None:
        if self._repo(repo_id) is None:
            return None
        objects = []
        for obj in payload["objects"]:
            entry: dict[str, Any] = {"oid": obj["oid"], "size": obj["size"]}
            if obj["oid"] not in self.state.lfs:  # the Hub says "already there" by no actions
                entry["actions"] = {"upload": {"href": f"{self.base}/lfs-upload/{obj['oid']}"}}
            objects.append(entry)
        return self._send(200, {"transfer": "basic", "objects": objects})

    def _commit(self, repo_id: str, rev: str, body: bytes) -> None:
        repo = self._repo(repo_id)
        if repo is None:
            return None
        if rev not in repo.branches:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        if self.state.fail_commits > 0:
            self.state.fail_commits -= 1
            return self._error(503, "ServiceUnavailable", "commit refused (test)")
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        tree = dict(repo.commits[repo.branches[rev]])
        summary = ""
        for item in lines:
            value = item["value"]
            if item["key"] == "header":
                summary = value["summary"]
            elif item["key"] == "file":
                data = base64.b64decode(value["content"])
                self.state.blobs[git_oid(data)] = data
                self.state.regular_sent[(value["path"], hashlib.sha256(data).hexdigest())] += 1
                tree[value["path"]] = (("git", git_oid(data)), len(data))
            elif item["key"] == "lfsFile":
                if value["oid"] not in self.state.lfs:
                    return self._error(422, "BadRequest", f"LFS object {value['oid']} missing")
                tree[value["path"]] = (("lfs", value["oid"]), value["size"])
            elif item["key"] in ("deletedFile", "deletedFolder"):
                tree = {p: e for p, e in tree.items()
                        if p != value["path"] and not p.startswith(value["path"].rstrip("/") + "/")}
        commit = hashlib.sha1(json.dumps([repo.branches[rev], summary, sorted(tree)],
                                         sort_keys=True).encode() + body).hexdigest()
        repo.commits[commit] = tree
        repo.branches[rev] = commit
        repo.messages.append(summary)
        return self._send(200, {"commitOid": commit, "commitUrl":
                                f"{self.base}/datasets/{repo_id}/commit/{commit}",
                                "pullRequestUrl": None})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):  # a streaming client hung up
            super().handle_error(request, client_address)


class HubServer:
    """`with HubServer() as hub:` serves on hub.url until the block ends."""

    def __init__(self) -> None:
        self.state = HubState()
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.httpd = _Server(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        handler.base = self.url
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> HubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def files(self, repo_id: str, rev: str = "main") -> dict[str, bytes]:
        """What the branch holds, path -> bytes."""
        repo = self.state.repos[repo_id]
        tree = self.state.tree(repo, rev) or {}
        return {p: self.state.content(e) for p, e in tree.items()}
