"""The exceptions segbind raises; nothing else escapes its public functions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from .verdict import Reason, TagInfo


class SegbindError(Exception):
    """Base class of every segbind exception."""


class InvalidSegment(SegbindError):
    """A segment that must not be shown; ``reason`` says why (like cryptography's InvalidSignature)."""

    def __init__(self, reason: "Reason", detail: str, tag: Optional["TagInfo"] = None) -> None:
        super().__init__("%s: %s" % (reason.value, detail))
        self.reason = reason
        self.detail = detail
        self.tag = tag


class KeyringError(SegbindError):
    """A keyring, device or binding file that is missing, corrupt or inconsistent."""


class GrantConflict(KeyringError):
    """A grant a keyring refuses because it contradicts what the keyring holds: a key id held
    for another binding, an epoch id held for another camera, epoch or period length, or an
    epoch revoked here (``Keyring.grant``; nothing changed)."""


class InputError(SegbindError):
    """Input that is not a stream segbind can read (empty, truncated, neither H.264 nor H.265)."""


class StateError(SegbindError):
    """A stream verifier's exported state that cannot be restored (``StreamVerifier.import_state``):
    another version, truncated, inconsistent or over its bound."""
