"""``docker-compose.yml`` is valid for docker-compose 1.29 and agrees with the code it deploys.

No Docker engine runs here, but ``docker-compose config -q`` validates the file without one. The
rest reads the file: its commands must parse with our CLI, its ports and environment variables must
be the ones the code reads, and the GPU reservation and healthchecks must be there.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from dotenv import dotenv_values

from service.cli import build_parser
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_FILE = ROOT / "deploy" / "cluster.env"
SERVICES = {"postgres", "ray-head", "ray-worker", "api", "scheduler"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return {k: v for k, v in dotenv_values(ENV_FILE).items() if v is not None}


def _flag(command: list[str], name: str) -> str:
    for part in command:
        if part.startswith(f"{name}="):
            return part.split("=", 1)[1]
    raise AssertionError(f"{name} missing from {command}")


def test_docker_compose_validates_the_file() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        message = "docker-compose is not installed (.ci/run installs Debian's package)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    result = subprocess.run(
        [binary, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert result.returncode == 0, result.stderr


def test_services_volumes_gpu_and_healthchecks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == SERVICES
    assert "pgdata:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    devices = services["ray-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia"
    assert "gpu" in devices[0]["capabilities"]
    for name in ("postgres", "ray-head", "api", "scheduler"):
        assert services[name]["healthcheck"]["test"], name
    for name in SERVICES:
        assert services[name]["env_file"] == ["deploy/cluster.env"], f"{name} must read the one env file"


def test_images_come_from_the_repositorys_dockerfile(compose: dict[str, Any]) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for name in ("ray-head", "api"):
        target = compose["services"][name]["build"]["target"]
        assert re.search(rf"^FROM .+ AS {target}$", dockerfile, re.MULTILINE), target
    assert "cuda" in dockerfile.lower(), "the worker image needs a CUDA torch base"


def test_demonlab_commands_parse_with_our_cli(compose: dict[str, Any]) -> None:
    parser = build_parser()
    commands = [s["command"] for s in compose["services"].values() if s.get("command", [""])[0] == "demonlab"]
    assert len(commands) == 2
    for command in commands:
        args = parser.parse_args(command[1:])
        assert args.command in ("serve", "scheduler")


def test_ports_agree_with_the_code(compose: dict[str, Any], env: dict[str, str]) -> None:
    services = compose["services"]
    api = services["api"]
    port = build_parser().parse_args(api["command"][1:]).port
    assert f"{port}:{port}" in api["ports"]
    assert int(env["DEMONLAB_PORT"]) == port
    head = services["ray-head"]["command"]
    dashboard = _flag(head, "--dashboard-port")
    assert env["RAY_ADDRESS"] == f"http://ray-head:{dashboard}", "the scheduler submits Ray Jobs to the dashboard"
    assert f"{dashboard}:{dashboard}" in services["ray-head"]["ports"]
    worker = services["ray-worker"]["command"]
    assert _flag(worker, "--address") == f"ray-head:{_flag(head, '--port')}"


def test_environment_is_what_settings_read(env: dict[str, str]) -> None:
    fields = {f"DEMONLAB_{name.upper()}" for name in Settings.model_fields}
    unknown = sorted(k for k in env if k.startswith("DEMONLAB_") and k not in fields)
    assert unknown == [], f"variables no setting reads: {unknown}"
    settings = Settings(
        _env_file=None, **{k.removeprefix("DEMONLAB_").lower(): v for k, v in env.items() if k in fields}
    )
    assert settings.launcher == "ray"
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert settings.database_url.endswith(f"@postgres:5432/{env['POSTGRES_DB']}")
    assert f"{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}@" in settings.database_url
    assert env["RAY_AUTH_MODE"] == "token", "Ray's token auth is configured, not left to defaults"
    assert env["RAY_AUTH_TOKEN"]
    assert settings.ray_auth_mode == env["RAY_AUTH_MODE"]
