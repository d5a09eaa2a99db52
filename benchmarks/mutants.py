"""Mutation check: each headline guarantee, broken on purpose in a copy, must turn a test red.

A `Mutant` is one tiny semantic change (flip a comparison, drop a call, return early) to one
file: `old` must occur exactly once in that file (else the mutant is *stale*: a refactor moved
the code, so the list must follow) and is replaced by `new` in a temporary copy of the repository
(src/, tests/, examples/, pyproject.toml, README.md; no .venv, .git or __pycache__). The listed
`tests` (pytest node ids) then run there with `python -m pytest <tests> -x -q -p no:cacheprovider`,
cwd = the copy and PYTHONPATH = copy/src, which puts the copy ahead of the editable install for
the test process and for every process it starts (the `ualm` console script, `python -m ualm.cli`,
Dask and Beam workers: `--probe` shows it, and tests/test_mutants.py checks it in CI).

Outcomes: *killed* (pytest exit 1: a listed test failed, or errored in its setup), *survived*
(exit 0: a finding, the guarantee is not guarded), *stale* (the snippet is not there exactly
once), *error* (a collection error, no test collected, a timeout, or a listed test that does not
pass unmutated: none of these is a kill). Before the mutants, the listed tests run once unmutated
in a clean copy; a test that does not pass there voids the mutants that name it.

    python benchmarks/mutants.py                 # every mutant, benchmarks/results/mutants.json
    python benchmarks/mutants.py --fast          # the CI subset (tests/test_mutants.py runs it)
    python benchmarks/mutants.py --only exact-dedup-off near-dedup-off
    python benchmarks/mutants.py --list          # names, guarantees, tests; snippets checked
    python benchmarks/mutants.py --probe         # where the copy's processes import ualm from

Exits 0 only when every selected mutant is killed. A subset run (--fast, --only) writes its
record under /tmp/ualm-bench-quick/ (see _record.py) unless --results says otherwise, so that it
never replaces the full run's record.

Adding a mutant is one entry in MUTANTS (a new test for an existing mutant: add its node id to
that mutant's `tests`); `fast=True` puts it in the CI subset:

    Mutant("trainer-resume-restarts-at-step-0", "resume", "src/ualm/train/trainer.py",
           old="<a line of the code, exactly once>", new="<that line, broken>",
           tests=("tests/test_train_fit.py::<the test that must fail>",)),
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
COPIED = ("src", "tests", "examples", "pyproject.toml", "README.md")
"""What a copy holds: everything the tests read from the checkout."""
IGNORED = (".venv", ".git", "__pycache__", "*.egg-info", ".pytest_cache", ".ruff_cache", "*.pyc")
DEFAULT_TIMEOUT = 900.0
"""Seconds per pytest run (the tokenize tests alone take about 3 minutes on a loaded 2 cores)."""


@dataclass(frozen=True)
class Mutant:
    """One small named change that breaks one guarantee; `tests` must fail under it."""

    name: str
    guarantee: str
    path: str
    """Relative to the repository root."""
    old: str
    """Occurs exactly once in `path`."""
    new: str
    tests: tuple[str, ...]
    fast: bool = False
    """In the CI subset: its tests take seconds."""


BUILD = "tests/test_build.py::"
CRAWL = "tests/test_crawl.py::"
TOKENIZE = "tests/test_tokenize.py::test_token_shards_mirror_audio_shards"
GUARDS = "tests/test_guards_train.py::"
SSRF = "tests/test_ssrf_layers.py::"
CODES = "tests/test_tokenize.py::test_stored_codes_are_the_recorded_codecs_encoding_of_each_clip"
PUBLISH_FOLDER = ("tests/test_publish_verify.py::"
                  "test_folder_publish_refuses_to_complete_with_a_lost_or_damaged_file")
VERIFY_LINE = "bad = [e.path for e in entries if not store.matches(present.get(e.path), e)]"
SHARED_NOTHING = "tests/test_shared_nothing.py::"
SECRET_COMMANDS = ("tests/test_secret_commands.py::test_planted_secrets_reach_their_servers_and_are_"
                   "never_written_or_printed")
CLAP_BUILD = ("tests/test_model_filters.py::"
              "test_clap_threshold_drops_captions_and_rejects_an_input_left_with_none")

MUTANTS: list[Mutant] = [
    # -- accounting: inputs = kept + rejected + duplicates ----------------------------------------
    Mutant("accounting-rejected-row-dropped", "accounting", "src/ualm/pipelines/outcomes.py",
           old='        if not kept:\n            rejects.append({**base, "level": "input"',
           new='        if not kept and r.index % 2 == 0:\n'
               '            rejects.append({**base, "level": "input"',
           tests=(BUILD + "test_every_input_ends_with_its_expected_outcome",), fast=True),
    Mutant("accounting-check-always-true", "accounting", "src/ualm/manifests/inspect.py",
           old='"accounted": kept_inputs + rejected + duplicates == expected_inputs,',
           new='"accounted": True,',
           tests=(BUILD + "test_inspect_notices_a_lost_row",), fast=True),
    Mutant("accounting-duplicates-not-counted", "accounting", "src/ualm/manifests/inspect.py",
           old="kinds[kind or \"dedup/exact\"] += 1",
           new="pass",
           tests=(BUILD + "test_every_input_ends_with_its_expected_outcome",)),
    # -- filters switched on by name ---------------------------------------------------------------
    Mutant("filter-chain-not-run-by-ingest", "filter chain", "src/ualm/pipelines/ingest.py",
           old="checks = [*quality_checks(quality), *checks_for_unit(dataclasses.asdict(config.filters))]",
           new="checks = quality_checks(quality)",
           tests=("tests/test_filter_chain.py::"
                  "test_a_declared_filter_switched_on_by_name_rejects_end_to_end",), fast=True),
    # -- bounded decoding -------------------------------------------------------------------------
    Mutant("decode-isolation-ignored-by-ingest", "bounded decoding",
           "src/ualm/pipelines/ingest.py",
           old="decoding = open_input(config.limits, record.path,",
           new="decoding = open_input(dataclasses.replace(config.limits, isolate=False), "
               "record.path,",
           tests=("tests/test_bounded_decode.py::"
                  "test_a_build_rejects_the_misbehaving_inputs_and_keeps_the_rest_of_their_unit",),
           fast=True),
    Mutant("decode-memory-limit-off", "bounded decoding", "src/ualm/audio/decode_process.py",
           old="    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))\n",
           new="    pass\n",
           tests=("tests/test_bounded_decode.py::"
                  "test_a_crafted_file_is_too_large_in_a_real_decoder",), fast=True),
    # -- exact dedup ------------------------------------------------------------------------------
    Mutant("exact-dedup-off", "exact dedup", "src/ualm/pipelines/dedup.py",
           old="        if len(members) < 2:\n", new="        if len(members) < 2 or True:\n",
           tests=(BUILD + "test_every_input_ends_with_its_expected_outcome",
                  BUILD + "test_duplicate_listing_merges_captions_into_the_kept_clip"),
           fast=True),
    Mutant("exact-dedup-keeps-the-last-copy", "exact dedup", "src/ualm/pipelines/dedup.py",
           old='sorted(rows, key=lambda r: r["input_index"])',
           new='sorted(rows, key=lambda r: -r["input_index"])',
           tests=(BUILD + "test_every_input_ends_with_its_expected_outcome",
                  BUILD + "test_duplicate_listing_merges_captions_into_the_kept_clip")),
    # -- near dedup -------------------------------------------------------------------------------
    Mutant("near-dedup-off", "near dedup", "src/ualm/pipelines/near_dedup.py",
           old="        if d <= max_distance:\n", new="        if d < 0:\n",
           tests=("tests/test_near_dedup.py::test_build_keeps_one_copy_of_each_recording",),
           fast=True),
    Mutant("near-dedup-keeps-the-worst-copy", "near dedup", "src/ualm/pipelines/near_dedup.py",
           old="survivor = min(members,", new="survivor = max(members,",
           tests=("tests/test_near_dedup.py::test_build_keeps_one_copy_of_each_recording",)),
    # -- CLAP caption ranking and threshold -------------------------------------------------------
    Mutant("clap-ranking-off", "CLAP ranking", "src/ualm/filters/clap.py",
           old="ranked = sorted(range(len(captions)), key=lambda i: (-scores[i], i))",
           new="ranked = list(range(len(captions)))",
           tests=("tests/test_clap.py::test_select_captions_keeps_the_best_above_threshold",),
           fast=True),
    Mutant("clap-threshold-off-for-kept", "CLAP threshold", "src/ualm/filters/clap.py",
           old="if scores[i] >= threshold and (top_k is None or rank[i] < top_k)]",
           new="if (top_k is None or rank[i] < top_k)]",
           tests=("tests/test_clap.py::test_select_captions_keeps_the_best_above_threshold",),
           fast=True),
    Mutant("clap-threshold-ignored-by-the-build", "CLAP threshold", "src/ualm/pipelines/annotate.py",
           old="config.clap.top_k,\n                                        config.clap.threshold)",
           new="config.clap.top_k,\n                                        -1.0)",
           tests=(CLAP_BUILD,)),
    Mutant("clap-input-left-with-no-caption-kept", "CLAP threshold", "src/ualm/pipelines/ingest.py",
           old="        if kept:\n            outcome.record = dataclasses.replace(outcome.record, "
               "captions=tuple(kept),\n                                                 "
               "caption_scores=tuple(scores))\n        else:\n            first = dropped[0][1]\n"
               "            outcome.rejection = Rejection(first.reason, f\"all {len(dropped)} "
               "captions dropped \"",
           new="        if kept:\n            outcome.record = dataclasses.replace(outcome.record, "
               "captions=tuple(kept),\n                                                 "
               "caption_scores=tuple(scores))\n        elif False:\n            first = dropped[0][1]\n"
               "            outcome.rejection = Rejection(first.reason, f\"all {len(dropped)} "
               "captions dropped \"",
           tests=(CLAP_BUILD,)),
    # -- blend ------------------------------------------------------------------------------------
    Mutant("blend-temperature-ignored", "blend", "src/ualm/train/blend/weights.py",
           old="logs = [math.log(p.tokens) / options.temperature for p in members]",
           new="logs = [math.log(p.tokens) for p in members]",
           tests=("tests/test_blend.py::test_temperature_flattens_within_a_task",), fast=True),
    Mutant("blend-ignored-by-the-stream", "blend", "src/ualm/train/data/stream.py",
           old="self.cumulative = np.cumsum(self.probs / self.probs.sum()).tolist()",
           new="self.cumulative = np.cumsum(np.full(len(self.probs), 1 / len(self.probs)))"
               ".tolist()",
           tests=("tests/test_train_data.py::test_realised_shares_follow_the_blend",)),
    Mutant("blend-fit-picks-max", "blend fit", "src/ualm/train/stages/proxies.py",
           old="np.argmin(objective)", new="np.argmax(objective)",
           tests=(GUARDS + "test_blend_fit_chooses_the_least_predicted_loss",), fast=True),
    # -- resume -----------------------------------------------------------------------------------
    Mutant("trainer-never-resumes", "resume", "src/ualm/train/trainer.py",
           old="ckpt_path=str(last) if resuming else None, weights_only=True)",
           new="ckpt_path=None, weights_only=True)",
           tests=(GUARDS + "test_resume_runs_only_the_remaining_steps_and_matches_a_straight_run",
                  )),
    Mutant("stream-resume-forgets-its-rng", "resume", "src/ualm/train/data/stream.py",
           old='        self.rng.bit_generator.state = copy.deepcopy(state["rng"])\n',
           new='        copy.deepcopy(state["rng"])\n',
           tests=("tests/test_train_data.py::test_stream_resumes_exactly_from_its_state",)),
    Mutant("lanes-seeded-by-their-worker", "resume", "src/ualm/train/data/lanes.py",
           old="stream = PackedStream(sources, probs, config, tokenizer, lane, lanes, cache)",
           new="stream = PackedStream(sources, probs, config, tokenizer, mine.index(lane), "
               "len(mine), cache)",
           tests=("tests/test_train_lanes.py::"
                  "test_the_rows_of_every_global_step_are_the_same_for_every_placement",)),
    Mutant("build-rerun-redoes-finished-units", "resume", "src/ualm/pipelines/stages.py",
           old="pending = [t for t, d in zip(tasks, done, strict=True) if not d]",
           new="pending = list(tasks)",
           tests=("tests/test_engines.py::test_sigkill_rerun_redoes_only_unfinished_units",)),
    # -- tokenization -----------------------------------------------------------------------------
    Mutant("tokenize-drops-the-last-chunk", "tokenization", "src/ualm/tokenize/stage.py",
           old="    if chunk:\n        yield chunk\n", new="    if False:\n        yield chunk\n",
           tests=(TOKENIZE,)),
    Mutant("tokenize-cache-key-ignores-the-audio", "tokenization", "src/ualm/tokenize/stage.py",
           old="audio_hash(pcm, rate)))", new="audio_hash(pcm[:0], rate)))",
           tests=(TOKENIZE,)),
    Mutant("tokenize-writes-zero-codes", "tokenization", "src/ualm/tokenize/stage.py",
           old='"npy": npy_bytes(sample_codes),', new='"npy": npy_bytes(np.zeros_like(sample_codes)),',
           tests=(CODES,)),
    Mutant("tokenize-writes-a-neighbours-codes", "tokenization", "src/ualm/tokenize/stage.py",
           old="sample_codes in zip(chunk, codes, strict=True):",
           new="sample_codes in zip(chunk, codes[1:] + codes[:1], strict=True):",
           tests=(CODES,)),
    Mutant("codec-kinds-codebooks-left-at-zero", "tokenization",
           "src/ualm/tokenize/codecs/hf_loading.py",
           old="kind.set_codebook(codebook, embed, counts)",
           new="kind.set_codebook(codebook, embed * 0, counts)",
           tests=("tests/test_codec_kinds.py::test_random_codes_spread_over_the_codebooks",)),
    Mutant("codec-kinds-pad-to-the-longest-clip", "tokenization",
           "src/ualm/tokenize/codecs/hf_codec.py",
           old="groups.setdefault(self.padded_length(len(array)), []).append(i)",
           new="groups.setdefault(self.padded_length(max(map(len, arrays))), []).append(i)",
           tests=("tests/test_codec_kinds.py::test_batched_codes_equal_per_clip_codes",)),
    # -- publish verification ---------------------------------------------------------------------
    Mutant("publish-ignores-a-changed-hash", "publish verification", "src/ualm/publish/plan.py",
           old='(expected["sha256"] != digest or expected["bytes"] != size)',
           new='(expected["bytes"] != size)',
           tests=("tests/test_publish_store.py::"
                  "test_a_corpus_changed_after_its_build_is_not_published",)),
    Mutant("publish-ignores-a-missing-file", "publish verification", "src/ualm/publish/plan.py",
           old="    if missing:\n", new="    if False:\n",
           tests=("tests/test_publish_store.py::"
                  "test_a_corpus_changed_after_its_build_is_not_published",)),
    Mutant("publish-verify-compares-nothing", "publish verification",
           "src/ualm/publish/__init__.py",
           old=VERIFY_LINE, new="bad: list[str] = []",
           tests=(PUBLISH_FOLDER + "[missing]", PUBLISH_FOLDER + "[truncated]"), fast=True),
    Mutant("publish-verify-checks-presence-only", "publish verification",
           "src/ualm/publish/__init__.py",
           old=VERIFY_LINE, new="bad = [e.path for e in entries if e.path not in present]",
           tests=(PUBLISH_FOLDER + "[truncated]",), fast=True),
    Mutant("publish-verify-checks-sizes-only", "publish verification",
           "src/ualm/publish/__init__.py",
           old=VERIFY_LINE,
           new='bad = [e.path for e in entries\n'
               '           if getattr(present.get(e.path), "size", present.get(e.path)) != e.size]',
           tests=("tests/test_publish_verify.py::"
                  "test_hub_publish_refuses_to_complete_with_a_lost_or_replaced_file[same-size]",)),
    Mutant("publish-completes-before-verifying", "publish verification",
           "src/ualm/publish/__init__.py", old="    _verify(store, data)\n", new="",
           tests=(PUBLISH_FOLDER + "[missing]",), fast=True),
    # -- SSRF: URL check, resolver, socket factory, address policy --------------------------------
    Mutant("ssrf-url-check-ignores-the-flag", "SSRF (URL layer)",
           "src/ualm/inputs/crawl/policy.py",
           old="why = address_refusal(literal, allow_private)",
           new="why = address_refusal(literal, True)",
           tests=(SSRF + "test_url_check_refuses_private_literals_unless_allowed",
                  SSRF + "test_fetcher_url_check_refuses_a_private_literal_before_connecting"),
           fast=True),
    Mutant("ssrf-redirect-target-not-checked", "SSRF (URL layer, per redirect)",
           "src/ualm/inputs/crawl/fetch.py",
           old="                check_url(current, self.config.allow_private_network)\n",
           new="                if hops == 0:\n"
               "                    check_url(current, self.config.allow_private_network)\n",
           tests=(SSRF + "test_every_redirect_target_goes_through_the_url_check",), fast=True),
    Mutant("ssrf-legacy-ipv4-accepted", "SSRF (URL layer)", "src/ualm/inputs/crawl/policy.py",
           old="        if _legacy_ipv4(host):", new="        if False and _legacy_ipv4(host):",
           tests=(CRAWL + "test_bad_urls", CRAWL + "test_private_addresses_refused_without_the_flag"),
           fast=True),
    Mutant("ssrf-resolver-ignores-the-flag", "SSRF (resolver layer)",
           "src/ualm/inputs/crawl/net.py",
           old='why = address_refusal(entry["host"], self._allow_private)',
           new='why = address_refusal(entry["host"], True)',
           tests=(SSRF + "test_resolver_refuses_a_private_answer_unless_allowed",
                  SSRF + "test_fetcher_resolver_refuses_a_name_for_a_private_address"),
           fast=True),
    Mutant("ssrf-resolver-checks-only-the-first-address", "SSRF (resolver layer)",
           "src/ualm/inputs/crawl/net.py",
           old="        for entry in hosts:\n", new="        for entry in hosts[:1]:\n",
           tests=(SSRF + "test_resolver_checks_every_address_not_only_the_first",), fast=True),
    Mutant("ssrf-socket-factory-ignores-the-flag", "SSRF (socket layer)",
           "src/ualm/inputs/crawl/net.py",
           old="why = address_refusal(str(sockaddr[0]), allow_private)",
           new="why = address_refusal(str(sockaddr[0]), True)",
           tests=(CRAWL + "test_sockets_connect_only_to_checked_addresses",
                  SSRF + "test_socket_factory_refuses_a_private_peer_unless_allowed"), fast=True),
    Mutant("ssrf-link-local-allowed-with-the-flag", "SSRF (address policy)",
           "src/ualm/inputs/crawl/policy.py",
           old="    if candidate.is_link_local:\n",
           new="    if candidate.is_link_local and not allow_private:\n",
           tests=(CRAWL + "test_address_policy",), fast=True),
    Mutant("ssrf-embedded-ipv4-not-unwrapped", "SSRF (address policy)",
           "src/ualm/inputs/crawl/policy.py",
           old="    candidate = embedded_ipv4(ip)", new="    candidate = ip",
           tests=(CRAWL + "test_address_policy",)),
    # -- determinism: reproducible shard bytes, engine-independent results ------------------------
    Mutant("determinism-tar-mtime-is-the-clock", "determinism", "src/ualm/manifests/shards.py",
           old="FIXED_MTIME = 0\n", new='FIXED_MTIME = int(__import__("time").time())\n',
           tests=(BUILD + "test_windows_cover_long_inputs_and_shards_hold_flac_and_json",),
           fast=True),
    Mutant("determinism-tar-members-unsorted", "determinism", "src/ualm/manifests/shards.py",
           old='for ext in sorted(k for k in sample if not k.startswith("__")):',
           new='for ext in (k for k in sample if not k.startswith("__")):',
           tests=(BUILD + "test_windows_cover_long_inputs_and_shards_hold_flac_and_json",
                  TOKENIZE)),
    Mutant("determinism-folder-listing-unsorted", "determinism", "src/ualm/inputs/listing.py",
           old="    names = sorted(  # sorted names",
           new="    names = list(  # sorted names",
           tests=("tests/test_inputs.py::test_folder_is_listed_recursively_in_path_order",)),
    Mutant("determinism-dedup-bucket-by-process-hash", "determinism",
           "src/ualm/pipelines/outcomes.py",
           old='"bucket": int(o.fingerprint[:8], 16) % buckets if kept else None,',
           new='"bucket": hash(o.fingerprint) % buckets if kept else None,',
           tests=("tests/test_engines.py::test_dask_local_cluster_matches_local_engine",)),
    Mutant("shared-nothing-beam-results-in-driver-temp", "shared nothing",
           "src/ualm/manifests/layout.py",
           old='        yield self.url(f"{WORK}/engine")',
           new='        yield str(Path(os.environ.get("TMPDIR", "/tmp")))',
           tests=(SHARED_NOTHING + "test_beam_portable_runner_with_an_external_worker_pool_and_"
                  "no_shared_disk",)),
    Mutant("shared-nothing-shard-staging-in-system-tmp", "shared nothing",
           "src/ualm/manifests/shards.py",
           old='tempfile.mkdtemp(prefix="ualm-shard-")',
           new='tempfile.mkdtemp(prefix="ualm-shard-", dir="/tmp")',
           tests=(SHARED_NOTHING + "test_dask_scheduler_and_two_workers_with_no_shared_disk",)),
    # -- untrusted input: credentials and checkpoints ---------------------------------------------
    Mutant("credentials-kept-in-input-records", "credentials", "src/ualm/pipelines/outcomes.py",
           old="        data[name] = data[name] and redact_url(data[name])",
           new="        data[name] = data[name]",
           tests=("tests/test_secret_redaction.py::test_no_planted_secret_is_written_or_printed",),
           fast=True),
    Mutant("hub-token-shape-not-masked", "credentials", "src/ualm/redact.py",
           old='    if "hf_" in text:', new="    if False:",
           tests=("tests/test_secret_redaction.py::test_redact_text_masks_urls_headers_and_"
                  "environment_secrets",), fast=True),
    Mutant("teacher-url-credentials-accepted", "credentials",
           "src/ualm/synth/openai_teacher.py",
           old="        if base_url and redact_url(base_url) != base_url:", new="        if False:",
           tests=(SECRET_COMMANDS,)),
    Mutant("crawl-cache-keeps-credentials", "credentials", "src/ualm/inputs/crawl/cache.py",
           old='meta = {"url": redact_url(url),', new='meta = {"url": url,',
           tests=(SECRET_COMMANDS,)),
    Mutant("checkpoint-loaded-with-pickle", "untrusted checkpoints",
           "src/ualm/train/model/safe_load.py",
           old="return torch.load(path, map_location=device, weights_only=True, mmap=mmap)",
           new="return torch.load(path, map_location=device, weights_only=False, mmap=mmap)",
           tests=("tests/test_checkpoint_safety.py::test_a_hostile_checkpoint_is_refused_before_"
                  "its_code_runs",), fast=True),
]


@dataclass
class Outcome:
    name: str
    guarantee: str
    status: str
    """killed, survived, stale, error"""
    seconds: float
    detail: str = ""
    tests: tuple[str, ...] = ()
    fast: bool = False
    returncode: int | None = None
    output_tail: str = field(default="", repr=False)


# -- the copy ---------------------------------------------------------------------------------

def occurrences(mutant: Mutant, root: Path = REPO) -> int:
    """How often the mutant's `old` snippet occurs in its file (0 when the file is gone)."""
    path = root / mutant.path
    return path.read_text().count(mutant.old) if path.is_file() else 0


def make_copy(dest: Path, root: Path = REPO) -> Path:
    """The parts of the checkout the tests need, into `dest` (created)."""
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns(*IGNORED)
    for name in COPIED:
        source = root / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=ignore, symlinks=True)
        elif source.is_file():
            shutil.copy2(source, dest / name)
    return dest


def apply(mutant: Mutant, copy: Path) -> None:
    path = copy / mutant.path
    text = path.read_text()
    if text.count(mutant.old) != 1:
        raise ValueError(f"{mutant.name}: the snippet occurs {text.count(mutant.old)} times "
                         f"in {mutant.path}")
    path.write_text(text.replace(mutant.old, mutant.new, 1))


def child_env(copy: Path) -> dict[str, str]:
    """The environment of a run in `copy`: its src/ first on the path (inherited by every
    process the tests start), no token cache or pytest state shared with the caller."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("UALM_CACHE", "PYTEST_ADDOPTS", "PYTEST_CURRENT_TEST", "PYTHONHOME")}
    src = str((copy / "src").resolve())
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", UALM_MUTANTS_COPY=str(copy),
               PYTHONDONTWRITEBYTECODE="1")
    return env


def run_pytest(copy: Path, args: Sequence[str], timeout: float) -> tuple[int | None, str, float]:
    """(exit status, None on a timeout; output; seconds). A timed-out run's process group is
    killed (the tests start schedulers and workers of their own)."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider"],
                            cwd=copy, env=child_env(copy), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        code = None
    return code, output, time.perf_counter() - started


_SUMMARY = re.compile(r"^(?:=+ )?(?:\d+ \w+(?:, )?)+ in [\d.]+s")


def _summary_line(output: str) -> str:
    lines = [line.strip("= ").strip() for line in output.splitlines() if _SUMMARY.match(line)]
    return lines[-1] if lines else (output.strip().splitlines() or [""])[-1][:200]


def _first_failure(output: str) -> str:
    for line in output.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line[:300]
    return ""


def judge(code: int | None, output: str) -> tuple[str, str]:
    """(status, detail) of a mutant's pytest run."""
    summary = _summary_line(output)
    if code is None:
        return "error", "timeout"
    if code == 0:
        if " passed" not in f" {summary}":
            return "error", f"nothing passed: {summary}"
        return "survived", summary
    if code == 1:
        failure = _first_failure(output)
        if failure.startswith("ERROR ") and " failed" not in summary:
            return "killed", f"setup error: {failure[6:]} ({summary})"
        return "killed", f"{failure[7:] if failure else ''} ({summary})".strip()
    return "error", f"pytest exit {code} (2: collection error or interrupted, 5: no tests): " \
                    f"{_first_failure(output) or summary}"


# -- baseline ---------------------------------------------------------------------------------

def _covers(nodeid: str, wanted: str) -> bool:
    return nodeid == wanted or nodeid.startswith((wanted + "::", wanted + "["))


def baseline(tests: Sequence[str], timeout: float, root: Path = REPO
             ) -> tuple[dict[str, str], float, str]:
    """Runs the tests unmutated, once; {test: why it does not count} for those that did not
    pass (failed, errored, skipped, not collected), the seconds, and pytest's summary."""
    if not tests:
        return {}, 0.0, ""
    with tempfile.TemporaryDirectory(prefix="ualm-mutants-baseline-") as folder:
        copy = make_copy(Path(folder) / "repo", root)
        code, output, seconds = run_pytest(copy, [*tests, "-q", "-rA"], timeout)
    passed, bad = [], []
    for line in output.splitlines():
        word, _, rest = line.partition(" ")
        nodeid = rest.split(" - ", 1)[0].strip()
        if word == "PASSED":
            passed.append(nodeid)
        elif word in ("FAILED", "ERROR"):
            bad.append(nodeid)
    voided: dict[str, str] = {}
    for test in tests:
        if code is None:
            voided[test] = "the unmutated run timed out"
        elif any(_covers(b, test) for b in bad):
            voided[test] = "fails unmutated"
        elif not any(_covers(p, test) for p in passed):
            voided[test] = f"did not pass unmutated (skipped or not collected; exit {code})"
    return voided, seconds, _summary_line(output)


# -- one mutant -------------------------------------------------------------------------------

def run_mutant(mutant: Mutant, timeout: float, root: Path = REPO) -> Outcome:
    base = {"name": mutant.name, "guarantee": mutant.guarantee, "tests": mutant.tests,
            "fast": mutant.fast}
    found = occurrences(mutant, root)
    if found != 1:
        return Outcome(**base, status="stale", seconds=0.0,
                       detail=f"the snippet occurs {found} times in {mutant.path} (must be 1)")
    with tempfile.TemporaryDirectory(prefix=f"ualm-mutant-{mutant.name}-") as folder:
        copy = make_copy(Path(folder) / "repo", root)
        apply(mutant, copy)
        code, output, seconds = run_pytest(copy, [*mutant.tests, "-x", "-q"], timeout)
    status, detail = judge(code, output)
    return Outcome(**base, status=status, seconds=round(seconds, 1), detail=detail,
                   returncode=code, output_tail=output[-4000:])


def run_all(mutants: Sequence[Mutant], timeout: float = DEFAULT_TIMEOUT, jobs: int = 1,
            root: Path = REPO, say: Callable[[str], None] = print,
            check_baseline: bool = True) -> dict[str, Any]:
    """Baseline, then every mutant; a summary with one outcome per mutant (in list order)."""
    started = time.perf_counter()
    runnable = [m for m in mutants if occurrences(m, root) == 1]
    tests = sorted({t for m in runnable for t in m.tests})
    voided: dict[str, str] = {}
    base_seconds, base_summary = 0.0, "not run"
    if check_baseline and tests:
        say(f"baseline: {len(tests)} tests unmutated ...")
        voided, base_seconds, base_summary = baseline(tests, timeout, root)
        say(f"baseline: {base_summary} ({base_seconds:.1f} s)"
            + (f"; {len(voided)} do not pass: {sorted(voided)}" if voided else ""))
    width = max((len(m.name) for m in mutants), default=10)
    gwidth = max((len(m.guarantee) for m in mutants), default=10)

    def one(mutant: Mutant) -> Outcome:
        void = {t: voided[t] for t in mutant.tests if t in voided}
        if void and occurrences(mutant, root) == 1:
            outcome = Outcome(mutant.name, mutant.guarantee, "error", 0.0,
                              "void: " + "; ".join(f"{t} {why}" for t, why in void.items()),
                              mutant.tests, mutant.fast)
        else:
            outcome = run_mutant(mutant, timeout, root)
        say(f"{outcome.name:<{width}}  {outcome.guarantee:<{gwidth}}  {outcome.status:<8}  "
            f"{outcome.seconds:7.1f} s  {outcome.detail}")
        return outcome

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        outcomes = list(pool.map(one, mutants))
    counts = {s: sum(o.status == s for o in outcomes)
              for s in ("killed", "survived", "stale", "error")}
    total = len(outcomes)
    line = f"{counts['killed']} of {total} mutants killed" + "".join(
        f", {counts[s]} {s}" for s in ("survived", "stale", "error") if counts[s])
    say(line)
    return {"summary": line, "killed": counts["killed"], "total": total, "counts": counts,
            "all_killed": total > 0 and counts["killed"] == total,
            "baseline": {"tests": tests, "seconds": round(base_seconds, 1),
                         "summary": base_summary, "not_passing": voided},
            "seconds": round(time.perf_counter() - started, 1), "jobs": jobs, "timeout": timeout,
            "mutants": [{k: v for k, v in asdict(o).items() if k != "output_tail"}
                        for o in outcomes],
            "outputs": {o.name: o.output_tail for o in outcomes
                        if o.status in ("survived", "error") and o.output_tail}}


# -- where the copy's processes import ualm from ----------------------------------------------

PROBE_MARK = "ualm-mutants-probe:"
_PROBE_INIT = textwrap.dedent(f"""
    if __import__("os").environ.get("UALM_MUTANTS_PROBE"):  # added by benchmarks/mutants.py
        print("{PROBE_MARK}", __file__, file=__import__("sys").stderr)
""")
_PROBE_TEST = textwrap.dedent('''
    """Written by benchmarks/mutants.py --probe into a copy: where does each process import ualm
    from? The copy's ualm/__init__.py prints its own path when UALM_MUTANTS_PROBE is set, a line
    that the installed package (which lacks it) can never print."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import ualm

    SRC = (Path(os.environ["UALM_MUTANTS_COPY"]) / "src").resolve()
    WHERE = "__import__('ualm').__file__"


    def _inside(path):
        return Path(path).resolve().is_relative_to(SRC)


    def _marked(args):
        env = {**os.environ, "UALM_MUTANTS_PROBE": "1"}
        out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
        lines = [l.split(":", 1)[1].strip() for l in out.stderr.splitlines()
                 if l.startswith("MARK")]
        assert lines and all(_inside(p) for p in lines), (args, out.stderr[-2000:])


    def test_this_process():
        assert _inside(ualm.__file__), ualm.__file__


    def test_python_subprocess():
        _marked([sys.executable, "-c", "import ualm"])
        _marked([sys.executable, "-m", "ualm.cli", "--help"])


    def test_console_script():
        _marked([str(Path(sys.executable).parent / "ualm"), "--help"])


    def test_dask_workers():
        from ualm.engines import make_engine

        engine = make_engine("dask", workers=1)
        try:
            where = engine.map(eval, [WHERE], "probe")
        finally:
            engine.close()
        assert all(_inside(p) for p in where), where


    def test_beam_workers(tmp_path):
        from ualm.engines import make_engine

        where = make_engine("beam", workers=1, report=False).map(eval, [WHERE], "probe",
                                                                 scratch=tmp_path)
        assert all(_inside(p) for p in where), where
''').replace("MARK", PROBE_MARK)


def probe(timeout: float = 300.0, root: Path = REPO, beam: bool = True) -> tuple[bool, str]:
    """Runs the probe tests in a copy: (all passed, pytest's output)."""
    with tempfile.TemporaryDirectory(prefix="ualm-mutants-probe-") as folder:
        copy = make_copy(Path(folder) / "repo", root)
        init = copy / "src" / "ualm" / "__init__.py"
        init.write_text(init.read_text() + _PROBE_INIT)
        test = copy / "tests" / "test_zz_mutants_probe.py"
        test.write_text(_PROBE_TEST)
        selected = [] if beam else ["-k", "not beam"]
        code, output, _ = run_pytest(copy, [str(test.relative_to(copy)), "-q", "-rA", *selected],
                                     timeout)
    return code == 0, output


# -- command line -----------------------------------------------------------------------------

def select(names: Iterable[str] | None, fast: bool) -> list[Mutant]:
    chosen = [m for m in MUTANTS if m.fast] if fast else list(MUTANTS)
    if names:
        known = {m.name for m in MUTANTS}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise SystemExit(f"unknown mutant(s): {', '.join(unknown)} (see --list)")
        wanted = set(names)
        chosen = [m for m in chosen if m.name in wanted]
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fast", action="store_true", help="only the CI subset (fast=True)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="only these mutants")
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at once (default 1)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds per pytest run (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--probe", action="store_true",
                        help="show where the copy's processes import ualm from, and stop")
    parser.add_argument("--results", type=Path, default=None,
                        help="results file (default benchmarks/results/mutants.json; subset "
                             "runs: /tmp/ualm-bench-quick/mutants.json)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    mutants = select(args.only, args.fast)
    if args.list:
        for m in mutants:
            found = occurrences(m)
            print(f"{m.name}  [{m.guarantee}]{'  fast' if m.fast else ''}"
                  f"{'' if found == 1 else f'  STALE ({found} occurrences)'}\n"
                  f"    {m.path}\n" + "".join(f"    {t}\n" for t in m.tests), end="")
        return 0 if all(occurrences(m) == 1 for m in mutants) else 1
    if args.probe:
        ok, output = probe(args.timeout)
        print(output)
        print("the copy shadows the installed package in every process" if ok
              else "SHADOWING FAILED")
        return 0 if ok else 1

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _record import Record

    subset = bool(args.fast or args.only)
    record = Record("mutants", argparse.Namespace(quick=subset, results=args.results, bar=[]))
    figures = run_all(mutants, timeout=args.timeout, jobs=args.jobs)
    figures["selection"] = "fast" if args.fast else ("only" if args.only else "all")
    bars = [record.bar("mutants_killed", figures["killed"], "==", figures["total"],
                       "every selected mutant makes a listed test fail"),
            record.bar("stale_or_error", figures["counts"]["stale"] + figures["counts"]["error"],
                       "==", 0, "stale snippets, collection errors, timeouts, void baselines")]
    return record.finish(figures, bars, notes=[figures["summary"]])


if __name__ == "__main__":
    sys.exit(main())
