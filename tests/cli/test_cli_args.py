"""Argument parsing of the everyday commands (both entry points) and where they connect to."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from extraction_operator.cli import build_parser, build_plugin_parser, kubectl_plugin, main
from extraction_operator.client.commands import run_client_command
from extraction_operator.client.connect import connect, kubeconfig_path


def write_kubeconfig(path: Path, *, namespace: str | None = None) -> Path:
    context: dict[str, str] = {"cluster": "c", "user": "u"}
    if namespace:
        context["namespace"] = namespace
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [
            {"name": "main", "context": context},
            {"name": "other", "context": {"cluster": "c", "user": "u", "namespace": "team-b"}},
        ],
        "current-context": "main",
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def test_every_everyday_command_parses_with_its_options() -> None:
    parser = build_parser()
    args = parser.parse_args(["get"])
    assert (args.client_command, args.run, args.output, args.namespace) == (
        "get",
        None,
        "tree",
        None,
    )
    args = parser.parse_args(["get", "corpus", "-o", "json", "-n", "team", "--context", "ctx"])
    assert (args.run, args.output, args.namespace, args.context) == (
        "corpus",
        "json",
        "team",
        "ctx",
    )
    args = parser.parse_args(["watch", "corpus", "--forever", "--kubeconfig", "/k"])
    assert (args.run, args.forever, args.kubeconfig) == ("corpus", True, "/k")
    args = parser.parse_args(["logs", "corpus", "mentions[2]", "--attempt", "2", "-f"])
    assert (args.node, args.attempt, args.follow) == ("mentions[2]", 2, True)
    args = parser.parse_args(["logs", "corpus"])
    assert (args.node, args.attempt, args.follow) == (None, None, False)
    assert parser.parse_args(["redrive", "corpus", "--force"]).force is True
    assert parser.parse_args(["suspend", "corpus"]).client_command == "suspend"
    assert parser.parse_args(["resume", "corpus"]).client_command == "resume"
    assert parser.parse_args(["watch", "x"]).cli_prog == "extraction-operator"


def test_the_existing_commands_still_parse() -> None:
    parser = build_parser()
    assert parser.parse_args(["run", "-n", "a", "-n", "b"]).namespaces == ["a", "b"]
    guard = parser.parse_args(["guard", "--circuit", "llm", "--", "echo", "hi"])
    assert guard.circuits == ["llm"]
    assert parser.parse_args(["demo", "--output", "json"]).output == "json"
    assert parser.parse_args(["crd"]).command == "crd"


def test_the_plugin_takes_connection_flags_before_or_after_the_command() -> None:
    parser = build_plugin_parser()
    before = parser.parse_args(["-n", "team", "--kubeconfig", "/k", "get", "corpus"])
    assert (before.namespace, before.kubeconfig, before.run) == ("team", "/k", "corpus")
    after = parser.parse_args(["get", "corpus", "-n", "team"])
    assert (after.namespace, after.kubeconfig, after.context) == ("team", None, None)
    assert after.cli_prog == "kubectl xrun"
    with pytest.raises(SystemExit):
        parser.parse_args(["run"])  # the operator itself is not a kubectl plugin command


def test_help_of_both_entry_points(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        kubectl_plugin(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: kubectl xrun")
    for command in ("get", "watch", "logs", "redrive", "suspend", "resume"):
        assert command in out
    with pytest.raises(SystemExit):
        main(["watch", "--help"])
    assert "--forever" in capsys.readouterr().out


def test_kubeconfig_comes_from_the_flag_then_kubeconfig_then_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one = write_kubeconfig(tmp_path / "one")
    two = write_kubeconfig(tmp_path / "two")
    assert kubeconfig_path(str(one), {"KUBECONFIG": str(two)}) == str(one)
    listed = f"{tmp_path / 'missing'}:{two}:{one}"
    assert kubeconfig_path(None, {"KUBECONFIG": listed}) == f"{two}:{one}"
    assert kubeconfig_path(None, {"KUBECONFIG": str(tmp_path / "missing")}) is None
    monkeypatch.setenv("HOME", str(tmp_path))
    assert kubeconfig_path(None, {}) is None
    (tmp_path / ".kube").mkdir()
    write_kubeconfig(tmp_path / ".kube" / "config")
    assert kubeconfig_path(None, {}) == str(tmp_path / ".kube" / "config")


def test_namespace_comes_from_the_flag_then_the_context_then_default(tmp_path: Path) -> None:
    plain = write_kubeconfig(tmp_path / "plain")
    scoped = write_kubeconfig(tmp_path / "scoped", namespace="team-a")
    cases = [
        ({"kubeconfig": str(plain)}, "default"),
        ({"kubeconfig": str(scoped)}, "team-a"),
        ({"kubeconfig": str(scoped), "namespace": "mine"}, "mine"),
        ({"kubeconfig": str(scoped), "context": "other"}, "team-b"),
    ]
    for options, expected in cases:
        conn = connect(**options)
        try:
            assert conn.namespace == expected, options
            assert conn.host == "http://127.0.0.1:9"
        finally:
            conn.close()


def test_connection_problems_are_one_line_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    assert main(["get", "corpus"]) == 1
    assert capsys.readouterr().err == (
        "extraction-operator get: no kubeconfig: pass --kubeconfig, set KUBECONFIG, or create "
        "~/.kube/config (or run inside a pod, with its service account)\n"
    )
    assert main(["get", "--kubeconfig", str(tmp_path / "nope")]) == 1
    assert "--kubeconfig" in capsys.readouterr().err
    config = write_kubeconfig(tmp_path / "config")
    assert main(["get", "corpus", "--kubeconfig", str(config), "--context", "nope"]) == 1
    assert "cannot load the kubeconfig" in capsys.readouterr().err
    # Nothing listens on port 9: the command names the server it could not reach.
    args = build_plugin_parser().parse_args(["--kubeconfig", str(config), "get", "corpus"])
    assert run_client_command(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("kubectl xrun get: cannot reach http://127.0.0.1:9: ")
    assert "Traceback" not in err
