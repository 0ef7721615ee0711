"""Generate tests/vectors/segbind_v2.json by running segbind's core on real MicroPython.

    python3 tools/make_vectors.py            # (re)write tests/vectors/segbind_v2.json
    python3 tools/make_vectors.py --check    # exit 1 unless the file matches a fresh run
    python3 tools/make_vectors.py --stdout   # print the vectors instead of writing them

Under CPython this script hands itself to tests/micropython/run.mjs, which runs
it on the MicroPython VM (WebAssembly build, under Node) with firmware/ on
sys.path; there ``compute()`` derives every output with segbind_core and
prints it as one JSON line. CPython only adds the date and writes the file, so
every byte in the vectors comes from the core as MicroPython runs it.
tests/test_vectors.py checks them against an independent implementation.

Keep this file MicroPython-compatible: no f-strings, no typing, CPython-only
imports inside the CPython branch.
"""

import sys

MARK = "SEGBIND_VECTORS "
GENERATOR = "tools/make_vectors.py"


def _h(text):
    return bytes.fromhex(text.replace(" ", ""))


def _secret(label):
    import hashlib
    return hashlib.sha256(b"segbind/v2 test vector pairing secret: " + label).digest()


def _ff(value):
    return b"\xff" * (value // 255) + bytes((value % 255,))


def _synthetic_units():
    """Hand-made H.264 NAL units, escaped as in a bitstream: AUD, SPS, PPS, x264 SEI, IDR, filler, P."""
    from segbind_core.nal import escape_rbsp
    x264_uuid = _h("dc45e9bde6d948b7962cd820d923eeef")
    x264_text = b"x264 - core 164 r3108 31e19f9 - H.264/MPEG-4 AVC codec - options: cabac=1\x00"
    x264_payload = x264_uuid + x264_text
    x264_rbsp = _ff(5) + _ff(len(x264_payload)) + x264_payload + b"\x80"
    # IDR slice data with every start-code emulation the escape must break up:
    # 00 00 00, 00 00 01, 00 00 02, 00 00 03 and a run of zeros.
    idr_rbsp = _h("888400 000000 0001 5a 000002 000003 c0ffee 00000000 2a 80")
    p_rbsp = _h("9a02 000001 23 80")
    return idr_rbsp, [
        ("aud", _h("09f0")),
        ("sps", _h("6742c01ed900a047fec8")),
        ("pps", _h("68ce3c80")),
        ("sei_x264", b"\x06" + escape_rbsp(x264_rbsp)),
        ("idr", b"\x65" + escape_rbsp(idr_rbsp)),
        ("filler", _h("0cffffff80")),
        ("p_slice", b"\x41" + escape_rbsp(p_rbsp)),
    ]


def _hevc_units():
    """Hand-made H.265 NAL units: AUD, VPS, SPS, PPS, x265 prefix SEI, IDR_W_RADL, TRAIL_R."""
    from segbind_core.nal import escape_rbsp
    x265_payload = _h("2ca2de09b51747dbbb55a4fe7fc2fc4e") + b"x265 (build 199) - 3.5\x00"
    return [
        _h("460150"),
        _h("40010c01ffff016000000300b0000003000003005d"),
        _h("420101016000000300b0000003000003005da00280802d16"),
        _h("4401c172b46240"),
        _h("4e01") + escape_rbsp(_ff(5) + _ff(len(x265_payload)) + x265_payload + b"\x80"),
        _h("2601") + escape_rbsp(_h("af 000000 0001 c0 000002 ee 80")),
        _h("0201") + escape_rbsp(_h("d0 1234 000003 56 80")),
    ]


def _canonical(units):
    return b"".join(b"\x00\x00\x00\x01" + u for u in units)


def _reframed(units):
    """The same units in another Annex-B framing: 3-byte start codes after the first,
    two trailing zero bytes after the first (a verifier puts it back into canonical form)."""
    out = b""
    for i, unit in enumerate(units):
        out += (b"\x00\x00\x00\x01" if i == 0 else b"\x00\x00\x01") + unit
        if i == 0:
            out += b"\x00\x00"
    return out


def _segment_vector(name, comment, pairing, epoch, tagger, units, capture_ms, duration_ms,
                    pictures, end=False):
    import hashlib

    from segbind_core.sei import build_sei_nal
    data = _canonical(units)
    stream_id, seq, link = tagger.stream_id, tagger.seq, tagger.link
    tagged, tag = tagger.tag(data, len(units), capture_ms, duration_ms, pictures, end)
    body = tag.encode()
    return {
        "name": name,
        "comment": comment,
        "pairing_secret": pairing.hex(),
        "owner": epoch.owner,
        "camera": epoch.camera,
        "epoch": epoch.epoch,
        "shares": epoch.shares,
        "codec": tag.codec,
        "stream_id": stream_id,
        "seq": seq,
        "capture_ms": capture_ms,
        "duration_ms": duration_ms,
        "pictures": pictures,
        "end_of_stream": end,
        "link": link.hex(),
        "units": [u.hex() for u in units],
        "segment": data.hex(),
        "reframed_segment": _reframed(units).hex(),
        "content_digest": hashlib.sha256(data).digest().hex(),
        "signed_fields": tag.signed_fields().hex(),
        "macs": [m.hex() for m in tag.macs],
        "tag_body": body.hex(),
        "sei_nal": build_sei_nal(body, tag.codec).hex(),
        "tagged_segment": tagged.hex(),
    }


def compute():
    """Every vector, computed by segbind_core on the running interpreter."""
    from segbind_core import control
    from segbind_core.keys import Epoch, command_key, slot_key
    from segbind_core.tag import CODEC_H265
    from segbind_core.tagger import Tagger

    keys = []
    key_cases = [
        ("ascii_no_shares", b"1", "alice", "cam-1", 1, []),
        ("utf8_ids_two_shares", b"2", "zo\u00eb", "\u30ab\u30e1\u30e9-1", 7, ["bob", "\u00e9ve"]),
        ("32_byte_ids_max_epoch_seven_shares", b"3", "\u00e9" * 16, "camera-0123456789abcdef-01234567",
         0xFFFFFFFF, ["s%d" % i for i in range(1, 8)]),
        ("one_byte_ids", b"4", "o", "c", 1, ["v"]),
    ]
    for name, label, owner, camera, number, shares in key_cases:
        pairing = _secret(label)
        epoch = Epoch.of_pairing(pairing, owner, camera, number, shares)
        keys.append({
            "name": name,
            "pairing_secret": pairing.hex(),
            "owner": owner,
            "camera": camera,
            "epoch": number,
            "shares": shares,
            "epoch_root": epoch.root.hex(),
            "slot_keys": [slot_key(epoch.root, s, holder).hex() for s, holder in enumerate(epoch.holders())],
            "command_key": command_key(pairing, owner, camera).hex(),
        })

    idr_rbsp, named = _synthetic_units()
    units = [u for _, u in named]
    segments = []

    pairing = _secret(b"1")
    epoch = Epoch.of_pairing(pairing, "alice", "cam-1", 1, ["bob"])
    tagger = Tagger(epoch, 1767225600000)
    segments.append(_segment_vector(
        "h264_segment",
        "AUD, SPS, PPS, x264 user-data SEI, IDR (emulation-prevention bytes), filler, P slice; "
        "first segment of a stream (genesis link); two slots (the owner, bob); the tag goes after "
        "the AUD", pairing, epoch, tagger, units, 1767225600123, 80, 2))

    pairing = _secret(b"3")
    epoch = Epoch.of_pairing(pairing, "\u00e9" * 16, "camera-0123456789abcdef-01234567", 0xFFFFFFFF,
                             ["s%d" % i for i in range(1, 8)])
    top = (1 << 64) - 1
    tagger = Tagger(epoch, top, seq=top, link=_h("0123456789abcdef"))
    segments.append(_segment_vector(
        "large_varints_longest_body",
        "32-byte ids, epoch 2^32-1, stream id, seq and capture time 2^64-1, eight slots: the "
        "longest tag body with four units (257 bytes; 261 at most, with 2^32-1 units); no AUD, so "
        "the tag comes first; the end of the stream",
        pairing, epoch, tagger, units[1:5], top, 0xFFFFFFFF, 0xFFFFFFFF, end=True))

    pairing = _secret(b"2")
    epoch = Epoch.of_pairing(pairing, "zo\u00eb", "\u30ab\u30e1\u30e9-1", 7, ["bob"])
    tagger = Tagger(epoch, 42, codec=CODEC_H265)
    segments.append(_segment_vector(
        "h265_segment",
        "H.265: AUD, VPS, SPS, PPS, x265 prefix SEI, IDR_W_RADL, TRAIL_R; the tag is a prefix SEI "
        "(4e 01) after the AUD", pairing, epoch, tagger, _hevc_units(), 1767225600500, 40, 1))

    pairing = _secret(b"4")
    epoch = Epoch.of_pairing(pairing, "o", "c", 1, [])
    tagger = Tagger(epoch, 0)
    chain = [
        _segment_vector(
            "chain_segment_0",
            "stream id, seq and capture time 0: the zero varints make the SEI need emulation "
            "prevention", pairing, epoch, tagger, units[1:5], 0, 40, 1),
        _segment_vector(
            "chain_segment_1",
            "the next segment of the same stream: seq 1, link = first 8 bytes of segment 0's digest",
            pairing, epoch, tagger, [units[0], units[6]], 40, 40, 1),
    ]

    pairing = _secret(b"1")
    key = command_key(pairing, "alice", "cam-1")
    rotate = {"counter": 5, "epoch": 4, "shares": ["bob", "carol"], "issued_ms": 1767225600000}
    release = {"counter": 6, "epoch": 0, "shares": [], "issued_ms": 1767225601000}
    result = {"counter": 5, "op": "rotate", "status": control.OK, "epoch": 4,
              "stream_id": 1767225600000, "seq": 17, "detail": ""}
    offer = {"expires_ms": 1767226200000}
    for op, fields in ((control.ROTATE, rotate), (control.RELEASE, release)):
        fields["encoded"] = control.Command(op, "cam-1", "alice", fields["counter"], fields["epoch"],
                                            fields["shares"], fields["issued_ms"]).encode(key).hex()
    result["encoded"] = control.Result("cam-1", "alice", result["counter"], control.ROTATE, result["status"],
                                       result["epoch"], result["stream_id"], result["seq"],
                                       result["detail"]).encode(key).hex()
    offer["encoded"] = control.PairingOffer("alice", "cam-1", pairing, offer["expires_ms"]).encode().hex()
    commands = {
        "pairing_secret": pairing.hex(),
        "owner": "alice",
        "camera": "cam-1",
        "command_key": key.hex(),
        "rotate": rotate,
        "release": release,
        "result": result,
        "pairing_offer": offer,
    }

    impl = sys.implementation
    return {
        "interpreter": {
            "name": impl.name,
            "version": ".".join(str(v) for v in impl.version[:3]),
            "machine": getattr(impl, "_machine", ""),
            "build": getattr(impl, "_build", ""),
            "platform": sys.platform,
        },
        "idr_rbsp": idr_rbsp.hex(),
        "keys": keys,
        "segments": segments,
        "chains": [{"name": "two_segment_chain", "segments": chain}],
        "commands": commands,
    }


# ---- CPython side --------------------------------------------------------------------

def _run_on_micropython():
    import json
    import subprocess
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run(
        ["node", str(root / "tests" / "micropython" / "run.mjs"), "exec", str(Path(__file__).resolve())],
        capture_output=True, timeout=300)
    lines = [l for l in proc.stdout.decode("utf-8").splitlines() if l.startswith(MARK)]
    if proc.returncode or len(lines) != 1:
        raise SystemExit("MicroPython run failed (exit %d):\n%s%s" % (
            proc.returncode, proc.stdout.decode(errors="replace")[-2000:],
            proc.stderr.decode(errors="replace")[-2000:]))
    return json.loads(lines[0][len(MARK):])


_FIELD_ORDER = [
    "name", "comment", "version", "machine", "build", "platform", "pairing_secret", "owner",
    "camera", "epoch", "shares", "epoch_root", "slot_keys", "command_key", "codec", "stream_id",
    "seq", "capture_ms", "duration_ms", "pictures", "end_of_stream", "link", "units", "segment",
    "reframed_segment", "content_digest", "signed_fields", "macs", "tag_body", "sei_nal",
    "tagged_segment", "segments", "rotate", "release", "result", "pairing_offer", "counter", "op",
    "status", "issued_ms", "detail", "expires_ms", "encoded",
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
            "description": "segbind format version 2 test vectors (docs/FORMAT.md): keys from a "
                           "pairing secret, canonical content digests, tag bodies with slot MACs, "
                           "SEI NAL units (H.264 and H.265), tagged Annex-B segments, commands, "
                           "results and a pairing offer. Hex strings; ids are text (UTF-8 on the wire).",
            "generator": GENERATOR,
            "interpreter": interpreter,
            "harness": "tests/micropython/run.mjs (npm @micropython/micropython-webassembly-pyscript)",
            "date": date,
            "checked_by": "tests/lib/test_vectors.py (an independent implementation with the "
                          "cryptography package) and tests/core/test_core_vectors.py (the core, on "
                          "CPython and MicroPython)",
        },
    }
    for key in ("idr_rbsp", "keys", "segments", "chains", "commands"):
        doc[key] = computed.pop(key)
    if computed:
        raise SystemExit("unexpected fields %s" % sorted(computed))
    return doc


def main(argv):
    import datetime
    import json
    from pathlib import Path
    out = Path(__file__).resolve().parent.parent / "tests" / "vectors" / "segbind_v2.json"
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
        print(MARK + json.dumps(compute()))
    else:
        sys.exit(main(sys.argv[1:]))
