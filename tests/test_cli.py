"""The command line as a user drives it: windows, output files, help, docs."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import click

from servicemap.cli import LazyGroup, cli
from servicemap.timeparse import parse_time_ns
from tests.conftest import DEMO, ROOT, edges_of


def _root_web_spans_since(since_ns: int, until_ns: int) -> int:
    """Independent count: root SERVER spans of `web` starting inside [since, until)."""
    data = json.loads(DEMO.read_text())
    count = 0
    for resource_spans in data["resourceSpans"]:
        attrs = {a["key"]: a["value"] for a in resource_spans["resource"]["attributes"]}
        if attrs["service.name"]["stringValue"] != "web":
            continue
        for scope in resource_spans["scopeSpans"]:
            for item in scope["spans"]:
                start = int(item["startTimeUnixNano"])
                if item["kind"] == 2 and not item.get("parentSpanId"):
                    count += since_ns <= start < until_ns
    return count


def test_since_and_until_narrow_the_window(run) -> None:
    since, until = "2026-11-01T12:03:00Z", "2026-11-01T12:06:00"
    graph = run("render", str(DEMO), "--since", since, "--until", until).json()
    expected = _root_web_spans_since(parse_time_ns(since), parse_time_ns(until))
    assert 0 < expected < 200
    assert edges_of(graph)[("user", "web")][0] == expected
    assert graph["window"]["start"] >= "2026-11-01T12:03:00"
    full = run("render", str(DEMO)).json()
    assert graph["window"]["spans"] < full["window"]["spans"]


def test_window_with_no_data_gives_an_empty_graph(run) -> None:
    result = run("render", str(DEMO), "--since", "2030-01-01T00:00:00Z")
    assert result.code == 0, result.err
    graph = result.json()
    assert graph["nodes"] == [] and graph["edges"] == []
    assert graph["window"] == {"start": None, "end": None, "spans": 0, "traces": 0}


def test_relative_since_is_measured_back_from_now() -> None:
    now = 1_800_000_000 * 10**9
    assert parse_time_ns("15m", now_ns=now) == now - 15 * 60 * 10**9
    assert parse_time_ns("1700000000") == 1_700_000_000 * 10**9
    assert parse_time_ns("2026-11-01T12:00:00+01:00") == parse_time_ns("2026-11-01T11:00:00Z")


def test_output_file(run, tmp_path: Path) -> None:
    out = tmp_path / "map.dot"
    result = run("render", str(DEMO), "--format", "dot", "-o", str(out))
    assert result.code == 0 and result.out == ""
    text = out.read_text()
    assert text.startswith("digraph servicemap {")
    assert '"checkout" -> "payment"' in text


def test_every_command_has_help_and_is_in_the_readme(run) -> None:
    readme = (ROOT / "README.md").read_text()
    context = click.Context(cli)
    names = cli.list_commands(context)
    assert "render" in names and "collect" in names
    for name in names:
        command = cli.get_command(context, name)
        assert command is not None
        result = run(name, "--help")
        assert result.code == 0
        assert "Usage:" in result.out
        assert f"servicemap {name}" in readme, f"README does not document `servicemap {name}`"
        for param in command.params:
            for option in getattr(param, "opts", []):
                if option.startswith("--") and option != "--help":
                    assert option in readme, f"README does not mention {name} {option}"


def test_readme_quick_start_has_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "bash scripts/setup.sh" in readme
    assert ".venv/bin/python -m pytest" in readme
    assert ".venv/bin/python -m pytest" in (ROOT / ".ci" / "run").read_text()


def test_servicemap_never_imports_collector_outside_the_cli() -> None:
    """DESIGN §2: dependencies point one way (import-linter checks the same in CI)."""
    offenders = []
    for path in (ROOT / "servicemap").rglob("*.py"):
        if path.name == "cli.py" and path.parent.name == "servicemap":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path}: {n}" for n in names if re.match(r"collector(\.|$)", n)]
    assert offenders == []


def test_time_out_of_range_is_one_line(run) -> None:
    result = run("render", str(DEMO), "--since", "99999999999999999999")
    assert result.code == 1
    assert result.err.strip() == "servicemap: error: time '99999999999999999999' is out of range"


# ---- a saved graph JSON as SOURCE ------------------------------------------------------------

ALERTS = DEMO.parent / "alerts.json"


def _saved(run, tmp_path: Path, *options: str) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path / "saved.json"
    assert run("render", str(DEMO), *options, "-o", str(path)).code == 0
    return path


def test_saved_graph_is_redrawn_as_saved(run, tmp_path: Path) -> None:
    saved = _saved(run, tmp_path, "--alerts", str(ALERTS))
    again = run("render", str(saved))
    assert again.code == 0, again.err
    assert again.out == saved.read_text()  # byte-identical: statuses (alerts') kept
    for fmt in ("dot", "mermaid", "grafana"):
        from_traces = run("render", str(DEMO), "--alerts", str(ALERTS), "--format", fmt).out
        assert run("render", str(saved), "--format", fmt).out == from_traces, fmt
    # Key order does not matter: a key-sorting tool puts `schema` last.
    resorted = tmp_path / "sorted.json"
    resorted.write_text(json.dumps(json.loads(saved.read_text()), sort_keys=True, indent=1))
    assert run("render", str(resorted)).out == saved.read_text()


def test_saved_graph_is_judged_again_with_rules_or_alerts(run, tmp_path: Path) -> None:
    saved = _saved(run, tmp_path)
    rules = tmp_path / "rules.yaml"
    rules.write_text("defaults:\n  error_rate: {warning: 0.05, critical: 0.09}\n")
    for options in (["--rules", str(rules)], ["--alerts", str(ALERTS)]):
        expected = run("render", str(DEMO), *options).out
        result = run("render", str(saved), *options)
        assert result.code == 0, result.err
        assert result.out == expected, options
    assert expected != saved.read_text()  # the alerts changed some statuses


def test_saved_graph_refuses_what_it_cannot_do_in_one_line(run, tmp_path: Path) -> None:
    saved = _saved(run, tmp_path)
    slo_rules = DEMO.parent / "rules.yaml"  # has `slos`
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema": "servicemap.graph/v1", "window": {}}')
    cases = [
        ((str(saved), str(DEMO)), "saved graph JSON"),
        ((str(DEMO), str(saved)), "cannot be merged"),
        ((str(saved), str(saved)), "render it alone"),
        ((str(saved), "--since", "2026-11-01T12:03:00Z"), "window is fixed"),
        ((str(saved), "--rules", str(slo_rules)), "SLO burn rates need the spans"),
        ((str(broken),), "not a valid servicemap.graph/v1 document"),
    ]
    for args, expected in cases:
        result = run("render", *args)
        assert result.code == 1, args
        assert len(result.err.strip().splitlines()) == 1, result.err
        assert expected in result.err, (args, result.err)


def _modules_after(*argv: str) -> list[str]:
    """Which heavy modules a fresh interpreter has loaded after running the CLI."""
    script = (
        "import sys; from servicemap.cli import main; code = main(sys.argv[1:]);"
        "heavy = ('grpc', 'duckdb', 'pyarrow', 'collector', 'google.protobuf');"
        "print(code, *sorted(m for m in heavy if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *argv], capture_output=True, text=True, check=True
    )
    return done.stdout.split("\n")[-2].split()


def test_help_and_a_saved_graph_import_neither_grpc_nor_duckdb_nor_pyarrow(tmp_path: Path) -> None:
    saved = tmp_path / "saved.json"
    assert _modules_after("render", str(DEMO), "-o", str(saved))[0] == "0"
    assert _modules_after("--help") == ["0"]
    assert _modules_after("render", "--help") == ["0"]
    out = tmp_path / "map.dot"
    assert _modules_after("render", str(saved), "--format", "dot", "-o", str(out)) == ["0"]
    # Traces need the build: DuckDB and pyarrow load then, still not gRPC.
    used = _modules_after("render", str(DEMO), "-o", str(tmp_path / "again.json"))
    assert "duckdb" in used and "pyarrow" in used and "grpc" not in used


def test_top_level_help_lists_lazy_commands_by_their_own_help_line() -> None:
    context = click.Context(cli)
    for name, (_, line) in LazyGroup.lazy_commands.items():
        command = cli.get_command(context, name)
        assert command is not None
        assert command.get_short_help_str(limit=1000) == line, name
