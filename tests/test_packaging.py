"""The packaging files, checked as far as can be done without a Docker engine or a MongoDB
server (neither runs here): the YAML parses and describes what docs/operations.md says, every
`reactor serve` flag they pass exists, the Dockerfile copies files that exist, runs as a
non-root user and health-checks /health, and its documented commands are the docs' commands.
The server command the image runs, and its health check command, are run for real."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
CADDYFILE = ROOT / "deploy" / "Caddyfile"
WORKFLOW = ROOT / ".github" / "workflows" / "mongo.yml"
OPERATIONS = ROOT / "docs" / "operations.md"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each instruction, continuation lines joined."""
    text = DOCKERFILE.read_text()
    logical = re.sub(r"\\\n", " ", text)
    out = []
    for line in logical.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), arguments
    return value


def serve_flags() -> set[str]:
    done = subprocess.run(
        [sys.executable, "-m", "reactor", "serve", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200"},
        check=True,
    )
    return set(re.findall(r"--[a-z][a-z-]+", done.stdout))


def check_serve_arguments(arguments: list[str], flags: set[str]) -> dict[str, str]:
    """``reactor serve`` arguments (app first): every flag exists and has a value."""
    assert arguments and not arguments[0].startswith("-"), arguments
    options: dict[str, str] = {}
    rest = arguments[1:]
    while rest:
        flag, *rest = rest
        assert flag in flags, f"reactor serve has no {flag} (it has {sorted(flags)})"
        assert rest and not rest[0].startswith("--"), f"{flag} has no value in {arguments}"
        options[flag], *rest = rest
    return options


def section(title: str) -> str:
    text = OPERATIONS.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : None if end == -1 else end]


class TestDockerfile:
    def test_runs_reactor_serve_as_a_non_root_user_with_a_health_check(self) -> None:
        instructions = dockerfile_instructions()
        words = [word for word, _ in instructions]
        assert words[0] == "FROM"
        user = [args for word, args in instructions if word == "USER"]
        assert user and user[-1] not in ("root", "0"), "the server must not run as root"
        assert words.index("USER") < words.index("ENTRYPOINT")
        entrypoint = exec_form(dict(instructions)["ENTRYPOINT"])
        assert entrypoint == ["reactor", "serve"]
        command = exec_form(dict(instructions)["CMD"])
        options = check_serve_arguments(command, serve_flags())
        assert options["--host"] == "0.0.0.0"  # reachable from outside the container
        assert options["--port"] in dict(instructions)["EXPOSE"].split()
        assert options["--data"] in dict(instructions)["VOLUME"]
        health = dict(instructions)["HEALTHCHECK"]
        assert f"127.0.0.1:{options['--port']}/health" in health
        assert "--interval=" in health and "CMD " in health

    def test_copies_only_what_exists_and_installs_an_extra_that_exists(self) -> None:
        instructions = dockerfile_instructions()
        for word, args in instructions:
            if word == "COPY":
                *sources, _ = shlex.split(args)
                for source in sources:
                    assert (ROOT / source).exists(), f"COPY {source}: no such file"
        install = [args for word, args in instructions if word == "RUN" and "pip install" in args]
        assert install == ['pip install ".[mongo]"']
        pyproject = (ROOT / "pyproject.toml").read_text()
        assert re.search(r"^mongo = \[", pyproject, re.M), "pyproject.toml has no `mongo` extra"
        packages = re.search(r"packages = \[([^]]*)\]", pyproject)
        assert packages is not None
        for package in re.findall(r'"(\w+)"', packages.group(1)):
            assert any(
                word == "COPY" and args.split()[0] == package for word, args in instructions
            ), f"the wheel packages {package}, which the Dockerfile does not copy"

    def test_its_documented_commands_are_the_docs_commands(self) -> None:
        header = [
            line.removeprefix("#").strip()
            for line in DOCKERFILE.read_text().splitlines()
            if line.startswith("#   docker ")
        ]
        assert len(header) == 2
        docs = section("Packaging: Docker and MongoDB")
        for command in header:
            assert command in docs, f"docs/operations.md does not show `{command}`"
        run = shlex.split(header[1])
        published = {arg.split(":")[-1] for arg in run[run.index("-p") :: 1] if ":" in arg}
        exposed = dict(dockerfile_instructions())["EXPOSE"].split()
        assert {"3210", "3211"} <= published and set(exposed) <= published
        assert "not been run" in docs

    def test_the_image_command_serves_and_its_health_check_passes(self, tmp_path: Path) -> None:
        """What the image runs, run here on a free port: the HEALTHCHECK command succeeds
        against it (and fails once it stops)."""
        instructions = dict(dockerfile_instructions())
        command = exec_form(instructions["CMD"])
        options = check_serve_arguments(command, serve_flags())
        port = _free_port()
        options.update(
            {
                "--host": "127.0.0.1",
                "--port": str(port),
                "--data": str(tmp_path / "data"),
                "--admin-key-file": str(tmp_path / "admin_key"),
                "--http-port": "0",
            }
        )
        argv = [sys.executable, "-m", "reactor", "serve", str(ROOT / "examples" / "taskboard")]
        for flag, value in options.items():
            argv += [flag, value]
        health = instructions["HEALTHCHECK"].split("CMD ", 1)[1]
        check = [part.replace("127.0.0.1:3210", f"127.0.0.1:{port}") for part in exec_form(health)]
        assert check[0] == "python"
        check[0] = sys.executable
        with open(tmp_path / "server.log", "wb") as log:
            server = subprocess.Popen(argv, cwd=tmp_path, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 20
            while subprocess.run(check, capture_output=True).returncode != 0:
                assert server.poll() is None, (tmp_path / "server.log").read_text()
                assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()
                time.sleep(0.1)
        finally:
            server.terminate()
            server.wait(timeout=10)
        assert subprocess.run(check, capture_output=True).returncode != 0


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


class TestCompose:
    def test_two_servers_on_a_mongodb_replica_set_behind_a_proxy(
        self, compose: dict[str, Any]
    ) -> None:
        services = compose["services"]
        assert set(services) == {"mongo", "reactor-a", "reactor-b", "proxy"}
        mongo = services["mongo"]
        assert mongo["image"].startswith("mongo:")
        assert mongo["command"][:2] == ["--replSet", "rs0"]
        assert "rs.initiate" in " ".join(mongo["healthcheck"]["test"])
        flags = serve_flags()
        for name in ("reactor-a", "reactor-b"):
            server = services[name]
            assert server["build"] == "."
            options = check_serve_arguments(server["command"], flags)
            storage = options["--storage"]
            assert storage.startswith("mongodb://mongo:27017/") and "replicaSet=rs0" in storage
            assert options["--host"] == "0.0.0.0"
            assert server["depends_on"]["mongo"]["condition"] == "service_healthy"
            mounts = {volume.split(":")[1] for volume in server["volumes"]}
            assert {"/app", options["--data"], f"{options['--data']}/blobs"} <= mounts
            for volume in server["volumes"]:
                source = volume.split(":")[0]
                assert source.startswith("./") or source in compose["volumes"], volume
                if source.startswith("./"):
                    assert (ROOT / source).exists(), volume
        # One server creates the admin key: the other starts after it.
        assert services["reactor-b"]["depends_on"]["reactor-a"]["condition"] == "service_healthy"

    def test_the_proxy_passes_both_ports_to_both_servers(self, compose: dict[str, Any]) -> None:
        proxy = compose["services"]["proxy"]
        assert proxy["image"].startswith("caddy:")
        assert {"3210:3210", "3211:3211"} <= set(proxy["ports"])
        mounted = {v.split(":")[0]: v.split(":")[1] for v in proxy["volumes"]}
        assert mounted["./deploy/Caddyfile"] == "/etc/caddy/Caddyfile"
        caddyfile = CADDYFILE.read_text()
        for port in ("3210", "3211"):
            block = caddyfile.split(f":{port} {{", 1)[1].split("\n}", 1)[0]
            assert f"reactor-a:{port}" in block and f"reactor-b:{port}" in block, block
        assert "health_uri /health" in caddyfile


class TestWorkflow:
    def test_runs_make_test_mongo_against_a_replica_set(self) -> None:
        workflow = yaml.safe_load(WORKFLOW.read_text())
        triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads `on` as true
        assert {"push", "pull_request"} <= set(triggers)
        job = workflow["jobs"]["test-mongo"]
        url = job["env"]["REACTOR_TEST_MONGODB_URL"]
        assert url.startswith("mongodb://") and "replicaSet=rs0" in url
        runs = [step.get("run", "") for step in job["steps"]]
        assert "make test-mongo" in runs
        start = next(run for run in runs if "docker run" in run)
        assert "--replSet rs0" in start and "rs.initiate" in start
        makefile = (ROOT / "Makefile").read_text()
        assert re.search(r"^test-mongo: install$", makefile, re.M)
        mongo_script = (ROOT / "scripts" / "test_mongo.py").read_text()
        assert (
            "REACTOR_TEST_MONGODB_URL"
            in (ROOT / "Makefile").read_text()
            + mongo_script
            + (ROOT / "reactor" / "testing" / "mongo.py").read_text()
        )
