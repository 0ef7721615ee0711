"""Slice headers and picture order against FFmpeg, on streams of real encoders and on
hand-made streams of what no encoder in reach writes.

Oracles (tests/support/trace_headers.py): FFmpeg's trace_headers (where each slice's
data begins and every header field), FFmpeg's decoder (the picture order counts it
derives) and PyAV's decoder (the order in which it outputs pictures). Streams: Debian's
ffmpeg with its libx264 and libx265, PyAV's own, and _syntax_writer's (field pictures, POC
type 1, MMCO 5, long-term references, slice groups, SP/SI, H.265 long-term pictures,
dependent slice segments, tiles, header extensions...).

These tests need ffmpeg and PyAV: on MicroPython they return at once.
tests/device/test_micropython.py runs the core on the real VM over the same kinds of
streams and compares every result with CPython's.
"""

from _support import IS_MICROPYTHON
from _syntax_writer import H264_HEADER_CASES, H265_HEADER_CASES, B, H264Stream, H265Stream, I, P, stored_bytes

from segbind_core import h264, h265
from segbind_core.nal import annexb_units, to_annexb

# x264 settings (Debian's ffmpeg): name, ffmpeg arguments
X264 = [
    ("cabac b-pyramid", ("-x264-params", "bframes=3:b-pyramid=normal:ref=4")),
    ("cavlc baseline", ("-profile:v", "baseline")),
    ("cavlc b-frames", ("-x264-params", "cabac=0:bframes=2:b-pyramid=strict")),
    ("weighted", ("-x264-params", "weightp=2:weightb=1:bframes=3:ref=6")),
    ("four slices", ("-x264-params", "slices=4:bframes=2")),
    ("mbaff", ("-x264-params", "interlaced=1:bframes=2")),
    ("ildct tff", ("-flags", "+ildct+ilme", "-x264-params", "tff=1:bframes=2")),
    ("bff cavlc", ("-x264-params", "bff=1:cabac=0:bframes=1")),
    ("intra refresh", ("-x264-params", "intra-refresh=1:keyint=10")),
    ("8x8dct", ("-x264-params", "8x8dct=1:bframes=1")),
    ("16 references", ("-x264-params", "ref=16:bframes=0")),
    ("no b-frames", ("-x264-params", "bframes=0")),
    ("4:4:4", ("-pix_fmt", "yuv444p", "-x264-params", "bframes=2")),
    ("4:0:0", ("-pix_fmt", "gray", "-x264-params", "bframes=2:weightp=2")),
    ("10 bits", ("-pix_fmt", "yuv420p10le", "-x264-params", "bframes=2")),
]

# x265 settings (Debian's ffmpeg): name, keyword arguments of clips.encode_ffmpeg_h265
X265 = [
    ("closed gop", dict(gop=10, bframes=4)),
    ("open gop", dict(gop=10, bframes=4, open_gop=True)),
    ("wpp", dict(bframes=2, x265="wpp=1")),
    ("three slices", dict(bframes=2, slices=3, ctu=16)),
    ("wpp and slices", dict(slices=2, ctu=16, x265="wpp=1")),
    ("no sao", dict(bframes=2, x265="sao=0")),
    ("weighted", dict(bframes=3, x265="weightp=1:weightb=1")),
    ("b-pyramid", dict(gop=10, bframes=3, x265="b-pyramid=1:ref=4")),
    ("temporal layers", dict(bframes=3, x265="temporal-layers=1")),
    ("poc lsb of 16 bits", dict(bframes=2, x265="log2-max-poc-lsb=16")),
    ("no tmvp", dict(bframes=2, x265="tmvp=0")),
    ("lossless", dict(x265="lossless=1")),
    ("fields", dict(bframes=2, x265="interlace=tff")),
    ("hrd in the vui", dict(bframes=2, x265="hrd=1:vbv-bufsize=500:vbv-maxrate=500")),
    ("720p wpp: headers over 64 bytes", dict(frames=4, width=1280, height=720, bframes=1, ctu=16, x265="wpp=1")),
]


def real_streams(codec):
    """(name, Annex-B) of real encoders for ``codec`` ("h264" or "hevc")."""
    from host_sim import clips

    if codec == "h264":
        out = [(name, clips.encode_ffmpeg(frames=30, extra=extra)) for name, extra in X264]
        out.append(("pyav", clips.encode_pyav(frames=30, bframes=2, slices=2)))
        return out
    out = [(name, clips.encode_ffmpeg_h265(**dict(dict(frames=30), **kw))) for name, kw in X265]
    out.append(("pyav open gop", clips.encode_pyav_h265(frames=30, gop=8, bframes=3, open_gop=True, slices=2,
                                                       ctu=16)))
    for pix_fmt in ("yuv444p", "gray", "yuv420p10le"):
        out.append((pix_fmt, _ffmpeg_h265(pix_fmt)))
    return out


def _ffmpeg_h265(pix_fmt):
    import subprocess

    return subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=192x112:rate=25",
                           "-frames:v", "20", "-pix_fmt", pix_fmt, "-c:v", "libx265", "-preset", "veryfast",
                           "-x265-params", "bframes=2:log-level=error", "-f", "hevc", "-"],
                          check=True, capture_output=True).stdout


def read_stream(data, codec):
    """Every slice of an Annex-B stream, in decoding order: (unit, header, POC, order key, top,
    bottom), the last four from the counter for the first slice of each picture, else None."""
    syntax = h264 if codec == "h264" else h265
    params = syntax.ParameterSets()
    counter = syntax.PocCounter(params)
    out = []
    for s, e in annexb_units(data):
        unit = data[s:e]
        kind = syntax.nal_type(unit[0])
        if (kind in (1, 5)) if codec == "h264" else kind < 32:
            header = syntax.parse_slice_header(unit, params)
            if header.first_in_picture:
                poc = counter.count(header)
                fields = (counter.top, counter.bottom) if codec == "h264" else (poc, poc)
                out.append((unit, header, poc, counter.order_key) + fields)
            else:
                out.append((unit, header, None, None, None, None))
        elif codec == "hevc" and kind == h265.NAL_END_OF_SEQUENCE:
            counter.end_of_sequence()
        else:
            params.add(unit)
    return out


# trace_headers' element -> what the parser says, for the fields a verifier or camera uses
H264_FIELDS = {
    "nal_ref_idc": lambda hd: hd.nal_ref_idc,
    "first_mb_in_slice": lambda hd: hd.first_mb_in_slice,
    "slice_type": lambda hd: hd.slice_type,
    "pic_parameter_set_id": lambda hd: hd.pps_id,
    "frame_num": lambda hd: hd.frame_num,
    "field_pic_flag": lambda hd: int(hd.field_pic),
    "bottom_field_flag": lambda hd: int(hd.bottom_field),
    "idr_pic_id": lambda hd: hd.idr_pic_id,
    "pic_order_cnt_lsb": lambda hd: hd.poc_lsb,
    "delta_pic_order_cnt_bottom": lambda hd: hd.delta_poc_bottom,
    "delta_pic_order_cnt[0]": lambda hd: hd.delta_poc_0,
    "delta_pic_order_cnt[1]": lambda hd: hd.delta_poc_1,
    "redundant_pic_cnt": lambda hd: hd.redundant_pic_cnt,
    "num_ref_idx_l0_active_minus1": lambda hd: hd.num_ref_idx_l0_active - 1,
    "num_ref_idx_l1_active_minus1": lambda hd: hd.num_ref_idx_l1_active - 1,
    "no_output_of_prior_pics_flag": lambda hd: int(hd.no_output_of_prior_pics),
    "long_term_reference_flag": lambda hd: int(hd.long_term_reference),
    "adaptive_ref_pic_marking_mode_flag": lambda hd: int(hd.adaptive_ref_pic_marking),
    "cabac_init_idc": lambda hd: hd.cabac_init_idc,
    "slice_qp_delta": lambda hd: hd.slice_qp_delta,
    "slice_qs_delta": lambda hd: hd.slice_qs_delta,
    "disable_deblocking_filter_idc": lambda hd: hd.disable_deblocking_filter_idc,
    "slice_alpha_c0_offset_div2": lambda hd: hd.slice_alpha_c0_offset_div2,
    "slice_beta_offset_div2": lambda hd: hd.slice_beta_offset_div2,
    "slice_group_change_cycle": lambda hd: hd.slice_group_change_cycle,
    "colour_plane_id": lambda hd: hd.colour_plane_id,
}
H265_FIELDS = {
    "first_slice_segment_in_pic_flag": lambda hd: int(hd.first_in_picture),
    "no_output_of_prior_pics_flag": lambda hd: int(hd.no_output_of_prior_pics),
    "slice_pic_parameter_set_id": lambda hd: hd.pps_id,
    "dependent_slice_segment_flag": lambda hd: int(hd.dependent),
    "slice_segment_address": lambda hd: hd.address,
    "slice_type": lambda hd: hd.slice_type,
    "pic_output_flag": lambda hd: int(hd.pic_output_flag),
    "slice_pic_order_cnt_lsb": lambda hd: hd.poc_lsb,
    "short_term_ref_pic_set_idx": lambda hd: hd.st_rps_idx or 0,
    "slice_temporal_mvp_enabled_flag": lambda hd: int(hd.temporal_mvp),
    "slice_sao_luma_flag": lambda hd: int(hd.sao_luma),
    "slice_sao_chroma_flag": lambda hd: int(hd.sao_chroma),
    "num_ref_idx_l0_active_minus1": lambda hd: hd.num_ref_idx_l0_active - 1,
    "num_ref_idx_l1_active_minus1": lambda hd: hd.num_ref_idx_l1_active - 1,
    "mvd_l1_zero_flag": lambda hd: int(hd.mvd_l1_zero),
    "cabac_init_flag": lambda hd: int(hd.cabac_init),
    "collocated_from_l0_flag": lambda hd: int(hd.collocated_from_l0),
    "collocated_ref_idx": lambda hd: hd.collocated_ref_idx,
    "five_minus_max_num_merge_cand": lambda hd: 5 - hd.max_num_merge_cand,
    "slice_qp_delta": lambda hd: hd.slice_qp_delta,
    "slice_cb_qp_offset": lambda hd: hd.slice_cb_qp_offset,
    "slice_cr_qp_offset": lambda hd: hd.slice_cr_qp_offset,
    "cu_chroma_qp_offset_enabled_flag": lambda hd: int(hd.cu_chroma_qp_offset_enabled),
    "slice_deblocking_filter_disabled_flag": lambda hd: int(hd.deblocking_filter_disabled),
    "slice_beta_offset_div2": lambda hd: hd.beta_offset_div2,
    "slice_tc_offset_div2": lambda hd: hd.tc_offset_div2,
    "slice_loop_filter_across_slices_enabled_flag": lambda hd: int(hd.loop_filter_across_slices),
    "num_entry_point_offsets": lambda hd: hd.num_entry_points,
    "offset_len_minus1": lambda hd: hd.offset_len - 1,
    "slice_segment_header_extension_length": lambda hd: hd.extension_length,
}


def check_headers(data, codec, name=""):
    """Every slice header of ``data`` as trace_headers reads it: where slice data begins (bits
    and stored bytes) and each field above; MMCO 5 and the number of long-term pictures.
    Returns read_stream's result."""
    from tests.support.trace_headers import traced_slices

    slices = read_stream(data, codec)
    traced = traced_slices(data, codec)
    assert len(traced) == len(slices), (name, len(traced), len(slices))
    fields = H264_FIELDS if codec == "h264" else H265_FIELDS
    for index, ((unit, header, *_), trace) in enumerate(zip(slices, traced)):
        where = (name, index, unit[:6].hex())
        assert header.header_bits == trace.end_bit, where + (header.header_bits, trace.end_bit)
        assert header.header_bytes == stored_bytes(unit, trace.end_bit), where
        for element, value in trace.values().items():
            if element in fields:
                assert fields[element](header) == value, where + (element, value, fields[element](header))
        names = [e[1] for e in trace.elements]
        if codec == "h264":
            mmcos = [e[3] for e in trace.elements if e[1] == "memory_management_control_operation"]
            assert header.mmco5 == (5 in mmcos), where
        else:
            long_term = trace.value("num_long_term_sps", 0) + trace.value("num_long_term_pics", 0)
            assert header.num_long_term == long_term, where
            assert header.dependent == ("slice_type" not in names), where
    return slices


def frames_of(slices):
    """The pictures of read_stream's slices grouped into the frames a decoder outputs: a frame
    picture alone, or the two fields of a frame (H.264: opposite parity, same frame_num)."""
    frames = []
    pictures = [(index, s[1]) for index, s in enumerate([s for s in slices if s[2] is not None])]
    for index, header in pictures:
        last = frames[-1] if frames else None
        if (getattr(header, "field_pic", False) and last is not None and len(last) == 1
                and last[0][1].field_pic and last[0][1].bottom_field != header.bottom_field
                and last[0][1].frame_num == header.frame_num and not header.idr):
            last.append((index, header))
        else:
            frames.append([(index, header)])
    return [[index for index, _h in frame] for frame in frames]


def check_order(data, codec, slices, name=""):
    """The counter's POCs against FFmpeg's decoder, and the output ranks against PyAV's output
    order (each frame: the decoding index of its first picture)."""
    from tests.support.trace_headers import decoded_pocs, output_order

    pictures = [s for s in slices if s[2] is not None]
    ranks = (h264 if codec == "h264" else h265).output_ranks([s[3] for s in pictures])
    frames = frames_of(slices)
    ranked = sorted((min(ranks[i] for i in frame if ranks[i] is not None), frame[0])
                    for frame in frames if any(ranks[i] is not None for i in frame))
    assert output_order(data, codec) == [first for _rank, first in ranked], name
    decoded = decoded_pocs(data, codec)
    if codec == "hevc":  # FFmpeg skips the RASL pictures of a CRA that starts decoding
        mine = [s[2] for s in pictures if s[3] is not None or not h265.is_rasl(s[1].nal_unit_type)]
        assert [top for top, _bottom in decoded] == mine, name
        return
    assert len(decoded) == len(pictures), name
    offset = None  # FFmpeg's counts differ from H.264's by a constant from each IDR or MMCO 5 on
    for (unit, header, poc, _key, top, bottom), theirs in zip(pictures, decoded):
        if header.idr:
            offset = None
        mine = [value for value in (top, bottom) if value is not None]
        if header.mmco5:  # the counter gives the counts after the reset; FFmpeg, the ones before
            mine = [value + poc for value in mine]
        theirs = [theirs[1]] if header.bottom_field else [theirs[0]] if header.field_pic else list(theirs)
        if offset is None:
            offset = theirs[0] - mine[0]
        assert [value - offset for value in theirs] == mine, (name, unit[:6].hex(), theirs, mine, offset)
        if header.mmco5:
            offset = None


def test_h264_slice_headers_of_real_encoders_match_trace_headers():
    if IS_MICROPYTHON:
        return
    seen = set()
    for name, data in real_streams("h264"):
        for _unit, header, *_ in check_headers(data, "h264", name):
            sps, pps = header.sps, header.pps
            seen |= {"poc type %d" % sps.poc_type, "cabac" if pps.entropy_coding_mode else "cavlc",
                     "chroma %d" % sps.chroma_array_type, "slice kind %d" % header.slice_kind}
            if sps.mb_adaptive_frame_field:
                seen.add("mbaff")
            if header.slice_kind == h264.SLICE_B and header.nal_ref_idc:
                seen.add("B used as reference")
            if header.adaptive_ref_pic_marking:
                seen.add("mmco")
            if not header.first_in_picture:
                seen.add("slices")
            if pps.weighted_pred and header.slice_kind == h264.SLICE_P:
                seen.add("weight table")
            if header.num_ref_idx_l0_active > 8:
                seen.add("many references")
            if header.header_bytes > (header.header_bits + 7) // 8:
                seen.add("emulation prevention in the header")  # x264 with ref=16 writes such headers
    # x264 writes no field pictures (MBAFF only), no POC type 1, no MMCO 5, no long-term
    # references: the hand-made streams below have them
    assert seen >= {"poc type 0", "poc type 2", "cabac", "cavlc", "chroma 0", "chroma 1", "chroma 3",
                    "slice kind 0", "slice kind 1", "slice kind 2", "mbaff", "B used as reference", "mmco",
                    "slices", "weight table", "many references", "emulation prevention in the header"}, seen


def test_h265_slice_headers_of_real_encoders_match_trace_headers():
    if IS_MICROPYTHON:
        return
    seen = set()
    for name, data in real_streams("hevc"):
        slices = check_headers(data, "hevc", name)
        for _unit, header, *_ in slices:
            seen.add("rps in sps" if header.st_rps_idx is not None else "rps in header")
            seen.add("entry points" if header.num_entry_points else "no entry points")
            seen.add("slice %d" % header.slice_type)
            seen.add("tid %d" % min(header.temporal_id, 1))
            seen.add("nal %d" % header.nal_unit_type)
    # x265 codes every reference picture set in the slice headers (none in its SPS) and writes
    # IDR_N_LP: the hand-made headers below cover the SPS's sets and IDR_W_RADL
    for wanted in ("rps in header", "entry points", "slice 0", "slice 1", "slice 2", "tid 1",
                   "nal 2", "nal 8", "nal 9", "nal 20", "nal 21"):
        assert wanted in seen, (wanted, sorted(seen))


def test_picture_order_of_real_encoders_matches_ffmpeg():
    if IS_MICROPYTHON:
        return
    for codec in ("h264", "hevc"):
        for name, data in real_streams(codec):
            check_order(data, codec, read_stream(data, codec), name)


def test_hand_made_h264_slice_headers_match_trace_headers():
    """Every feature of H264_HEADER_CASES after an IDR picture. FFmpeg decodes neither slice
    groups nor separate colour planes: a plain picture under parameter sets of id 1 comes
    first, so that it knows the picture size and copies the stream."""
    if IS_MICROPYTHON:
        return
    plain = H264Stream(sps_id=1, pps_id=1)
    for settings, fields in H264_HEADER_CASES:
        stream = H264Stream(**settings)
        fields = dict(fields)
        kind = fields.pop("kind")
        units = [plain.sps(), plain.pps(), plain.slice(I, idr=True)[0], stream.sps(), stream.pps()]
        if not fields.get("idr"):
            units.append(stream.slice(I, idr=True, colour_plane=fields.get("colour_plane", 0))[0])
        units.append(stream.slice(kind, **fields)[0])
        check_headers(to_annexb(units), "h264", repr((settings, fields)))


def test_hand_made_h265_slice_headers_match_trace_headers():
    """Every feature of H265_HEADER_CASES after an IDR picture (a slice segment that is not a
    picture's first comes after that picture's first)."""
    if IS_MICROPYTHON:
        return
    for settings, fields in H265_HEADER_CASES:
        stream = H265Stream(**settings)
        fields = dict(fields)
        kind = fields.pop("kind")
        units = [stream.vps(), stream.sps(), stream.pps()]
        if fields.get("nal_type", 1) not in (19, 20):
            units.append(stream.slice(2, nal_type=19)[0])
        if fields.get("first") is False:
            first = dict(fields, first=True, address=0, dependent=False, entry_points=())
            if kind != 2:
                first.setdefault("rps", ("explicit", [(-1, 1)], []))
            units.append(stream.slice(kind, **first)[0])
        units.append(stream.slice(kind, **fields)[0])
        check_headers(to_annexb(units), "hevc", repr((settings, fields)))


def write_pictures(stream, pictures):
    """An Annex-B stream of ``stream``'s SPS, PPS and one slice for each (kind, fields)."""
    return to_annexb([stream.sps(), stream.pps()] + [stream.slice(kind, **fields)[0] for kind, fields in pictures])


# Hand-made H.264 sequences FFmpeg decodes: field pairs and frames mixed, POC types 0, 1 and 2,
# MMCO 5, long-term references and reference list changes. Each picture: (kind, slice fields).
SEQUENCES = [
    ("type 0, fields and MMCO 5", dict(frame_mbs_only=0, log2_max_poc_lsb=5), [
        (I, dict(idr=True, field="top", poc_lsb=0, ref_idc=3)),
        (P, dict(field="bottom", poc_lsb=1, ref_idc=3)),
        (P, dict(frame_num=1, field="top", poc_lsb=8)),
        (P, dict(frame_num=1, field="bottom", poc_lsb=9)),
        (B, dict(frame_num=2, field="bottom", poc_lsb=5, ref_idc=0)),
        (B, dict(frame_num=2, field="top", poc_lsb=4, ref_idc=0)),
        (P, dict(frame_num=2, poc_lsb=16)),
        (B, dict(frame_num=3, poc_lsb=12, ref_idc=0)),
        (P, dict(frame_num=3, poc_lsb=24, mmcos=((5,),))),
        (P, dict(frame_num=1, poc_lsb=4)),
        (B, dict(frame_num=2, poc_lsb=2, ref_idc=0)),
        (P, dict(frame_num=2, field="top", poc_lsb=8)),
        (P, dict(frame_num=2, field="bottom", poc_lsb=9)),
        (I, dict(idr=True, poc_lsb=0, idr_pic_id=1)),
        (P, dict(frame_num=1, poc_lsb=2)),
    ]),
    ("type 0, bottom field counts", dict(log2_max_poc_lsb=4, bottom_field_pic_order_in_frame_present=1), [
        (I, dict(idr=True, poc_lsb=0, delta_bottom=1)),
        (P, dict(frame_num=1, poc_lsb=6, delta_bottom=1)),
        (B, dict(frame_num=2, poc_lsb=2, ref_idc=0, delta_bottom=1)),
        (P, dict(frame_num=2, poc_lsb=12, delta_bottom=-1)),
        (P, dict(frame_num=3, poc_lsb=2)),  # 12 -> 2 wraps: 18
        (B, dict(frame_num=4, poc_lsb=15, ref_idc=0)),
    ]),
    ("type 1", dict(poc_type=1, frame_mbs_only=0, offsets_for_ref_frame=(4,), offset_for_non_ref_pic=-2,
                    offset_for_top_to_bottom_field=1, delta_pic_order_always_zero=1), [
        (I, dict(idr=True)),
        (P, dict(frame_num=1)),
        (B, dict(frame_num=2, ref_idc=0)),
        (P, dict(frame_num=2)),
        (B, dict(frame_num=3, ref_idc=0)),
        (P, dict(frame_num=3, field="top")),
        (P, dict(frame_num=3, field="bottom")),
        (B, dict(frame_num=4, field="top", ref_idc=0)),
        (B, dict(frame_num=4, field="bottom", ref_idc=0)),
        (P, dict(frame_num=4, mmcos=((5,),))),
        (P, dict(frame_num=1)),
        (B, dict(frame_num=2, ref_idc=0)),
    ]),
    ("type 1, deltas", dict(poc_type=1, offsets_for_ref_frame=(2, 6, 1), offset_for_non_ref_pic=-1,
                            offset_for_top_to_bottom_field=2, bottom_field_pic_order_in_frame_present=1,
                            log2_max_frame_num=4, reorder=3), [
        (I, dict(idr=True, delta1=-2)),                   # 0 (bottom 0 + 2 - 2)
        (P, dict(frame_num=1, delta0=5)),                 # 2 + 5
        (B, dict(frame_num=2, ref_idc=0, delta0=1)),      # 2 - 1 + 1
        (P, dict(frame_num=2, delta0=2, delta1=1)),       # 8 + 2
        (P, dict(frame_num=3, delta0=4)),                 # 9 + 4
        (B, dict(frame_num=4, ref_idc=0, delta0=-2)),     # 9 - 1 - 2
    ] + [(P, dict(frame_num=n % 16)) for n in range(4, 20)]),  # 11, 17, 18, 20... across a wrap
    ("type 2", dict(poc_type=2, frame_mbs_only=0, log2_max_frame_num=4), [
        (I, dict(idr=True, field="bottom")),
        (P, dict(field="top")),
        (P, dict(frame_num=1)),
        (P, dict(frame_num=2, ref_idc=0)),
        (P, dict(frame_num=2, field="top")),
        (P, dict(frame_num=2, field="bottom")),
        (P, dict(frame_num=3, mmcos=((5,),))),
        (P, dict(frame_num=1)),
    ] + [(P, dict(frame_num=n % 16)) for n in range(2, 20)]),
    ("long-term references", dict(log2_max_poc_lsb=5, max_num_ref_frames=4), [
        (I, dict(idr=True, long_term_reference=1)),
        (P, dict(frame_num=1, poc_lsb=2, mmcos=((4, 2), (6, 1)))),
        (P, dict(frame_num=2, poc_lsb=4, l0=2, modifications=(((2, 0),), ()))),
        (P, dict(frame_num=3, poc_lsb=6, mmcos=((3, 0, 0),))),
        (P, dict(frame_num=4, poc_lsb=10, mmcos=((2, 1), (1, 0)))),
        (B, dict(frame_num=5, poc_lsb=8, ref_idc=0)),
        (P, dict(frame_num=5, poc_lsb=12, l0=2, modifications=(((0, 0), (2, 0)), ()))),
    ]),
]


def test_hand_made_h264_pictures_are_read_and_ordered_as_ffmpeg_does():
    if IS_MICROPYTHON:
        return
    for name, settings, pictures in SEQUENCES:
        data = write_pictures(H264Stream(**settings), pictures)
        slices = check_headers(data, "h264", name)
        check_order(data, "h264", slices, name)
