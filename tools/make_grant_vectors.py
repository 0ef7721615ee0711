"""Generate tests/vectors/grants_v3.json: docs/GRANTS.md's cards, enrollment codes and sealed
messages (grants, share-offer, service-grants) from fixed secrets, so that another
implementation can check every byte.

    python3 tools/make_grant_vectors.py          # (re)write tests/vectors/grants_v3.json
    python3 tools/make_grant_vectors.py --check  # exit 1 when the file differs from what this makes

Every secret here is derived from a public label (SHA-256 of it): test-only, never a real key.
Ed25519 signatures are deterministic (RFC 8032), AES-GCM is deterministic given its key and
nonce, and each message's ephemeral X25519 key is fixed here (``seal``'s ``_ephemeral``, for
vectors alone), so the same inputs make the same bytes. tests/lib/test_grants.py checks that
the file is what this script makes and opens each message with primitives written out from the
spec; tests/web/test_js_grants.py opens them in JavaScript.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any, Dict, List

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from segbind.grants import (
    Account,
    CameraState,
    Display,
    GrantSet,
    OutOfBand,
    Service,
    ServiceGrantSet,
    ShareOffer,
    enrollment_code,
    seal,
)
from segbind.keyring import Binding, EpochName, epoch_id
from segbind_core.keys import Epoch, epoch_root

OUT = Path(__file__).resolve().parent.parent / "tests" / "vectors" / "grants_v3.json"
CAPTURE_MS = 1_795_000_000_000          # 2026-11-18: the period the keys are for
ISSUED_MS = CAPTURE_MS + 1_700_000      # a renewal, within the lead of the next period


def secret(label: str) -> bytes:
    return hashlib.sha256(("segbind grant vectors: " + label).encode()).digest()


def _x25519(label: str) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(secret(label))


def _message(name: str, comment: str, kind: str, issuer: Account, to: str, to_pub: bytes, payload: bytes,
             recipient_secret: bytes, eph_label: str, expected: Dict[str, Any]) -> Dict[str, Any]:
    eph = _x25519(eph_label)
    sealed = seal(issuer, kind, to, to_pub, payload, _ephemeral=eph)
    return {"name": name, "comment": comment, "kind": kind, "issuer": issuer.account, "to": to,
            "recipient_secret": recipient_secret.hex(), "eph_secret": secret(eph_label).hex(),
            "payload": payload.decode("utf-8"), "signature": issuer.sign(kind, payload).hex(),
            "sealed": sealed, "expected": expected}


def build() -> Dict[str, Any]:
    alice = Account("alice", Ed25519PrivateKey.from_private_bytes(secret("alice signing")), _x25519("alice sealing"))
    bob = Account("bob", Ed25519PrivateKey.from_private_bytes(secret("bob signing")), _x25519("bob sealing"))
    tv = Display("tv-1", _x25519("tv-1 sealing"))
    OutOfBand.enroll(alice, tv)
    recorder = Service("recorder", _x25519("recorder sealing"))
    recorder.enroll(alice.card())
    pairing = secret("alice cam-1 pairing")
    epoch = Epoch.of_pairing(pairing, "alice", "cam-1", 2, ["bob"], 1800)
    # alice released cam-1 and paired it again: her previous pairing's epoch 2 is revoked, and
    # this pairing's epoch 2 (the same owner, camera and number, another root) is granted
    previous = secret("alice cam-1 previous pairing")
    gone = EpochName("alice", epoch_id(epoch_root(previous, "alice", "cam-1", 2, 1800)))
    period = epoch.period_of(CAPTURE_MS)
    own = [Binding.of_epoch(epoch, p) for p in (period, period + 1)]
    bobs = [Binding.of_epoch(epoch, p, "bob") for p in (period, period + 1)]
    cameras = [CameraState("alice", "cam-1", 3, ISSUED_MS - 90_000, True)]
    grants = GrantSet("alice", "tv-1", tv.sealing_pub, 7, ISSUED_MS, own, [gone], cameras, 60_000)
    offer = ShareOffer("alice", "bob", 4, ISSUED_MS, bobs, [])
    service = ServiceGrantSet("alice", "recorder", recorder.sealing_pub, 2, ISSUED_MS, own, [])

    def keys(bindings: List[Binding]) -> List[Dict[str, Any]]:
        return [b.to_json() for b in bindings]

    return {
        "segbind": "grant-vectors", "version": 3,
        "about": "docs/GRANTS.md (format 3): cards, enrollment codes, sealed messages; every secret is "
                 "SHA-256(\"segbind grant vectors: \" || label), test-only; made by tools/make_grant_vectors.py",
        "period": {"pairing_secret": pairing.hex(), "owner": "alice", "camera": "cam-1", "epoch": 2,
                   "shares": ["bob"], "period_s": 1800, "capture_ms": CAPTURE_MS, "period": period,
                   "epoch_root": epoch.root.hex(), "epoch_id": epoch_id(epoch.root).hex()},
        "revoked": {"comment": "epoch 2 of cam-1's previous pairing (alice released it and paired it again)",
                    "pairing_secret": previous.hex(), "owner": "alice", "camera": "cam-1", "epoch": 2,
                    "period_s": 1800, "epoch_id": gone.epoch_id.hex()},
        "accounts": {a.account: {"signing_secret": secret(a.account + " signing").hex(),
                                 "sealing_secret": secret(a.account + " sealing").hex(), "card": a.card().to_json()}
                     for a in (alice, bob)},
        "display": {"sealing_secret": secret("tv-1 sealing").hex(), "card": tv.card().to_json(),
                    "enrollment_code": enrollment_code(tv.card(), alice.card())},
        "service": {"sealing_secret": secret("recorder sealing").hex(), "card": recorder.card().to_json(),
                    "enrollment_code": enrollment_code(recorder.card(), alice.card())},
        "messages": [
            _message("grants", "alice's display tv-1: her slot of cam-1's epoch 2 for the period in progress and "
                     "the next (a renewal within the lead), epoch 3 pending, and epoch 2 of cam-1's previous "
                     "pairing revoked (the same numbers, another epoch id)",
                     "grants", alice, "tv-1", tv.sealing_pub, grants.to_payload(), secret("tv-1 sealing"),
                     "grants ephemeral", {"keys": keys(own), "revoked": [gone.to_json()],
                                          "cameras": [c.to_json() for c in cameras], "alarm_after_ms": 60_000,
                                          "serial": 7}),
            _message("share-offer", "bob's slot of the same periods, offered to bob", "share-offer", alice, "bob",
                     bob.sealing_pub, offer.to_payload(), secret("bob sealing"), "offer ephemeral",
                     {"keys": keys(bobs), "revoked": [], "serial": 4}),
            _message("service-grants", "the same periods of alice's slot, to her recording service",
                     "service-grants", alice, "recorder", recorder.sealing_pub, service.to_payload(),
                     secret("recorder sealing"), "service ephemeral",
                     {"keys": keys(own), "revoked": [], "serial": 2}),
        ],
    }


def render() -> str:
    return json.dumps(build(), indent=1, ensure_ascii=False) + "\n"


def main(argv: List[str]) -> int:
    text = render()
    if "--check" in argv:
        same = OUT.exists() and OUT.read_text(encoding="utf-8") == text
        print("%s is %s" % (OUT, "up to date" if same else "NOT what tools/make_grant_vectors.py makes"))
        return 0 if same else 1
    OUT.write_text(text, encoding="utf-8")
    print("wrote %s" % OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
