"""Decoder configuration records: 'avcC' (ISO/IEC 14496-15 5.3.3.1) and 'hvcC' (8.3.3.1), as MP4
sample entries and Matroska's CodecPrivate carry them. Decoders read every NAL unit of a record
before any sample, so readers hand them all on (``TrackInfo.config_units``)."""

from __future__ import annotations

from typing import List, Tuple

from segbind_core import h265

from ..errors import InputError


def parse_avcc(extradata: bytes) -> Tuple[int, List[bytes], List[bytes]]:
    """(NAL length size, SPS list, PPS and SPS extension list) of an AVCDecoderConfigurationRecord."""
    if len(extradata) < 7 or extradata[0] != 1:
        raise InputError("invalid avcC record")
    length_size = (extradata[4] & 3) + 1
    pos = 5
    sets: List[List[bytes]] = [[], []]
    for which, mask in ((0, 0x1F), (1, 0xFF), (1, -1)):
        if mask == -1:  # High profiles: chroma format and bit depths, then SPS extensions
            if extradata[1] not in (100, 110, 122, 144) or pos + 4 > len(extradata):
                break
            pos += 3
            mask = 0xFF
        if pos >= len(extradata):
            raise InputError("truncated avcC record")
        count = extradata[pos] & mask
        pos += 1
        for _ in range(count):
            size = int.from_bytes(extradata[pos:pos + 2], "big")
            pos += 2
            if size == 0 or pos + size > len(extradata):
                raise InputError("truncated avcC record")
            sets[which].append(bytes(extradata[pos:pos + size]))
            pos += size
    return length_size, sets[0], sets[1]


_HVCC_HEAD = 23  # configurationVersion .. numOfArrays (ISO/IEC 14496-15 8.3.3.1)


def parse_hvcc(extradata: bytes) -> Tuple[int, List[bytes]]:
    """(NAL length size, every NAL unit of its arrays, in order) of an
    HEVCDecoderConfigurationRecord. Decoders read the VPS, SPS, PPS and SEI arrays (types
    32-34, 39, 40) before any sample; a unit whose header disagrees with its array's type,
    or a length running past the record, makes the record invalid (InputError)."""
    if len(extradata) < _HVCC_HEAD or extradata[0] != 1:
        raise InputError("invalid hvcC record")
    length_size = (extradata[21] & 3) + 1
    pos = _HVCC_HEAD
    units: List[bytes] = []
    for _ in range(extradata[22]):
        if pos + 3 > len(extradata):
            raise InputError("truncated hvcC record")
        kind = extradata[pos] & 0x3F
        count = int.from_bytes(extradata[pos + 1:pos + 3], "big")
        pos += 3
        for _ in range(count):
            size = int.from_bytes(extradata[pos:pos + 2], "big")
            pos += 2
            if size < 2 or pos + size > len(extradata):
                raise InputError("truncated hvcC record")
            unit = bytes(extradata[pos:pos + size])
            if h265.nal_type(unit[0]) != kind:
                raise InputError("hvcC array of type %d holds a unit of type %d" % (kind, h265.nal_type(unit[0])))
            units.append(unit)
            pos += size
    return length_size, units


__all__ = ["parse_avcc", "parse_hvcc"]
