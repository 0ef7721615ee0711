// segbind-syntax.js: the H.264 and H.265 syntax the browser gate reads beyond NAL unit
// boundaries: parameter sets, whole slice headers and picture order counts. A port of
// firmware/segbind_core/h264.py and h265.py (the reference: the same fields, the same checks in
// the same order, the same refusal texts); tests/web/test_js_syntax.py runs both over real x264
// and x265 streams and mutations of them and compares every slice's header size, every
// picture's order key and every refusal.
//
// Why the gate needs it: a container presents each picture at a time of its own, and only the
// picture order count (from the first slice's header, covered by the tag's digest) says where
// the camera put it (docs/FORMAT.md 7.5).
//
// An ES module, no dependencies. NAL units are Uint8Arrays as stored (emulation prevention kept,
// header first). Errors mirror Python's: PastEnd (IndexError: the bits ran out) and SyntaxFault
// (ValueError; SliceHeaderError is one), which the callers turn into "unreadable".

export class SyntaxFault extends Error {}            // Python's ValueError
export class SliceHeaderError extends SyntaxFault {}
export class PastEnd extends Error {                 // Python's IndexError
  constructor() { super("past the end"); }
}

const isSyntaxError = (exc) => exc instanceof SyntaxFault || exc instanceof PastEnd;

// ---- emulation prevention (segbind_core/nal.py) ---------------------------------------------

/** The RBSP of escaped bytes: every 03 of 00 00 03 removed, left to right without overlap. */
export function unescapeRbsp(ebsp) {
  let i = findEscape(ebsp, 0);
  if (i < 0) return ebsp;
  const out = new Uint8Array(ebsp.length);
  let n = 0;
  let from = 0;
  while (i >= 0) {
    out.set(ebsp.subarray(from, i + 2), n);
    n += i + 2 - from;
    from = i + 3;
    i = findEscape(ebsp, from);
  }
  out.set(ebsp.subarray(from), n);
  n += ebsp.length - from;
  return out.subarray(0, n);
}

/** Where 00 00 03 begins at or after `from`, -1 when nowhere. */
function findEscape(b, from) {
  for (let i = from; i + 2 < b.length; i++) {
    if (b[i + 2] > 3) { i += 2; continue; }
    if (b[i + 2] === 3 && b[i] === 0 && b[i + 1] === 0) return i;
  }
  return -1;
}

/** How many leading bytes of escaped `ebsp` hold its first `rbspBytes` RBSP bytes (nal.py). */
export function escapedLength(ebsp, rbspBytes) {
  let extra = 0;
  let i = findEscape(ebsp, 0);
  while (i >= 0 && i + 2 < rbspBytes + extra) {
    extra += 1;
    i = findEscape(ebsp, i + 3);
  }
  return rbspBytes + extra;
}

/** The position of the last bit equal to 1 in `rbsp` (its stop bit), -1 when none. */
function lastOneBit(rbsp) {
  let i = rbsp.length - 1;
  while (i >= 0 && !rbsp[i]) i--;
  if (i < 0) return -1;
  let byte = rbsp[i];
  let bit = 7;
  while (!(byte & 1)) { byte >>= 1; bit--; }
  return i * 8 + bit;
}

// ---- bits -----------------------------------------------------------------------------------

/** An Exp-Golomb bit reader over RBSP bytes: PastEnd past the end, as Python's IndexError. */
export class BitReader {
  constructor(data) {
    this.data = data;
    this.pos = 0;   // may jump past the end (skipped fields): the next read says so
  }

  _need(bits) {
    if (this.pos + bits > this.data.length * 8) throw new PastEnd();
  }

  /** n bits, most significant first (0 bits read as 0); n up to 32. */
  u(n) {
    if (n <= 0) return 0;
    if (n > 32) return Number(this.uBig(n));
    this._need(n);
    let value = 0;
    let pos = this.pos;
    const data = this.data;
    for (let left = n; left > 0;) {
      const at = Math.floor(pos / 8);
      const offset = pos - at * 8;
      const take = Math.min(8 - offset, left);
      const bits = (data[at] >> (8 - offset - take)) & ((1 << take) - 1);
      value = value * (1 << take) + bits;
      pos += take;
      left -= take;
    }
    this.pos = pos;
    return value;
  }

  /** n bits as a BigInt (fields whose size comes from a picture size: any width). */
  uBig(n) {
    if (n <= 0) return 0n;
    this._need(n);
    let value = 0n;
    for (let left = n; left > 0;) {
      const take = Math.min(left, 24);
      value = (value << BigInt(take)) | BigInt(this.u(take));
      left -= take;
    }
    return value;
  }

  bit() {
    const pos = this.pos;
    const at = Math.floor(pos / 8);
    if (at >= this.data.length) throw new PastEnd();
    this.pos = pos + 1;
    return (this.data[at] >> (7 - (pos - at * 8))) & 1;
  }

  /** ue(v), with Python's byte-wise reading and its errors: a code of more than 31 leading zeros
   * (or zero bytes over 32 bits) is a SyntaxFault, bits running out a PastEnd, in that order. */
  ue() {
    const pos = this.pos;
    const data = this.data;
    let i = Math.floor(pos / 8);
    if (i >= data.length) throw new PastEnd();
    let byte = data[i] & (0xff >> (pos - i * 8));
    while (!byte) {
      i += 1;
      if (i * 8 - pos > 32) throw new SyntaxFault("Exp-Golomb code too long");
      if (i >= data.length) throw new PastEnd();
      byte = data[i];
    }
    const zeros = i * 8 + Math.clz32(byte) - 24 - pos;
    if (!zeros) {
      this.pos = pos + 1;
      return 0;
    }
    if (zeros > 31) throw new SyntaxFault("Exp-Golomb code too long");
    const end = pos + 2 * zeros + 1;
    if (Math.floor((end - 1) / 8) >= data.length) throw new PastEnd();
    this.pos = pos + zeros + 1;
    const suffix = this.u(zeros);
    return 2 ** zeros - 1 + suffix;
  }

  se() {
    const k = this.ue();
    return k % 2 ? (k + 1) / 2 : -(k / 2);
  }
}

function ceilLog2(value) {
  let size = 0;
  if (typeof value === "bigint") {
    while ((1n << BigInt(size)) < value) size++;
    return size;
  }
  while (2 ** size < value) size++;
  return size;
}

// ---- the parameter sets in force (nal.py ParameterSetTables) --------------------------------

function bytesKey(unit) {
  let s = "";
  for (let i = 0; i < unit.length; i += 4096) s += String.fromCharCode.apply(null, unit.subarray(i, i + 4096));
  return s;
}

/** The parameter sets in force, by kind and id, as last seen; readers[kind](unit) -> [id, info]. */
class ParameterSetTables {
  constructor(readers) {
    this.readers = new Map(readers);
    this.tables = new Map(readers.map(([kind]) => [kind, new Map()]));
    this.inForce = new Map();  // unit bytes -> [kind, id]
  }

  /** Keep a unit of `kind`; true for a readable parameter set (an unreadable one is not kept). */
  addKind(kind, nal) {
    const read = this.readers.get(kind);
    if (!read) return false;
    const key = bytesKey(nal);
    if (this.inForce.has(key)) return true;
    let ident;
    let info;
    try {
      [ident, info] = read(nal);
    } catch (exc) {
      if (isSyntaxError(exc)) return false;
      throw exc;
    }
    const table = this.tables.get(kind);
    const replaced = table.get(ident);
    table.set(ident, [info, key]);
    if (replaced !== undefined) this.inForce.delete(replaced[1]);
    this.inForce.set(key, [kind, ident]);
    return true;
  }

  /** [pps, sps] in force for a slice naming `ppsId`; a SyntaxFault naming one unknown. */
  pictureSets(ppsKind, spsKind, ppsId) {
    const pps = this.tables.get(ppsKind).get(ppsId);
    if (pps === undefined) throw new SyntaxFault(`unknown PPS ${ppsId}`);
    const sps = this.tables.get(spsKind).get(pps[0].spsId);
    if (sps === undefined) throw new SyntaxFault(`unknown SPS ${pps[0].spsId}`);
    return [pps[0], sps[0]];
  }
}

/** Run `read(bits)` over a slice header (h264.py read_slice_header_span): [headerBits, headerBytes]. */
function readSliceHeaderSpan(nal, headerSize, read, window) {
  const size = nal.length;
  let bits;
  let ebsp;
  for (;;) {
    const end = Math.min(size, headerSize + window);
    ebsp = nal.subarray(headerSize, end);
    bits = new BitReader(unescapeRbsp(ebsp));
    try {
      read(bits);
    } catch (exc) {
      if (exc instanceof PastEnd) {
        if (end < size) {
          window *= 4;
          continue;
        }
        throw new SliceHeaderError("slice header runs past the end of the NAL unit");
      }
      if (exc instanceof SliceHeaderError) throw exc;
      if (exc instanceof SyntaxFault) throw new SliceHeaderError(exc.message);
      throw exc;
    }
    break;
  }
  const used = bits.pos;
  const headerBytes = headerSize + escapedLength(ebsp, Math.floor((used + 7) / 8));
  // The stop bit is in the last byte that is neither 0 nor an emulation prevention 03.
  let last = size - 1;
  while (last >= headerSize && (!nal[last] || (nal[last] === 3 && last - 2 >= headerSize && !nal[last - 1] && !nal[last - 2]))) {
    last--;
  }
  if (last < headerBytes + 4 && lastOneBit(unescapeRbsp(nal.subarray(headerSize, last + 1))) <= used) {
    throw new SliceHeaderError("no slice data after the slice header");
  }
  return [8 * headerSize + used, headerBytes];
}

/** The start of vui_parameters() that H.264 (E.1.1) and H.265 (E.2.1) share. */
function skipVuiHead(bits) {
  if (bits.u(1) && bits.u(8) === 255) bits.u(32);  // aspect_ratio_info_present_flag, Extended_SAR
  if (bits.u(1)) bits.u(1);                        // overscan
  if (bits.u(1)) {                                 // video_signal_type_present_flag
    bits.u(4);
    if (bits.u(1)) bits.u(24);
  }
  if (bits.u(1)) {                                 // chroma_loc_info_present_flag
    bits.ue();
    bits.ue();
  }
}

// =============================================================================================
// H.264 (h264.py)
// =============================================================================================

const H264_SPS = 7;
const H264_PPS = 8;
const H264_SLICE = 1;
const H264_IDR = 5;
const HIGH_PROFILES = new Set([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135]);
const SLICE_P = 0;
const SLICE_B = 1;
const SLICE_I = 2;
const SLICE_SP = 3;
const SLICE_SI = 4;
const H264_SLICE_WINDOW = 48;
const MAX_MMCO = 66;
const REFUSED_SLICES = new Map([
  [2, "slice data partition A (Extended profile) is not read"],
  [3, "slice data partition B has no slice header"],
  [4, "slice data partition C has no slice header"],
  [19, "auxiliary coded pictures are not read"],
  [20, "SVC and MVC slice extensions (NAL unit type 20) are not read"],
  [21, "3D-AVC slice extensions (NAL unit type 21) are not read"],
]);

class Sps264 {
  constructor(spsId) {
    this.spsId = spsId;
    this.separateColourPlane = false;
    this.chromaArrayType = 1;
    this.log2MaxFrameNum = 4;
    this.frameMbsOnly = true;
    this.mbAdaptiveFrameField = false;
    this.pocType = 0;
    this.log2MaxPocLsb = 4;
    this.deltaPicOrderAlwaysZero = false;
    this.offsetForNonRefPic = 0;
    this.offsetForTopToBottomField = 0;
    this.offsetsForRefFrame = [];
    this.picWidthInMbs = 0;
    this.picHeightInMapUnits = 0;
    this.bitDepthLuma = 8;
    this.complete = false;
  }
}

function skipScalingList(bits, size) {
  let last = 8;
  let next = 8;
  for (let k = 0; k < size; k++) {
    if (next) next = (((last + bits.se() + 256) % 256) + 256) % 256;
    if (next) last = next;
  }
}

/** The id and what slice headers need of an escaped SPS (7.3.2.1.1). The VUI is not read: no
 * field of it matters to slice headers, and h264.py ignores its errors (complete comes first). */
function parseSps264(nal) {
  const bits = new BitReader(unescapeRbsp(nal.subarray(1)));
  const profile = bits.u(8);
  bits.u(16);  // constraint flags, level_idc
  const info = new Sps264(bits.ue());
  if (info.spsId > 31) throw new SyntaxFault("seq_parameter_set_id out of range");
  try {
    let chroma = 1;
    if (HIGH_PROFILES.has(profile)) {
      chroma = bits.ue();
      if (chroma > 3) throw new SyntaxFault("chroma_format_idc out of range");
      if (chroma === 3) info.separateColourPlane = Boolean(bits.bit());
      info.bitDepthLuma = bits.ue() + 8;
      const bitDepthChroma = bits.ue() + 8;
      if (info.bitDepthLuma > 14 || bitDepthChroma > 14) throw new SyntaxFault("bit depth out of range");
      bits.bit();  // qpprime_y_zero_transform_bypass_flag
      if (bits.bit()) {  // seq_scaling_matrix_present_flag
        for (let i = 0; i < (chroma === 3 ? 12 : 8); i++) if (bits.bit()) skipScalingList(bits, i < 6 ? 16 : 64);
      }
    }
    info.chromaArrayType = info.separateColourPlane ? 0 : chroma;
    info.log2MaxFrameNum = bits.ue() + 4;
    const pocType = info.pocType = bits.ue();
    if (info.log2MaxFrameNum > 16 || pocType > 2) {
      throw new SyntaxFault("log2_max_frame_num_minus4 or pic_order_cnt_type out of range");
    }
    if (pocType === 0) {
      info.log2MaxPocLsb = bits.ue() + 4;
      if (info.log2MaxPocLsb > 16) throw new SyntaxFault("log2_max_pic_order_cnt_lsb_minus4 out of range");
    } else if (pocType === 1) {
      info.deltaPicOrderAlwaysZero = Boolean(bits.bit());
      info.offsetForNonRefPic = bits.se();
      info.offsetForTopToBottomField = bits.se();
      const cycle = bits.ue();
      if (cycle > 255) throw new SyntaxFault("num_ref_frames_in_pic_order_cnt_cycle out of range");
      info.offsetsForRefFrame = [];
      for (let k = 0; k < cycle; k++) info.offsetsForRefFrame.push(bits.se());
    }
    bits.ue();   // max_num_ref_frames
    bits.bit();  // gaps_in_frame_num_value_allowed_flag
    info.picWidthInMbs = bits.ue() + 1;
    info.picHeightInMapUnits = bits.ue() + 1;
    info.frameMbsOnly = Boolean(bits.bit());
    if (!info.frameMbsOnly) info.mbAdaptiveFrameField = Boolean(bits.bit());
    bits.bit();  // direct_8x8_inference_flag
    if (bits.bit()) for (let k = 0; k < 4; k++) bits.ue();  // frame cropping
    info.complete = true;
  } catch (exc) {
    if (!isSyntaxError(exc)) throw exc;
  }
  return info;
}

class Pps264 {
  constructor(ppsId, spsId) {
    this.ppsId = ppsId;
    this.spsId = spsId;
    this.entropyCodingMode = false;
    this.bottomFieldPicOrderInFramePresent = false;
    this.numSliceGroups = 1;
    this.sliceGroupMapType = 0;
    this.sliceGroupChangeRate = 1;
    this.numRefIdxL0DefaultActive = 1;
    this.numRefIdxL1DefaultActive = 1;
    this.weightedPred = false;
    this.weightedBipredIdc = 0;
    this.picInitQp = 26;
    this.picInitQs = 26;
    this.deblockingFilterControlPresent = false;
    this.redundantPicCntPresent = false;
    this.complete = false;
  }
}

function parsePps264(nal) {
  const bits = new BitReader(unescapeRbsp(nal.subarray(1)));
  const info = new Pps264(bits.ue(), bits.ue());
  if (info.ppsId > 255 || info.spsId > 31) throw new SyntaxFault("parameter set id out of range");
  try {
    info.entropyCodingMode = Boolean(bits.bit());
    info.bottomFieldPicOrderInFramePresent = Boolean(bits.bit());
    const groups = info.numSliceGroups = bits.ue() + 1;
    if (groups > 8) throw new SyntaxFault("num_slice_groups_minus1 out of range");
    if (groups > 1) {
      const mapType = info.sliceGroupMapType = bits.ue();
      if (mapType === 0) {
        for (let k = 0; k < groups; k++) bits.ue();
      } else if (mapType === 2) {
        for (let k = 0; k < 2 * (groups - 1); k++) bits.ue();
      } else if (mapType >= 3 && mapType <= 5) {
        bits.bit();
        info.sliceGroupChangeRate = bits.ue() + 1;
      } else if (mapType === 6) {
        const idBits = groups <= 2 ? 1 : groups <= 4 ? 2 : 3;
        bits.pos += idBits * (bits.ue() + 1);  // slice_group_id[] of every map unit
      } else if (mapType !== 1) {
        throw new SyntaxFault("slice_group_map_type out of range");
      }
    }
    info.numRefIdxL0DefaultActive = bits.ue() + 1;
    info.numRefIdxL1DefaultActive = bits.ue() + 1;
    if (info.numRefIdxL0DefaultActive > 32 || info.numRefIdxL1DefaultActive > 32) {
      throw new SyntaxFault("num_ref_idx_default_active_minus1 out of range");
    }
    info.weightedPred = Boolean(bits.bit());
    info.weightedBipredIdc = bits.u(2);
    info.picInitQp = 26 + bits.se();
    info.picInitQs = 26 + bits.se();
    if (info.weightedBipredIdc > 2 || !(info.picInitQs >= 0 && info.picInitQs <= 51) || info.picInitQp > 51) {
      throw new SyntaxFault("weighted_bipred_idc or an initial QP out of range");
    }
    const chromaQp = bits.se();
    if (!(chromaQp >= -12 && chromaQp <= 12)) throw new SyntaxFault("chroma_qp_index_offset out of range");
    info.deblockingFilterControlPresent = Boolean(bits.bit());
    bits.bit();  // constrained_intra_pred_flag
    info.redundantPicCntPresent = Boolean(bits.bit());
    info.complete = true;
  } catch (exc) {
    if (!isSyntaxError(exc)) throw exc;
  }
  return info;
}

function parsePpsIds264(nal) {
  const bits = new BitReader(unescapeRbsp(nal.subarray(1, 12)));
  const ppsId = bits.ue();
  const spsId = bits.ue();
  if (ppsId > 255 || spsId > 31) throw new SyntaxFault("parameter set id out of range");
  return [ppsId, spsId];
}

/** [7, sps id] or [8, pps id]; a SyntaxFault or PastEnd when unreadable. */
function parameterSetKey264(nal) {
  const kind = nal[0] & 0x1f;
  if (kind === H264_SPS) return [H264_SPS, parseSps264(nal).spsId];
  if (kind === H264_PPS) return [H264_PPS, parsePpsIds264(nal)[0]];
  throw new SyntaxFault("not a parameter set");
}

class ParameterSets264 extends ParameterSetTables {
  constructor() {
    super([[H264_SPS, (u) => { const i = parseSps264(u); return [i.spsId, i]; }],
      [H264_PPS, (u) => { const i = parsePps264(u); return [i.ppsId, i]; }]]);
  }

  add(nal) { return this.addKind(nal[0] & 0x1f, nal); }
}

class SliceHeader264 {
  constructor(kind, refIdc) {
    this.nalUnitType = kind;
    this.nalRefIdc = refIdc;
    this.idr = kind === H264_IDR;
    this.firstMbInSlice = 0;
    this.sps = null;
    this.pps = null;
    this.frameNum = 0;
    this.fieldPic = false;
    this.bottomField = false;
    this.pocLsb = null;
    this.deltaPocBottom = 0;
    this.deltaPoc0 = 0;
    this.deltaPoc1 = 0;
    this.mmco5 = false;
    this.headerBits = 0;
    this.headerBytes = 0;
  }
}

/** The whole slice header of an escaped slice NAL unit (types 1 and 5): SliceHeaderError when
 * it cannot be read against the parameter sets in force. */
function parseSliceHeader264(nal, params) {
  if (nal.length < 2) throw new SliceHeaderError("no slice header");
  const kind = nal[0] & 0x1f;
  if (kind !== H264_SLICE && kind !== H264_IDR) {
    throw new SliceHeaderError(REFUSED_SLICES.get(kind) || `NAL unit type ${kind} is no slice`);
  }
  const header = new SliceHeader264(kind, (nal[0] >> 5) & 3);
  [header.headerBits, header.headerBytes] = readSliceHeaderSpan(nal, 1, (bits) => readSliceHeader264(bits, header, params),
    H264_SLICE_WINDOW);
  return header;
}

function readSliceHeader264(bits, header, params) {
  const idr = header.idr;
  const refIdc = header.nalRefIdc;
  if (idr && !refIdc) throw new SliceHeaderError("an IDR picture with nal_ref_idc 0");
  const firstMb = header.firstMbInSlice = bits.ue();
  const sliceType = bits.ue();
  if (sliceType > 9) throw new SliceHeaderError("slice_type out of range");
  const kind = sliceType % 5;
  if (idr && kind !== SLICE_I && kind !== SLICE_SI) throw new SliceHeaderError("an IDR picture with P or B slices");
  const ppsId = bits.ue();
  const [pps, sps] = params.pictureSets(H264_PPS, H264_SPS, ppsId);
  header.pps = pps;
  header.sps = sps;
  if (!pps.complete || !sps.complete) throw new SliceHeaderError(`PPS ${ppsId} or its SPS could not be read`);
  if (sps.separateColourPlane) {
    if (bits.u(2) > 2) throw new SliceHeaderError("colour_plane_id out of range");
  }
  const frameNum = header.frameNum = bits.u(sps.log2MaxFrameNum);
  if (idr && frameNum) throw new SliceHeaderError("an IDR picture with frame_num other than 0");
  let fieldPic = false;
  let mbaff = 0;
  if (!sps.frameMbsOnly) {
    fieldPic = header.fieldPic = Boolean(bits.bit());
    if (fieldPic) header.bottomField = Boolean(bits.bit());
    else mbaff = sps.mbAdaptiveFrameField ? 1 : 0;
  }
  const mapUnits = sps.picWidthInMbs * sps.picHeightInMapUnits;
  const picSizeInMbs = fieldPic || sps.frameMbsOnly ? mapUnits : 2 * mapUnits;
  if (firstMb * (1 + mbaff) >= picSizeInMbs) throw new SliceHeaderError("first_mb_in_slice out of range");
  if (idr) {
    if (bits.ue() > 65535) throw new SliceHeaderError("idr_pic_id out of range");
  }
  const bothFields = pps.bottomFieldPicOrderInFramePresent && !fieldPic;
  if (sps.pocType === 0) {
    header.pocLsb = bits.u(sps.log2MaxPocLsb);
    if (bothFields) header.deltaPocBottom = bits.se();
  } else if (sps.pocType === 1 && !sps.deltaPicOrderAlwaysZero) {
    header.deltaPoc0 = bits.se();
    if (bothFields) header.deltaPoc1 = bits.se();
  }
  if (pps.redundantPicCntPresent) {
    if (bits.ue() > 127) throw new SliceHeaderError("redundant_pic_cnt out of range");
  }
  const bSlice = kind === SLICE_B;
  if (bSlice) bits.bit();  // direct_spatial_mv_pred_flag
  let l0 = 0;
  let l1 = 0;
  if (kind === SLICE_P || kind === SLICE_SP || bSlice) {
    l0 = pps.numRefIdxL0DefaultActive;
    if (bSlice) l1 = pps.numRefIdxL1DefaultActive;
    if (bits.bit()) {  // num_ref_idx_active_override_flag
      l0 = bits.ue() + 1;
      if (bSlice) l1 = bits.ue() + 1;
    }
    const most = fieldPic ? 32 : 16;
    if (l0 > most || l1 > most) throw new SliceHeaderError("num_ref_idx_active_minus1 out of range");
    const maxPicNum = (fieldPic ? 2 : 1) * 2 ** sps.log2MaxFrameNum;
    skipRefPicListModification(bits, l0, maxPicNum);
    if (bSlice) skipRefPicListModification(bits, l1, maxPicNum);
    if (bSlice ? pps.weightedBipredIdc === 1 : pps.weightedPred) skipPredWeightTable264(bits, sps.chromaArrayType !== 0, l0, l1);
  }
  if (refIdc) {
    if (idr) {
      bits.bit();  // no_output_of_prior_pics_flag
      bits.bit();  // long_term_reference_flag
    } else if (bits.bit()) {  // adaptive_ref_pic_marking_mode_flag
      header.mmco5 = readMmcos(bits);
    }
  }
  if (pps.entropyCodingMode && kind !== SLICE_I && kind !== SLICE_SI) {
    if (bits.ue() > 2) throw new SliceHeaderError("cabac_init_idc out of range");
  }
  const qp = pps.picInitQp + bits.se();
  if (!(qp >= -6 * (sps.bitDepthLuma - 8) && qp <= 51)) throw new SliceHeaderError("slice QP out of range");
  if (kind === SLICE_SP || kind === SLICE_SI) {
    if (kind === SLICE_SP) bits.bit();  // sp_for_switch_flag
    const qs = pps.picInitQs + bits.se();
    if (!(qs >= 0 && qs <= 51)) throw new SliceHeaderError("slice QS out of range");
  }
  if (pps.deblockingFilterControlPresent) {
    const idc = bits.ue();
    if (idc > 2) throw new SliceHeaderError("disable_deblocking_filter_idc out of range");
    if (idc !== 1) {
      const alpha = bits.se();
      const beta = bits.se();
      if (!(alpha >= -6 && alpha <= 6 && beta >= -6 && beta <= 6)) throw new SliceHeaderError("deblocking filter offset out of range");
    }
  }
  if (pps.numSliceGroups > 1 && pps.sliceGroupMapType >= 3 && pps.sliceGroupMapType <= 5) {
    const rate = BigInt(pps.sliceGroupChangeRate);
    const cycles = (BigInt(sps.picWidthInMbs) * BigInt(sps.picHeightInMapUnits) + rate - 1n) / rate;
    let size = 0;
    while ((1n << BigInt(size)) <= cycles) size++;
    if (bits.uBig(size) > cycles) throw new SliceHeaderError("slice_group_change_cycle out of range");
  }
  if (pps.entropyCodingMode) {
    while (bits.pos % 8) if (!bits.bit()) throw new SliceHeaderError("cabac_alignment_one_bit is 0");
  }
}

function skipRefPicListModification(bits, active, maxPicNum) {
  if (!bits.bit()) return;
  for (let k = 0; k < active + 1; k++) {
    const idc = bits.ue();
    if (idc === 3) return;
    if (idc > 3) throw new SliceHeaderError("modification_of_pic_nums_idc out of range");
    const value = bits.ue();
    if (idc < 2 && value >= maxPicNum) throw new SliceHeaderError("abs_diff_pic_num_minus1 out of range");
  }
  throw new SliceHeaderError("more reference list modifications than references");
}

function skipPredWeightTable264(bits, chroma, l0, l1) {
  if (bits.ue() > 7 || (chroma && bits.ue() > 7)) throw new SliceHeaderError("log2 weight denominator out of range");
  for (let k = 0; k < l0 + l1; k++) {
    if (bits.bit()) skipWeights(bits, 2);
    if (chroma && bits.bit()) skipWeights(bits, 4);
  }
}

function skipWeights(bits, count) {
  for (let k = 0; k < count; k++) {
    const v = bits.se();
    if (!(v >= -128 && v <= 127)) throw new SliceHeaderError("prediction weight or offset out of range");
  }
}

/** dec_ref_pic_marking()'s operations: true when one is 5 (the picture order restarts). */
function readMmcos(bits) {
  let mmco5 = false;
  for (let k = 0; k < MAX_MMCO; k++) {
    const op = bits.ue();
    if (op === 0) return mmco5;
    if (op > 6) throw new SliceHeaderError("memory_management_control_operation out of range");
    if (op === 5) mmco5 = true;
    if (op >= 1 && op <= 4) bits.ue();
    if (op === 3 || op === 6) bits.ue();
  }
  throw new SliceHeaderError("too many memory management control operations");
}

/** Picture order counts in decoding order (H.264 8.2.1, types 0, 1, 2, MMCO 5): `orderKey` is
 * [run, count], a run beginning at each IDR picture or MMCO 5. */
class PocCounter264 {
  constructor(params) {
    this.params = params;
    this.orderKey = null;
    this.run = -1;
    this.prevMsb = 0;
    this.prevLsb = 0;
    this.prevFrameNum = 0;
    this.prevFrameNumOffset = 0;
  }

  count(header) {
    const sps = header.sps;
    if (sps === null) throw new SliceHeaderError("a slice header without its SPS");
    const idr = header.idr;
    const ref = header.nalRefIdc !== 0;
    const field = header.fieldPic;
    const bottomField = header.bottomField;
    const frameNum = header.frameNum;
    let top = null;
    let bottom = null;
    let msb = 0;
    let lsb = 0;
    let offset = 0;
    if (sps.pocType === 0) {  // 8.2.1.1
      const [prevMsb, prevLsb] = idr ? [0, 0] : [this.prevMsb, this.prevLsb];
      lsb = header.pocLsb || 0;
      const half = 2 ** (sps.log2MaxPocLsb - 1);
      if (lsb < prevLsb && prevLsb - lsb >= half) msb = prevMsb + 2 * half;
      else if (lsb > prevLsb && lsb - prevLsb > half) msb = prevMsb - 2 * half;
      else msb = prevMsb;
      if (!bottomField) {
        top = msb + lsb;
        if (!field) bottom = top + header.deltaPocBottom;
      } else {
        bottom = msb + lsb;
      }
    } else {
      if (idr) offset = 0;
      else if (this.prevFrameNum > frameNum) offset = this.prevFrameNumOffset + 2 ** sps.log2MaxFrameNum;
      else offset = this.prevFrameNumOffset;
      if (sps.pocType === 1) {  // 8.2.1.2
        const cycle = sps.offsetsForRefFrame;
        let absolute = cycle.length ? offset + frameNum : 0;
        if (!ref && absolute > 0) absolute -= 1;
        let expected = 0;
        if (absolute > 0) {
          const rounds = Math.floor((absolute - 1) / cycle.length);
          const within = (absolute - 1) - rounds * cycle.length;
          let whole = 0;
          for (const v of cycle) whole += v;
          let part = 0;
          for (let k = 0; k <= within; k++) part += cycle[k];
          expected = rounds * whole + part;
        }
        if (!ref) expected += sps.offsetForNonRefPic;
        if (!field) {
          top = expected + header.deltaPoc0;
          bottom = top + sps.offsetForTopToBottomField + header.deltaPoc1;
        } else if (!bottomField) {
          top = expected + header.deltaPoc0;
        } else {
          bottom = expected + sps.offsetForTopToBottomField + header.deltaPoc0;
        }
      } else {  // 8.2.1.3
        const value = idr ? 0 : 2 * (offset + frameNum) - (ref ? 0 : 1);
        if (!bottomField) top = value;
        if (!field || bottomField) bottom = value;
      }
    }
    const poc = top === null ? bottom : bottom === null ? top : Math.min(top, bottom);
    const mmco5 = header.mmco5;
    if (mmco5) {  // after decoding, the picture's counts are relative to its own
      top = top === null ? null : top - poc;
      bottom = bottom === null ? null : bottom - poc;
    }
    if (sps.pocType === 0) {
      if (ref) {
        if (mmco5) {
          this.prevMsb = 0;
          this.prevLsb = bottomField ? 0 : top || 0;
        } else {
          this.prevMsb = msb;
          this.prevLsb = lsb;
        }
      }
    } else {
      this.prevFrameNumOffset = mmco5 ? 0 : offset;
    }
    this.prevFrameNum = mmco5 ? 0 : frameNum;
    if (idr || mmco5 || this.run < 0) this.run += 1;
    this.orderKey = [this.run, mmco5 ? 0 : poc];
    return poc;
  }
}

export const h264 = Object.freeze({
  ParameterSets: ParameterSets264, PocCounter: PocCounter264, parseSliceHeader: parseSliceHeader264,
  parameterSetKey: parameterSetKey264, parseSps: parseSps264, parsePps: parsePps264,
});

// =============================================================================================
// H.265 (h265.py)
// =============================================================================================

const H265_VPS = 32;
const H265_SPS = 33;
const H265_PPS = 34;
const H265_SLICE_WINDOW = 64;
const SLICE265_B = 0;
const SLICE265_I = 2;

const nalType265 = (byte) => (byte >> 1) & 0x3f;
const layerId = (nal) => ((nal[0] & 1) << 5) | (nal[1] >> 3);
const isIrap = (kind) => kind >= 16 && kind <= 23;
const isIdr = (kind) => kind === 19 || kind === 20;
const isBla = (kind) => kind >= 16 && kind <= 18;
const isRasl = (kind) => kind === 8 || kind === 9;
const isSubLayerNonReference = (kind) => kind <= 14 && !(kind & 1);
const rbsp265 = (nal, limit = 0) => unescapeRbsp(limit ? nal.subarray(2, 2 + limit) : nal.subarray(2));

function skipProfileTierLevel(bits, maxSubLayersMinus1) {
  bits.u(32);
  bits.u(32);
  bits.u(32);
  const present = [];
  for (let k = 0; k < maxSubLayersMinus1; k++) present.push([bits.u(1), bits.u(1)]);
  if (maxSubLayersMinus1 > 0) bits.u(2 * (8 - maxSubLayersMinus1));
  for (const [profile, level] of present) {
    if (profile) {
      bits.u(32);
      bits.u(32);
      bits.u(24);
    }
    if (level) bits.u(8);
  }
}

function skipScalingListData(bits) {
  for (let sizeId = 0; sizeId < 4; sizeId++) {
    for (let matrix = 0; matrix < 6; matrix += sizeId === 3 ? 3 : 1) {
      if (!bits.u(1)) {
        bits.ue();
        continue;
      }
      if (sizeId > 1) bits.se();
      const count = Math.min(64, 1 << (4 + (sizeId << 1)));
      for (let k = 0; k < count; k++) bits.se();
    }
  }
}

/** st_ref_pic_set(index) (7.3.7): [negative, positive, used] (h265.py _read_st_ref_pic_set). */
function readStRefPicSet(bits, sets, index, count) {
  if (index && bits.bit()) {  // inter_ref_pic_set_prediction_flag
    const refIndex = index - (index === count ? bits.ue() + 1 : 1);
    if (refIndex < 0) throw new SyntaxFault("delta_idx_minus1 out of range");
    const [negRef, posRef] = sets[refIndex];
    const sign = bits.bit();
    const magnitude = bits.ue() + 1;
    if (magnitude > 1 << 15) throw new SyntaxFault("abs_delta_rps_minus1 out of range");
    const deltaRps = sign ? -magnitude : magnitude;
    const nNeg = negRef.length;
    const total = nNeg + posRef.length;
    const use = [];
    for (let k = 0; k <= total; k++) use.push(bits.bit() ? 2 : bits.bit());
    const negative = [];
    const positive = [];
    let used = 0;
    for (let j = posRef.length - 1; j >= 0; j--) {
      const d = posRef[j] + deltaRps;
      if (d < 0 && use[nNeg + j]) { negative.push(d); used += use[nNeg + j] >> 1; }
    }
    if (deltaRps < 0 && use[total]) { negative.push(deltaRps); used += use[total] >> 1; }
    for (let j = 0; j < nNeg; j++) {
      const d = negRef[j] + deltaRps;
      if (d < 0 && use[j]) { negative.push(d); used += use[j] >> 1; }
    }
    for (let j = nNeg - 1; j >= 0; j--) {
      const d = negRef[j] + deltaRps;
      if (d > 0 && use[j]) { positive.push(d); used += use[j] >> 1; }
    }
    if (deltaRps > 0 && use[total]) { positive.push(deltaRps); used += use[total] >> 1; }
    for (let j = 0; j < posRef.length; j++) {
      const d = posRef[j] + deltaRps;
      if (d > 0 && use[nNeg + j]) { positive.push(d); used += use[nNeg + j] >> 1; }
    }
    if (negative.length + positive.length > 15) throw new SyntaxFault("too many pictures in a short-term reference picture set");
    return [negative, positive, used];
  }
  const numNegative = bits.ue();
  const numPositive = bits.ue();
  if (numNegative > 15 || numPositive > 15 - numNegative) {
    throw new SyntaxFault("too many pictures in a short-term reference picture set");
  }
  const negative = [];
  const positive = [];
  let used = 0;
  let poc = 0;
  for (let k = 0; k < numNegative; k++) {
    const step = bits.ue() + 1;
    if (step > 1 << 15) throw new SyntaxFault("delta_poc_s0_minus1 out of range");
    poc -= step;
    used += bits.bit();
    negative.push(poc);
  }
  poc = 0;
  for (let k = 0; k < numPositive; k++) {
    const step = bits.ue() + 1;
    if (step > 1 << 15) throw new SyntaxFault("delta_poc_s1_minus1 out of range");
    poc += step;
    used += bits.bit();
    positive.push(poc);
  }
  return [negative, positive, used];
}

function skipHrdParameters(bits, maxSubLayersMinus1) {
  const nal = bits.bit();
  const vcl = bits.bit();
  let subPic = 0;
  if (nal || vcl) {
    subPic = bits.bit();
    if (subPic) bits.u(19);
    bits.u(subPic ? 12 : 8);
    bits.u(15);
  }
  for (let k = 0; k < maxSubLayersMinus1 + 1; k++) {
    const fixed = bits.bit() || bits.bit();  // fixed_pic_rate_general_flag, ..._within_cvs_flag
    let lowDelay = 0;
    if (fixed) bits.ue();
    else lowDelay = bits.bit();
    const cpbCount = lowDelay ? 1 : bits.ue() + 1;
    if (cpbCount > 32) throw new SyntaxFault("cpb_cnt_minus1 out of range");
    for (const present of [nal, vcl]) {
      if (!present) continue;
      for (let c = 0; c < cpbCount; c++) {
        bits.ue();
        bits.ue();
        if (subPic) {
          bits.ue();
          bits.ue();
        }
        bits.bit();
      }
    }
  }
}

function parseVps(nal) {
  const rbsp = rbsp265(nal, 8);
  if (rbsp.length < 4 || nalType265(nal[0]) !== H265_VPS) throw new SyntaxFault("not a video parameter set");
  if (rbsp[2] !== 0xff || rbsp[3] !== 0xff) throw new SyntaxFault("video parameter set without its reserved 0xffff");
  return { vpsId: rbsp[0] >> 4 };
}

class Sps265 {
  constructor(spsId, vpsId) {
    this.spsId = spsId;
    this.vpsId = vpsId;
    this.separateColourPlane = false;
    this.chromaArrayType = 1;
    this.bitDepthLuma = 8;
    this.bitDepthChroma = 8;
    this.log2MaxPocLsb = 4;
    this.maxDecPicBuffering = 1;
    this.picSizeInCtbs = 1n;   // a BigInt: a hostile SPS's width times height need not fit 2^53
    this.picHeightInCtbs = 1;
    this.sampleAdaptiveOffset = false;
    this.stRps = [];
    this.stRpsUsed = [];
    this.longTermRefPicsPresent = false;
    this.ltRefPicsUsed = [];
    this.temporalMvp = false;
    this.highPrecisionOffsets = false;
    this.complete = false;
    this.unsupported = "SPS not read to its end";
  }
}

function parseSps265(nal) {
  if (nalType265(nal[0]) !== H265_SPS) throw new SyntaxFault("not a sequence parameter set");
  const bits = new BitReader(rbsp265(nal));
  const vpsId = bits.u(4);
  const maxSubLayersMinus1 = bits.u(3);
  bits.bit();
  if (maxSubLayersMinus1 > 6) throw new SyntaxFault("sps_max_sub_layers_minus1 out of range");
  skipProfileTierLevel(bits, maxSubLayersMinus1);
  const info = new Sps265(bits.ue(), vpsId);
  if (info.spsId > 15) throw new SyntaxFault("sps_seq_parameter_set_id out of range");
  if (layerId(nal)) {
    info.unsupported = "an SPS of a layer other than the base layer";
    return info;
  }
  try {
    const chroma = bits.ue();
    if (chroma > 3) throw new SyntaxFault("chroma_format_idc out of range");
    if (chroma === 3) info.separateColourPlane = Boolean(bits.bit());
    info.chromaArrayType = info.separateColourPlane ? 0 : chroma;
    const width = bits.ue();
    const height = bits.ue();
    if (bits.bit()) for (let k = 0; k < 4; k++) bits.ue();  // conformance window
    info.bitDepthLuma = bits.ue() + 8;
    info.bitDepthChroma = bits.ue() + 8;
    if (info.bitDepthLuma > 16 || info.bitDepthChroma > 16) throw new SyntaxFault("bit depth out of range");
    info.log2MaxPocLsb = bits.ue() + 4;
    if (info.log2MaxPocLsb > 16) throw new SyntaxFault("log2_max_pic_order_cnt_lsb_minus4 out of range");
    const orderingAll = bits.bit();
    for (let k = orderingAll ? 0 : maxSubLayersMinus1; k < maxSubLayersMinus1 + 1; k++) {
      info.maxDecPicBuffering = bits.ue() + 1;
      bits.ue();  // sps_max_num_reorder_pics
      bits.ue();  // sps_max_latency_increase_plus1
    }
    if (info.maxDecPicBuffering > 16) throw new SyntaxFault("sps_max_dec_pic_buffering_minus1 out of range");
    const log2MinCb = bits.ue() + 3;
    const log2Ctb = log2MinCb + bits.ue();
    if (log2Ctb > 6) throw new SyntaxFault("coding tree block larger than 64");
    const ctb = 2 ** log2Ctb;
    info.picHeightInCtbs = Math.floor((height + ctb - 1) / ctb);
    const size = BigInt(Math.floor((width + ctb - 1) / ctb)) * BigInt(info.picHeightInCtbs);
    info.picSizeInCtbs = size || 1n;
    for (let k = 0; k < 4; k++) bits.ue();
    if (bits.bit() && bits.bit()) skipScalingListData(bits);
    bits.bit();  // amp_enabled_flag
    info.sampleAdaptiveOffset = Boolean(bits.bit());
    if (bits.bit()) {  // pcm_enabled_flag
      bits.u(8);
      bits.ue();
      bits.ue();
      bits.bit();
    }
    const count = bits.ue();
    if (count > 64) throw new SyntaxFault("num_short_term_ref_pic_sets out of range");
    for (let index = 0; index < count; index++) {
      const [negative, positive, used] = readStRefPicSet(bits, info.stRps, index, count);
      info.stRps.push([negative, positive]);
      info.stRpsUsed.push(used);
    }
    if (bits.bit()) {  // long_term_ref_pics_present_flag
      info.longTermRefPicsPresent = true;
      const lt = bits.ue();
      if (lt > 32) throw new SyntaxFault("num_long_term_ref_pics_sps out of range");
      for (let k = 0; k < lt; k++) {
        bits.u(info.log2MaxPocLsb);
        info.ltRefPicsUsed.push(bits.bit());
      }
    }
    info.temporalMvp = Boolean(bits.bit());
    bits.bit();  // strong_intra_smoothing_enabled_flag
    info.complete = true;
    if (bits.bit()) readVui265(bits, maxSubLayersMinus1);
    info.unsupported = readSpsExtensionFlags(bits, info);
  } catch (exc) {
    if (!isSyntaxError(exc)) throw exc;
  }
  return info;
}

/** vui_parameters() (E.2.1), read to its end (what follows it decides whether slices can be read). */
function readVui265(bits, maxSubLayersMinus1) {
  skipVuiHead(bits);
  bits.bit();  // neutral_chroma_indication_flag
  bits.bit();  // field_seq_flag
  bits.bit();  // frame_field_info_present_flag
  if (bits.bit()) for (let k = 0; k < 4; k++) bits.ue();  // default display window
  if (bits.bit()) {  // vui_timing_info_present_flag
    bits.u(32);
    bits.u(32);
    if (bits.bit()) bits.ue();
    if (bits.bit()) skipHrdParameters(bits, maxSubLayersMinus1);
  }
  if (bits.bit()) {  // bitstream_restriction_flag
    bits.u(3);
    for (let k = 0; k < 5; k++) bits.ue();
  }
}

function readSpsExtensionFlags(bits, info) {
  if (!bits.bit()) return "";
  const rangeExtension = bits.bit();
  bits.bit();  // sps_multilayer_extension_flag
  if (bits.bit()) return "3D-HEVC extension";
  if (bits.bit()) return "screen content coding extension";
  bits.u(4);
  if (rangeExtension) {
    bits.u(6);
    info.highPrecisionOffsets = Boolean(bits.bit());
  }
  return "";
}

class Pps265 {
  constructor(ppsId, spsId) {
    this.ppsId = ppsId;
    this.spsId = spsId;
    this.dependentSliceSegments = false;
    this.outputFlagPresent = false;
    this.extraSliceHeaderBits = 0;
    this.cabacInitPresent = false;
    this.numRefIdxL0DefaultActive = 1;
    this.numRefIdxL1DefaultActive = 1;
    this.initQp = 26;
    this.cbQpOffset = 0;
    this.crQpOffset = 0;
    this.sliceChromaQpOffsetsPresent = false;
    this.weightedPred = false;
    this.weightedBipred = false;
    this.tiles = false;
    this.entropyCodingSync = false;
    this.numTileColumns = 1;
    this.numTileRows = 1;
    this.loopFilterAcrossSlices = false;
    this.deblockingFilterOverrideEnabled = false;
    this.deblockingFilterDisabled = false;
    this.listsModificationPresent = false;
    this.sliceSegmentHeaderExtensionPresent = false;
    this.chromaQpOffsetListEnabled = false;
    this.unsupported = "PPS not read to its end";
  }
}

function parsePps265(nal) {
  if (nalType265(nal[0]) !== H265_PPS) throw new SyntaxFault("not a picture parameter set");
  const bits = new BitReader(rbsp265(nal));
  const info = new Pps265(bits.ue(), bits.ue());
  if (info.ppsId > 63 || info.spsId > 15) throw new SyntaxFault("parameter set id out of range");
  info.dependentSliceSegments = Boolean(bits.bit());
  info.outputFlagPresent = Boolean(bits.bit());
  info.extraSliceHeaderBits = bits.u(3);
  if (layerId(nal)) {
    info.unsupported = "a PPS of a layer other than the base layer";
    return info;
  }
  try {
    bits.bit();  // sign_data_hiding_enabled_flag
    info.cabacInitPresent = Boolean(bits.bit());
    info.numRefIdxL0DefaultActive = bits.ue() + 1;
    info.numRefIdxL1DefaultActive = bits.ue() + 1;
    if (info.numRefIdxL0DefaultActive > 15 || info.numRefIdxL1DefaultActive > 15) {
      throw new SyntaxFault("num_ref_idx_default_active_minus1 out of range");
    }
    info.initQp = 26 + bits.se();
    bits.bit();  // constrained_intra_pred_flag
    const transformSkip = bits.bit();
    if (bits.bit()) bits.ue();  // cu_qp_delta_enabled_flag, diff_cu_qp_delta_depth
    info.cbQpOffset = bits.se();
    info.crQpOffset = bits.se();
    if (info.initQp > 51 || !(info.cbQpOffset >= -12 && info.cbQpOffset <= 12 && info.crQpOffset >= -12 && info.crQpOffset <= 12)) {
      throw new SyntaxFault("a QP or QP offset out of range");
    }
    info.sliceChromaQpOffsetsPresent = Boolean(bits.bit());
    info.weightedPred = Boolean(bits.bit());
    info.weightedBipred = Boolean(bits.bit());
    bits.bit();  // transquant_bypass_enabled_flag
    info.tiles = Boolean(bits.bit());
    info.entropyCodingSync = Boolean(bits.bit());
    if (info.tiles) {
      info.numTileColumns = bits.ue() + 1;
      info.numTileRows = bits.ue() + 1;
      if (info.numTileColumns > 20 || info.numTileRows > 22) throw new SyntaxFault("too many tiles");
      if (!bits.bit()) for (let k = 0; k < info.numTileColumns + info.numTileRows - 2; k++) bits.ue();
      bits.bit();  // loop_filter_across_tiles_enabled_flag
    }
    info.loopFilterAcrossSlices = Boolean(bits.bit());
    if (bits.bit()) {  // deblocking_filter_control_present_flag
      info.deblockingFilterOverrideEnabled = Boolean(bits.bit());
      info.deblockingFilterDisabled = Boolean(bits.bit());
      if (!info.deblockingFilterDisabled) {
        bits.se();
        bits.se();
      }
    }
    if (bits.bit()) skipScalingListData(bits);
    info.listsModificationPresent = Boolean(bits.bit());
    bits.ue();  // log2_parallel_merge_level_minus2
    info.sliceSegmentHeaderExtensionPresent = Boolean(bits.bit());
    info.unsupported = readPpsExtensionFlags(bits, info, transformSkip);
  } catch (exc) {
    if (!isSyntaxError(exc)) throw exc;
  }
  return info;
}

function readPpsExtensionFlags(bits, info, transformSkip) {
  if (!bits.bit()) return "";
  const rangeExtension = bits.bit();
  if (bits.bit()) return "multilayer extension";
  if (bits.bit()) return "3D-HEVC extension";
  if (bits.bit()) return "screen content coding extension";
  bits.u(4);
  if (rangeExtension) {
    if (transformSkip) bits.ue();
    bits.bit();  // cross_component_prediction_enabled_flag
    info.chromaQpOffsetListEnabled = Boolean(bits.bit());
  }
  return "";
}

/** [32, vps id], [33, sps id] or [34, pps id]; a SyntaxFault or PastEnd when unreadable. */
function parameterSetKey265(nal) {
  const kind = nalType265(nal[0]);
  if (kind === H265_VPS) return [H265_VPS, parseVps(nal).vpsId];
  if (kind === H265_SPS) return [H265_SPS, parseSps265(nal).spsId];
  if (kind === H265_PPS) return [H265_PPS, parsePps265(nal).ppsId];
  throw new SyntaxFault("not a parameter set");
}

class ParameterSets265 extends ParameterSetTables {
  constructor() {
    super([[H265_VPS, (u) => { const i = parseVps(u); return [i.vpsId, i]; }],
      [H265_SPS, (u) => { const i = parseSps265(u); return [i.spsId, i]; }],
      [H265_PPS, (u) => { const i = parsePps265(u); return [i.ppsId, i]; }]]);
  }

  add(nal) { return this.addKind(nalType265(nal[0]), nal); }
}

class SliceHeader265 {
  constructor(kind, temporalId) {
    this.nalUnitType = kind;
    this.temporalId = temporalId;
    this.firstInPicture = false;
    this.sps = null;
    this.pps = null;
    this.dependent = false;
    this.sliceType = null;
    this.picOutputFlag = true;
    this.pocLsb = null;
    this.temporalMvp = false;
    this.saoLuma = false;
    this.saoChroma = false;
    this.headerBits = 0;
    this.headerBytes = 0;
  }
}

function sliceHeaderOf265(nal) {
  if (nal.length < 3) throw new SliceHeaderError("no slice segment header");
  const kind = nalType265(nal[0]);
  if (kind >= 32) throw new SliceHeaderError("not a slice segment");
  if (kind === 22 || kind === 23 || (kind >= 10 && kind <= 15) || kind >= 24) {
    throw new SliceHeaderError(`reserved NAL unit type ${kind}`);
  }
  if (layerId(nal)) throw new SliceHeaderError("a slice segment of a layer other than the base layer");
  const temporalId = (nal[1] & 7) - 1;
  if (temporalId < 0 || (temporalId && isIrap(kind)) || (!temporalId && kind >= 2 && kind <= 5)) {
    throw new SliceHeaderError("nuh_temporal_id_plus1 out of range");
  }
  return new SliceHeader265(kind, temporalId);
}

/** The whole slice segment header of an escaped VCL NAL unit (7.3.6.1). */
function parseSliceHeader265(nal, params) {
  const header = sliceHeaderOf265(nal);
  const read = (bits) => {
    if (readSliceHead265(bits, header, params)) readSliceRest265(bits, header);
    readSliceTail265(bits, header);
  };
  [header.headerBits, header.headerBytes] = readSliceHeaderSpan(nal, 2, read, H265_SLICE_WINDOW);
  return header;
}

function readSliceHead265(bits, header, params) {
  const kind = header.nalUnitType;
  const first = header.firstInPicture = Boolean(bits.bit());
  if (isIrap(kind)) bits.bit();  // no_output_of_prior_pics_flag
  const ppsId = bits.ue();
  const [pps, sps] = params.pictureSets(H265_PPS, H265_SPS, ppsId);
  header.pps = pps;
  header.sps = sps;
  if (pps.unsupported) throw new SliceHeaderError(`PPS ${ppsId}: ${pps.unsupported}`);
  if (sps.unsupported || !sps.complete) throw new SliceHeaderError(`SPS ${sps.spsId}: ${sps.unsupported || "unreadable"}`);
  if (!first) {
    if (pps.dependentSliceSegments) header.dependent = Boolean(bits.bit());
    const address = bits.uBig(ceilLog2(sps.picSizeInCtbs));
    if (address >= sps.picSizeInCtbs) throw new SliceHeaderError("slice_segment_address out of range");
    if (header.dependent) return false;
  }
  bits.u(pps.extraSliceHeaderBits);
  const sliceType = header.sliceType = bits.ue();
  if (sliceType > 2 || (isIrap(kind) && sliceType !== SLICE265_I)) throw new SliceHeaderError("slice_type out of range");
  if (pps.outputFlagPresent) header.picOutputFlag = Boolean(bits.bit());
  if (sps.separateColourPlane) {
    if (bits.u(2) > 2) throw new SliceHeaderError("colour_plane_id out of range");
  }
  header.pocLsb = isIdr(kind) ? 0 : bits.u(sps.log2MaxPocLsb);
  return true;
}

function readSliceRest265(bits, header) {
  const { sps, pps } = header;
  const sliceType = header.sliceType;
  let used = 0;  // NumPicTotalCurr
  if (!isIdr(header.nalUnitType)) {
    const sets = sps.stRps;
    let stRps;
    if (bits.bit()) {  // short_term_ref_pic_set_sps_flag
      if (!sets.length) throw new SliceHeaderError("no short-term reference picture set in the SPS");
      const index = bits.u(ceilLog2(sets.length));
      if (index >= sets.length) throw new SliceHeaderError("short_term_ref_pic_set_idx out of range");
      stRps = sets[index];
      used = sps.stRpsUsed[index];
    } else {
      const [negative, positive, count] = readStRefPicSet(bits, sets, sets.length, sets.length);
      stRps = [negative, positive];
      used = count;
    }
    const pictures = stRps[0].length + stRps[1].length;
    if (sps.longTermRefPicsPresent) {
      const inSps = sps.ltRefPicsUsed;
      const fromSps = inSps.length ? bits.ue() : 0;
      const coded = bits.ue();
      if (fromSps > inSps.length || pictures + fromSps + coded >= sps.maxDecPicBuffering) {
        throw new SliceHeaderError("too many long-term reference pictures");
      }
      const indexBits = ceilLog2(inSps.length);
      for (let i = 0; i < fromSps + coded; i++) {
        if (i < fromSps) {
          const index = bits.u(indexBits);
          if (index >= inSps.length) throw new SliceHeaderError("lt_idx_sps out of range");
          used += inSps[index];
        } else {
          bits.u(sps.log2MaxPocLsb);
          used += bits.bit();
        }
        if (bits.bit()) bits.ue();
      }
    } else if (pictures >= sps.maxDecPicBuffering) {
      throw new SliceHeaderError("too many short-term reference pictures");
    }
    if (sps.temporalMvp) header.temporalMvp = Boolean(bits.bit());
  }
  if (sps.sampleAdaptiveOffset) {
    header.saoLuma = Boolean(bits.bit());
    if (sps.chromaArrayType) header.saoChroma = Boolean(bits.bit());
  }
  if (sliceType !== SLICE265_I) {
    const bSlice = sliceType === SLICE265_B;
    if (!used) throw new SliceHeaderError("a P or B slice without reference pictures");
    let l0 = pps.numRefIdxL0DefaultActive;
    let l1 = bSlice ? pps.numRefIdxL1DefaultActive : 0;
    if (bits.bit()) {
      l0 = bits.ue() + 1;
      if (bSlice) l1 = bits.ue() + 1;
      if (l0 > 15 || l1 > 15) throw new SliceHeaderError("num_ref_idx_active_minus1 out of range");
    }
    if (pps.listsModificationPresent && used > 1) {
      const entryBits = ceilLog2(used);
      for (const count of [l0, l1]) {
        if (count && bits.bit()) {
          for (let k = 0; k < count; k++) if (bits.u(entryBits) >= used) throw new SliceHeaderError("list_entry out of range");
        }
      }
    }
    if (bSlice) bits.bit();  // mvd_l1_zero_flag
    if (pps.cabacInitPresent) bits.bit();
    if (header.temporalMvp) {
      const fromL0 = bSlice ? Boolean(bits.bit()) : true;
      const count = fromL0 ? l0 : l1;
      if (count > 1) {
        if (bits.ue() >= count) throw new SliceHeaderError("collocated_ref_idx out of range");
      }
    }
    if (bSlice ? pps.weightedBipred : pps.weightedPred) skipPredWeightTable265(bits, sps, l0, l1);
    if (bits.ue() > 4) throw new SliceHeaderError("five_minus_max_num_merge_cand out of range");
  }
  const qp = pps.initQp + bits.se();
  if (!(qp >= -6 * (sps.bitDepthLuma - 8) && qp <= 51)) throw new SliceHeaderError("slice QP out of range");
  if (pps.sliceChromaQpOffsetsPresent) {
    const cb = bits.se();
    const cr = bits.se();
    const inRange = (v) => v >= -12 && v <= 12;
    if (!(inRange(cb) && inRange(cr) && inRange(pps.cbQpOffset + cb) && inRange(pps.crQpOffset + cr))) {
      throw new SliceHeaderError("slice chroma QP offset out of range");
    }
  }
  if (pps.chromaQpOffsetListEnabled) bits.bit();
  let disabled = pps.deblockingFilterDisabled;
  if (pps.deblockingFilterOverrideEnabled && bits.bit()) {
    disabled = Boolean(bits.bit());
    if (!disabled) {
      const beta = bits.se();
      const tc = bits.se();
      if (!(beta >= -6 && beta <= 6 && tc >= -6 && tc <= 6)) throw new SliceHeaderError("deblocking filter offset out of range");
    }
  }
  if (pps.loopFilterAcrossSlices && (header.saoLuma || header.saoChroma || !disabled)) bits.bit();
}

function skipPredWeightTable265(bits, sps, l0, l1) {
  const chroma = sps.chromaArrayType !== 0;
  const lumaDenom = bits.ue();
  if (lumaDenom > 7) throw new SliceHeaderError("log2 weight denominator out of range");
  if (chroma) {
    const chromaDenom = lumaDenom + bits.se();
    if (!(chromaDenom >= 0 && chromaDenom <= 7)) throw new SliceHeaderError("log2 weight denominator out of range");
  }
  const lumaHalf = sps.highPrecisionOffsets ? 2 ** (sps.bitDepthLuma - 1) : 128;
  const chromaHalf = sps.highPrecisionOffsets ? 2 ** (sps.bitDepthChroma - 1) : 128;
  for (const count of [l0, l1]) {
    const luma = [];
    for (let i = 0; i < count; i++) luma.push(bits.bit());
    const colour = [];
    for (let i = 0; i < count; i++) colour.push(chroma ? bits.bit() : 0);
    for (let i = 0; i < count; i++) {
      if (luma[i]) {
        const weight = bits.se();
        if (!(weight >= -128 && weight <= 127)) throw new SliceHeaderError("luma weight or offset out of range");
        const offset = bits.se();
        if (!(offset >= -lumaHalf && offset < lumaHalf)) throw new SliceHeaderError("luma weight or offset out of range");
      }
      if (colour[i]) {
        for (let c = 0; c < 2; c++) {
          const weight = bits.se();
          if (!(weight >= -128 && weight <= 127)) throw new SliceHeaderError("chroma weight or offset out of range");
          const offset = bits.se();
          if (!(offset >= -4 * chromaHalf && offset < 4 * chromaHalf)) throw new SliceHeaderError("chroma weight or offset out of range");
        }
      }
    }
  }
}

function readSliceTail265(bits, header) {
  const { sps, pps } = header;
  if (pps.tiles || pps.entropyCodingSync) {
    const count = bits.ue();
    let most;
    if (!pps.tiles) most = sps.picHeightInCtbs - 1;
    else if (!pps.entropyCodingSync) most = pps.numTileColumns * pps.numTileRows - 1;
    else most = pps.numTileColumns * sps.picHeightInCtbs - 1;
    if (count > most) throw new SliceHeaderError("num_entry_point_offsets out of range");
    if (count) {
      const length = bits.ue() + 1;
      if (length > 32) throw new SliceHeaderError("offset_len_minus1 out of range");
      bits.pos += count * length;
    }
  }
  if (pps.sliceSegmentHeaderExtensionPresent) {
    const length = bits.ue();
    if (length > 256) throw new SliceHeaderError("slice_segment_header_extension_length out of range");
    bits.pos += 8 * length;
  }
  if (!bits.bit()) throw new SliceHeaderError("alignment_bit_equal_to_one is 0");
  while (bits.pos % 8) if (bits.bit()) throw new SliceHeaderError("alignment_bit_equal_to_zero is 1");
}

/** Picture order counts in decoding order (H.265 8.3.1): `orderKey` is [run, count], a run
 * beginning at each IRAP picture whose NoRaslOutputFlag is 1; null for a picture not output. */
class PocCounter265 {
  constructor(params) {
    this.params = params;
    this.orderKey = null;
    this.run = -1;
    this.prevTid0 = 0;
    this.restart = true;
    this.skipRasl = false;
  }

  endOfSequence() { this.restart = true; }

  count(header) {
    const sps = header.sps;
    const lsb = header.pocLsb;
    if (sps === null || lsb === null) throw new SliceHeaderError("not the first slice segment of a picture");
    const kind = header.nalUnitType;
    const irap = isIrap(kind);
    if (irap) {
      this.skipRasl = this.restart || isIdr(kind) || isBla(kind);
      this.restart = false;
    }
    let msb;
    if (irap && this.skipRasl) {
      msb = 0;
      this.run += 1;
    } else {
      const top = 2 ** sps.log2MaxPocLsb;
      const prevLsb = this.prevTid0 & (top - 1);
      const prevMsb = this.prevTid0 - prevLsb;
      if (lsb < prevLsb && prevLsb - lsb >= top / 2) msb = prevMsb + top;
      else if (lsb > prevLsb && lsb - prevLsb > top / 2) msb = prevMsb - top;
      else msb = prevMsb;
      if (this.run < 0) this.run = 0;
    }
    const poc = msb + lsb;
    if (header.temporalId === 0 && !((kind >= 6 && kind <= 9) || isSubLayerNonReference(kind))) this.prevTid0 = poc;
    this.orderKey = !header.picOutputFlag || (isRasl(kind) && this.skipRasl) ? null : [this.run, poc];
    return poc;
  }
}

export const h265 = Object.freeze({
  ParameterSets: ParameterSets265, PocCounter: PocCounter265, parseSliceHeader: parseSliceHeader265,
  parameterSetKey: parameterSetKey265, parseSps: parseSps265, parsePps: parsePps265, parseVps,
});

// ---- a picture's place in the camera's order (segbind/read/cut.py PictureClock) --------------

export const UNREADABLE = "unreadable";  // a picture whose slice header cannot be read: its place is unknown
const CODEC_H265 = 2;

/** Each picture's order key, in decoding order, from its first slice and the parameter sets in
 * force (the decoder configuration record's first, then the stream's). */
export class PictureClock {
  constructor(codec, configUnits = []) {
    this.codec = codec;
    this.syntax = codec === CODEC_H265 ? h265 : h264;
    this.params = new this.syntax.ParameterSets();
    this.counter = new this.syntax.PocCounter(this.params);
    for (const unit of configUnits) if (unit.length) this.params.add(unit);
  }

  parameterSet(unit) { this.params.add(unit); }

  endOfSequence() { if (this.codec === CODEC_H265) this.counter.endOfSequence(); }

  /** [order key ([run, count], null: not output, UNREADABLE), field: 0 frame, 1 top, 2 bottom]. */
  picture(firstSlice) {
    let header;
    try {
      header = this.syntax.parseSliceHeader(firstSlice, this.params);
      this.counter.count(header);
    } catch (exc) {
      if (isSyntaxError(exc)) return [UNREADABLE, 0];
      throw exc;
    }
    const field = this.codec !== CODEC_H265 && header.fieldPic ? (header.bottomField ? 2 : 1) : 0;
    return [this.counter.orderKey, field];
  }
}
