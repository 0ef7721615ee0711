"""Where segments start: cutting an H.264 stream into segments that decode on their own.

A segment is a run of whole access units. segbind cuts one at every random
access point: an IDR picture, or an access unit carrying a recovery-point SEI
(payloadType 6, what encoders with intra refresh and no periodic IDR emit),
and never lets one run longer than a maximum duration (counted in pictures).
An access unit's leading non-VCL units (AUD, SPS, PPS, SEI) belong with the
picture they precede.

``Segmenter`` does this incrementally, for bytes as they arrive from an
encoder's pipe; ``split_segments`` is the one-shot form for a whole buffer
(IDR cuts only). Pure code: no I/O, no dependencies, runs on MicroPython.
"""

from .nal import (NAL_AUD, NAL_IDR, NAL_SEI, NAL_SPS, NAL_PPS, START_CODE, is_vcl,
                  unescape_rbsp)

# Non-VCL NAL unit types that begin a new access unit when they follow a
# picture's slices (H.264 7.4.1.2.3): SEI, SPS, PPS, AUD and types 14 to 18.
_AU_OPENERS = (6, 7, 8, 9, 14, 15, 16, 17, 18)

SEI_RECOVERY_POINT = 6
DEFAULT_FPS = 25.0

# How many bytes of an SEI NAL unit are examined for a recovery point message.
_SEI_SCAN_BYTES = 4096
# Profiles whose SPS carries chroma format, bit depths and scaling matrices.
_HIGH_PROFILES = (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135)


def starts_picture(buf, unit) -> bool:
    """True for the first slice of a picture (first_mb_in_slice == 0).

    first_mb_in_slice is the first ue(v) of the slice header; it is 0 exactly
    when its first bit is 1.
    """
    s, e = unit
    return e - s > 1 and bool(buf[s + 1] & 0x80)


def segment_starts(buf, units) -> list:
    """Indexes into ``units`` where each segment begins.

    A segment begins with the first non-VCL unit after the previous picture's
    last slice, when the next picture is an IDR picture. Units before the first
    IDR picture form a segment of their own (index 0), so nothing is dropped.
    """
    starts = [0] if units else []
    pending = -1  # first non-VCL unit since the last slice
    for i, unit in enumerate(units):
        if not is_vcl(buf[unit[0]] & 0x1F):
            if pending < 0:
                pending = i
            continue
        if buf[unit[0]] & 0x1F == NAL_IDR and starts_picture(buf, unit):
            start = i if pending < 0 else pending
            if start > starts[-1]:
                starts.append(start)
        pending = -1
    return starts


def split_segments(buf, units) -> list:
    """The units of each segment, as lists of (start, end) offsets (IDR cuts only)."""
    starts = segment_starts(buf, units)
    bounds = starts + [len(units)]
    return [units[bounds[i]:bounds[i + 1]] for i in range(len(starts))]


class _Bits:
    """An Exp-Golomb bit reader over RBSP bytes; raises IndexError past the end."""

    def __init__(self, data) -> None:
        self.data = data
        self.pos = 0

    def u(self, n: int) -> int:
        value = 0
        for _ in range(n):
            byte = self.data[self.pos >> 3]
            value = (value << 1) | ((byte >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return value

    def ue(self) -> int:
        zeros = 0
        while not self.u(1):
            zeros += 1
            if zeros > 31:
                raise ValueError("Exp-Golomb code too long")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


def _skip_scaling_list(bits, size: int) -> None:
    last = nxt = 8
    for _ in range(size):
        if nxt:
            nxt = (last + bits.se() + 256) % 256
        if nxt:
            last = nxt


class SpsInfo:
    """What the segmenter needs from a sequence parameter set."""

    def __init__(self, sps_id: int) -> None:
        self.sps_id = sps_id
        self.separate_colour_plane = False
        self.log2_max_frame_num = 4
        self.frame_mbs_only = True
        self.poc_type = 0
        self.log2_max_poc_lsb = 4
        self.fps = None  # type: float | None  # from VUI timing_info, when present
        self.max_num_reorder = None  # type: int | None  # from VUI bitstream_restriction
        self.complete = False  # False when only the id could be read (VUI fields optional)


def parse_sps(nal) -> SpsInfo:
    """The id (always) and frame timing (when readable) of an escaped SPS NAL unit.

    Raises ValueError or IndexError when not even the id can be read.
    """
    bits = _Bits(unescape_rbsp(nal[1:]))
    profile = bits.u(8)
    bits.u(16)  # constraint flags, level_idc
    info = SpsInfo(bits.ue())
    if info.sps_id > 31:
        raise ValueError("seq_parameter_set_id out of range")
    try:
        if profile in _HIGH_PROFILES:
            chroma = bits.ue()
            if chroma == 3:
                info.separate_colour_plane = bool(bits.u(1))
            bits.ue()
            bits.ue()
            bits.u(1)
            if bits.u(1):  # seq_scaling_matrix_present_flag
                for i in range(12 if chroma == 3 else 8):
                    if bits.u(1):
                        _skip_scaling_list(bits, 16 if i < 6 else 64)
        info.log2_max_frame_num = bits.ue() + 4
        poc_type = info.poc_type = bits.ue()
        if poc_type == 0:
            info.log2_max_poc_lsb = bits.ue() + 4
        elif poc_type == 1:
            bits.u(1)
            bits.se()
            bits.se()
            for _ in range(bits.ue()):
                bits.se()
        bits.ue()  # max_num_ref_frames
        bits.u(1)
        bits.ue()
        bits.ue()
        info.frame_mbs_only = bool(bits.u(1))
        if not info.frame_mbs_only:
            bits.u(1)
        bits.u(1)
        if bits.u(1):  # frame_cropping_flag
            for _ in range(4):
                bits.ue()
        info.complete = True  # what cutting needs; the VUI below is optional
        if bits.u(1):  # vui_parameters_present_flag
            if bits.u(1) and bits.u(8) == 255:
                bits.u(32)
            if bits.u(1):
                bits.u(1)
            if bits.u(1):
                bits.u(4)
                if bits.u(1):
                    bits.u(24)
            if bits.u(1):
                bits.ue()
                bits.ue()
            if bits.u(1):  # timing_info_present_flag
                units = bits.u(32)
                scale = bits.u(32)
                if units and scale:
                    fps = scale / (2.0 * units)
                    if 0.5 <= fps <= 1000:
                        info.fps = fps
                bits.u(1)
            hrd = False
            for _ in range(2):  # NAL then VCL hrd_parameters
                if bits.u(1):
                    hrd = True
                    count = bits.ue() + 1
                    bits.u(8)  # bit_rate_scale, cpb_size_scale
                    for _ in range(count):
                        bits.ue()
                        bits.ue()
                        bits.u(1)
                    bits.u(20)  # four delay/offset lengths
            if hrd:
                bits.u(1)  # low_delay_hrd_flag
            bits.u(1)  # pic_struct_present_flag
            if bits.u(1):  # bitstream_restriction_flag
                bits.u(1)
                for _ in range(4):
                    bits.ue()
                info.max_num_reorder = bits.ue()
    except (ValueError, IndexError):
        pass
    return info


def parse_pps_ids(nal):
    """(pic_parameter_set_id, seq_parameter_set_id) of an escaped PPS NAL unit."""
    bits = _Bits(unescape_rbsp(nal[1:12]))
    pps_id = bits.ue()
    sps_id = bits.ue()
    if pps_id > 255 or sps_id > 31:
        raise ValueError("parameter set id out of range")
    return pps_id, sps_id


def has_recovery_point(nal) -> bool:
    """True when an escaped SEI NAL unit holds a recovery point message (payloadType 6)."""
    rbsp = unescape_rbsp(nal[1:1 + _SEI_SCAN_BYTES])
    pos = 0
    end = len(rbsp)
    while pos < end and not (pos == end - 1 and rbsp[pos] == 0x80):
        kind = 0
        while pos < end and rbsp[pos] == 0xFF:
            kind += 255
            pos += 1
        if pos >= end:
            return False
        kind += rbsp[pos]
        pos += 1
        size = 0
        while pos < end and rbsp[pos] == 0xFF:
            size += 255
            pos += 1
        if pos >= end:
            return False
        size += rbsp[pos]
        pos += 1
        if kind == SEI_RECOVERY_POINT:
            return True
        pos += size
    return False


class Segmenter:
    """Cuts an Annex-B byte stream, fed as it arrives, into self-contained segments.

    ``feed(data)`` returns the segments that closed; ``flush()`` returns the
    rest at the end of the stream. Each segment is Annex-B ``bytes`` (4-byte
    start codes) made of whole access units, and begins at an IDR picture, at
    a recovery point, or where the ``max_duration_s`` bound forced a cut.
    When a segment does not itself carry the parameter sets in force, the
    latest SPS and PPS of every id are inserted at its start (after any AUD),
    so it decodes on its own. Bytes before the first start code are not H.264:
    they are counted in ``discarded`` (zero padding is not counted).

    Memory: the current segment, the non-VCL units of the next access unit
    and the incomplete NAL unit at the end of the input.
    """

    def __init__(self, max_duration_s=4.0, fps=None) -> None:
        if not max_duration_s > 0:
            raise ValueError("max_duration_s must be positive")
        if fps is not None and not fps > 0:
            raise ValueError("fps must be positive")
        self.max_duration_s = max_duration_s
        self.fixed_fps = fps
        self.discarded = 0
        self.segments = 0
        self._nal = None  # type: bytearray | None  # the incomplete NAL unit, after its start code
        self._carry = b""  # the last two input bytes, for start codes split across feeds
        self._seg = bytearray()  # the current segment, Annex-B
        self._seg_fields = 0  # pictures in the current segment, in fields (a frame is 2)
        self._seg_has_vcl = False
        self._pending = []  # type: list  # non-VCL units since the last slice: the next AU's head
        self._pending_rap = False  # a recovery point SEI among them
        self._sps = {}  # type: dict  # id -> (SpsInfo, NAL bytes)
        self._pps = {}  # type: dict  # id -> (sps id, NAL bytes)
        self._active_sps = None  # type: SpsInfo | None
        self._out = []  # type: list

    @property
    def fps(self) -> float:
        """The frame rate used for the duration bound."""
        if self.fixed_fps is not None:
            return float(self.fixed_fps)
        if self._active_sps is not None and self._active_sps.fps:
            return self._active_sps.fps
        return DEFAULT_FPS

    def feed(self, data) -> list:
        """Take the next bytes of the stream; return the segments that closed."""
        if not hasattr(data, "find"):
            data = bytes(data)
        n = len(data)
        if n == 0:
            return []
        carry = self._carry
        pos = 0  # where the current NAL unit's bytes start in data
        if carry:
            # A start code that begins in the previous feed and ends in this one.
            i = (carry + bytes(data[:2])).find(b"\x00\x00\x01")
            if 0 <= i < len(carry):
                cut = len(carry) - i  # bytes of that start code already taken
                if self._nal is not None:
                    keep = len(self._nal) - cut
                    self._nal = self._nal[:keep] if keep > 0 else bytearray()
                    self._end_nal(None, 0, 0)
                self._nal = bytearray()
                pos = 3 - cut
        find = data.find
        while True:
            i = find(b"\x00\x00\x01", pos)
            if i < 0:
                break
            if self._nal is None:
                self._leading(data, pos, i)
            else:
                self._end_nal(data, pos, i)
            self._nal = bytearray()
            pos = i + 3
        if pos < n:
            if self._nal is None:
                self._leading(data, pos, n)
            else:
                self._nal += data[pos:n] if pos else data
        self._carry = bytes(data[n - 2:]) if n >= 2 else bytes(carry[-1:]) + bytes(data)
        out = self._out
        self._out = []
        return out

    def flush(self) -> list:
        """End of stream: the remaining segment(s)."""
        if self._nal is not None:
            self._end_nal(None, 0, 0)
            self._nal = None
        self._carry = b""
        self._take_pending()
        if self._seg:
            self._close()
        self._seg_has_vcl = False
        self._seg_fields = 0
        out = self._out
        self._out = []
        return out

    # -- scanning ---------------------------------------------------------

    def _leading(self, data, s: int, e: int) -> None:
        for k in range(s, e):
            if data[k]:
                self.discarded += 1

    def _end_nal(self, data, s: int, e: int) -> None:
        """The NAL unit made of self._nal then data[s:e] is complete."""
        if data is not None and not self._nal:
            while e > s and data[e - 1] == 0:
                e -= 1
            if e > s:
                self._unit(data[s:e])
            return
        nal = self._nal
        if nal is None:
            return
        if data is not None and e > s:
            nal += data[s:e]
        k = len(nal)
        while k > 0 and nal[k - 1] == 0:
            k -= 1
        if k:
            self._unit(bytes(nal[:k]) if k < len(nal) else bytes(nal))

    # -- access units and cuts ---------------------------------------------

    def _unit(self, nal) -> None:
        kind = nal[0] & 0x1F
        if is_vcl(kind):
            self._picture_unit(nal, kind)
            return
        if kind == NAL_SPS:
            try:
                info = parse_sps(nal)
                self._sps[info.sps_id] = (info, nal)
            except (ValueError, IndexError):
                pass
        elif kind == NAL_PPS:
            try:
                pps_id, sps_id = parse_pps_ids(nal)
                self._pps[pps_id] = (sps_id, nal)
            except (ValueError, IndexError):
                pass
        # Units that open an access unit, and everything before the first
        # picture, wait for the next picture (its type decides the cut);
        # end of sequence/stream, filler and the like end the current one.
        if self._pending or kind in _AU_OPENERS or not self._seg_has_vcl:
            if kind == NAL_SEI and not self._pending_rap and has_recovery_point(nal):
                self._pending_rap = True
            self._pending.append(nal)
        else:
            self._append(nal)

    def _picture_unit(self, nal, kind: int) -> None:
        if not (len(nal) > 1 and nal[1] & 0x80):  # not the first slice of a picture
            self._take_pending()
            self._append(nal)
            self._seg_has_vcl = True
            return
        fields = self._picture_fields(nal)
        if self._seg_has_vcl:
            limit = int(self.max_duration_s * self.fps * 2 + 1e-6)
            if limit < 2:
                limit = 2
            rap = kind == NAL_IDR or self._pending_rap
            too_long = self._seg_fields + fields > limit and self._seg_fields % 2 == 0
            if rap or too_long:
                self._close()
        if not self._seg_has_vcl and (self._sps or self._pps):
            self._carry_parameter_sets()
        self._take_pending()
        self._append(nal)
        self._seg_has_vcl = True
        self._seg_fields += fields

    def _picture_fields(self, nal) -> int:
        """2 for a frame, 1 for a field (needs the slice header when the SPS allows fields)."""
        try:
            bits = _Bits(unescape_rbsp(nal[1:24]))
            bits.ue()
            bits.ue()
            pps = self._pps.get(bits.ue())
            entry = self._sps.get(pps[0]) if pps is not None else None
            if entry is None:
                return 2
            sps = entry[0]
            self._active_sps = sps
            if sps.frame_mbs_only or not sps.complete:
                return 2
            if sps.separate_colour_plane:
                bits.u(2)
            bits.u(sps.log2_max_frame_num)
            return 1 if bits.u(1) else 2
        except (ValueError, IndexError):
            return 2

    def _carry_parameter_sets(self) -> None:
        """Put the SPS/PPS in force that the new segment's head lacks at its start."""
        head = self._pending
        have_sps = {}
        have_pps = {}
        for nal in head:
            kind = nal[0] & 0x1F
            try:
                if kind == NAL_SPS:
                    have_sps[parse_sps(nal).sps_id] = True
                elif kind == NAL_PPS:
                    have_pps[parse_pps_ids(nal)[0]] = True
            except (ValueError, IndexError):
                pass
        add_sps = [self._sps[k][1] for k in sorted(self._sps) if k not in have_sps]
        add_pps = [self._pps[k][1] for k in sorted(self._pps) if k not in have_pps]
        if not add_sps and not add_pps:
            return
        at = 1 if head and head[0][0] & 0x1F == NAL_AUD else 0
        head[at:at] = add_sps
        # PPS after the last SPS of the head: a decoder reads a PPS against its SPS.
        last_sps = at + len(add_sps)
        for k in range(len(head)):
            if head[k][0] & 0x1F == NAL_SPS:
                last_sps = k + 1
        head[last_sps:last_sps] = add_pps

    def _take_pending(self) -> None:
        for nal in self._pending:
            self._append(nal)
        self._pending = []
        self._pending_rap = False

    def _append(self, nal) -> None:
        self._seg += START_CODE
        self._seg += nal

    def _close(self) -> None:
        self._out.append(bytes(self._seg))
        self._seg = bytearray()
        self._seg_has_vcl = False
        self._seg_fields = 0
        self.segments += 1
