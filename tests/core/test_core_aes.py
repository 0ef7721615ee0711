"""aes.py: AES-128-CTR as CENC 'cenc' uses it, on every backend this interpreter has.

Published vectors first (NIST SP 800-38A F.5.1, F.5.2 and F.1.1; FIPS-197 appendices B and
C.1), read from tests/vectors/. Then every backend against a reference that shares no code
with it, on generated keys, counter blocks (near 2**128 and near the 32- and 64-bit carries)
and split points: OpenSSL through ``cryptography`` on CPython; the mode's definition,
C_i = P_i XOR AES(counter + i), written out block by block over the pure AES, on MicroPython
(the WebAssembly VM and the unix port run this file too, where ``cryptography`` does not exist).
"""

from _support import IS_MICROPYTHON, generated, h, load_vectors, patched, raises

from segbind_core import aes

TWO_128 = 1 << 128
# Data on MicroPython's WebAssembly VM goes through the pure AES at about 0.1 MB/s: keep it short there.
SCALE = 1 if IS_MICROPYTHON else 8


def _vectors():
    return load_vectors("nist_sp800_38a_aes128_ctr.json")


def _block(value):
    return (value % TWO_128).to_bytes(16, "big")


def _by_definition(key, counter_block, data):
    """CTR as SP 800-38A defines it, one block at a time over the pure AES."""
    cipher = aes.PureAes(key)
    counter = int.from_bytes(counter_block, "big")
    out = bytearray()
    keystream = bytearray(16)
    for off in range(0, len(data), 16):
        cipher.encrypt(_block(counter), keystream)
        out += bytes(a ^ b for a, b in zip(data[off:off + 16], keystream))
        counter += 1
    return bytes(out)


def _reference(key, counter_block, data):
    """OpenSSL's AES-CTR where it exists (CPython), else the definition over the pure AES."""
    if IS_MICROPYTHON:
        return _by_definition(key, counter_block, data)
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    return Cipher(algorithms.AES(key), modes.CTR(counter_block)).encryptor().update(data)


WAYS = ("xor", "in place", "apart")


def _in_pieces(stream, data, cuts, way):
    """data through one keystream in the pieces between cuts: by xor, by xor_into in place, or
    by xor_into from data into another buffer."""
    edges = [0] + sorted(cuts) + [len(data)]
    if way == "xor":
        return b"".join(stream.xor(data[a:b]) for a, b in zip(edges, edges[1:]))
    out = bytearray(data) if way == "in place" else bytearray(len(data))
    view = memoryview(out)
    source = view if way == "in place" else memoryview(data)
    for a, b in zip(edges, edges[1:]):
        stream.xor_into(source[a:b], view[a:b])
    return bytes(out)


# ---- published vectors --------------------------------------------------------------------------


def test_vectors_are_sp800_38a_and_fips197():
    v = _vectors()
    assert [c["case"] for c in v["ctr"]] == ["F.5.1", "F.5.2"]
    assert [c["case"] for c in v["ecb"]] == ["F.1.1"]
    assert [c["case"] for c in v["fips197"]] == ["Appendix B", "Appendix C.1"]
    for case in v["ctr"]:
        blocks = case["blocks"]
        assert len(blocks) == 4 and blocks[0]["input_block"] == case["initial_counter"]
        for i, block in enumerate(blocks):  # each input block is the initial counter block plus i
            assert int(block["input_block"], 16) == int(case["initial_counter"], 16) + i
    assert [b["plaintext"] for b in v["ctr"][0]["blocks"]] == [b["plaintext"] for b in v["ecb"][0]["blocks"]]


def test_pure_aes_matches_fips197_and_sp800_38a_ecb():
    v = _vectors()
    for case in v["fips197"]:
        out = bytearray(16)
        aes.PureAes(h(case["key"])).encrypt(h(case["input"]), out)
        assert bytes(out) == h(case["output"]), case["case"]
    for case in v["ecb"] + v["ctr"]:  # the CTR cases' output blocks are AES of their input blocks
        cipher = aes.PureAes(h(case["key"]))
        field_in, field_out = ("plaintext", "ciphertext") if "initial_counter" not in case else (
            "input_block", "output_block")
        blocks = bytearray(b"".join(h(b[field_in]) for b in case["blocks"]))
        cipher.encrypt(blocks, blocks)  # several blocks in one call, in place
        assert bytes(blocks) == b"".join(h(b[field_out]) for b in case["blocks"]), case["case"]


def test_pure_aes_refuses_what_is_not_aes_128_ecb():
    raises(ValueError, aes.PureAes, bytes(15))
    raises(ValueError, aes.PureAes, bytes(32))
    cipher = aes.PureAes(bytes(16))
    raises(ValueError, cipher.encrypt, bytes(17), bytearray(32))
    raises(ValueError, cipher.encrypt, bytes(32), bytearray(16))


def test_ctr_matches_sp800_38a_on_every_backend():
    for backend in aes.BACKENDS:
        for case in _vectors()["ctr"]:
            key = aes.CtrKey(h(case["key"]), backend)
            blocks = case["blocks"]
            source, target = ("plaintext", "ciphertext") if case["case"] == "F.5.1" else ("ciphertext", "plaintext")
            data = b"".join(h(b[source]) for b in blocks)
            expected = b"".join(h(b[target]) for b in blocks)
            assert key.keystream(h(case["initial_counter"])).xor(data) == expected, (backend, case["case"])
            keystream = key.keystream(h(case["initial_counter"])).xor(bytes(64))  # XOR with zeros
            assert keystream == b"".join(h(b["output_block"]) for b in blocks), (backend, case["case"])


# ---- the API --------------------------------------------------------------------------------------


def test_the_interpreter_has_the_expected_backends():
    assert aes.BACKEND == aes.BACKENDS[0] and aes.BACKENDS[-1] == "pure"
    assert aes.CtrKey(bytes(16)).backend == aes.BACKEND
    if IS_MICROPYTHON:
        try:
            import cryptolib  # noqa: F401
            has_cryptolib = True
        except ImportError:
            has_cryptolib = False
        assert ("cryptolib" in aes.BACKENDS) == has_cryptolib
        assert "cryptography" not in aes.BACKENDS
    else:  # cryptography is one of segbind's dependencies
        assert aes.BACKENDS == ("cryptography", "pure")


def test_calls_of_any_length_continue_one_keystream():
    case = _vectors()["ctr"][0]
    key_bytes, counter = h(case["key"]), h(case["initial_counter"])
    data = b"".join(h(b["plaintext"]) for b in case["blocks"]) + generated(b"tail", 61)  # 125 bytes
    cut_sets = ([], [0, 0, 125], [1], [15], [16], [17], [1, 2, 3, 4], [5, 21, 37, 64, 100, 124], list(range(0, 125, 7)))
    for backend in aes.BACKENDS:
        key = aes.CtrKey(key_bytes, backend)
        whole = key.keystream(counter).xor(data)
        assert whole[:64] == b"".join(h(b["ciphertext"]) for b in case["blocks"]), backend
        for cuts in cut_sets:
            for way in WAYS:
                assert _in_pieces(key.keystream(counter), data, cuts, way) == whole, (backend, cuts, way)


def test_xor_into_writes_exactly_its_range():
    for backend in aes.BACKENDS:
        key = aes.CtrKey(bytes(range(16)), backend)
        data = generated(b"range", 40)
        expected = key.keystream(bytes(16)).xor(data)
        out = bytearray(b"\xee" * 50)
        key.keystream(bytes(16)).xor_into(data, memoryview(out)[3:])  # a longer buffer, at an odd offset
        assert bytes(out) == b"\xee" * 3 + expected + b"\xee" * 7, backend
        raises(ValueError, key.keystream(bytes(16)).xor_into, data, bytearray(39))
        stream = key.keystream(bytes(16))
        assert stream.xor(b"") == b"" and stream.xor(data) == expected  # an empty call uses nothing


def test_next_counter_block_continues_the_keystream_from_a_whole_block():
    """One keystream over several pictures: each picture's IV is the counter block where the
    previous picture's keystream stopped, rounded up to a whole block."""
    key_bytes = generated(b"next key", 16)
    for backend in aes.BACKENDS:
        key = aes.CtrKey(key_bytes, backend)
        for start in (5, TWO_128 - 2):
            stream = key.keystream(_block(start))
            assert stream.next_counter_block() == _block(start)  # nothing used yet: the initial block
            counter = start
            for length in (1, 15, 16, 17, 0, 33, 40):
                data = generated(b"picture", length)
                # the picture through the shared keystream is what a fresh one from its IV gives
                assert stream.xor(data) == key.keystream(_block(counter)).xor(data), (backend, start, length)
                counter += (length + 15) // 16
                assert stream.next_counter_block() == _block(counter), (backend, start, length)
                assert stream.next_counter_block() == _block(counter)  # nothing used since: the same


def test_keys_counter_blocks_and_backends_are_checked():
    raises(ValueError, aes.CtrKey, bytes(15))
    raises(ValueError, aes.CtrKey, bytes(32))  # AES-256 is not this format's
    raises(ValueError, aes.CtrKey, bytes(16), "no-such-backend")
    for backend in aes.BACKENDS:
        key = aes.CtrKey(bytes(16), backend)
        raises(ValueError, key.keystream, bytes(15))
        raises(ValueError, key.keystream, bytes(17))


# ---- counters and generated cases -------------------------------------------------------------------


def test_counter_wraps_at_2_128_and_carries_across_words():
    key = generated(b"carry key", 16)
    starts = (TWO_128 - 3, TWO_128 - 1, (1 << 32) - 2, (1 << 64) - 1, (1 << 96) - 2, 0xFFFFFFFF << 32)
    data = generated(b"carry data", 16 * 5 + 9)
    for start in starts:
        expected = _by_definition(key, _block(start), data)
        if not IS_MICROPYTHON:
            assert expected == _reference(key, _block(start), data), hex(start)  # the definition is OpenSSL's
        for backend in aes.BACKENDS:
            stream = aes.CtrKey(key, backend).keystream(_block(start))
            assert stream.xor(data[:33]) + stream.xor(data[33:]) == expected, (backend, hex(start))


def test_every_backend_matches_the_reference_on_generated_cases():
    for i in range(6):
        seed = ("case %d" % i).encode()
        key = generated(seed + b" key", 16)
        if i % 3 == 0:  # wrap-around inside the data
            start = TWO_128 - 1 - generated(seed + b" back", 1)[0] % 40
        else:
            start = int.from_bytes(generated(seed + b" counter", 16), "big")
        size = (300 + 997 * i) * SCALE  # past the 4 KB and 16 KB chunks on CPython
        data = generated(seed + b" data", size)
        r = generated(seed + b" cuts", 8)
        cuts = [r[j] * size // 256 for j in range(8)]
        expected = _reference(key, _block(start), data)
        for backend in aes.BACKENDS:
            key_object = aes.CtrKey(key, backend)
            assert key_object.keystream(_block(start)).xor(data) == expected, (backend, i)
            assert _in_pieces(key_object.keystream(_block(start)), data, cuts, WAYS[i % 3]) == expected, (backend, i)


def test_a_chunk_boundary_inside_a_call_and_inside_a_block():
    """One call across the backend's chunk of counter blocks, another ending mid-block there."""
    key = generated(b"chunk key", 16)
    for backend in aes.BACKENDS:
        chunk = 16 * (aes.CHUNK_BLOCKS_VIPER if backend == "cryptolib+viper" else aes.CHUNK_BLOCKS_INTEGERS)
        data = generated(b"chunk data", chunk + 40)
        expected = _reference(key, _block(TWO_128 - 2), data)
        stream = aes.CtrKey(key, backend).keystream(_block(TWO_128 - 2))
        assert stream.xor(data[:chunk - 7]) + stream.xor(data[chunk - 7:chunk + 9]) + stream.xor(
            data[chunk + 9:]) == expected, backend


def test_old_cryptography_update_into_path():
    """cryptography before 42 (Debian bookworm's 38 on the camera image) wants 15 spare output
    bytes; the head-then-tail path must give the same bytes."""
    if "cryptography" not in aes.BACKENDS:
        return  # MicroPython: no cryptography, nothing of this path runs there
    case = _vectors()["ctr"][0]
    data = b"".join(h(b["plaintext"]) for b in case["blocks"]) + generated(b"old", 100)
    expected = _reference(h(case["key"]), h(case["initial_counter"]), data)
    with patched(aes, "_EXACT_UPDATE_INTO", False):
        key = aes.CtrKey(h(case["key"]), "cryptography")
        for cuts in ([], [1], [14], [15], [16], [17], [3, 30, 31, 100]):
            for way in ("in place", "apart"):
                assert _in_pieces(key.keystream(h(case["initial_counter"])), data, cuts, way) == expected, (cuts, way)
