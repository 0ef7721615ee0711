"""The segbind command line, run as a user would, on real H.264."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import provision_keys, run_cli


@pytest.fixture()
def provisioned(tmp_path: Path, clip: bytes) -> Path:
    """A device, alice's pairing, epoch and keyring, bob's keyring, and the clip."""
    (tmp_path / "in.h264").write_bytes(clip)
    return provision_keys(tmp_path, "cam-7")


def test_owner_accepts_and_stranger_refuses(provisioned: Path) -> None:
    assert run_cli("tag", "--epoch", "alice.json", "in.h264", "out.h264", cwd=provisioned).returncode == 0
    owner = run_cli("verify", "--keyring", "alice-ring.json", "out.h264", cwd=provisioned)
    assert owner.returncode == 0, owner.stdout
    assert b"ACCEPTED: 2 ok" in owner.stdout
    stranger = run_cli("verify", "--keyring", "bob-ring.json", "--json", "out.h264", cwd=provisioned)
    assert stranger.returncode == 1
    lines = [json.loads(line) for line in stranger.stdout.splitlines()]
    assert [line["reason"] for line in lines[:-1]] == ["no_grant", "no_grant"]
    assert lines[-1] == {"ok": False, "summary": {"no_grant": 2}}


def test_tag_and_verify_through_pipes(provisioned: Path, clip: bytes) -> None:
    tagged = run_cli("tag", "--epoch", "alice.json", "-", "-", stdin=clip, cwd=provisioned)
    assert tagged.returncode == 0
    verified = run_cli("verify", "--keyring", "alice-ring.json", "-", stdin=tagged.stdout, cwd=provisioned)
    assert verified.returncode == 0, verified.stdout


def test_untagged_stream_is_refused(provisioned: Path) -> None:
    result = run_cli("verify", "--keyring", "alice-ring.json", "in.h264", cwd=provisioned)
    assert result.returncode == 1
    assert b"no_tag" in result.stdout


def test_inspect_shows_tags_but_no_key_material(provisioned: Path) -> None:
    run_cli("tag", "--epoch", "alice.json", "in.h264", "out.h264", cwd=provisioned)
    result = run_cli("inspect", "--json", "out.h264", cwd=provisioned)
    assert result.returncode == 0
    entries = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["tag"]["seq"] for e in entries] == [0, 1]
    assert {e["tag"]["owner"] for e in entries} == {"alice"}
    secrets = [json.loads((provisioned / "dev.json").read_text())["secret"],
               json.loads((provisioned / "alice.pairing").read_text())["secret"],
               json.loads((provisioned / "alice.json").read_text())["root"],
               json.loads((provisioned / "alice-ring.json").read_text())["grants"][0]["key"]]
    assert all(len(s) == 64 and s not in result.stdout.decode() for s in secrets)


@pytest.mark.parametrize("content, why", [
    (None, b"no such file"),
    (b"", b"file is empty"),
    (b"this is not video at all" * 10, b"not an H.264"),
])
def test_bad_input_is_one_line_and_exit_2(provisioned: Path, content: bytes | None, why: bytes) -> None:
    if content is not None:
        (provisioned / "bad.h264").write_bytes(content)
    for args in (["verify", "--keyring", "alice-ring.json", "bad.h264"], ["inspect", "bad.h264"],
                 ["tag", "--epoch", "alice.json", "bad.h264", "o.h264"]):
        result = run_cli(*args, cwd=provisioned)
        assert result.returncode == 2, (args, result)
        assert why in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert b"Traceback" not in result.stderr


@pytest.mark.parametrize("corrupt", [b"", b"{", b'{"segbind": "keyring", "version": 2, "grants": [{"owner": 1}]}',
                                     b'{"segbind": "keyring", "version": 1, "grants": []}',
                                     b'{"segbind": "epoch", "version": 2, "owner": "a", "camera": "c", '
                                     b'"epoch": 1, "root": "00"}',
                                     b'{"segbind": "pairing", "version": 2}', b"\xff\xfe"])
def test_corrupt_key_files_are_one_line_and_exit_2(provisioned: Path, corrupt: bytes) -> None:
    (provisioned / "bad.json").write_bytes(corrupt)
    for args in (["verify", "--keyring", "bad.json", "in.h264"],
                 ["tag", "--epoch", "bad.json", "in.h264", "o.h264"],
                 ["keys", "epoch", "--pairing", "bad.json", "--out", "o.json"],
                 ["keys", "grant", "--epoch", "bad.json", "--keyring", "r.json"],
                 ["keys", "grant", "--epoch", "alice.json", "--keyring", "bad.json"]):
        result = run_cli(*args, cwd=provisioned)
        assert result.returncode == 2, (args, result)
        assert len(result.stderr.strip().splitlines()) == 1 and b"Traceback" not in result.stderr


def test_a_file_is_one_cameras_stream_unless_told_otherwise(provisioned: Path, clip: bytes) -> None:
    for args in (["keys", "pair", "--owner", "alice", "--camera", "cam-8", "--out", "alice8.pairing",
                  "--test-only"],
                 ["keys", "epoch", "--pairing", "alice8.pairing", "--out", "alice8.json"],
                 ["keys", "grant", "--epoch", "alice8.json", "--keyring", "alice-ring.json"],
                 ["tag", "--epoch", "alice.json", "in.h264", "a.h264"],
                 ["tag", "--epoch", "alice8.json", "in.h264", "b.h264"]):
        assert run_cli(*args, cwd=provisioned).returncode == 0
    spliced = (provisioned / "a.h264").read_bytes() + (provisioned / "b.h264").read_bytes()
    (provisioned / "spliced.h264").write_bytes(spliced)
    locked = run_cli("verify", "--keyring", "alice-ring.json", "--json", "spliced.h264", cwd=provisioned)
    assert locked.returncode == 1
    reasons = [json.loads(line)["reason"] for line in locked.stdout.splitlines()[:-1]]
    assert reasons == ["ok", "ok", "chain_break", "chain_break"]
    several = run_cli("verify", "--keyring", "alice-ring.json", "--any-camera", "spliced.h264", cwd=provisioned)
    assert several.returncode == 0, several.stdout
    named = run_cli("verify", "--keyring", "alice-ring.json", "--camera", "cam-8", "spliced.h264", cwd=provisioned)
    assert named.returncode == 1 and b"REFUSED: 2 chain_break, 2 ok" in named.stdout


def test_version_and_python_m(provisioned: Path) -> None:
    import subprocess
    import sys

    import segbind
    expected = "segbind %s (format version %d)" % (segbind.__version__, segbind.FORMAT_VERSION)
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.decode().strip() == expected
    result = subprocess.run([sys.executable, "-m", "segbind", "--version"], capture_output=True, timeout=60)
    assert result.returncode == 0 and result.stdout.decode().strip() == expected


def test_a_share_is_granted_its_own_slot_and_nothing_else(provisioned: Path) -> None:
    for args in (["keys", "epoch", "--pairing", "alice.pairing", "--epoch", "2", "--share", "bob",
                  "--out", "shared.json"],
                 ["keys", "grant", "--epoch", "shared.json", "--holder", "bob", "--keyring", "bob2-ring.json"],
                 ["tag", "--epoch", "shared.json", "in.h264", "shared.h264"]):
        result = run_cli(*args, cwd=provisioned)
        assert result.returncode == 0, result.stderr
    ring = json.loads((provisioned / "bob2-ring.json").read_text())
    assert {(g["owner"], g["epoch"], g["slot"], g["epoch_id"]) for g in ring["grants"]} == {
        ("alice", 2, 1, ring["grants"][0]["epoch_id"])}                 # bob's slot of one epoch, period by period
    assert [g["period"] for g in ring["grants"]] == list(range(ring["grants"][0]["period"],
                                                                ring["grants"][0]["period"] + len(ring["grants"])))
    assert run_cli("verify", "--keyring", "bob2-ring.json", "shared.h264", cwd=provisioned).returncode == 0
    refused = run_cli("keys", "grant", "--epoch", "shared.json", "--holder", "carol", "--keyring", "c.json",
                      cwd=provisioned)
    assert refused.returncode == 2 and b"carol holds no slot" in refused.stderr


def test_recording_mode_refuses_a_recording_cut_short(provisioned: Path) -> None:
    assert run_cli("tag", "--epoch", "alice.json", "in.h264", "out.h264", cwd=provisioned).returncode == 0
    whole = run_cli("verify", "--keyring", "alice-ring.json", "--recording", "out.h264", cwd=provisioned)
    assert whole.returncode == 0, whole.stdout
    data = (provisioned / "out.h264").read_bytes()
    uuid = bytes.fromhex("b531d1f007fb8425d19479ee862d845d")
    second_tag = data.index(uuid, data.index(uuid) + 16)
    second_segment = data.rindex(b"\x00\x00\x00\x01\x09", 0, second_tag)  # its delimiter
    (provisioned / "short.h264").write_bytes(data[:second_segment])
    short = run_cli("verify", "--keyring", "alice-ring.json", "--recording", "--json", "short.h264",
                    cwd=provisioned)
    assert short.returncode == 1
    lines = [json.loads(line) for line in short.stdout.splitlines()]
    assert [line.get("reason") for line in lines[:-1]] == ["ok", "incomplete"]
    live = run_cli("verify", "--keyring", "alice-ring.json", "short.h264", cwd=provisioned)
    assert live.returncode == 0  # as a live feed, what arrived is fine
