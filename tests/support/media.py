"""Shared pieces of the media tests: key material made through the CLI, tagging, ffmpeg."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import List, Tuple

from host_sim import clips
from segbind import Keyring
from tests.support import run_cli

FFMPEG = shutil.which("ffmpeg") or "ffmpeg"


def rings(keys: Path) -> Tuple[Keyring, Keyring]:
    """(alice's keyring, bob's keyring) as library objects."""
    return Keyring.load(keys / "alice-ring.json"), Keyring.load(keys / "bob-ring.json")


def tag(keys: Path, data: bytes, out: Path, *extra: str) -> Path:
    """Tag Annex-B bytes with alice's binding through ``segbind tag`` (a pipe, as a camera would)."""
    result = run_cli("tag", "--epoch", str(keys / "alice.json"), "--stream-id", "42", *extra, "-", "-",
                     stdin=data)
    assert result.returncode == 0, result.stderr
    out.write_bytes(result.stdout)
    return out


def verify(keys: Path, ring: str, *files: str) -> Tuple[int, List[dict]]:
    """(exit status, one dict per segment) of ``segbind verify --json`` with a keyring."""
    result = run_cli("verify", "--keyring", str(keys / ring), "--json", *files)
    assert b"Traceback" not in result.stderr
    if result.returncode == 2:
        raise AssertionError("verify failed: %s" % result.stderr.decode())
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert "summary" in lines[-1]
    return result.returncode, lines[:-1]


def ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-v", "error", "-y", *args], check=True, capture_output=True, timeout=300)


def frame_hashes(path: Path) -> List[str]:
    """Per-frame hashes of a file (any container, or an HLS playlist) from the ffmpeg CLI."""
    return clips.decode_hashes_ffmpeg(b"", path=str(path))


def decoded_frames(path: Path) -> List[str]:
    """MD5 of every picture PyAV's decoder outputs from a file (any container, or a playlist),
    in output order: what a player has to show (pictures an edit list hides are not output;
    unlike the ffmpeg CLI's framemd5, no frame is dropped or doubled for its timestamp)."""
    import hashlib

    import av

    out = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            digest = hashlib.md5()
            for plane in frame.planes:
                digest.update(bytes(plane))
            out.append(digest.hexdigest())
    return out


def owner_accepts_stranger_refuses(keys: Path, *files: str, segments: int) -> None:
    code, verdicts = verify(keys, "alice-ring.json", *files)
    assert code == 0 and [v["reason"] for v in verdicts] == ["ok"] * segments, verdicts
    assert [v["tag"]["seq"] for v in verdicts] == list(range(segments))
    code, verdicts = verify(keys, "bob-ring.json", *files)
    assert code == 1 and [v["reason"] for v in verdicts] == ["no_grant"] * segments, verdicts
