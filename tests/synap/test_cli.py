"""``synapse synap`` against the embedded emulator (state persisted between commands)."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

from click.testing import CliRunner

from synapse_sdk.cli import main
from synapse_sdk.clients.synap import SynapClient
from synapse_sdk.emulator.synap import SynapEmulator


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


# --- run as a user runs it: a subprocess per command ------------------------------------------

_LAUNCH = [sys.executable, "-c", "from synapse_sdk.cli import main; main()"]


def _user_env() -> dict[str, str]:
    """The environment without a CA bundle override or a bootstrap token."""
    dropped = ("SSL_CERT_FILE", "SSL_CERT_DIR", "SYNAPSE_SYNAP_BOOTSTRAP_TOKEN")
    return {key: value for key, value in os.environ.items() if key not in dropped}


def _synap(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*_LAUNCH, "synap", "--credentials-dir", str(tmp_path / "creds"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=_user_env() if env is None else env,
    )
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return done


def test_init_prints_the_expiry_as_an_iso_time_with_its_zone(tmp_path: Path) -> None:
    done = _synap(tmp_path, "init")
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("certificate:"))
    assert re.fullmatch(
        r"certificate:  valid, expires \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d \(\S+\)", line
    ), line
    assert "epoch" not in done.stdout


def test_a_second_init_keeps_the_instance_unless_forced(tmp_path: Path) -> None:
    first = _synap(tmp_path, "init")
    assert first.returncode == 0, first.stderr
    instance_id = first.stdout.split("instance:")[1].split()[0]
    assert _synap(tmp_path, "ingest", "likes tea", "--user-id", "u-1").returncode == 0

    again = _synap(tmp_path, "init")
    assert again.returncode == 2
    assert f"instance {instance_id} is already set up" in again.stderr
    assert "--force" in again.stderr and f"--instance-id {instance_id}" in again.stderr
    context = _synap(tmp_path, "context", "--user-id", "u-1")  # the default is unchanged
    assert (context.returncode, context.stdout.split()[1:]) == (0, ["likes", "tea"])

    rebootstrap = _synap(tmp_path, "init", "--instance-id", instance_id)
    assert rebootstrap.returncode == 0, rebootstrap.stderr
    assert f"instance:     {instance_id}" in rebootstrap.stdout
    assert "likes tea" in _synap(tmp_path, "context", "--user-id", "u-1").stdout

    forced = _synap(tmp_path, "init", "--force")
    assert forced.returncode == 0, forced.stderr
    assert instance_id not in forced.stdout  # a new instance, now the default
    assert _synap(tmp_path, "context", "--user-id", "u-1").stdout.strip() == (
        "(no memories stored yet)"
    )


def test_an_untrusted_server_certificate_points_at_trust_root(tmp_path: Path) -> None:
    with SynapEmulator() as emu:
        instance_id = emu.register_instance()
        env = {
            **_user_env(),
            "SYNAPSE_SYNAP_BOOTSTRAP_TOKEN": emu.issue_bootstrap_token(instance_id),
        }
        done = _synap(tmp_path, "--url", emu.url, "init", "--instance-id", instance_id, env=env)
        assert done.returncode == 1
        assert "AuthenticationError (permanent)" in done.stderr
        assert "what to do: the server's certificate is not signed by a CA" in done.stderr
        assert "--trust-root" in done.stderr and "bootstrap the instance again" not in done.stderr
        assert env["SYNAPSE_SYNAP_BOOTSTRAP_TOKEN"] not in done.stdout + done.stderr

        ca_file = tmp_path / "ca.pem"
        ca_file.write_bytes(emu.ca_pem)
        trusted = _synap(
            tmp_path,
            "--url",
            emu.url,
            "--trust-root",
            str(ca_file),
            "init",
            "--instance-id",
            instance_id,
            env=env,
        )
        assert trusted.returncode == 0, trusted.stderr


def test_a_listener_shows_an_event_ingested_from_another_terminal(tmp_path: Path) -> None:
    assert _synap(tmp_path, "init").returncode == 0
    assert _synap(tmp_path, "ingest", "before", "--user-id", "u-1").returncode == 0
    listener = subprocess.Popen(
        [
            *_LAUNCH,
            "synap",
            "--credentials-dir",
            str(tmp_path / "creds"),
            "listen",
            "--count",
            "2",
            "--timeout",
            "60",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_user_env(),
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert listener.stdout is not None
        for line in listener.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    try:
        # The backlog arrives first: the stream is open once this line is printed.
        assert lines.get(timeout=60) == "#1 memory_ingested [u-1] 1 memories ingested\n"
        # Another terminal (another process, another embedded emulator on the same state).
        assert _synap(tmp_path, "ingest", "after", "--user-id", "u-2").returncode == 0
        assert lines.get(timeout=30) == "#2 memory_ingested [u-2] 1 memories ingested\n"
        assert listener.wait(timeout=30) == 0
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait(timeout=30)
    assert listener.stderr is not None and "Traceback" not in listener.stderr.read()
