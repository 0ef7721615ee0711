"""A bit writer and a small H.264 stream writer for tests: plain Python (CPython and MicroPython).

The stream writer makes what no encoder in reach writes (field pictures, POC type 1,
memory management control operation 5, long-term references, slice groups, SP and SI
slices, redundant pictures), whole and decodable: I slices of I_PCM macroblocks and P and
B slices of skipped macroblocks, CAVLC, so that slice data starts at any bit. It knows
where each slice header ends (``header_bits``): an independent reading of 7.3.3 that
tests compare with the parser, and that FFmpeg's trace_headers and decoder check in turn.
"""

from segbind_core.nal import escape_rbsp, unescape_rbsp


class BitWriter:
    """Bits written most significant first; ``len(w)`` is how many."""

    def __init__(self):
        self.out = bytearray()
        self.acc = 0
        self.count = 0

    def __len__(self):
        return len(self.out) * 8 + self.count

    def u(self, n, value):
        for k in range(n - 1, -1, -1):
            self.acc = (self.acc << 1) | ((value >> k) & 1)
            self.count += 1
            if self.count == 8:
                self.out.append(self.acc)
                self.acc = 0
                self.count = 0

    def ue(self, value):
        code = value + 1
        n = 0
        while code >> (n + 1):
            n += 1
        self.u(n, 0)
        self.u(n + 1, code)

    def se(self, value):
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def align(self, bit):
        while self.count:
            self.u(1, bit)

    def raw(self, data):
        """Whole bytes (the writer must be at a byte boundary)."""
        assert self.count == 0
        self.out += data

    def trailing(self):
        """rbsp_trailing_bits(), then the RBSP."""
        self.u(1, 1)
        self.align(0)
        return bytes(self.out)


def stored_bytes(unit, bits):
    """The fewest leading bytes of ``unit`` (as stored) whose unescaped form holds ``bits``
    bits: where a header of that many bits ends, found a byte at a time (an oracle for the
    parser's mapping of RBSP bits to stored bytes)."""
    count = 0
    while len(unescape_rbsp(unit[:count])) * 8 < bits:
        count += 1
    return count


def nal_unit(header, rbsp):
    """A NAL unit as stored: header bytes, then the escaped RBSP."""
    return bytes(header) + escape_rbsp(rbsp)


# slice_type % 5
P, B, I, SP, SI = 0, 1, 2, 3, 4


class H264Stream:
    """An H.264 SPS, PPS and slices of a tiny picture (``width`` x ``height`` macroblocks of a frame).

    Keyword settings name the SPS and PPS fields (see ``sps`` and ``pps``; ``reorder``: a
    VUI with max_num_reorder_frames); ``slice`` writes one slice. The pictures decode:
    I_PCM macroblocks in I slices, skipped macroblocks in P and B slices (spatial direct).
    """

    def __init__(self, width=2, height=2, **settings):
        self.width = width
        self.height = height  # frame height in macroblocks (even when fields are possible)
        s = dict(profile_idc=77, sps_id=0, pps_id=0, log2_max_frame_num=4, poc_type=0, log2_max_poc_lsb=5,
                 delta_pic_order_always_zero=0, offset_for_non_ref_pic=0, offset_for_top_to_bottom_field=0,
                 offsets_for_ref_frame=(2,), max_num_ref_frames=4, frame_mbs_only=1, mbaff=0,
                 chroma_format_idc=1, separate_colour_plane=0, bottom_field_pic_order_in_frame_present=0,
                 slice_groups=1, slice_group_map_type=4, slice_group_change_rate=1, num_ref_idx_l0_default=1,
                 num_ref_idx_l1_default=1, weighted_pred=0, weighted_bipred_idc=0, deblocking_control=0,
                 redundant_pic_cnt_present=0, pic_init_qp=26, reorder=None)
        for key in settings:
            if key not in s:
                raise KeyError(key)
        s.update(settings)
        self.s = s

    @property
    def map_units(self):
        frame_only = self.s["frame_mbs_only"]
        return self.width * (self.height if frame_only else self.height // 2)

    def sps(self):
        s = self.s
        w = BitWriter()
        w.u(8, s["profile_idc"])
        w.u(8, 0)  # constraint flags
        w.u(8, 30)  # level_idc
        w.ue(s["sps_id"])
        if s["profile_idc"] in (100, 110, 122, 244):
            w.ue(s["chroma_format_idc"])
            if s["chroma_format_idc"] == 3:
                w.u(1, s["separate_colour_plane"])
            w.ue(0)
            w.ue(0)  # bit depths
            w.u(1, 0)
            w.u(1, 0)  # no scaling matrices
        w.ue(s["log2_max_frame_num"] - 4)
        w.ue(s["poc_type"])
        if s["poc_type"] == 0:
            w.ue(s["log2_max_poc_lsb"] - 4)
        elif s["poc_type"] == 1:
            w.u(1, s["delta_pic_order_always_zero"])
            w.se(s["offset_for_non_ref_pic"])
            w.se(s["offset_for_top_to_bottom_field"])
            w.ue(len(s["offsets_for_ref_frame"]))
            for offset in s["offsets_for_ref_frame"]:
                w.se(offset)
        w.ue(s["max_num_ref_frames"])
        w.u(1, 0)  # gaps_in_frame_num_value_allowed_flag
        w.ue(self.width - 1)
        w.ue((self.height if s["frame_mbs_only"] else self.height // 2) - 1)
        w.u(1, s["frame_mbs_only"])
        if not s["frame_mbs_only"]:
            w.u(1, s["mbaff"])
        w.u(1, 1)  # direct_8x8_inference_flag
        w.u(1, 0)  # frame_cropping_flag
        w.u(1, s["reorder"] is not None)  # vui_parameters_present_flag
        if s["reorder"] is not None:  # only bitstream_restriction: how many pictures a decoder holds back
            w.u(8, 0)
            w.u(1, 1)
            w.u(1, 1)  # motion_vectors_over_pic_boundaries_flag
            for value in (0, 0, 16, 16, s["reorder"], s["max_num_ref_frames"]):
                w.ue(value)
        return nal_unit(b"\x67", w.trailing())

    def pps(self):
        s = self.s
        w = BitWriter()
        w.ue(s["pps_id"])
        w.ue(s["sps_id"])
        w.u(1, 0)  # entropy_coding_mode_flag: CAVLC
        w.u(1, s["bottom_field_pic_order_in_frame_present"])
        w.ue(s["slice_groups"] - 1)
        if s["slice_groups"] > 1:
            w.ue(s["slice_group_map_type"])
            assert 3 <= s["slice_group_map_type"] <= 5
            w.u(1, 0)  # slice_group_change_direction_flag
            w.ue(s["slice_group_change_rate"] - 1)
        w.ue(s["num_ref_idx_l0_default"] - 1)
        w.ue(s["num_ref_idx_l1_default"] - 1)
        w.u(1, s["weighted_pred"])
        w.u(2, s["weighted_bipred_idc"])
        w.se(s["pic_init_qp"] - 26)
        w.se(0)  # pic_init_qs_minus26
        w.se(0)  # chroma_qp_index_offset
        w.u(1, s["deblocking_control"])
        w.u(1, 0)  # constrained_intra_pred_flag
        w.u(1, s["redundant_pic_cnt_present"])
        return nal_unit(b"\x68", w.trailing())

    def slice(self, kind, frame_num=0, ref_idc=2, idr=False, field=None, first_mb=0, mbs=None, poc_lsb=0,
              delta_bottom=0, delta0=0, delta1=0, mmcos=(), long_term_reference=0, idr_pic_id=0,
              l0=None, l1=None, modifications=((), ()), weights=None, redundant_pic_cnt=0, qp_delta=0,
              deblocking=None, change_cycle=0, colour_plane=0, type_offset=5):
        """One slice NAL unit and its header's length in bits (NAL header included).

        ``kind``: P, B, I, SP or SI; ``field``: None (a frame), "top" or "bottom";
        ``mmcos``: memory management operations as tuples (op, argument...); ``l0``, ``l1``:
        overridden reference counts; ``modifications``: (idc, value) pairs per list;
        ``weights``: per list, per reference, (luma, chroma) flags.
        """
        s = self.s
        w = BitWriter()
        w.ue(first_mb)
        w.ue(kind + type_offset)
        w.ue(s["pps_id"])
        if s["separate_colour_plane"]:
            w.u(2, colour_plane)
        w.u(s["log2_max_frame_num"], frame_num)
        if not s["frame_mbs_only"]:
            w.u(1, field is not None)
            if field is not None:
                w.u(1, field == "bottom")
        if idr:
            w.ue(idr_pic_id)
        both = s["bottom_field_pic_order_in_frame_present"] and field is None
        if s["poc_type"] == 0:
            w.u(s["log2_max_poc_lsb"], poc_lsb)
            if both:
                w.se(delta_bottom)
        elif s["poc_type"] == 1 and not s["delta_pic_order_always_zero"]:
            w.se(delta0)
            if both:
                w.se(delta1)
        if s["redundant_pic_cnt_present"]:
            w.ue(redundant_pic_cnt)
        if kind == B:
            w.u(1, 1)  # direct_spatial_mv_pred_flag
        counts = [0, 0]
        if kind in (P, SP, B):
            counts = [s["num_ref_idx_l0_default"], s["num_ref_idx_l1_default"] if kind == B else 0]
            override = l0 is not None or l1 is not None
            w.u(1, override)
            if override:
                counts = [l0 or counts[0], (l1 or counts[1]) if kind == B else 0]
                w.ue(counts[0] - 1)
                if kind == B:
                    w.ue(counts[1] - 1)
        for lst in range(2 if kind == B else 1 if kind in (P, SP) else 0):
            ops = modifications[lst]
            w.u(1, 1 if ops else 0)
            if ops:
                for idc, value in ops:
                    w.ue(idc)
                    w.ue(value)
                w.ue(3)
        if (s["weighted_pred"] and kind in (P, SP)) or (s["weighted_bipred_idc"] == 1 and kind == B):
            chroma = s["chroma_format_idc"] != 0 and not s["separate_colour_plane"]
            w.ue(2)  # luma_log2_weight_denom
            if chroma:
                w.ue(1)
            for lst in range(2 if kind == B else 1):
                for index in range(counts[lst]):
                    luma, colour = weights[lst][index] if weights else (0, 0)
                    w.u(1, luma)
                    if luma:
                        w.se(3)
                        w.se(-2)
                    if chroma:
                        w.u(1, colour)
                        if colour:
                            for value in (1, -1, 2, -2):
                                w.se(value)
        if ref_idc:
            if idr:
                w.u(1, 0)  # no_output_of_prior_pics_flag
                w.u(1, long_term_reference)
            else:
                w.u(1, 1 if mmcos else 0)
                for op in mmcos:
                    w.ue(op[0])
                    for argument in op[1:]:
                        w.ue(argument)
                if mmcos:
                    w.ue(0)
        w.se(qp_delta)
        if kind in (SP, SI):
            if kind == SP:
                w.u(1, 0)  # sp_for_switch_flag
            w.se(0)  # slice_qs_delta
        if s["deblocking_control"]:
            idc, alpha, beta = deblocking or (0, 0, 0)
            w.ue(idc)
            if idc != 1:
                w.se(alpha)
                w.se(beta)
        if s["slice_groups"] > 1:
            rate = s["slice_group_change_rate"]
            cycles = (self.map_units + rate - 1) // rate
            size = 0
            while (1 << size) <= cycles:
                size += 1
            w.u(size, change_cycle)
        header_bits = 8 + len(w)
        pic_mbs = self.width * (self.height // 2 if field else self.height)
        count = pic_mbs - first_mb if mbs is None else mbs
        if kind in (I, SI):
            chroma = 0 if s["separate_colour_plane"] else (0, 2, 4, 8)[s["chroma_format_idc"]]
            for mb in range(count):
                w.ue(25 if kind == I else 26)  # I_PCM (mb_type 25 in I slices, 1 + 25 in SI slices)
                w.align(0)
                w.raw(bytes(((mb * 37 + i * 11 + frame_num * 5) % 253) + 1 for i in range(256 + 32 * chroma)))
        else:
            w.ue(count)  # mb_skip_run: every macroblock skipped
        return nal_unit(bytes((ref_idc << 5 | (5 if idr else 1),)), w.trailing()), header_bits


class H265Stream:
    """An H.265 VPS, SPS and PPS of a small picture (``width`` x ``height`` luma samples, coding
    tree blocks of 16) and slice segment headers under them, for parsing (the slice data
    given is not coded video). Keyword settings name the SPS and PPS fields (see ``s``)."""

    def __init__(self, width=64, height=32, **settings):
        self.width = width
        self.height = height
        s = dict(chroma_format_idc=1, log2_max_poc_lsb=8, max_dec_pic_buffering=6, st_rps=(), long_term=None,
                 temporal_mvp=1, sao=1, sps_range=0, sps_scc=0, dependent_slice_segments=0, output_flag_present=0,
                 extra_bits=0, cabac_init_present=0, l0_default=1, l1_default=1, init_qp=26,
                 slice_chroma_qp_offsets_present=0, weighted_pred=0, weighted_bipred=0, tiles=None,
                 entropy_coding_sync=0, loop_filter_across_slices=0, deblocking=None, lists_modification_present=0,
                 header_extension_present=0, pps_range=0, pps_scc=0, pps_multilayer=0)
        for key in settings:
            if key not in s:
                raise KeyError(key)
        s.update(settings)
        self.s = s
        ctb = 16
        self.ctbs = ((width + ctb - 1) // ctb) * ((height + ctb - 1) // ctb)

    @staticmethod
    def _profile_tier_level(w):
        w.u(2, 0)
        w.u(1, 0)
        w.u(5, 1)  # Main
        w.u(32, 0x60000000)  # compatibility: Main, Main 10
        w.u(4, 0b1001)  # progressive, interlaced, non-packed, frame-only
        w.u(32, 0)
        w.u(11, 0)  # reserved 43 bits, inbld
        w.u(1, 0)
        w.u(8, 60)  # level 2

    def vps(self):
        w = BitWriter()
        w.u(4, 0)
        w.u(2, 3)  # base layer internal, available
        w.u(6, 0)
        w.u(3, 0)
        w.u(1, 1)  # temporal id nesting
        w.u(16, 0xFFFF)
        self._profile_tier_level(w)
        w.u(1, 1)
        w.ue(self.s["max_dec_pic_buffering"] - 1)
        w.ue(0)
        w.ue(0)
        w.u(6, 0)
        w.ue(0)
        w.u(1, 0)  # vps_timing_info_present_flag
        w.u(1, 0)  # vps_extension_flag
        return nal_unit(b"\x40\x01", w.trailing())

    def write_st_rps(self, w, rps, index, count):
        """An explicit set (("explicit", [(delta, used)...] negative, [(delta, used)...] positive))
        or a predicted one (("predicted", delta_idx, delta_rps, [(used, use_delta)...]))."""
        if index:
            w.u(1, rps[0] == "predicted")
        if rps[0] == "predicted":
            _, delta_idx, delta_rps, flags = rps
            if index == count:
                w.ue(delta_idx - 1)
            w.u(1, delta_rps < 0)
            w.ue(abs(delta_rps) - 1)
            for used, use in flags:
                w.u(1, used)
                if not used:
                    w.u(1, use)
            return
        _, negative, positive = rps
        w.ue(len(negative))
        w.ue(len(positive))
        for side in (negative, positive):
            last = 0
            for delta, used in side:
                w.ue(abs(delta - last) - 1)
                w.u(1, used)
                last = delta

    def sps(self):
        s = self.s
        w = BitWriter()
        w.u(4, 0)
        w.u(3, 0)
        w.u(1, 1)
        self._profile_tier_level(w)
        w.ue(0)  # sps id
        w.ue(s["chroma_format_idc"])
        if s["chroma_format_idc"] == 3:
            w.u(1, 0)
        w.ue(self.width)
        w.ue(self.height)
        w.u(1, 0)  # conformance window
        w.ue(0)
        w.ue(0)  # bit depths
        w.ue(s["log2_max_poc_lsb"] - 4)
        w.u(1, 1)
        w.ue(s["max_dec_pic_buffering"] - 1)
        w.ue(0)
        w.ue(0)
        w.ue(0)  # log2_min_luma_coding_block_size_minus3: 8
        w.ue(1)  # coding tree blocks of 16
        w.ue(0)
        w.ue(2)  # transform sizes 4 to 16
        w.ue(1)
        w.ue(1)
        w.u(1, 0)  # scaling_list_enabled_flag
        w.u(1, 0)  # amp
        w.u(1, s["sao"])
        w.u(1, 0)  # pcm
        sets = s["st_rps"]
        w.ue(len(sets))
        for index, rps in enumerate(sets):
            self.write_st_rps(w, rps, index, len(sets))
        w.u(1, s["long_term"] is not None)
        if s["long_term"] is not None:
            w.ue(len(s["long_term"]))
            for lsb, used in s["long_term"]:
                w.u(s["log2_max_poc_lsb"], lsb)
                w.u(1, used)
        w.u(1, s["temporal_mvp"])
        w.u(1, 0)  # strong intra smoothing
        w.u(1, 0)  # vui
        w.u(1, 1 if s["sps_range"] or s["sps_scc"] else 0)
        if s["sps_range"] or s["sps_scc"]:
            w.u(1, s["sps_range"])
            w.u(1, 0)
            w.u(1, 0)
            w.u(1, s["sps_scc"])
            w.u(4, 0)
            if s["sps_range"]:
                w.u(9, 0b000000100)  # high_precision_offsets_enabled_flag
            if s["sps_scc"]:
                w.u(1, 0)
                w.u(1, 0)
                w.u(2, 0)
                w.u(1, 0)
        return nal_unit(b"\x42\x01", w.trailing())

    def pps(self):
        s = self.s
        w = BitWriter()
        w.ue(0)
        w.ue(0)
        w.u(1, s["dependent_slice_segments"])
        w.u(1, s["output_flag_present"])
        w.u(3, s["extra_bits"])
        w.u(1, 0)
        w.u(1, s["cabac_init_present"])
        w.ue(s["l0_default"] - 1)
        w.ue(s["l1_default"] - 1)
        w.se(s["init_qp"] - 26)
        w.u(1, 0)
        w.u(1, 0)  # transform_skip_enabled_flag
        w.u(1, 0)  # cu_qp_delta_enabled_flag
        w.se(0)
        w.se(0)
        w.u(1, s["slice_chroma_qp_offsets_present"])
        w.u(1, s["weighted_pred"])
        w.u(1, s["weighted_bipred"])
        w.u(1, 0)
        w.u(1, s["tiles"] is not None)
        w.u(1, s["entropy_coding_sync"])
        if s["tiles"] is not None:
            columns, rows = s["tiles"]
            w.ue(columns - 1)
            w.ue(rows - 1)
            w.u(1, 1)  # uniform spacing
            w.u(1, 1)
        w.u(1, s["loop_filter_across_slices"])
        w.u(1, s["deblocking"] is not None)
        if s["deblocking"] is not None:
            override, disabled = s["deblocking"]
            w.u(1, override)
            w.u(1, disabled)
            if not disabled:
                w.se(1)
                w.se(-1)
        w.u(1, 0)  # scaling list
        w.u(1, s["lists_modification_present"])
        w.ue(0)
        w.u(1, s["header_extension_present"])
        extensions = s["pps_range"] or s["pps_scc"] or s["pps_multilayer"]
        w.u(1, 1 if extensions else 0)
        if extensions:
            w.u(1, s["pps_range"])
            w.u(1, s["pps_multilayer"])
            w.u(1, 0)
            w.u(1, s["pps_scc"])
            w.u(4, 0)
            if s["pps_range"]:
                w.u(1, 0)  # cross_component_prediction_enabled_flag
                w.u(1, 1)  # chroma_qp_offset_list_enabled_flag
                w.ue(0)
                w.ue(0)
                w.se(1)
                w.se(-1)
                w.ue(0)
                w.ue(0)
            if s["pps_multilayer"]:
                w.u(2, 0)
                w.ue(0)
                w.u(1, 0)
            if s["pps_scc"]:
                w.u(3, 0)
        return nal_unit(b"\x44\x01", w.trailing())

    def slice(self, kind, nal_type=1, tid=0, first=True, address=0, dependent=False, poc_lsb=0, rps_idx=None,
              rps=None, long_term=(), temporal_mvp=1, sao=(1, 1), l0=None, l1=None, lists=None, mvd_l1_zero=0,
              cabac_init=0, collocated=(1, 0), weights=None, merge=5, qp_delta=0, chroma_offsets=(0, 0),
              cu_chroma_qp_offset=0, deblocking=None, loop_filter_across=1, entry_points=(), offset_len=8,
              extension=b"", output=1, data=b"\xa5\x5a\x80"):
        """One slice segment NAL unit (the header, then ``data``) and its header's length in bits
        (NAL header included). ``kind``: 0 B, 1 P, 2 I; ``rps``: a set coded in the header
        (as for ``write_st_rps``), else ``rps_idx`` of the SPS's; ``long_term``: entries
        ("sps", index, msb) or ("lsb", lsb, used, msb); ``lists``: the entries per list;
        ``weights``: per list, per reference, (luma, chroma) flags."""
        s = self.s
        w = BitWriter()
        w.u(1, first)
        if 16 <= nal_type <= 23:
            w.u(1, 0)
        w.ue(0)  # pps id
        if not first:
            if s["dependent_slice_segments"]:
                w.u(1, dependent)
            size = 0
            while (1 << size) < self.ctbs:
                size += 1
            w.u(size, address)
        if not dependent:
            w.u(s["extra_bits"], 0)
            w.ue(kind)
            if s["output_flag_present"]:
                w.u(1, output)
            if nal_type not in (19, 20):
                w.u(s["log2_max_poc_lsb"], poc_lsb)
                sets = s["st_rps"]
                w.u(1, rps is None)
                if rps is not None:
                    self.write_st_rps(w, rps, len(sets), len(sets))
                elif len(sets) > 1:
                    size = 0
                    while (1 << size) < len(sets):
                        size += 1
                    w.u(size, rps_idx or 0)
                if s["long_term"] is not None:
                    from_sps = [e for e in long_term if e[0] == "sps"]
                    if s["long_term"]:
                        w.ue(len(from_sps))
                    w.ue(len(long_term) - len(from_sps))
                    for entry in long_term:
                        if entry[0] == "sps":
                            if len(s["long_term"]) > 1:
                                size = 0
                                while (1 << size) < len(s["long_term"]):
                                    size += 1
                                w.u(size, entry[1])
                        else:
                            w.u(s["log2_max_poc_lsb"], entry[1])
                            w.u(1, entry[2])
                        w.u(1, entry[-1] is not None)
                        if entry[-1] is not None:
                            w.ue(entry[-1])
                if s["temporal_mvp"]:
                    w.u(1, temporal_mvp)
            else:
                temporal_mvp = 0
            if s["sao"]:
                w.u(1, sao[0])
                if s["chroma_format_idc"]:
                    w.u(1, sao[1])
            if kind != 2:
                counts = [s["l0_default"], s["l1_default"] if kind == 0 else 0]
                override = l0 is not None or l1 is not None
                w.u(1, override)
                if override:
                    counts = [l0 or counts[0], (l1 or counts[1]) if kind == 0 else 0]
                    w.ue(counts[0] - 1)
                    if kind == 0:
                        w.ue(counts[1] - 1)
                if lists is not None:  # the caller knows NumPicTotalCurr > 1 and the entries' size
                    size, entries = lists
                    for index in range(2 if kind == 0 else 1):
                        w.u(1, entries[index] is not None)
                        if entries[index] is not None:
                            for entry in entries[index]:
                                w.u(size, entry)
                if kind == 0:
                    w.u(1, mvd_l1_zero)
                if s["cabac_init_present"]:
                    w.u(1, cabac_init)
                if temporal_mvp:
                    from_l0 = collocated[0] if kind == 0 else 1
                    if kind == 0:
                        w.u(1, from_l0)
                    if counts[0 if from_l0 else 1] > 1:
                        w.ue(collocated[1])
                if (s["weighted_pred"] and kind == 1) or (s["weighted_bipred"] and kind == 0):
                    chroma = s["chroma_format_idc"] != 0
                    w.ue(3)
                    if chroma:
                        w.se(-1)
                    for index in range(2 if kind == 0 else 1):
                        flags = weights[index] if weights else [(0, 0)] * counts[index]
                        for luma, _ in flags:
                            w.u(1, luma)
                        if chroma:
                            for _, colour in flags:
                                w.u(1, colour)
                        for luma, colour in flags:
                            if luma:
                                w.se(-5)
                                w.se(100)
                            if colour and chroma:
                                for value in (3, -400, -3, 511):
                                    w.se(value)
                w.ue(5 - merge)
            w.se(qp_delta)
            if s["slice_chroma_qp_offsets_present"]:
                w.se(chroma_offsets[0])
                w.se(chroma_offsets[1])
            if s["pps_range"]:
                w.u(1, cu_chroma_qp_offset)
            disabled = s["deblocking"] is not None and s["deblocking"][1]
            if s["deblocking"] is not None and s["deblocking"][0]:
                w.u(1, deblocking is not None)
                if deblocking is not None:
                    disabled = deblocking[0]
                    w.u(1, disabled)
                    if not disabled:
                        w.se(deblocking[1])
                        w.se(deblocking[2])
            sao_used = s["sao"] and (sao[0] or (s["chroma_format_idc"] and sao[1]))
            if s["loop_filter_across_slices"] and (sao_used or not disabled):
                w.u(1, loop_filter_across)
        if s["tiles"] is not None or s["entropy_coding_sync"]:
            w.ue(len(entry_points))
            if entry_points:
                w.ue(offset_len - 1)
                for offset in entry_points:
                    w.u(offset_len, offset)
        if s["header_extension_present"]:
            w.ue(len(extension))
            for byte in extension:
                w.u(8, byte)
        w.u(1, 1)
        w.align(0)
        header_bits = 16 + len(w)
        w.raw(data)
        return nal_unit(bytes((nal_type << 1, tid + 1)), bytes(w.out)), header_bits


# H.264 slices, one per feature an encoder in reach does not write: (stream settings, slice fields).
H264_HEADER_CASES = [
    (dict(), dict(kind=I, idr=True, idr_pic_id=7)),
    (dict(), dict(kind=P, frame_num=3, poc_lsb=9, l0=2, modifications=(((0, 1), (2, 0)), ()))),
    (dict(num_ref_idx_l1_default=2), dict(kind=B, frame_num=1, ref_idc=0, poc_lsb=3,
                                          modifications=(((1, 0),), ((0, 2),)))),
    (dict(frame_mbs_only=0), dict(kind=P, field="bottom", frame_num=2, poc_lsb=5, l0=20)),
    (dict(frame_mbs_only=0, mbaff=1, bottom_field_pic_order_in_frame_present=1),
     dict(kind=P, frame_num=2, poc_lsb=4, delta_bottom=-1)),
    (dict(poc_type=1, bottom_field_pic_order_in_frame_present=1), dict(kind=P, frame_num=5, delta0=-3, delta1=2)),
    (dict(poc_type=1, delta_pic_order_always_zero=1), dict(kind=P, frame_num=5)),
    (dict(poc_type=2, log2_max_frame_num=9), dict(kind=P, frame_num=300)),
    (dict(), dict(kind=P, frame_num=4, mmcos=((1, 0), (3, 1, 0), (2, 0), (4, 2), (6, 1)))),
    (dict(), dict(kind=P, frame_num=4, mmcos=((5,),))),
    (dict(), dict(kind=I, idr=True, long_term_reference=1)),
    (dict(weighted_pred=1, num_ref_idx_l0_default=3), dict(kind=P, frame_num=1,
                                                           weights=([(1, 0), (0, 1), (1, 1)], []))),
    (dict(weighted_pred=1, num_ref_idx_l0_default=16, max_num_ref_frames=16),  # a header past 48 bytes
     dict(kind=P, frame_num=1, weights=([(1, 1)] * 16, []))),
    (dict(weighted_bipred_idc=1, num_ref_idx_l1_default=2),
     dict(kind=B, frame_num=1, ref_idc=0, weights=([(0, 1)], [(1, 1), (0, 0)]))),
    (dict(profile_idc=100, chroma_format_idc=0, weighted_pred=1), dict(kind=P, frame_num=1, weights=([(1, 0)], []))),
    (dict(profile_idc=100, chroma_format_idc=3, separate_colour_plane=1, weighted_pred=1),
     dict(kind=P, frame_num=1, colour_plane=2, weights=([(1, 0)], []))),
    (dict(redundant_pic_cnt_present=1), dict(kind=P, frame_num=1, redundant_pic_cnt=5)),
    (dict(deblocking_control=1), dict(kind=P, frame_num=1, deblocking=(0, -6, 6))),
    (dict(deblocking_control=1), dict(kind=P, frame_num=1, deblocking=(1, 0, 0))),
    (dict(), dict(kind=SP, frame_num=1)),
    (dict(), dict(kind=SI, frame_num=1)),
    (dict(), dict(kind=P, frame_num=1, type_offset=0, first_mb=2)),
    (dict(slice_groups=2, slice_group_map_type=3, slice_group_change_rate=3),
     dict(kind=P, frame_num=1, change_cycle=2)),  # 4 map units / 3: 2 bits
    (dict(slice_groups=2, slice_group_map_type=4, slice_group_change_rate=1),
     dict(kind=P, frame_num=1, change_cycle=4)),  # 4 map units: Ceil(Log2(4 + 1)) = 3 bits
]


# H.265 slice segment headers, one per feature x265 does not write: (stream settings, slice fields).
EXPLICIT = ("explicit", [(-1, 1), (-3, 0)], [(2, 1)])
H265_HEADER_CASES = [
    (dict(), dict(kind=2, nal_type=19)),
    (dict(st_rps=(EXPLICIT,)), dict(kind=1, poc_lsb=5, rps_idx=0)),
    (dict(st_rps=(EXPLICIT,)), dict(kind=0, poc_lsb=5, rps=("predicted", 1, -2, [(1, 1), (0, 1), (1, 1), (0, 0)]))),
    (dict(st_rps=(EXPLICIT, ("predicted", 1, 1, [(1, 1), (1, 1), (0, 0), (1, 1)]))), dict(kind=1, rps_idx=1)),
    (dict(long_term=[(7, 1), (9, 0), (30, 1)], max_dec_pic_buffering=8),
     dict(kind=1, rps=("explicit", [(-1, 1)], []), long_term=(("sps", 2, None), ("sps", 1, 3), ("lsb", 17, 1, None)))),
    (dict(long_term=[]), dict(kind=1, rps=("explicit", [(-1, 0)], []), long_term=(("lsb", 200, 1, 1),))),
    (dict(dependent_slice_segments=1, entropy_coding_sync=1, height=96),
     dict(kind=1, first=False, address=4, dependent=True, entry_points=(100, 3000, 1), offset_len=12)),
    (dict(dependent_slice_segments=1), dict(kind=1, first=False, address=7, rps=("explicit", [(-1, 1)], []))),
    (dict(tiles=(2, 2)), dict(kind=1, rps=("explicit", [(-1, 1)], []), entry_points=(1, 2, 3), offset_len=32)),
    (dict(tiles=(2, 1), entropy_coding_sync=1), dict(kind=2, nal_type=20, entry_points=(5, 6, 7))),
    (dict(header_extension_present=1), dict(kind=2, nal_type=19, extension=b"\x00\x00\x01\xff")),
    (dict(extra_bits=3, output_flag_present=1), dict(kind=1, rps=("explicit", [(-1, 1)], []), output=0)),
    (dict(lists_modification_present=1, l0_default=2, l1_default=3),
     dict(kind=0, rps=("explicit", [(-1, 1), (-2, 1)], [(1, 1)]), lists=(2, ([2, 0], [1, 2, 1])))),
    (dict(cabac_init_present=1, l0_default=3), dict(kind=1, rps=("explicit", [(-1, 1)], []), cabac_init=1,
                                                    collocated=(1, 2))),
    (dict(l1_default=2), dict(kind=0, rps=("explicit", [(-1, 1)], [(1, 1)]), collocated=(0, 1), mvd_l1_zero=1)),
    (dict(weighted_pred=1, weighted_bipred=1, l0_default=2),
     dict(kind=0, rps=("explicit", [(-1, 1)], [(1, 1)]), weights=([(1, 0), (0, 1)], [(1, 1)]))),
    (dict(weighted_pred=1, chroma_format_idc=0), dict(kind=1, rps=("explicit", [(-1, 1)], []), weights=([(1, 0)],))),
    (dict(slice_chroma_qp_offsets_present=1, deblocking=(1, 0), loop_filter_across_slices=1),
     dict(kind=1, rps=("explicit", [(-1, 1)], []), chroma_offsets=(-12, 5), deblocking=(0, -6, 6), merge=1)),
    (dict(deblocking=(1, 0), loop_filter_across_slices=1, sao=0),
     dict(kind=2, nal_type=21, rps=("explicit", [], []), deblocking=(1, 0, 0))),
    (dict(pps_range=1, sps_range=1, weighted_pred=1),
     dict(kind=1, rps=("explicit", [(-1, 1)], []), cu_chroma_qp_offset=1, weights=([(1, 1)],))),
    (dict(temporal_mvp=0, sao=0), dict(kind=1, nal_type=0, tid=2, rps=("explicit", [(-1, 1)], []))),
]
