"""Log records and tracebacks are masked as they are made: the command's own process, a Dask
worker's (a failed unit's line repeats its arguments) and `ualm --debug`'s traceback, which
shows the exception chain of a listing that failed on a URL with a password and a token."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_secret_redaction import PASSWORD, TOKEN
from ualm.errors import DEBUG_ENV
from ualm.redact import redact_logs

URL = f"http://user:{PASSWORD}@127.0.0.1:9/m.jsonl?token={TOKEN}"
SRC = str(Path(__file__).resolve().parents[1] / "src")


def test_records_are_masked_whatever_handler_prints_them() -> None:
    redact_logs()
    redact_logs()  # idempotent: one layer of masking
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    logger = logging.getLogger("some.library")
    logger.addHandler(handler)
    try:
        try:
            raise ConnectionError(f"cannot reach {URL}")
        except ConnectionError:
            logger.error("GET %s failed (Authorization: Bearer %s)", URL, TOKEN, exc_info=True)
        logger.error("%s", "100%% done")  # formatting still works once masked
    finally:
        logger.removeHandler(handler)
    text = out.getvalue()
    assert PASSWORD not in text and TOKEN not in text
    assert "GET http://***@127.0.0.1:9/m.jsonl?token=*** failed" in text
    assert "ConnectionError: cannot reach http://***@127.0.0.1:9/" in text  # the traceback
    assert "100%% done" in text


def _log_and_fail(url: str) -> None:
    logging.getLogger("distributed.worker").critical("fetching %s", url)
    raise OSError(28, f"No space left writing {url}")


def test_dask_workers_mask_their_logs(capfd: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from ualm.engines.dask import DaskEngine

    monkeypatch.setenv(DEBUG_ENV, "1")  # workers log failures, as under `ualm --debug`
    with DaskEngine(workers=1) as engine:
        engine.map(_log_and_fail, [URL], "unit")
        logs = str(engine._client.get_worker_logs())
    text = capfd.readouterr().err + logs
    assert "fetching http://***@127.0.0.1:9/m.jsonl?token=***" in text
    assert PASSWORD not in text and TOKEN not in text


def test_debug_traceback_is_masked(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "ualm.cli", "--debug", "build", "--input", URL, "--out",
           str(tmp_path / "out"), "--engine", "local"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": SRC, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr and "input not found: http://***@127.0.0.1:9/" in proc.stderr
    assert PASSWORD not in proc.stderr and TOKEN not in proc.stderr
