"""Every name the service uses on NATS, defined here once (docs/SERVICE.md, "Subjects, streams,
buckets"): subjects, streams, KV buckets and keys, and how a camera maps to its partition.

Account and camera ids are 1 to 32 bytes of UTF-8 (docs/GRANTS.md) and may hold characters a
NATS subject token or KV key cannot (``.``, ``*``, ``>``, spaces, anything beyond ASCII): each id
becomes one token that keeps ``A-Z a-z 0-9 _ -`` and writes every other byte as ``=HH``, so the
mapping is one to one and can be read back.
"""

from __future__ import annotations

import re
from typing import Optional

DEFAULT_PREFIX = "segbind"
DEFAULT_PARTITIONS = 16
MAX_PARTITIONS = 1024

_PLAIN = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_PREFIX = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_TOKEN = re.compile(r"^(?:[A-Za-z0-9_-]|=[0-9A-F]{2})+$")


_ALL_PLAIN = re.compile(r"[A-Za-z0-9_-]+")


def token(name: str) -> str:
    """One subject token (and KV key part) for an account or camera id."""
    if _ALL_PLAIN.fullmatch(name):  # the usual id, kept as it is (a token per message: the fast path)
        return name
    return "".join(chr(b) if b in _PLAIN else "=%02X" % b for b in name.encode("utf-8"))


def untoken(tok: str) -> Optional[str]:
    """The id a token stands for; None when it is not a token ``token`` writes."""
    if _ALL_PLAIN.fullmatch(tok):
        return tok
    if not _TOKEN.match(tok):
        return None
    out = bytearray()
    i = 0
    while i < len(tok):
        if tok[i] == "=":
            out.append(int(tok[i + 1:i + 3], 16))
            i += 3
        else:
            out.append(ord(tok[i]))
            i += 1
    try:
        name = out.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return name if token(name) == tok else None


def partition_of(camera: str, partitions: int) -> int:
    """The partition of a camera: FNV-1a (32 bits) of its id's UTF-8 bytes, modulo the count."""
    h = 0x811C9DC5
    for b in camera.encode("utf-8"):
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h % partitions


class Names:
    """The subjects, streams and buckets of one service deployment (``prefix``, default
    ``segbind``): several deployments share a NATS cluster under different prefixes."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        if not _PREFIX.match(prefix):
            raise ValueError("a prefix is 1 to 32 of a-z, 0-9, _ and -, starting with a letter: %r" % prefix)
        self.prefix = prefix
        upper = prefix.upper().replace("-", "_")
        self.seg_stream = upper + "_SEG"            # segments, a subject per camera
        self.verdict_stream = upper + "_VERDICTS"   # every judgement, a subject per (account, camera)
        self.grants_stream = upper + "_GRANTS"      # owners' sealed service-grants, a subject per account
        self.state_bucket = prefix + "-state"       # KV: each (account, camera) stream's verifier state
        self.lease_bucket = prefix + "-leases"      # KV: a lease per partition, and the config
        self.heartbeat = prefix + ".svc.hb"         # core NATS: workers' heartbeats

    def seg_subject(self, camera: str, partitions: int) -> str:
        return "%s.seg.%d.%s" % (self.prefix, partition_of(camera, partitions), token(camera))

    def seg_filter(self, partition: int) -> str:
        return "%s.seg.%d.*" % (self.prefix, partition)

    def seg_all(self) -> str:
        return "%s.seg.>" % self.prefix

    def camera_of(self, subject: str) -> Optional[str]:
        """The camera of a segment subject (None when it is not one)."""
        parts = subject.split(".")
        if len(parts) != 4 or parts[0] != self.prefix or parts[1] != "seg":
            return None
        return untoken(parts[3])

    def verdict_subject(self, account: str, camera: str) -> str:
        return "%s.verdict.%s.%s" % (self.prefix, token(account), token(camera))

    def verdicts_of(self, account: str) -> str:
        """What an owner's app reads: every verdict on its cameras."""
        return "%s.verdict.%s.*" % (self.prefix, token(account))

    def refused_subject(self, camera: str) -> str:
        """Verdicts on segments no account granted this service: an alarm, no owner's."""
        return "%s.refused.%s" % (self.prefix, token(camera))

    def verdict_all(self) -> "list[str]":
        return ["%s.verdict.>" % self.prefix, "%s.refused.>" % self.prefix]

    def grants_subject(self, account: str) -> str:
        return "%s.grants.%s" % (self.prefix, token(account))

    def grants_all(self) -> str:
        return "%s.grants.>" % self.prefix

    @staticmethod
    def state_key(account: str, camera: str) -> str:
        return "%s.%s" % (token(account), token(camera))

    @staticmethod
    def lease_key(partition: int) -> str:
        return "p%d" % partition

    CONFIG_KEY = "config"
