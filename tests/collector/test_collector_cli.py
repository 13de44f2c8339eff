"""`servicemap collect` flags, the --config file, and the Dockerfile's entry point."""

from __future__ import annotations

import json
import shlex
import socket
from pathlib import Path
from typing import Any

import click
import pytest

from collector.command import collect
from tests.conftest import ROOT


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--otlp-grpc", "nope"], "HOST:PORT"),
        (["--otlp-http", "127.0.0.1:99999"], "port 0-65535"),
        (["--fsync", "sometimes"], "sometimes"),
        (["--memory-limit-mib", "0"], "memory-limit-mib"),
        (["--config", "/nonexistent/collector.yaml"], "cannot read"),
    ],
)
def test_bad_flags_are_one_line_and_exit_1(
    run: Any, tmp_path: Path, args: list[str], message: str
) -> None:
    result = run("collect", "--data", str(tmp_path / "data"), *args)
    assert result.code == 1
    assert result.err.count("\n") == 1 and message in result.err


def test_missing_data_and_unknown_config_key(run: Any, tmp_path: Path) -> None:
    assert "--data DIR is required" in run("collect").err
    config = tmp_path / "c.yaml"
    config.write_text("memory-limit: 3\n")
    result = run("collect", "--data", str(tmp_path), "--config", str(config))
    assert result.code == 1 and "unknown collector setting(s): memory_limit" in result.err


def test_port_in_use_is_one_line(run: Any, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run(
            "collect", "--data", str(tmp_path / "d"),
            "--otlp-grpc", "127.0.0.1:0", "--otlp-http", f"127.0.0.1:{port}",
        )  # fmt: skip
    assert result.code == 1
    assert f"cannot listen on 127.0.0.1:{port} (HTTP)" in result.err


def test_config_file_settings_and_flags_win(start_collector: Any, tmp_path: Path) -> None:
    config = tmp_path / "collector.yaml"
    config.write_text("memory-limit-mib: 64\nroll_seconds: 5\nfsync: interval\n")
    collector = start_collector("--config", str(config), "--fsync", "always")
    lines = [json.loads(line) for line in collector.log_text().splitlines()]
    (listening,) = [line for line in lines if line.get("event") == "listening"]
    assert listening["memory_limit_mib"] == 64
    assert listening["roll_seconds"] == 5
    assert listening["fsync"] == "always"
    assert listening["data"] == str(collector.data)
    assert collector.terminate() == 0


def test_dockerfile_entry_point_is_a_valid_collect_command() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    instructions = {
        line.split(None, 1)[0]: line.split(None, 1)[1]
        for line in dockerfile.splitlines()
        if line and not line.startswith((" ", "#"))
    }
    entry = json.loads(instructions["ENTRYPOINT"])
    assert entry[:2] == ["servicemap", "collect"]
    context = collect.make_context("collect", entry[2:])
    assert context.params["otlp_grpc"] == "0.0.0.0:4317"
    assert context.params["otlp_http"] == "0.0.0.0:4318"
    assert str(context.params["data"]) == "/data"
    assert instructions["EXPOSE"].split() == ["4317", "4318"]
    assert instructions["VOLUME"] == "/data"
    assert instructions["USER"] != "root"
    assert "HEALTHCHECK" in dockerfile and "4318/healthz" in dockerfile
    assert "graphviz" in dockerfile and "slim" in instructions["FROM"]
    assert shlex.split(instructions["FROM"])[0].startswith("python:3.11")
    assert isinstance(context, click.Context)


def test_unusable_data_directory_is_one_line(run: Any, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = run("collect", "--data", str(blocker / "data"))
    assert result.code == 1
    assert result.err.strip().startswith(f"servicemap: error: cannot use data directory {blocker}")
    assert "Traceback" not in result.err
