"""``synapse synap`` against the embedded emulator (state persisted between commands)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from synapse_sdk.cli import main
from synapse_sdk.clients.synap import SynapClient


def _run(tmp_path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        main, ["synap", "--credentials-dir", str(tmp_path / "creds"), *args], catch_exceptions=False
    )
    return result.exit_code, result.output


def test_init_ingest_context_listen_round_trip(tmp_path: Path) -> None:
    code, out = _run(tmp_path, "init")
    assert code == 0, out
    assert "instance:     inst_" in out and "certificate:  valid" in out
    assert "sbt_" not in out  # the bootstrap token the emulator issued is never printed
    instance_id = out.split("instance:")[1].split()[0]
    creds = tmp_path / "creds" / instance_id / "credentials.json"
    assert creds.stat().st_mode & 0o777 == 0o600

    code, out = _run(tmp_path, "ingest", "likes tea", "lives in Seoul", "--user-id", "u-1")
    assert code == 0, out
    assert len(out.split()) == 2 and all(line.startswith("mem_") for line in out.split())

    code, out = _run(tmp_path, "context", "--user-id", "u-1", "--json")
    assert code == 0, out
    contents = [m["content"] for m in json.loads(out)["memories"]]
    assert contents == ["likes tea", "lives in Seoul"]

    code, out = _run(tmp_path, "context", "--user-id", "nobody")
    assert (code, out.strip()) == (0, "(no memories stored yet)")  # treat as empty state

    code, out = _run(tmp_path, "ingest", "a new topic", "--new-conversation")
    assert code == 0, out
    conversation = out.split("conversation:")[1].split()[0]
    code, out = _run(tmp_path, "context", "--conversation-id", conversation)
    assert code == 0 and "a new topic" in out

    code, out = _run(tmp_path, "listen", "--count", "2")
    assert code == 0, out
    assert out.splitlines() == [
        "#1 memory_ingested [u-1] 2 memories ingested",
        f"#2 memory_ingested [{conversation}] 1 memories ingested",
    ]


def test_errors_print_the_class_and_the_resolution(tmp_path: Path) -> None:
    assert _run(tmp_path, "init")[0] == 0
    code, out = _run(tmp_path, "context", "--conversation-id", "conv_0123456789abcdef")
    assert code == 1
    assert "InvalidConversationIdError (permanent)" in out
    assert "what to do: check that the conversation exists" in out
    code, out = _run(tmp_path, "ingest", "", "--user-id", "u-1")
    assert code == 1 and "InvalidInputError (permanent)" in out


def test_commands_before_init_are_usage_errors(tmp_path: Path) -> None:
    code, out = _run(tmp_path, "context", "--user-id", "u-1")
    assert code == 2 and "synapse synap init" in out


def test_missing_credentials_is_an_authentication_error(tmp_path: Path) -> None:
    assert _run(tmp_path, "init")[0] == 0
    code, out = _run(
        tmp_path, "context", "--user-id", "u", "--instance-id", "inst_0000000000000000"
    )
    assert code == 1 and "AuthenticationError (permanent)" in out and "no stored credentials" in out


def test_a_malformed_instance_id_is_reported(tmp_path: Path) -> None:
    code, out = _run(tmp_path, "init", "--instance-id", "inst_nothex")
    assert code == 1 and "InvalidInstanceIdError (permanent)" in out
    assert "16 lowercase hex digits" in out


def test_a_bad_bootstrap_token_is_reported_without_echoing_it(tmp_path: Path) -> None:
    token = "sbt_" + "Q" * 43
    code, out = _run(tmp_path, "init", "--bootstrap-token", token)
    assert code == 1 and "BootstrapKeyInvalidError (permanent)" in out
    assert token not in out


def test_serve_runs_a_standalone_emulator_for_other_processes(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    command = [sys.executable, "-c", "from synapse_sdk.cli import main; main()"]
    process = subprocess.Popen(
        [*command, "synap", "serve", "--token-file", str(tokens)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        shown: dict[str, str] = {}
        for line in process.stdout:
            if line.startswith("Press Ctrl-C"):
                break
            key, _, value = line.partition(":")
            shown[key] = value.strip()
        assert tokens.stat().st_mode & 0o777 == 0o600
        ((instance_id, token),) = json.loads(tokens.read_text()).items()
        assert shown["instance"] == instance_id and token not in str(shown)
        client = SynapClient(
            instance_id,
            url=shown["url"],
            trust_root=Path(shown["ca_file"]),
            credentials_dir=tmp_path / "creds",
        )
        with client:
            client.initialize(bootstrap_token=token)
            client.ingest(["from another process"], user_id="u")
            assert client.get_context(user_id="u").memories[0].content == "from another process"
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()
    assert code == 0
