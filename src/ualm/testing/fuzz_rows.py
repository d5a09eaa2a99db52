"""The fuzz corpus's hostile rows, tars and folder: what is wrong is not the audio's bytes but
where a row points (FIFOs, directories, devices, links out of the root, names that are not
UTF-8), what it carries (megabyte captions, deeply nested JSON, absurd numbers) or how an input
tar names its members (`..`, absolute, links, devices).

Each case is (manifest line as bytes, kind, expected outcomes): an empty `expect` means any
specific outcome (kept, duplicate or a reject naming its cause).
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

Case = tuple[bytes, str, tuple[str, ...]]
DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom")
"""Device files the corpus's rows name; the build must allow them as roots to reach them."""
_OUTSIDE = ("input/outside_allowed_roots",)
_NOT_FILE = ("input/not_a_file",)


def _line(row: object) -> bytes:
    return json.dumps(row).encode()


def hostile_rows(root: Path, outside: Path, valid: Callable[[str], str],
                 caption_mb: float) -> list[Case]:
    """The manifest's hostile rows; files they need are made under root/hostile and `outside`
    (a sibling of root). `valid(name)` writes a fresh valid clip under root and returns its
    path relative to root."""
    bad = root / "hostile"
    bad.mkdir(parents=True, exist_ok=True)
    outside.mkdir(parents=True, exist_ok=True)
    (outside / "real.wav").write_bytes((root / valid("outside-source")).read_bytes())
    os.mkfifo(bad / "pipe.wav")
    os.mkfifo(bad / "pipe.flac")
    (bad / "folder.wav").mkdir()
    os.symlink(outside / "real.wav", bad / "escape.wav")
    os.symlink("../../outside/real.wav", bad / "escape-relative.wav")
    os.symlink("/etc/hostname", bad / "etc.wav")
    os.symlink("loop-b.wav", bad / "loop-a.wav")
    os.symlink("loop-a.wav", bad / "loop-b.wav")
    os.symlink("nowhere.wav", bad / "dangling.wav")
    os.symlink("/dev/zero", bad / "zero-link.wav")
    os.symlink("../hostile", bad / "up")
    weird = os.fsencode(bad) + b"/caf\xe9-\xff.wav"  # not UTF-8: the manifest names it escaped
    with open(weird, "wb") as fh:
        fh.write((root / valid("non-utf8-source")).read_bytes())
    clip = valid("row-target")
    words = " ".join(["a dog barks"] * int(caption_mb * (1 << 20) / 12))
    nested = "[" * 100_000 + "]" * 100_000
    cases: list[Case] = [
        (_line({"id": "fifo-wav", "path": "hostile/pipe.wav"}), "fifo", _NOT_FILE),
        (_line({"id": "fifo-flac", "path": "hostile/pipe.flac"}), "fifo", _NOT_FILE),
        (_line({"id": "directory", "path": "hostile/folder.wav"}), "directory", _NOT_FILE),
        (_line({"id": "root-itself", "path": "."}), "directory", _NOT_FILE),
        *((_line({"id": f"device-{d[5:]}", "path": d}), "device", _NOT_FILE) for d in DEVICES),
        (_line({"id": "device-link", "path": "hostile/zero-link.wav"}), "device",
         (*_NOT_FILE, *_OUTSIDE)),
        (_line({"id": "symlink-out", "path": "hostile/escape.wav"}), "symlink_out", _OUTSIDE),
        (_line({"id": "symlink-out-rel", "path": "hostile/escape-relative.wav"}),
         "symlink_out", _OUTSIDE),
        (_line({"id": "symlink-etc", "path": "hostile/etc.wav"}), "symlink_out", _OUTSIDE),
        (_line({"id": "symlink-dir-up", "path": "hostile/up/up/up/../../escape.wav"}),
         "symlink_out", _OUTSIDE),
        (_line({"id": "dotdot", "path": "../outside/real.wav"}), "symlink_out", _OUTSIDE),
        (_line({"id": "absolute-out", "path": str(outside / "real.wav")}), "symlink_out",
         _OUTSIDE),
        (_line({"id": "symlink-loop", "path": "hostile/loop-a.wav"}), "symlink_loop",
         ("input/unreadable", "input/missing_file")),
        (_line({"id": "symlink-dangling", "path": "hostile/dangling.wav"}), "symlink_dangling",
         ("input/missing_file",)),
        (_line({"id": "non-utf8-name", "path": "hostile/caf\udce9-\udcff.wav"}), "non_utf8_name",
         ("manifest/bad_value",)),
        (_line({"id": "surrogate-caption", "path": clip, "caption": "a dog \ud800 barks"}),
         "non_utf8_name", ("manifest/bad_value",)),
        (b'{"id": "non-utf8-line", "path": "hostile/caf\xe9-\xff.wav"}', "non_utf8_line",
         ("input/missing_file",)),
        (_line({"id": "nul-in-path", "path": "hostile/a\u0000b.wav"}), "bad_path",
         ("input/unreadable", "manifest/bad_value")),
        (_line({"id": "long-path", "path": "x" * 5000 + ".wav"}), "bad_path",
         ("input/unreadable", "input/missing_file")),
        (_line({"id": "megabyte-caption", "path": clip, "caption": words}), "huge_caption",
         ("kept", "duplicate", "caption/too_long")),
        (_line({"id": "megabyte-word", "path": clip, "caption": "x" * int(caption_mb * 2**20)}),
         "huge_caption", ("kept", "duplicate", "caption/too_long")),
        (_line({"id": "many-captions", "path": clip, "captions": ["a dog barks"] * 20000}),
         "huge_caption", ("kept", "duplicate", "caption/too_long")),
        (f'{{"id": "nested-json", "path": "{clip}", "meta": {nested}}}'.encode(), "nested_json",
         ("manifest/bad_json",)),
        (_line({"id": "nested-300", "path": clip, "meta": json.loads("[" * 300 + "]" * 300)}),
         "nested_json", ("manifest/bad_json",)),
        (_line({"id": "nested-40", "path": clip, "meta": json.loads("[" * 40 + "]" * 40)}),
         "nested_json", ("kept", "duplicate")),
        (_line({"id": "nested-caption", "path": clip, "caption": [[["a dog"]]]}), "nested_json",
         ("manifest/bad_type",)),
        (nested.encode(), "nested_json", ("manifest/bad_json",)),
        (b'{"id": ' + b"9" * 5000 + b', "path": "x.wav"}', "absurd_number",
         ("manifest/bad_type", "manifest/bad_json")),
        (_line({"id": "start-huge", "path": clip, "start": 1e300}), "absurd_number",
         ("quality/empty", "quality/too_short", "manifest/bad_value")),
        (_line({"id": "end-tiny", "path": clip, "end": 1e-300}), "absurd_number",
         ("quality/empty", "quality/too_short", "manifest/bad_value")),
        (_line({"id": "start-nan", "path": clip, "start": "NaN"}), "absurd_number",
         ("manifest/bad_value",)),
        (b'{"id": "start-inf", "path": "x.wav", "start": Infinity}', "absurd_number",
         ("manifest/bad_value",)),
        (_line([1, 2, 3]), "not_an_object", ("manifest/bad_json",)),
        (_line(None), "not_an_object", ("manifest/bad_json",)),
        (_line({"id": "", "path": clip}), "bad_id", ("manifest/bad_type",)),
        (_line({"id": "x" * (1 << 16), "path": clip}), "huge_id", ("kept", "duplicate")),
    ]
    return cases


def _member(tar: tarfile.TarFile, name: str, data: bytes = b"",
            kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.size, info.type, info.linkname, info.mtime, info.mode = len(data), kind, link, 0, 0o644
    if kind == tarfile.CHRTYPE:
        info.devmajor, info.devminor = 1, 5
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def hostile_tar(path: Path, audio: bytes, damaged: bytes,
                caption_mb: float) -> list[tuple[str, tuple[str, ...]]]:
    """An input tar (WebDataset layout) of good and hostile samples; returns each sample's
    (kind, expected outcomes) in member order, one per input the build lists."""
    meta = json.dumps({"caption": "a tone"}).encode()
    samples: list[tuple[str, tuple[str, ...]]] = []
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT, encoding="utf-8",
                      errors="surrogateescape") as tar:
        def sample(kind: str, expect: tuple[str, ...], *members: tuple) -> None:
            for member in members:
                _member(tar, *member)
            samples.append((kind, expect))

        sample("tar_ok", ("kept",), ("good.wav", audio), ("good.json", meta))
        sample("tar_dotdot", ("source/unsafe_member",), ("../evil.wav", audio))
        sample("tar_dotdot", ("source/unsafe_member",), ("a/../../evil2.wav", audio))
        sample("tar_absolute", ("source/unsafe_member",), ("/etc/evil.wav", audio))
        sample("tar_symlink", ("source/not_a_file",),
               ("link.wav", b"", tarfile.SYMTYPE, "/etc/passwd"))
        sample("tar_hardlink", ("source/not_a_file",),
               ("hard.wav", b"", tarfile.LNKTYPE, "good.wav"))
        sample("tar_device", ("source/not_a_file",), ("dev.wav", b"", tarfile.CHRTYPE))
        sample("tar_fifo", ("source/not_a_file",), ("fifo.wav", b"", tarfile.FIFOTYPE))
        sample("tar_non_utf8", ("input/bad_name",), ("caf\udce9.wav", audio))
        sample("tar_nested_json", ("manifest/bad_json",), ("nest.wav", audio),
               ("nest.json", b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"))
        sample("tar_bad_json", ("manifest/bad_json",), ("badj.wav", audio),
               ("badj.json", b"{not json"))
        sample("tar_huge_json", ("kept", "duplicate"), ("hj.wav", audio),
               ("hj.json", json.dumps({"caption": "x " * (1 << 20)}).encode()))
        sample("tar_huge_caption", ("kept", "duplicate", "caption/too_long"), ("ht.wav", audio),
               ("ht.txt", b"a dog barks " * int(caption_mb * (1 << 20) / 12)))
        sample("tar_no_audio", ("source/no_audio",), ("meta-only.json", meta))
        sample("tar_damaged_audio", (), ("damaged.wav", damaged))
    return samples


def hostile_folder(tree: Path, outside: Path, audio: bytes) -> list[tuple[str, tuple[str, ...]]]:
    """A folder input: a good clip, one whose name is not UTF-8 and a link out of the folder;
    returns (kind, expected outcomes) in the order the build lists the folder (sorted names;
    a FIFO, a directory and a device link named like audio are not files and not listed)."""
    tree.mkdir(parents=True, exist_ok=True)
    (tree / "good.wav").write_bytes(audio)
    with open(os.fsencode(tree) + b"/caf\xe9.wav", "wb") as fh:
        fh.write(audio)
    os.symlink(outside / "real.wav", tree / "escape.wav")
    os.mkfifo(tree / "pipe.wav")
    (tree / "dir.wav").mkdir()
    os.symlink("/dev/zero", tree / "zero.wav")
    kinds = {"good.wav": ("folder_ok", ("kept", "duplicate")),
             "caf\udce9.wav": ("folder_non_utf8", ("input/bad_name",)),
             "escape.wav": ("folder_symlink_out", ("input/outside_allowed_roots",))}
    return [kinds[name] for name in sorted(kinds)]
