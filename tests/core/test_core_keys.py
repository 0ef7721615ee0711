"""keys.py, format 3: epochs with a period length, the keys of each period (key id, content key,
slot keys), their bounds. The derivations are checked byte for byte against an independent
HKDF in tests/lib/test_vectors.py; here, what they promise."""

from _support import raises

from segbind_core import keys as K
from segbind_core.crypto import hkdf_sha256
from segbind_core.tag import MAX_EPOCH

PAIRING = bytes(range(32))


def _epoch(number=1, shares=("bob",), period_s=600, owner="alice", camera="cam-1", pairing=PAIRING):
    return K.Epoch.of_pairing(pairing, owner, camera, number, list(shares), period_s)


def test_periods_are_t_second_slices_of_time_since_1970():
    ep = _epoch(period_s=600)
    assert ep.period_of(0) == 0 and ep.period_of(599_999) == 0 and ep.period_of(600_000) == 1
    assert ep.period_of(1795000000000) == 1795000000000 // 600_000
    keys = ep.period_keys(2991666)
    assert (keys.start_ms, keys.end_ms) == (2991666 * 600_000, 2991667 * 600_000)
    raises(ValueError, ep.period_of, -1)
    assert K.DEFAULT_PERIOD_S == 1800 and K.Epoch(ep.owner, ep.camera, 1, [], ep.root).period_s == 1800


def test_period_lengths_and_epochs_are_bounded():
    for period_s in (60, 1800, 86400):
        K.check_period_s(period_s)
        _epoch(period_s=period_s)
    for period_s in (0, 59, 86401, -60, 60.0, "60"):
        raises(ValueError, K.check_period_s, period_s)
    raises(ValueError, _epoch, 1, (), 59)
    raises(ValueError, _epoch, 1, (), 86401)
    assert MAX_EPOCH == (1 << 31) - 1
    _epoch(number=MAX_EPOCH)
    raises(ValueError, _epoch, 0)
    raises(ValueError, _epoch, MAX_EPOCH + 1)
    raises(ValueError, _epoch, 1, ["s%d" % i for i in range(8)])  # 8 shares: 9 slots
    _epoch(1, ["s%d" % i for i in range(7)])
    raises(ValueError, K.Epoch.of_pairing, PAIRING[:31], "alice", "cam-1", 1, [])
    raises(ValueError, K.period_root, bytes(32), -1)
    raises(ValueError, K.period_root, bytes(32), 1 << 64)
    raises(ValueError, K.slot_key, bytes(32), 8, "x")


def test_a_period_holds_its_key_id_content_key_and_a_slot_key_per_holder():
    ep = _epoch(shares=("bob", "carol"))
    keys = ep.period_keys(7)
    assert ep.holders() == ["alice", "bob", "carol"]
    assert [holder for holder, _ in keys.slot_keys] == ep.holders()
    assert len(keys.key_id) == 16 and len(keys.content_key) == 16
    assert all(len(key) == 32 for _, key in keys.slot_keys)
    root = K.period_root(ep.root, 7)
    assert keys.key_id == K.key_id(root) and keys.content_key == K.content_key(root)
    assert keys.slot_keys[2][1] == K.slot_key(root, 2, "carol")
    # the labels of FORMAT.md section 2, through the core's HKDF (RFC 5869 vectors in test_core_crypto)
    assert root == hkdf_sha256(ep.root, b"segbind/v3", b"segbind/v3 period\x00" + (7).to_bytes(8, "big"), 32)
    assert keys.key_id == hkdf_sha256(root, b"segbind/v3", b"segbind/v3 key id\x00", 16)
    assert keys.content_key == hkdf_sha256(root, b"segbind/v3", b"segbind/v3 content\x00", 16)
    assert keys.slot_keys[1][1] == hkdf_sha256(root, b"segbind/v3", b"segbind/v3 slot\x00\x01\x03bob", 32)
    assert ep.root == hkdf_sha256(PAIRING, b"segbind/v3", b"segbind/v3 epoch\x00\x05alice\x05cam-1"
                                  + (1).to_bytes(4, "big") + (600).to_bytes(4, "big"), 32)


def test_every_key_differs_between_periods_epochs_period_lengths_owners_and_holders():
    seen = set()
    for ep in (_epoch(), _epoch(number=2), _epoch(period_s=601), _epoch(owner="eve"), _epoch(camera="cam-2"),
               _epoch(pairing=bytes(32))):
        for period in (0, 1, 2991666):
            keys = ep.period_keys(period)
            for key in [keys.key_id, keys.content_key] + [k for _, k in keys.slot_keys]:
                assert key not in seen
                seen.add(key)
    assert len(seen) == 6 * 3 * 4
    # a slot's key is bound to its holder: the same slot for another account is another key
    root = K.period_root(_epoch().root, 0)
    assert K.slot_key(root, 1, "bob") != K.slot_key(root, 1, "mallory")


def test_period_keys_are_recomputed_when_another_period_is_asked_for():
    ep = _epoch()
    first = ep.period_keys(5)
    assert ep.period_keys(5) is first  # a camera asks once per period
    other = ep.period_keys(6)
    assert other.period == 6 and other.key_id != first.key_id
    assert ep.period_keys(5).key_id == first.key_id


def test_the_command_key_is_the_pairings_not_an_epochs():
    assert K.command_key(PAIRING, "alice", "cam-1") == hkdf_sha256(
        PAIRING, b"segbind/v3", b"segbind/v3 command\x00\x05alice\x05cam-1", 32)
    assert K.command_key(PAIRING, "alice", "cam-1") != K.command_key(PAIRING, "alice", "cam-2")
    raises(ValueError, K.command_key, PAIRING, "", "cam-1")


def test_reprs_hide_every_key():
    ep = _epoch()
    keys = ep.period_keys(3)
    for text in (repr(ep), repr(keys)):
        assert "hidden" in text
        for secret in [ep.root, keys.content_key] + [k for _, k in keys.slot_keys]:
            assert secret.hex() not in text
    assert keys.key_id.hex() in repr(keys)  # the key id is public: tags carry it
