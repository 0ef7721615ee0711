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


def test_inspect_shows_tags_with_their_key_id_never_names_or_key_material(provisioned: Path) -> None:
    run_cli("tag", "--epoch", "alice.json", "in.h264", "out.h264", cwd=provisioned)
    result = run_cli("inspect", "--json", "out.h264", cwd=provisioned)
    assert result.returncode == 0
    entries = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["tag"]["seq"] for e in entries] == [0, 1]
    assert all(e["tag"]["version"] == 3 and e["tag"]["alg"] == 2 for e in entries)
    ring = json.loads((provisioned / "alice-ring.json").read_text())
    held = {g["key_id"]: g for g in ring["grants"]}
    for e in entries:  # the key id names alice's period of the capture time, which only a holder can tell
        grant = held[e["tag"]["key_id"]]
        period_ms = grant["period_s"] * 1000
        assert grant["period"] == e["tag"]["capture_ms"] // period_ms
        assert not {"owner", "camera", "epoch"} & set(e["tag"])
        assert e["tag"]["clear_lead"] > 1
    text = result.stdout.decode() + run_cli("inspect", "out.h264", cwd=provisioned).stdout.decode()
    assert "alice" not in text and "cam-7" not in text
    secrets = [json.loads((provisioned / "dev.json").read_text())["secret"],
               json.loads((provisioned / "alice.pairing").read_text())["secret"],
               json.loads((provisioned / "alice.json").read_text())["root"]]
    secrets += [g[k] for g in ring["grants"] for k in ("key", "content_key")]
    assert all(len(s) in (32, 64) and s not in text for s in secrets)


def test_tag_writes_encrypted_video(provisioned: Path, clip: bytes) -> None:
    """What leaves ``segbind tag`` carries no slice data in clear: no 16-byte run of the clip's
    picture data is in it; the parameter sets are."""
    from segbind_core.nal import annexb_units

    assert run_cli("tag", "--epoch", "alice.json", "in.h264", "out.h264", cwd=provisioned).returncode == 0
    tagged = (provisioned / "out.h264").read_bytes()
    pictures = [clip[s:e] for s, e in annexb_units(clip) if 1 <= clip[s] & 0x1F <= 5 and e - s > 200]
    sets = [clip[s:e] for s, e in annexb_units(clip) if clip[s] & 0x1F in (7, 8)]
    assert len(pictures) > 10 and sets
    for unit in pictures:
        for at in range(40, len(unit) - 17, 97):
            assert unit[at:at + 16] not in tagged
    assert all(unit in tagged for unit in sets)


def test_verify_out_writes_the_accepted_segments_decrypted_and_nothing_else(provisioned: Path, clip: bytes) -> None:
    """``verify --out``: the owner gets the encoder's pictures back (PyAV decodes the same frames
    from it as from the clip); a stranger's run writes nothing, not even ciphertext."""
    from host_sim import clips

    assert run_cli("tag", "--epoch", "alice.json", "in.h264", "out.h264", cwd=provisioned).returncode == 0
    owner = run_cli("verify", "--keyring", "alice-ring.json", "--out", "plain.h264", "out.h264", cwd=provisioned)
    assert owner.returncode == 0, owner.stdout
    plain = (provisioned / "plain.h264").read_bytes()
    assert clips.decode_hashes_pyav(plain) == clips.decode_hashes_pyav(clip)
    assert clips.decode_hashes_pyav((provisioned / "out.h264").read_bytes()) != clips.decode_hashes_pyav(clip)
    stranger = run_cli("verify", "--keyring", "bob-ring.json", "--out", "bob.h264", "out.h264", cwd=provisioned)
    assert stranger.returncode == 1
    assert (provisioned / "bob.h264").read_bytes() == b""
    nowhere = run_cli("verify", "--keyring", "alice-ring.json", "--out", "no/such/dir.h264", "out.h264",
                      cwd=provisioned)
    assert nowhere.returncode == 2 and len(nowhere.stderr.strip().splitlines()) == 1, nowhere.stderr


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
    eid = ring["grants"][0]["epoch_id"]
    assert {(g["owner"], g["camera"], g["epoch"], g["slot"], g["epoch_id"]) for g in ring["grants"]} == {
        ("alice", "cam-7", 2, 1, eid)}                                  # bob's slot of one epoch, period by period
    assert len(ring["grants"]) in (96, 97)  # 48 hours from a day ago, in 1800-second periods
    first = ring["grants"][0]["period"]
    assert [g["period"] for g in ring["grants"]] == list(range(first, first + len(ring["grants"])))
    assert run_cli("verify", "--keyring", "bob2-ring.json", "shared.h264", cwd=provisioned).returncode == 0
    refused = run_cli("keys", "grant", "--epoch", "shared.json", "--holder", "carol", "--keyring", "c.json",
                      cwd=provisioned)
    assert refused.returncode == 2 and b"carol holds no slot" in refused.stderr


def test_keys_epoch_period_and_grant_from_hours(provisioned: Path) -> None:
    """--period sets the epoch's period length; --from/--hours grant the periods that cover that
    time, no more: a holder granted an hour in the past verifies nothing tagged now."""
    import time

    now_ms = int(time.time() * 1000)
    for args in (["keys", "epoch", "--pairing", "alice.pairing", "--epoch", "3", "--period", "60",
                  "--out", "minute.json"],
                 ["keys", "grant", "--epoch", "minute.json", "--from", str(now_ms - 120_000), "--hours", "0.5",
                  "--keyring", "now.json"],
                 ["keys", "grant", "--epoch", "minute.json", "--from", str(now_ms - 7_200_000), "--hours", "1",
                  "--keyring", "past.json"],
                 ["tag", "--epoch", "minute.json", "in.h264", "minute.h264"]):
        result = run_cli(*args, cwd=provisioned)
        assert result.returncode == 0, result.stderr
    assert json.loads((provisioned / "minute.json").read_text())["period_s"] == 60
    now = json.loads((provisioned / "now.json").read_text())["grants"]
    assert {g["period_s"] for g in now} == {60} and len(now) in (30, 31)
    first = (now_ms - 120_000) // 60_000
    assert sorted(g["period"] for g in now) == list(range(first, first + len(now)))
    assert len(json.loads((provisioned / "past.json").read_text())["grants"]) in (60, 61)
    assert run_cli("verify", "--keyring", "now.json", "minute.h264", cwd=provisioned).returncode == 0
    past = run_cli("verify", "--keyring", "past.json", "--json", "minute.h264", cwd=provisioned)
    assert past.returncode == 1
    assert {json.loads(line).get("reason") for line in past.stdout.splitlines()[:-1]} == {"no_grant"}
    for args in (["keys", "epoch", "--pairing", "alice.pairing", "--period", "59", "--out", "x.json"],
                 ["keys", "epoch", "--pairing", "alice.pairing", "--period", "86401", "--out", "x.json"],
                 ["keys", "epoch", "--pairing", "alice.pairing", "--epoch", str(2**31), "--out", "x.json"],
                 ["keys", "grant", "--epoch", "minute.json", "--hours", "0", "--keyring", "x.json"],
                 ["keys", "grant", "--epoch", "minute.json", "--from", "-1", "--keyring", "x.json"]):
        result = run_cli(*args, cwd=provisioned)
        assert result.returncode == 2, (args, result)
        assert len(result.stderr.strip().splitlines()) == 1 and b"Traceback" not in result.stderr


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
