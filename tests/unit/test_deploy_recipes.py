"""The recipes in ``deploy/`` match the real program: commands, settings, routes, unit files.

No image is built and no container started here; instead every ``imagegate …`` command line in
the recipes and their docs is parsed by the real Typer app, every ``IMAGEGATE_*`` name they set
is checked like a start-up check would, and the health check paths are asked of the real app.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import typer.main
import yaml
from typer._click.exceptions import UsageError  # Typer's vendored click, what the CLI raises

from imagegate.api.app import create_app
from imagegate.cli.config import provider_names
from imagegate.cli.main import app
from imagegate.runtime import build_runtime
from imagegate.settings import SettingError, Settings, check_names
from tests.conftest import make_settings, missing_service

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCS = [DEPLOY / "README.md", ROOT / "docs" / "operations.md"]
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
IMAGEGATE_SERVICES = ("migrate", "api", "worker")
SHELLS = ("bash", "sh", "console")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def dockerfile_instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` with continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def dockerfile(instruction: str) -> list[str]:
    return [args for name, args in dockerfile_instructions() if name == instruction]


def unit_sections(path: Path) -> dict[str, list[tuple[str, str]]]:
    """A systemd unit as ``{section: [(key, value), …]}``; keys may repeat, as systemd allows."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        header = re.fullmatch(r"\[([A-Za-z]+)\]", line)
        if header:
            current = sections.setdefault(header[1], [])
            continue
        key, sep, value = line.partition("=")
        assert sep and current is not None, f"{path.name}:{number}: not 'Key=value': {raw!r}"
        current.append((key.strip(), value.strip()))
    return sections


# --- where the recipes say `imagegate …` -------------------------------------------------------


def _after_imagegate(tokens: list[str]) -> list[str] | None:
    """The arguments after the ``imagegate`` program in a command line, if it runs imagegate.

    ``imagegate`` is also the service user's name (``sudo -u imagegate``, ``useradd … imagegate``):
    a token right after an option is that option's value, and a last token is a name, not the
    program (no recipe runs ``imagegate`` without a command).
    """
    for index, token in enumerate(tokens):
        if token != "imagegate" and not token.endswith("/bin/imagegate"):
            continue
        if (index > 0 and tokens[index - 1].startswith("-")) or index == len(tokens) - 1:
            continue
        return tokens[index + 1 :]
    return None


def _code_lines(markdown: Path, kinds: tuple[str, ...] = SHELLS) -> Iterator[str]:
    """The lines of the code blocks of these kinds (shell by default), comments cut off."""
    in_block = shell = False
    for line in markdown.read_text().splitlines():
        if line.startswith("```"):
            in_block, shell = (False, False) if in_block else (True, line.strip()[3:] in kinds)
            continue
        if in_block and shell:
            yield line.split(" #", 1)[0].strip().removeprefix("$ ")


def imagegate_commands() -> list[tuple[str, list[str]]]:
    """``(where, argv after 'imagegate')`` for every command line in the recipes and their docs."""
    found: list[tuple[str, list[str]]] = []
    (entrypoint,) = dockerfile("ENTRYPOINT")
    (cmd,) = dockerfile("CMD")
    assert json.loads(entrypoint) == ["imagegate"]
    found.append(("Dockerfile CMD", json.loads(cmd)))
    services = compose()["services"]
    for name in IMAGEGATE_SERVICES:
        found.append((f"compose {name}", list(services[name]["command"])))
    for unit in UNITS:
        for key, value in unit_sections(unit)["Service"]:
            if key.startswith("Exec"):
                argv = _after_imagegate(shlex.split(value))
                assert argv is not None, f"{unit.name}: {key} does not run imagegate"
                found.append((f"{unit.name} {key}", argv))
    for doc in DOCS:
        for line in _code_lines(doc):
            for part in re.split(r"&&|;|\|", line):
                tokens = shlex.split(part)
                argv = _after_imagegate(tokens)
                if argv is None:
                    argv = _after_compose_run(tokens)
                if argv is not None:
                    found.append((f"{doc.name}: {line}", argv))
    return found


def _after_compose_run(tokens: list[str]) -> list[str] | None:
    """``docker compose … run [--rm] SERVICE ARGS``: the image's entrypoint is ``imagegate``."""
    if tokens[:2] != ["docker", "compose"] or "run" not in tokens:
        return None
    rest = tokens[tokens.index("run") + 1 :]
    while rest and rest[0].startswith("-"):
        rest = rest[1:]
    return rest[1:] if rest and rest[0] in IMAGEGATE_SERVICES else None


def parse_command(argv: list[str]) -> list[str]:
    """Parse ``imagegate argv`` with the real app, resolving subcommands, running nothing.

    Returns the command path (``["keys", "create"]``); raises ``UsageError`` as the CLI would
    print it (unknown command or option, missing or malformed value).
    """
    command: Any = typer.main.get_command(app)
    context = command.make_context("imagegate", list(argv), resilient_parsing=False)
    path: list[str] = []
    while hasattr(command, "resolve_command"):  # a group: the next word names a command
        rest = [*context._protected_args, *context.args]
        if not rest:
            break
        name, command, remaining = command.resolve_command(context, rest)
        path.append(name)
        context = command.make_context(name, remaining, parent=context, resilient_parsing=False)
    return path


def test_every_imagegate_command_line_in_the_recipes_parses_with_the_real_cli() -> None:
    commands = imagegate_commands()
    paths = set()
    for where, argv in commands:
        try:
            paths.add(" ".join(parse_command(argv)))
        except UsageError as exc:
            pytest.fail(f"{where}: imagegate {shlex.join(argv)}: {exc.format_message()}")
    # The recipes run each process kind; the docs show the release step and the check.
    assert {"serve", "worker", "migrate", "config check", "keys create"} <= paths


def test_the_command_check_refuses_what_the_cli_refuses() -> None:
    assert parse_command(["serve", "--no-workers"]) == ["serve"]
    assert parse_command(["keys", "create", "--name", "ci"]) == ["keys", "create"]
    for wrong in (["serve", "--no-worker"], ["migrat"], ["worker", "--concurrency", "many"]):
        with pytest.raises(UsageError):
            parse_command(wrong)


# --- which IMAGEGATE_* names the recipes set ---------------------------------------------------


def _substituted(value: Any) -> str:
    """A compose value with ``${VAR:-default}`` / ``${VAR:?message}`` filled in for a check."""
    return re.sub(
        r"\$\{(\w+)(?::-([^}]*)|:\?[^}]*)?\}",
        lambda match: match[2] if match[2] is not None else f"{match[1].lower()}-value",
        str(value),
    )


def compose_environment(service: str) -> dict[str, str]:
    environment = compose()["services"][service].get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {key: _substituted(value) for key, value in environment.items()}


def env_file(path: Path, *, commented: bool = False) -> dict[str, str]:
    pattern = r"^#?\s*(IMAGEGATE_\w+)=(.*)$" if commented else r"^(IMAGEGATE_\w+)=(.*)$"
    return dict(re.findall(pattern, path.read_text(), re.MULTILINE))


def recipe_variables() -> list[tuple[str, str, str]]:
    """``(where, IMAGEGATE_NAME, value)`` for every variable the recipes set or the docs name."""
    found = []
    for service in IMAGEGATE_SERVICES:
        for name, value in compose_environment(service).items():
            found.append((f"compose {service}", name, value))
    for args in dockerfile("ENV"):
        for name, value in re.findall(r"(IMAGEGATE_\w+)=(\S+)", args):
            found.append(("Dockerfile ENV", name, value))
    example = DEPLOY / "systemd" / "imagegate.env.example"
    for name, value in env_file(example, commented=True).items():
        found.append((example.name, name, value))
    for unit in UNITS:
        for key, value in unit_sections(unit)["Service"]:
            if key == "Environment":
                for name, setting in re.findall(r"(IMAGEGATE_\w+)=(\S+)", value):
                    found.append((unit.name, name, setting))
    # The docs: what their code blocks show (their prose also quotes misspelt names on purpose).
    texts = {doc.name: "\n".join(_code_lines(doc, (*SHELLS, ""))) for doc in DOCS}
    for path in (DEPLOY / ".env.example", DEPLOY / "compose.yaml"):
        texts[path.name] = path.read_text()
    for where, text in texts.items():
        for name in re.findall(r"\bIMAGEGATE_[A-Z0-9_]*[A-Z0-9]\b", text):
            found.append((where, name, "x"))
    return found


def test_every_imagegate_variable_in_the_recipes_is_a_real_setting() -> None:
    providers = provider_names()
    problems = []
    variables = recipe_variables()
    for where, name, value in variables:
        try:
            check_names({name: value}, {}, providers)
        except SettingError as exc:
            problems.append(f"{where}: {exc}")
    assert not problems, "\n".join(problems)
    names = {name for _, name, _ in variables}
    assert {"IMAGEGATE_DATABASE_URL", "IMAGEGATE_STORAGE_URL", "IMAGEGATE_SIGNING_SECRET"} <= names


def test_the_variable_check_refuses_a_misspelt_setting() -> None:
    with pytest.raises(SettingError, match="did you mean IMAGEGATE_WORKERS"):
        check_names({"IMAGEGATE_WORKRES": "8"}, {}, provider_names())


def test_the_compose_environment_makes_a_multi_node_configuration(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The values read as intended: PostgreSQL, the S3 bucket, gateway URLs, one secret."""
    monkeypatch.chdir(tmp_path)  # no imagegate.toml of the checkout's
    environments = [compose_environment(service) for service in IMAGEGATE_SERVICES]
    assert all(environment == environments[0] for environment in environments)
    for name, value in environments[0].items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.database_url.startswith("postgresql+psycopg://imagegate:")
    assert settings.database_url.endswith("@postgres:5432/imagegate")
    assert settings.storage_url == "s3://imagegate/outputs"
    assert settings.storage_options["endpoint"] == "http://seaweedfs:8333"
    assert settings.storage_options["secret_access_key"] == "s3_secret_access_key-value"
    # The S3 endpoint is a name inside the compose network: clients get gateway URLs.
    assert settings.storage_url_mode == "gateway"
    assert settings.signing_secret is not None
    assert not settings.provider("openai").configured  # an empty key is no key


def test_the_systemd_env_file_example_makes_a_multi_node_configuration(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, value in env_file(DEPLOY / "systemd" / "imagegate.env.example").items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert settings.storage_url is not None and settings.storage_url.startswith("s3://")
    assert settings.signing_secret is not None


# --- health checks, the compose layout, the proxy --------------------------------------------


def healthcheck_path() -> str:
    (healthcheck,) = dockerfile("HEALTHCHECK")
    path = re.search(r"http://127\.0\.0\.1:[^/]+(/[\w/]+)", healthcheck)
    assert path is not None, healthcheck
    return path[1]


async def test_the_images_health_check_path_is_a_real_route_that_answers_ok(
    sqlite_url: str, tmp_path: Path
) -> None:
    runtime = build_runtime(make_settings(sqlite_url, tmp_path / "data"))
    try:
        transport = httpx2.ASGITransport(app=create_app(runtime))
        async with httpx2.AsyncClient(transport=transport, base_url="http://gw") as http:
            response = await http.get(healthcheck_path())
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}
    finally:
        await runtime.aclose()


def readme_services() -> set[str]:
    """The service names in the first column of deploy/README.md's services table."""
    text = (DEPLOY / "README.md").read_text()
    section = text.split("## The compose file", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([\w-]+)` \|", section, re.MULTILINE))


def test_the_compose_file_has_the_services_the_readme_names() -> None:
    services = compose()["services"]
    assert set(services) == readme_services()
    assert services["postgres"]["image"] == "postgres:15"
    assert "-s3" in services["seaweedfs"]["command"]
    for name in IMAGEGATE_SERVICES:
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (ROOT / services[name]["build"]["context"].replace("..", ".")).is_dir()
    assert services["migrate"]["restart"] == "no"
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
        assert services[name]["deploy"]["replicas"] >= 2
    for name in ("migrate", "worker"):  # they serve no HTTP for the image's health check
        assert services[name]["healthcheck"] == {"disable": True}
    assert "healthcheck" not in services["api"]


def test_the_proxy_sends_its_one_port_to_every_api_container() -> None:
    services = compose()["services"]
    proxy = services["proxy"]
    assert len(proxy["ports"]) == 1
    mounted = [volume.split(":")[0] for volume in proxy["volumes"]]
    assert "./Caddyfile" in mounted and (DEPLOY / "Caddyfile").is_file()
    caddyfile = (DEPLOY / "Caddyfile").read_text()
    assert re.search(r"^\s*name api$", caddyfile, re.MULTILINE)
    port = re.search(r"^\s*port (\d+)$", caddyfile, re.MULTILINE)
    image_port = re.search(r"IMAGEGATE_PORT=(\d+)", " ".join(dockerfile("ENV")))
    assert port is not None and image_port is not None and port[1] == image_port[1]
    # Caddy runs no active health checks on dynamic upstreams: a dead container must be
    # skipped passively, with the request retried on another one.
    assert "health_uri" not in caddyfile
    assert re.search(r"^\s*fail_duration \d+s$", caddyfile, re.MULTILINE)
    assert re.search(r"^\s*lb_try_duration \d+s$", caddyfile, re.MULTILINE)


def test_the_image_runs_as_a_non_root_user_from_the_repositorys_package() -> None:
    (base,) = dockerfile("FROM")
    assert base == "python:3.11-slim"
    (user,) = dockerfile("USER")
    assert user not in ("root", "0")
    assert any("pip install ." in run for run in dockerfile("RUN"))
    assert any(copy.split()[0] == "src" for copy in dockerfile("COPY"))
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert {"!pyproject.toml", "!README.md", "!src/"} <= set(ignored)


# --- systemd -----------------------------------------------------------------------------------

UNIT_KEYS = {
    "Unit": {"Description", "Documentation", "Wants", "Requires", "After", "Before"},
    "Service": {
        "Type",
        "User",
        "Group",
        "EnvironmentFile",
        "Environment",
        "WorkingDirectory",
        "ExecStart",
        "ExecStartPre",
        "Restart",
        "RestartSec",
        "RestartPreventExitStatus",
        "KillSignal",
        "TimeoutStopSec",
        "StateDirectory",
        "NoNewPrivileges",
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
        "RemainAfterExit",
    },
    "Install": {"WantedBy"},
}


def test_the_systemd_units_have_the_sections_and_keys_systemd_reads() -> None:
    assert {unit.name for unit in UNITS} == {
        "imagegate-api.service",
        "imagegate-worker@.service",
        "imagegate-migrate.service",
    }
    for unit in UNITS:
        sections = unit_sections(unit)
        assert set(sections) == set(UNIT_KEYS), unit.name
        for section, entries in sections.items():
            unknown = {key for key, _ in entries} - UNIT_KEYS[section]
            assert not unknown, f"{unit.name} [{section}]: {unknown}"
        service = dict(sections["Service"])
        assert service["User"] == "imagegate"
        assert service["EnvironmentFile"] == "/etc/imagegate/imagegate.env"
    migrate = dict(unit_sections(DEPLOY / "systemd" / "imagegate-migrate.service")["Service"])
    assert migrate["Type"] == "oneshot"


def test_systemd_analyze_verifies_the_units(tmp_path: Path) -> None:
    """``systemd-analyze verify`` on copies whose program path is a stand-in that exists here.

    verify insists the ``ExecStart`` program exists; everything else is the recipe unchanged.
    """
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        missing_service("systemd-analyze is not installed (Debian: apt-get install systemd)")
    assert analyze is not None
    program = tmp_path / "bin" / "imagegate"
    program.parent.mkdir()
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    copies = []
    for unit in UNITS:
        copy = tmp_path / unit.name
        copy.write_text(unit.read_text().replace("/opt/imagegate/venv/bin/imagegate", str(program)))
        copies.append(str(copy))
    result = subprocess.run(
        [analyze, "verify", *copies], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    # verify only warns (exit 0) on unknown keys or sections: any output is a finding.
    assert result.stdout + result.stderr == ""
