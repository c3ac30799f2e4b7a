"""A process that cannot work says so at start, in one line naming the setting to fix."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.acceptance.conftest import IMAGEGATE, child_env, free_port

pytestmark = pytest.mark.slow


def run(workdir: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    defaults = {
        "IMAGEGATE_DATA_DIR": str(workdir / "data"),
        "IMAGEGATE_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'data' / 'imagegate.db'}",
        "COLUMNS": "200",
    }
    env = child_env(**(defaults | settings))
    return subprocess.run(
        [IMAGEGATE, *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=90
    )


def one_line_failure(result: subprocess.CompletedProcess[str], status: int = 2) -> str:
    """The process failed with ``status``, one line on stderr and no traceback anywhere.

    2 is a wrong name or value (restarting will not help); 1 a database or bucket that does not
    answer (a supervisor may retry).
    """
    assert result.returncode == status, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_an_unknown_variable_stops_serve_with_the_closest_setting(tmp_path: Path) -> None:
    line = one_line_failure(run(tmp_path, "serve", IMAGEGATE_WORKRES="8"))
    assert line == "imagegate: unknown setting IMAGEGATE_WORKRES: did you mean IMAGEGATE_WORKERS?"


def test_an_unknown_key_in_the_toml_file_stops_the_worker(tmp_path: Path) -> None:
    (tmp_path / "imagegate.toml").write_text('log_level = "INFO"\nlease_secs = 60\n')
    line = one_line_failure(run(tmp_path, "worker"))
    assert line == (
        'imagegate: unknown setting "lease_secs" in imagegate.toml: did you mean "lease_seconds"?'
    )


def test_a_misspelt_provider_option_stops_serve_with_the_allowed_names(tmp_path: Path) -> None:
    line = one_line_failure(
        run(
            tmp_path,
            "serve",
            IMAGEGATE_PROVIDERS__OPENAI__API_KEY="sk-test",
            IMAGEGATE_PROVIDERS__OPENAI__OPTIONS__MODEL_ALIASES="{}",
        )
    )
    assert line == (
        "imagegate: providers.openai.options: unknown option 'model_aliases' "
        "(allowed: dalle3_quality, models, organization, project)"
    )


def test_an_unreachable_postgresql_stops_serve_naming_the_database_url(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql+psycopg://imagegate:hunter2@127.0.0.1:{port}/imagegate"
    line = one_line_failure(run(tmp_path, "serve", IMAGEGATE_DATABASE_URL=url), status=1)
    assert line.startswith(
        f"imagegate: IMAGEGATE_DATABASE_URL (postgresql+psycopg://imagegate:****@127.0.0.1:{port}"
        "/imagegate): cannot connect: "
    )
    assert "Connection refused" in line
    assert "hunter2" not in line


def test_an_unreachable_bucket_stops_the_worker_naming_the_storage_url(tmp_path: Path) -> None:
    port = free_port()
    line = one_line_failure(
        run(
            tmp_path,
            "worker",
            IMAGEGATE_STORAGE_URL="s3://outputs/imagegate",
            IMAGEGATE_STORAGE_OPTIONS__ENDPOINT=f"http://127.0.0.1:{port}",
            IMAGEGATE_STORAGE_OPTIONS__ALLOW_HTTP="true",
            IMAGEGATE_STORAGE_OPTIONS__PATH_STYLE="true",
            IMAGEGATE_STORAGE_OPTIONS__REGION="us-east-1",
            IMAGEGATE_STORAGE_OPTIONS__ACCESS_KEY_ID="id",
            IMAGEGATE_STORAGE_OPTIONS__SECRET_ACCESS_KEY="s3-secret",
        ),
        status=1,
    )
    # Refused at once, or (on a loaded machine) still retrying when the check stops waiting.
    assert re.match(
        r"imagegate: IMAGEGATE_STORAGE_URL \(s3://outputs/imagegate\): (cannot write|no answer)",
        line,
    ), line
    assert "s3-secret" not in line


def test_config_check_prints_every_setting_with_its_source_and_secrets_masked(
    tmp_path: Path,
) -> None:
    (tmp_path / "imagegate.toml").write_text(
        'public_base_url = "https://images.example.com"\n'
        "[providers.openai]\n"
        'api_key = "sk-from-the-file"\n'
    )
    result = run(
        tmp_path,
        "config",
        "check",
        IMAGEGATE_WORKERS="8",
        IMAGEGATE_SIGNING_SECRET="signing-secret-value",
        IMAGEGATE_REDIS_URL="redis://:redis-password@cache:6379/0",
        IMAGEGATE_STORAGE_OPTIONS__SECRET_ACCESS_KEY="storage-secret-value",
        IMAGEGATE_PROVIDERS__KLING__OPTIONS__SECRET_KEY="kling-secret-value",
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for secret in (
        "signing-secret-value",
        "redis-password",
        "storage-secret-value",
        "kling-secret-value",
        "sk-from-the-file",
    ):
        assert secret not in out
    settings = dict(
        re.findall(r"^(IMAGEGATE_[A-Z0-9_]+)=(.*)$", out, re.MULTILINE)  # value  # source
    )
    assert settings["IMAGEGATE_WORKERS"] == "8  # env"
    assert settings["IMAGEGATE_PUBLIC_BASE_URL"] == "https://images.example.com  # toml"
    assert settings["IMAGEGATE_LEASE_SECONDS"] == "30.0  # default"
    assert settings["IMAGEGATE_SIGNING_SECRET"] == "****  # env"
    assert settings["IMAGEGATE_PROVIDERS__OPENAI__API_KEY"] == "****  # toml"
    assert settings["IMAGEGATE_REDIS_URL"] == "redis://:****@cache:6379/0  # env"
    assert settings["IMAGEGATE_STORAGE_OPTIONS"] == '{"secret_access_key": "****"}  # env'
    assert '"secret_key": "****"' in settings["IMAGEGATE_PROVIDERS__KLING__OPTIONS"]
    assert out.startswith("# config file: imagegate.toml (read)")


def test_config_check_fails_with_the_same_line_as_serve(tmp_path: Path) -> None:
    checked = one_line_failure(run(tmp_path, "config", "check", IMAGEGATE_PORTT="9000"))
    served = one_line_failure(run(tmp_path, "serve", IMAGEGATE_PORTT="9000"))
    assert (
        checked
        == served
        == ("imagegate: unknown setting IMAGEGATE_PORTT: did you mean IMAGEGATE_PORT?")
    )


def test_config_check_connect_reaches_the_database_and_the_data_dir(tmp_path: Path) -> None:
    result = run(tmp_path, "config", "check", "--connect")
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith("# database and storage answered")
    assert list((tmp_path / "data" / "files").iterdir()) == []  # the probe left nothing


def test_config_check_connect_exits_cleanly_run_after_run(tmp_path: Path) -> None:
    """The check's last object store call leaves no obstore thread needing the GIL while Python
    finalises: such a thread aborted the process (SIGABRT, status -6) after its last line, the
    more often the busier the machine (5-22 runs in 100 here, beside a test suite). Four at a
    time, so that the checks keep the machine busy themselves."""
    env = child_env(IMAGEGATE_DATA_DIR=str(tmp_path / "data"), COLUMNS="200")
    command = [IMAGEGATE, "config", "check", "--connect"]
    statuses = []
    for _ in range(8):
        wave = [
            subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL)
            for _ in range(4)
        ]
        statuses += [process.wait(timeout=90) for process in wave]
    assert statuses == [0] * 32
