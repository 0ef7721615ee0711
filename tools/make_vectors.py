"""Generate tests/vectors/segbind_v1.json by running segbind's core on real MicroPython.

    python3 tools/make_vectors.py            # (re)write tests/vectors/segbind_v1.json
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
    return hashlib.sha256(b"segbind/v1 test vector device secret: " + label).digest()


def _ff(value):
    return b"\xff" * (value // 255) + bytes((value % 255,))


def _synthetic_units():
    """Hand-made NAL units, escaped as in a bitstream: AUD, SPS, PPS, x264 SEI, IDR, filler, P."""
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


def _annexb(units, four_byte=(0, 1)):
    """Annex-B with 4-byte start codes before the units at ``four_byte``, 3-byte elsewhere."""
    out = b""
    for i, unit in enumerate(units):
        out += (b"\x00\x00\x00\x01" if i in four_byte else b"\x00\x00\x01") + unit
    return out


def _segment_vector(name, comment, secret, owner, camera, epoch, tagger, units, capture_ms):
    from segbind_core.nal import annexb_units
    from segbind_core.sei import build_sei_nal
    from segbind_core.tag import content_digest
    buf = _annexb(units)
    offsets = annexb_units(buf)
    assert [bytes(buf[s:e]) for s, e in offsets] == list(units)
    stream_id, seq, link = tagger.stream_id, tagger.seq, tagger.link
    digest = content_digest(buf, offsets)
    tagged, tag = tagger.tag_annexb(buf, offsets, capture_ms)
    body = tag.encode()
    return {
        "name": name,
        "comment": comment,
        "device_secret": secret.hex(),
        "owner": owner,
        "camera": camera,
        "epoch": epoch,
        "binding_key": tagger._key.hex(),
        "stream_id": stream_id,
        "seq": seq,
        "capture_ms": capture_ms,
        "link": link.hex(),
        "units": [u.hex() for u in units],
        "segment": buf.hex(),
        "content_digest": digest.hex(),
        "signed_fields": tag.signed_fields().hex(),
        "mac": tag.mac.hex(),
        "tag_body": body.hex(),
        "sei_nal": build_sei_nal(body).hex(),
        "tagged_segment": tagged.hex(),
    }


def compute():
    """Every vector, computed by segbind_core on the running interpreter."""
    from segbind_core.keys import derive_binding_key, derive_control_key
    from segbind_core.tagger import Tagger

    keys = []
    key_cases = [
        ("ascii", b"1", "alice", "cam-1", 1),
        ("utf8_ids", b"2", "zo\u00eb", "\u30ab\u30e1\u30e9-1", 7),
        ("32_byte_ids_max_epoch", b"3", "\u00e9" * 16, "camera-0123456789abcdef-01234567", 0xFFFFFFFF),
        ("epoch_0_one_byte_ids", b"4", "o", "c", 0),
    ]
    for name, label, owner, camera, epoch in key_cases:
        secret = _secret(label)
        keys.append({
            "name": name,
            "device_secret": secret.hex(),
            "owner": owner,
            "camera": camera,
            "epoch": epoch,
            "binding_key": derive_binding_key(secret, owner, camera, epoch).hex(),
            "control_key": derive_control_key(secret, camera).hex(),
        })

    idr_rbsp, named = _synthetic_units()
    units = [u for _, u in named]
    segments = []

    secret = _secret(b"1")
    key = derive_binding_key(secret, "alice", "cam-1", 1)
    tagger = Tagger(key, "alice", "cam-1", 1, 1767225600)
    segments.append(_segment_vector(
        "synthetic_segment",
        "AUD, SPS, PPS, x264 user-data SEI, IDR (emulation-prevention bytes), filler, P slice; "
        "first segment of a stream (genesis link); the tag goes after the AUD",
        secret, "alice", "cam-1", 1, tagger, units, 1767225600123))

    secret = _secret(b"3")
    owner, camera, epoch = "\u00e9" * 16, "camera-0123456789abcdef-01234567", 0xFFFFFFFF
    key = derive_binding_key(secret, owner, camera, epoch)
    top = (1 << 64) - 1
    tagger = Tagger(key, owner, camera, epoch, top, seq=top, link=_h("0123456789abcdef"))
    segments.append(_segment_vector(
        "large_varints_longest_body",
        "32-byte ids, epoch 2^32-1, stream id, seq and capture time 2^64-1 (10-byte varints): "
        "the longest tag body, 131 bytes; no AUD, so the tag comes first",
        secret, owner, camera, epoch, tagger, units[1:5], top))

    secret = _secret(b"4")
    key = derive_binding_key(secret, "o", "c", 0)
    tagger = Tagger(key, "o", "c", 0, 0)
    chain = [
        _segment_vector(
            "chain_segment_0",
            "epoch, stream id, seq and capture time 0: the zero varints make the SEI need "
            "emulation prevention",
            secret, "o", "c", 0, tagger, units[1:5], 0),
        _segment_vector(
            "chain_segment_1",
            "the next segment of the same stream: seq 1, link = first 8 bytes of segment 0's MAC",
            secret, "o", "c", 0, tagger, [units[0], units[6]], 40),
    ]

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
    "name", "comment", "version", "machine", "build", "platform", "device_secret", "owner",
    "camera", "epoch", "binding_key", "control_key", "stream_id", "seq", "capture_ms", "link",
    "units", "segment", "content_digest", "signed_fields", "mac", "tag_body", "sei_nal",
    "tagged_segment", "segments",
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
            "description": "segbind v1 test vectors (docs/FORMAT.md): keys, content digests, tag "
                           "bodies, SEI NAL units and tagged Annex-B segments. Hex strings; "
                           "ids are text (UTF-8 on the wire).",
            "generator": GENERATOR,
            "interpreter": interpreter,
            "harness": "tests/micropython/run.mjs (npm @micropython/micropython-webassembly-pyscript)",
            "date": date,
            "checked_by": "tests/test_vectors.py (independent implementation) and "
                          "tests/core/test_core_vectors.py (the core, on CPython and MicroPython)",
        },
    }
    for key in ("idr_rbsp", "keys", "segments", "chains"):
        doc[key] = computed.pop(key)
    if computed:
        raise SystemExit("unexpected fields %s" % sorted(computed))
    return doc


def main(argv):
    import datetime
    import json
    from pathlib import Path
    out = Path(__file__).resolve().parent.parent / "tests" / "vectors" / "segbind_v1.json"
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
