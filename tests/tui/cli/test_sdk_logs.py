"""The Azure SDKs' log records stay off the terminal unless --debug (issue 14, point 10)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tui.cli import SDK_LOGGER, quiet_sdk_logs

DUMP = ("DefaultAzureCredential failed to retrieve a token from the included credentials.\n"
        "Attempted credentials:\n\tEnvironmentCredential: unavailable")


@pytest.fixture(autouse=True)
def restore_sdk_logger() -> Iterator[None]:
    logger = logging.getLogger(SDK_LOGGER)
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]


def test_a_credential_warning_prints_nothing_by_default(
        capfd: pytest.CaptureFixture[str]) -> None:
    quiet_sdk_logs(debug=False)
    logging.getLogger("azure.identity.aio._credentials.default").warning(DUMP)
    quiet_sdk_logs(debug=False)  # twice is the same as once
    logging.getLogger("azure.core.pipeline").error("a transport error")
    assert capfd.readouterr().err == ""


def test_debug_shows_the_sdk_records(capfd: pytest.CaptureFixture[str]) -> None:
    quiet_sdk_logs(debug=True)
    logging.getLogger("azure.identity.aio._credentials.default").warning(DUMP)
    logging.getLogger("azure.core.pipeline").debug("request details")
    err = capfd.readouterr().err
    assert "DefaultAzureCredential failed" in err and "request details" in err


def test_without_az_login_the_error_is_one_line(tmp_path: Path) -> None:
    # A real DefaultAzureCredential with nothing to sign in with: no environment, no Azure
    # CLI, an empty home directory.
    env = {"PATH": os.path.dirname(sys.executable), "HOME": str(tmp_path),
           "AUMWATCH_DATA_DIR": str(tmp_path / "data")}
    code = "import sys; from tui.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run(
        [sys.executable, "-c", code, "configs", "--subscription",
         "00000000-0000-0000-0000-000000000001"],
        env=env, cwd=Path(__file__).resolve().parents[3], capture_output=True, text=True,
        timeout=120, check=False)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("aumwatch: ") and "Attempted credentials:\n" not in done.stderr


def test_under_the_dashboard_debug_records_go_to_a_private_file(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    # The dashboard owns the terminal: a record on stderr would draw over its screen.
    from tui.cli import debug_log_to_file

    quiet_sdk_logs(debug=True)
    log = debug_log_to_file(tmp_path / "data" / "debug.log")
    assert log == tmp_path / "data" / "debug.log"
    logging.getLogger("azure.core.pipeline").debug("request details")
    for handler in logging.getLogger(SDK_LOGGER).handlers:
        handler.flush()
    assert capfd.readouterr().err == ""
    assert "request details" in log.read_text(encoding="utf-8")
    assert log.stat().st_mode & 0o077 == 0


def test_without_debug_no_file_is_written(tmp_path: Path) -> None:
    from tui.cli import debug_log_to_file

    quiet_sdk_logs(debug=False)
    assert debug_log_to_file(tmp_path / "debug.log") is None
    assert not (tmp_path / "debug.log").exists()
