"""The generated fuzz corpus as a regression suite: a 100-input sample (mutated files of every
supported container, hostile rows, a hostile tar and a hostile folder) through a real build on
Dask ends with no aborted run, every input counted exactly once, each with the outcome its kind
allows and never a generic reason, and a rerun (on the local engine) writes the same bytes.
The full set (>= 1,000 inputs) runs in benchmarks/bench_fuzz.py."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ualm.pipelines.build import build_corpus
from ualm.testing.fuzz import GENERIC_REASONS, MUTATIONS, FuzzCorpus, make_fuzz_corpus
from ualm.testing.fuzz_formats import CONTAINERS

from .chaos import books
from .conftest import SMALL, tree_bytes


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory) -> FuzzCorpus:
    return make_fuzz_corpus(tmp_path_factory.mktemp("fuzz") / "corpus", count=100, seed=0,
                            metadata_mb=1.0)


def outcomes(out: Path) -> dict[int, str]:
    """Each input's outcome by its index: kept, duplicate or its reject reason."""
    found = {i: "kept" for i in pq.read_table(out / "manifests" / "samples",
                                              columns=["input_index"])["input_index"].to_pylist()}
    for i in pq.read_table(out / "manifests" / "duplicates",
                           columns=["input_index"])["input_index"].to_pylist():
        found[i] = "duplicate"
    for row in pq.read_table(out / "manifests" / "rejects").to_pylist():
        if row["level"] == "input":
            found[row["input_index"]] = row["reason"]
    return found


def test_the_sample_covers_every_container_mutation_and_hostile_kind(fuzz: FuzzCorpus) -> None:
    kinds = fuzz.kinds()
    assert len(fuzz.cases) == 100
    assert set(MUTATIONS) <= set(kinds)
    assert {c.container for c in fuzz.cases if c.kind in MUTATIONS} == set(CONTAINERS)
    for kind in ("fifo", "directory", "device", "symlink_out", "non_utf8_name", "huge_caption",
                 "nested_json", "tar_dotdot", "tar_absolute", "folder_non_utf8"):
        assert kind in kinds, kind


def test_the_generator_is_deterministic(fuzz: FuzzCorpus, tmp_path: Path) -> None:
    again = make_fuzz_corpus(tmp_path / "again", count=100, seed=0, metadata_mb=1.0)
    def text(corpus: FuzzCorpus) -> bytes:  # one row names a file outside by its full path
        return corpus.manifest.read_bytes().replace(str(corpus.root.parent).encode(), b"")

    assert text(again) == text(fuzz)
    assert again.cases == fuzz.cases
    files = {p.relative_to(fuzz.root): p.read_bytes() for p in fuzz.root.rglob("*")
             if p.is_file() and not p.is_symlink() and p != fuzz.manifest}
    assert files == {p.relative_to(again.root): p.read_bytes() for p in again.root.rglob("*")
                     if p.is_file() and not p.is_symlink() and p != again.manifest}


def test_every_fuzz_input_is_accounted_with_a_specific_reason(fuzz: FuzzCorpus,
                                                              tmp_path: Path) -> None:
    out = tmp_path / "dask"
    build_corpus(fuzz.inputs, out, SMALL, engine="dask", workers=2,
                 allow_roots=fuzz.allow_roots, progress=False)  # no aborted run: it returns
    counts = books(out)  # each input kept, rejected or a duplicate, exactly once
    assert counts["inputs"] == len(fuzz.cases)
    found = outcomes(out)
    wrong = {i: (case, found.get(i)) for i, case in enumerate(fuzz.cases)
             if found.get(i) in GENERIC_REASONS
             or (case.expect and found.get(i) not in case.expect)}
    assert not wrong, wrong
    assert counts["kept"] >= sum(c.kind == "seed" for c in fuzz.cases)

    rerun = tmp_path / "local"
    build_corpus(fuzz.inputs, rerun, SMALL, engine="local", allow_roots=fuzz.allow_roots,
                 progress=False)
    assert tree_bytes(rerun) == tree_bytes(out)


def test_a_header_rate_below_1_khz_is_a_bad_header(tmp_path: Path) -> None:
    """The fuzz corpus's slowest input: a float WAV whose rate field says 1 Hz decoded for 40 s
    into 465 MB (every sample resampled into 24,000); now its header is refused."""
    import soundfile as sf

    from ualm.audio.decode import probe
    from ualm.audio.errors import AudioRejected

    path = tmp_path / "one-hertz.wav"
    sf.write(path, [0.1] * 8000, 8000, subtype="FLOAT")
    data = bytearray(path.read_bytes())
    data[24:28] = (1).to_bytes(4, "little")  # the fmt chunk's sample rate
    path.write_bytes(bytes(data))
    with pytest.raises(AudioRejected) as caught:
        probe(path)
    assert caught.value.reason == "decode/bad_header"
