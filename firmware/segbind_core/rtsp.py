"""RTSP 1.0 client protocol (RFC 2326), sans-I/O: bytes in, requests and media out.

The streamer on a camera (prudynt, majestic, live555, gst-rtsp-server) serves its
encoder's output over RTSP. ``ClientSession`` speaks the client's side of one session
over one TCP connection: OPTIONS, DESCRIBE (the SDP: the video track, its payload type
and sprop-* parameter sets), SETUP (RTP interleaved in the TCP connection, or UDP),
PLAY, keep-alives and TEARDOWN, with Basic and Digest (RFC 2617, MD5) authentication.
It does no I/O and reads no clock: ``start`` gives the first request's bytes,
``receive(data, now_ms)`` takes what the server sent and returns events (``Send`` bytes,
``Playing`` with the track, ``Media`` for each RTP or RTCP frame), ``tick(now_ms)`` the
keep-alive when it is due. Every problem is an ``RtspError`` with a one-line message;
credentials are never in a message, a request line or anything but the Authorization
header (``redact`` takes them out of any text that holds a URL).

Everything read from the server is bounded: a response's head (16 KiB) and body (64 KiB),
an interleaved frame (64 KiB by its 16-bit length). Pure code: the same file on CPython
and MicroPython (MD5 for Digest is computed here where ``hashlib`` has none).
"""

import binascii
import hashlib
import struct

from .tag import CODEC_H264, CODEC_H265

try:  # for annotations only: MicroPython has no typing module and never evaluates annotations
    from typing import Optional, Union

    from .nal import Buffer

    Event = Union["Send", "Playing", "Media"]
except ImportError:
    pass

DEFAULT_PORT = 554
MAX_HEAD_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024
MAX_HEADERS = 64
DEFAULT_SESSION_TIMEOUT_S = 60
USER_AGENT = "segbind-agent"

# Why an RtspError was raised (``RtspError.reason``).
MALFORMED = "malformed"        # the server sent something that is not RTSP
REFUSED = "refused"            # the server answered a request with an error status
AUTH = "auth"                  # credentials missing or refused
UNSUPPORTED = "unsupported"    # a stream this client does not take (codec, DONL, interleaving)
BAD_URL = "bad_url"            # the source URL itself


class RtspError(Exception):
    """An RTSP session that cannot go on; ``reason`` says why, ``str()`` is one line without
    credentials (what the server sent is quoted in it with control characters replaced and
    any URL's credentials taken out)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(one_line(redact(message)))
        self.reason = reason


def number(text: str, default: int = -1) -> int:
    """A decimal number of ASCII digits (at most 18), else ``default``: what a server sends as a
    number is read as nothing else (``str.isdigit`` takes other scripts' digits too)."""
    text = text.strip(" \t")  # the spaces RTSP allows around a value (str.strip would take \x1c-\x1f too)
    if not 0 < len(text) <= 18 or any(not "0" <= ch <= "9" for ch in text):
        return default
    return int(text)


def one_line(text: str) -> str:
    """``text`` with every control character (line breaks, escapes) replaced by ``?``."""
    if all(" " <= ch and ch != "\x7f" for ch in text):
        return text
    return "".join(ch if " " <= ch and ch != "\x7f" else "?" for ch in text)


# -- URLs -----------------------------------------------------------------------------------

def _unquote(text: str) -> str:
    """Percent-decoding (RFC 3986) of a URL's user or password."""
    if "%" not in text:
        return text
    raw = text.encode()
    out = bytearray()
    i = 0
    while i < len(raw):
        if raw[i] == 0x25 and i + 2 < len(raw):
            try:
                out.append(int(raw[i + 1:i + 3].decode(), 16))
                i += 3
                continue
            except ValueError:
                pass
        out.append(raw[i])
        i += 1
    try:
        return bytes(out).decode()
    except UnicodeError:
        raise RtspError(BAD_URL, "the URL's credentials are not UTF-8") from None


class RtspUrl:
    """An ``rtsp://[user[:password]@]host[:port][/path]`` URL, its credentials apart."""

    def __init__(self, host: str, port: int, path: str, username: "Optional[str]" = None,
                 password: "Optional[str]" = None) -> None:
        self.host = host
        self.port = port
        self.path = path
        self.username = username
        self.password = password

    @property
    def has_credentials(self) -> bool:
        return self.username is not None

    def request_url(self) -> str:
        """The URL as requests name it: never with credentials."""
        host = "[%s]" % self.host if ":" in self.host else self.host
        port = "" if self.port == DEFAULT_PORT else ":%d" % self.port
        return "rtsp://%s%s%s" % (host, port, self.path)

    def redacted(self) -> str:
        """The URL for logs and errors: credentials shown as ***."""
        url = self.request_url()
        return url if not self.has_credentials else "rtsp://***@" + url[len("rtsp://"):]

    def __repr__(self) -> str:
        return "RtspUrl(%s)" % self.redacted()


def parse_url(url: str) -> RtspUrl:
    """An RTSP URL; RtspError (BAD_URL) with a message that never repeats its credentials."""
    if not isinstance(url, str) or url[:7].lower() != "rtsp://":
        raise RtspError(BAD_URL, "not an rtsp:// URL")
    rest = url[7:]
    for bad in " \r\n\t":
        if bad in rest:
            raise RtspError(BAD_URL, "an RTSP URL with whitespace or a line break")
    cut = len(rest)
    for mark in "/?#":
        at = rest.find(mark)
        if 0 <= at < cut:
            cut = at
    authority, path = rest[:cut], rest[cut:]
    at = authority.rfind("@")
    username = password = None
    if at >= 0:
        userinfo, authority = authority[:at], authority[at + 1:]
        name, colon, secret = userinfo.partition(":")
        username = _unquote(name)
        password = _unquote(secret) if colon else None
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise RtspError(BAD_URL, "an RTSP URL with an unclosed IPv6 address")
        host, tail = authority[1:end], authority[end + 1:]
    else:
        host, colon, port_text = authority.partition(":")
        tail = ":" + port_text if colon else ""
    port = DEFAULT_PORT
    if tail:
        if not tail.startswith(":") or not 0 < number(tail[1:]) < 65536:
            raise RtspError(BAD_URL, "an RTSP URL with a bad port")
        port = int(tail[1:])
    if not host:
        raise RtspError(BAD_URL, "an RTSP URL without a host")
    hash_at = path.find("#")
    if hash_at >= 0:
        path = path[:hash_at]
    if not path.startswith("/"):
        path = "/" + path
    return RtspUrl(host, port, path, username, password)


def redact(text: str) -> str:
    """``text`` with the credentials of every URL in it replaced by ***: whatever stands between
    a ``://`` and the last ``@`` before the next blank or quote (more than the credentials,
    never less)."""
    out = []
    pos = 0
    while True:
        start = text.find("://", pos)
        if start < 0:
            break
        begin = start + 3
        end = begin
        while end < len(text) and text[end] not in " \t\r\n\"'<>":
            end += 1
        at = text.rfind("@", begin, end)
        out.append(text[pos:begin])
        if at >= 0:
            out.append("***")
            out.append(text[at:end])
        else:
            out.append(text[begin:end])
        pos = end
    out.append(text[pos:])
    return "".join(out)


# -- messages ---------------------------------------------------------------------------------

class Message:
    """A response (``status`` set) or a request from the server (``method`` set): headers in
    order, names lower-case, values as sent; ``body`` bytes."""

    def __init__(self, first_line: str, headers: "list[tuple[str, str]]", body: bytes) -> None:
        self.first_line = first_line
        self.headers = headers
        self.body = body
        self.status = 0
        self.reason = ""
        self.method = ""
        if first_line.startswith("RTSP/"):
            parts = first_line.split(" ", 2)
            # exactly three ASCII digits: nothing stripped first (str.strip takes \x1c-\x1f as
            # spaces, int() does not)
            status = parts[1] if len(parts) > 1 else ""
            if len(status) != 3 or number(status) < 0 or status.strip(" \t") != status:
                raise RtspError(MALFORMED, "an RTSP status line without a status")
            self.status = number(status)
            self.reason = parts[2].strip() if len(parts) > 2 else ""
        else:
            parts = first_line.split(" ")
            if len(parts) != 3 or not parts[2].startswith("RTSP/"):
                raise RtspError(MALFORMED, "neither an RTSP response nor a request")
            self.method = parts[0]

    def header(self, name: str) -> "Optional[str]":
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def all(self, name: str) -> "list[str]":
        return [value for key, value in self.headers if key == name]

    @property
    def cseq(self) -> int:
        value = self.header("cseq")
        return number(value) if value is not None else -1


class Frame:
    """One interleaved frame ($, channel, 16-bit length, data): RTP or RTCP in the TCP stream."""

    __slots__ = ("channel", "data")

    def __init__(self, channel: int, data: bytes) -> None:
        self.channel = channel
        self.data = data


def build_request(method: str, url: str, cseq: int, headers: "list[tuple[str, str]]") -> bytes:
    lines = ["%s %s RTSP/1.0" % (method, url), "CSeq: %d" % cseq]
    for name, value in headers:
        lines.append("%s: %s" % (name, value))
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Demux:
    """Splits what a server sends on the RTSP connection into ``Message``\\ s and ``Frame``\\ s.

    ``feed(data)`` returns the ones it completed; a byte stream that is neither is an
    RtspError (MALFORMED). Memory: one incomplete message or frame (bounded).
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def feed(self, data: "Buffer") -> "list[Union[Message, Frame]]":
        buf = self._buf
        buf += data
        out: "list[Union[Message, Frame]]" = []
        pos = self._pos
        n = len(buf)
        while pos < n:
            if buf[pos] == 0x24:  # '$': an interleaved frame
                if n - pos < 4:
                    break
                size = (buf[pos + 2] << 8) | buf[pos + 3]
                if n - pos < 4 + size:
                    break
                out.append(Frame(buf[pos + 1], bytes(buf[pos + 4:pos + 4 + size])))
                pos += 4 + size
                continue
            if buf[pos] in (0x0D, 0x0A):  # a stray line break between messages
                pos += 1
                continue
            end = buf.find(b"\r\n\r\n", pos)
            if end < 0:
                if n - pos > MAX_HEAD_BYTES:
                    raise RtspError(MALFORMED, "an RTSP message head over %d bytes" % MAX_HEAD_BYTES)
                if n - pos >= 5 and bytes(buf[pos:pos + 5]) != b"RTSP/" and not _looks_like_request(buf, pos):
                    raise RtspError(MALFORMED, "the server sent neither RTSP nor interleaved media")
                break
            if end - pos > MAX_HEAD_BYTES:
                raise RtspError(MALFORMED, "an RTSP message head over %d bytes" % MAX_HEAD_BYTES)
            first, headers = _parse_head(bytes(buf[pos:end]))
            length = 0
            for name, value in headers:
                if name == "content-length":
                    length = number(value)
                    if length < 0:
                        raise RtspError(MALFORMED, "a Content-Length that is not a number")
            if length > MAX_BODY_BYTES:
                raise RtspError(MALFORMED, "an RTSP body of %d bytes (at most %d)" % (length, MAX_BODY_BYTES))
            if n - (end + 4) < length:
                break
            body = bytes(buf[end + 4:end + 4 + length])
            out.append(Message(first, headers, body))
            pos = end + 4 + length
        if pos >= n:
            self._buf = bytearray()
            self._pos = 0
        elif pos > 65536:
            self._buf = buf[pos:]
            self._pos = 0
        else:
            self._pos = pos
        return out


def _looks_like_request(buf: bytearray, pos: int) -> bool:
    """True when the bytes at ``pos`` begin like a request line (an upper-case method)."""
    k = pos
    while k < len(buf) and k - pos < 20 and (0x41 <= buf[k] <= 0x5A or buf[k] == 0x5F):
        k += 1
    return k > pos and (k == len(buf) or buf[k] == 0x20)


def _parse_head(head: bytes) -> "tuple[str, list[tuple[str, str]]]":
    try:
        text = head.decode()
    except UnicodeError:
        raise RtspError(MALFORMED, "an RTSP message head that is not UTF-8") from None
    lines = text.split("\r\n")
    headers: "list[tuple[str, str]]" = []
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t" and headers:  # a folded continuation line
            name, value = headers[-1]
            headers[-1] = (name, value + " " + line.strip())
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise RtspError(MALFORMED, "an RTSP header line without a name")
        headers.append((name.strip().lower(), value.strip()))
        if len(headers) > MAX_HEADERS:
            raise RtspError(MALFORMED, "more than %d RTSP header lines" % MAX_HEADERS)
    return lines[0].strip(), headers


def header_params(value: str) -> "tuple[str, dict[str, str]]":
    """``first;key=value;flag`` (Session, Transport, one RTP-Info entry) -> (first, params)."""
    parts = value.split(";")
    params: "dict[str, str]" = {}
    for part in parts[1:]:
        key, _eq, val = part.partition("=")
        if key.strip():
            params[key.strip().lower()] = val.strip().strip('"')
    return parts[0].strip(), params


# -- authentication ---------------------------------------------------------------------------

def _split_quoted(text: str) -> "list[str]":
    """Comma-separated items, commas inside double quotes kept."""
    items: "list[str]" = []
    current: "list[str]" = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    items.append("".join(current).strip())
    return [item for item in items if item]


class Challenge:
    """One WWW-Authenticate challenge: ``scheme`` ("basic", "digest") and its parameters."""

    def __init__(self, scheme: str, params: "dict[str, str]") -> None:
        self.scheme = scheme
        self.params = params


def parse_challenges(values: "list[str]") -> "list[Challenge]":
    """Every challenge in WWW-Authenticate header values (several per value allowed)."""
    challenges: "list[Challenge]" = []
    for value in values:
        for item in _split_quoted(value):
            scheme, space, rest = item.partition(" ")
            if "=" not in scheme:  # a new challenge: its scheme, then maybe its first parameter
                challenges.append(Challenge(scheme.lower(), {}))
                item = rest if space else ""
            if not item or not challenges:
                continue
            key, _eq, val = item.strip().partition("=")
            val = val.strip()
            if len(val) >= 2 and val[0] == '"' and val[-1] == '"':
                val = val[1:-1]
            challenges[-1].params[key.strip().lower()] = val
    return challenges


def md5_hex(data: bytes) -> str:
    """MD5 as lower-case hex: hashlib's where it has one, else computed here (Digest's hash;
    MicroPython's hashlib often lacks it)."""
    native = getattr(hashlib, "md5", None)
    if native is not None:
        try:
            return binascii.hexlify(native(data).digest()).decode()
        except ValueError:  # a FIPS build refuses MD5
            pass
    return binascii.hexlify(md5(data)).decode()


_MD5_SHIFTS = (7, 12, 17, 22) * 4 + (5, 9, 14, 20) * 4 + (4, 11, 16, 23) * 4 + (6, 10, 15, 21) * 4
# floor(abs(sin(i + 1)) * 2**32), RFC 1321 section 3.4
_MD5_K = (
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a,
    0xa8304613, 0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be,
    0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340,
    0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8,
    0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c,
    0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa,
    0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92,
    0xffeff47d, 0x85845dd1, 0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1,
    0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
)


def md5(data: bytes) -> bytes:
    """MD5 (RFC 1321) in pure code: for Digest authentication where hashlib has no md5."""
    message = bytearray(data)
    bits = (8 * len(data)) & 0xFFFFFFFFFFFFFFFF
    message.append(0x80)
    while len(message) % 64 != 56:
        message.append(0)
    message += struct.pack("<Q", bits)
    a0, b0, c0, d0 = 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476
    for chunk in range(0, len(message), 64):
        words = struct.unpack("<16I", bytes(message[chunk:chunk + 64]))
        a, b, c, d = a0, b0, c0, d0
        for i in range(64):
            if i < 16:
                f, g = (b & c) | (~b & d), i
            elif i < 32:
                f, g = (d & b) | (~d & c), (5 * i + 1) % 16
            elif i < 48:
                f, g = b ^ c ^ d, (3 * i + 5) % 16
            else:
                f, g = c ^ (b | ~d), (7 * i) % 16
            f = (f + a + _MD5_K[i] + words[g]) & 0xFFFFFFFF
            a, d, c = d, c, b
            b = (b + ((f << _MD5_SHIFTS[i]) | (f >> (32 - _MD5_SHIFTS[i])))) & 0xFFFFFFFF
        a0, b0 = (a0 + a) & 0xFFFFFFFF, (b0 + b) & 0xFFFFFFFF
        c0, d0 = (c0 + c) & 0xFFFFFFFF, (d0 + d) & 0xFFFFFFFF
    return struct.pack("<4I", a0, b0, c0, d0)


def basic_authorization(username: str, password: str) -> str:
    token = binascii.b2a_base64(("%s:%s" % (username, password)).encode()).strip().decode()
    return "Basic " + token


def digest_authorization(challenge: Challenge, method: str, uri: str, username: str, password: str,
                         cnonce: str, count: int) -> str:
    """The Authorization header answering a Digest challenge (RFC 2617: MD5, MD5-sess; qop
    auth or none)."""
    p = challenge.params
    realm, nonce = p.get("realm", ""), p.get("nonce", "")
    algorithm = p.get("algorithm", "MD5")
    if algorithm.upper() not in ("MD5", "MD5-SESS"):
        raise RtspError(AUTH, "the server asks for Digest with %s: only MD5 is supported" % algorithm[:20])
    qops = [q.strip().lower() for q in p.get("qop", "").split(",") if q.strip()]
    if qops and "auth" not in qops:
        raise RtspError(AUTH, "the server asks for Digest with qop %s: only auth is supported" % p["qop"][:20])
    ha1 = md5_hex(("%s:%s:%s" % (username, realm, password)).encode())
    if algorithm.upper() == "MD5-SESS":
        ha1 = md5_hex(("%s:%s:%s" % (ha1, nonce, cnonce)).encode())
    ha2 = md5_hex(("%s:%s" % (method, uri)).encode())
    nc = "%08x" % count
    if qops:
        response = md5_hex(("%s:%s:%s:%s:auth:%s" % (ha1, nonce, nc, cnonce, ha2)).encode())
    else:
        response = md5_hex(("%s:%s:%s" % (ha1, nonce, ha2)).encode())
    fields = ['username="%s"' % username, 'realm="%s"' % realm, 'nonce="%s"' % nonce, 'uri="%s"' % uri,
              'response="%s"' % response]
    if "algorithm" in p:
        fields.append("algorithm=%s" % algorithm)
    if "opaque" in p:
        fields.append('opaque="%s"' % p["opaque"])
    if qops:
        fields += ["qop=auth", "nc=%s" % nc, 'cnonce="%s"' % cnonce]
    return "Digest " + ", ".join(fields)


# -- the session description ------------------------------------------------------------------

class VideoTrack:
    """The video a session description offers that this client takes."""

    def __init__(self, codec: int, payload_type: int, clock_rate: int, control: str,
                 parameter_sets: "list[bytes]") -> None:
        self.codec = codec
        self.payload_type = payload_type
        self.clock_rate = clock_rate
        self.control = control
        self.parameter_sets = parameter_sets


def _resolve(base: str, control: str) -> str:
    if not control or control == "*":
        return base
    if control.lower().startswith("rtsp://"):
        return control
    if control.startswith("/"):
        origin = base.find("/", len("rtsp://"))
        return (base if origin < 0 else base[:origin]) + control
    return base + ("" if base.endswith("/") else "/") + control


def _b64(text: str, what: str) -> bytes:
    try:
        unit = binascii.a2b_base64(text.strip().encode())
    except Exception:  # binascii.Error on CPython, a plain Exception on MicroPython
        raise RtspError(MALFORMED, "the session description's %s is not base64" % what) from None
    if not unit:
        raise RtspError(MALFORMED, "the session description's %s is empty" % what)
    return bytes(unit)


class _MediaSection:
    """One m= section of a session description: what this client reads of it."""

    def __init__(self, kind: str, formats: "list[str]") -> None:
        self.kind = kind
        self.formats = formats
        self.rtpmap: "dict[str, str]" = {}
        self.fmtp: "dict[str, str]" = {}
        self.control = ""


def video_track(sdp: str, base: str) -> VideoTrack:
    """The first H.264 or H.265 video of a session description (RFC 4566, 6184, 7798);
    RtspError (UNSUPPORTED) when there is none this client can take."""
    session_control = ""
    sections: "list[_MediaSection]" = []
    for raw in sdp.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:]
        if kind == "m":
            fields = value.split()
            sections.append(_MediaSection(fields[0].lower() if fields else "", fields[3:]))
        elif kind == "a":
            name, _colon, rest = value.partition(":")
            if name == "control":
                if sections:
                    sections[-1].control = rest.strip()
                else:
                    session_control = rest.strip()
            elif sections and name in ("rtpmap", "fmtp"):
                pt, _space, spec = rest.strip().partition(" ")
                (sections[-1].rtpmap if name == "rtpmap" else sections[-1].fmtp)[pt.strip()] = spec.strip()
    base = _resolve(base, session_control)
    seen = []
    for section in sections:
        if section.kind != "video":
            continue
        for pt in section.formats:
            encoding, _slash, rate = section.rtpmap.get(pt, "").partition("/")
            name = encoding.strip().upper()
            seen.append(name or "payload type %s" % pt[:8])
            if name not in ("H264", "H265", "HEVC") or not 0 <= number(pt) <= 127:
                continue
            clock = rate.partition("/")[0].strip()
            params: "dict[str, str]" = {}
            for item in section.fmtp.get(pt, "").split(";"):
                key, _eq, val = item.partition("=")
                if key.strip():
                    params[key.strip().lower()] = val.strip()
            return _track(name, number(pt), number(clock) if number(clock) > 0 else 90000,
                          _resolve(base, section.control), params)
    raise RtspError(UNSUPPORTED, "the stream offers no H.264 or H.265 video (%s)"
                    % (", ".join(seen[:4]) or "no video at all"))


def _track(name: str, pt: int, clock: int, control: str, params: "dict[str, str]") -> VideoTrack:
    sets: "list[bytes]" = []
    if name == "H264":
        mode = params.get("packetization-mode", "0")
        if mode not in ("0", "1"):
            raise RtspError(UNSUPPORTED, "H.264 packetization-mode %s (interleaved) is not supported: "
                            "ask the streamer for mode 1" % mode[:8])
        for item in params.get("sprop-parameter-sets", "").split(","):
            if item.strip():
                sets.append(_b64(item, "sprop-parameter-sets"))
        return VideoTrack(CODEC_H264, pt, clock, control, sets)
    for key in ("sprop-max-don-diff", "sprop-depack-buf-nalus"):
        if params.get(key, "0").strip() not in ("", "0"):
            raise RtspError(UNSUPPORTED, "H.265 with decoding order numbers (%s=%s, DONL) is not supported"
                            % (key, params[key][:8]))
    for key in ("sprop-vps", "sprop-sps", "sprop-pps"):
        for item in params.get(key, "").split(","):
            if item.strip():
                sets.append(_b64(item, key))
    return VideoTrack(CODEC_H265, pt, clock, control, sets)


# -- the client's session ---------------------------------------------------------------------

class Send:
    """Bytes to write to the RTSP connection."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class Playing:
    """The server plays: the track, where its RTP starts (RTP-Info), the sender's SSRC and the
    transport it answered (``interleaved`` channels, or the server's UDP ``server_ports``)."""

    def __init__(self, track: VideoTrack, first_seq: "Optional[int]", rtptime: "Optional[int]",
                 ssrc: "Optional[int]", interleaved: "Optional[tuple[int, int]]",
                 server_ports: "Optional[tuple[int, int]]", timeout_s: int) -> None:
        self.track = track
        self.first_seq = first_seq
        self.rtptime = rtptime
        self.ssrc = ssrc
        self.interleaved = interleaved
        self.server_ports = server_ports
        self.timeout_s = timeout_s


class Media:
    """An interleaved RTP (``rtcp`` False) or RTCP frame of the track."""

    __slots__ = ("rtcp", "data")

    def __init__(self, rtcp: bool, data: bytes) -> None:
        self.rtcp = rtcp
        self.data = data


def _ports(text: str) -> "Optional[tuple[int, int]]":
    first, _dash, second = text.partition("-")
    if number(first) < 0:
        return None
    low = number(first)
    high = number(second, low + 1)
    return (low, high) if 0 <= low < 65536 and 0 <= high < 65536 else None


class ClientSession:
    """One RTSP session from the client's side (sans-I/O).

    ``url``           the source (credentials in it are used only for Authorization)
    ``transport``     "tcp" (RTP interleaved in the RTSP connection) or "udp"
    ``client_ports``  the local (RTP, RTCP) UDP ports, for "udp"
    ``cnonce``        a fresh random string (the caller's randomness: Digest's client nonce)
    """

    def __init__(self, url: RtspUrl, transport: str = "tcp",
                 client_ports: "Optional[tuple[int, int]]" = None, cnonce: str = "0a4f113b",
                 user_agent: str = USER_AGENT) -> None:
        if transport not in ("tcp", "udp"):
            raise ValueError("transport is tcp or udp")
        if transport == "udp" and client_ports is None:
            raise ValueError("udp needs the client's ports")
        self.url = url
        self.transport = transport
        self.client_ports = client_ports
        self.cnonce = cnonce
        self.user_agent = user_agent
        self.state = "init"
        self.track: "Optional[VideoTrack]" = None
        self.session_id = ""
        self.timeout_s = DEFAULT_SESSION_TIMEOUT_S
        self.interleaved: "Optional[tuple[int, int]]" = None
        self.server_ports: "Optional[tuple[int, int]]" = None
        self.ssrc: "Optional[int]" = None
        self._demux = Demux()
        self._cseq = 0
        self._pending: "dict[int, tuple[str, str, list[tuple[str, str]]]]" = {}  # cseq -> request
        self._challenge: "Optional[Challenge]" = None
        self._auth_count = 0
        self._auth_tries = 0
        self._get_parameter = False
        self._next_keepalive_ms = 0

    # -- requests ---------------------------------------------------------------------------

    def start(self) -> bytes:
        """The first request (OPTIONS)."""
        self.state = "options"
        return self._request("OPTIONS", self.url.request_url(), [])

    def teardown(self) -> bytes:
        """TEARDOWN of a session set up (b"" when there is none)."""
        if not self.session_id or self.state in ("init", "closed"):
            return b""
        self.state = "closed"
        return self._request("TEARDOWN", self._aggregate_url(), [("Session", self.session_id)])

    def tick(self, now_ms: int) -> bytes:
        """The keep-alive request when one is due (b"" otherwise)."""
        if self.state != "playing" or now_ms < self._next_keepalive_ms:
            return b""
        self._next_keepalive_ms = now_ms + self._keepalive_period_ms()
        method = "GET_PARAMETER" if self._get_parameter else "OPTIONS"
        return self._request(method, self._aggregate_url(), [("Session", self.session_id)])

    def _keepalive_period_ms(self) -> int:
        return max(1000, self.timeout_s * 1000 // 2)

    def _aggregate_url(self) -> str:
        return self.url.request_url()

    def _request(self, method: str, url: str, headers: "list[tuple[str, str]]") -> bytes:
        self._cseq += 1
        self._pending[self._cseq] = (method, url, headers)
        if len(self._pending) > 16:  # unanswered keep-alives: remember the latest only
            for old in sorted(self._pending)[:-16]:
                del self._pending[old]
        full = list(headers) + [("User-Agent", self.user_agent)]
        if self._challenge is not None:
            full.append(("Authorization", self._authorization(method, url)))
        return build_request(method, url, self._cseq, full)

    def _authorization(self, method: str, url: str) -> str:
        challenge = self._challenge
        assert challenge is not None
        username = self.url.username or ""
        password = self.url.password or ""
        if challenge.scheme == "basic":
            return basic_authorization(username, password)
        self._auth_count += 1
        return digest_authorization(challenge, method, url, username, password, self.cnonce, self._auth_count)

    # -- responses --------------------------------------------------------------------------

    def receive(self, data: "Buffer", now_ms: int) -> "list[Event]":
        """What the server sent; the events it gives, in order."""
        out: "list[Event]" = []
        for item in self._demux.feed(data):
            if isinstance(item, Frame):
                channels = self.interleaved
                if self.state == "playing" and channels is not None:
                    if item.channel == channels[0]:
                        out.append(Media(False, item.data))
                    elif item.channel == channels[1]:
                        out.append(Media(True, item.data))
                continue
            if item.method:  # a request from the server
                out.append(Send(self._answer_server(item)))
                continue
            request = self._pending.pop(item.cseq, None)
            if request is None:
                continue  # an answer to nothing asked (or to a keep-alive given up on)
            out += self._response(item, request, now_ms)
        return out

    def _answer_server(self, request: Message) -> bytes:
        status = "200 OK" if request.method in ("OPTIONS", "GET_PARAMETER") else "501 Not Implemented"
        return ("RTSP/1.0 %s\r\nCSeq: %d\r\n\r\n" % (status, max(request.cseq, 0))).encode()

    def _response(self, response: Message, request: "tuple[str, str, list[tuple[str, str]]]",
                  now_ms: int) -> "list[Event]":
        method, url, headers = request
        if method == "TEARDOWN":
            return []
        if response.status == 401:
            return [Send(self._retry_with_credentials(response, method, url, headers))]
        if self.state == "playing" and method in ("OPTIONS", "GET_PARAMETER"):
            return []  # a keep-alive's answer, whatever else it says, kept the session
        if response.status != 200:
            raise RtspError(REFUSED, "%s answered %d %s%s" % (method, response.status, response.reason[:60],
                                                             _hint(method, response.status, self.transport)))
        if method == "OPTIONS":
            public = (response.header("public") or "").upper()
            self._get_parameter = "GET_PARAMETER" in public
            self.state = "describe"
            return [Send(self._request("DESCRIBE", self.url.request_url(), [("Accept", "application/sdp")]))]
        if method == "DESCRIBE":
            return [Send(self._described(response))]
        if method == "SETUP":
            return [Send(self._set_up(response))]
        if method == "PLAY":
            return [self._playing(response, now_ms)]
        return []

    def _retry_with_credentials(self, response: Message, method: str, url: str,
                                headers: "list[tuple[str, str]]") -> bytes:
        if not self.url.has_credentials:
            raise RtspError(AUTH, "%s needs credentials (401): give them in the URL "
                            "(rtsp://user:password@host/path)" % method)
        challenges = parse_challenges(response.all("www-authenticate"))
        digest = [c for c in challenges if c.scheme == "digest"]
        basic = [c for c in challenges if c.scheme == "basic"]
        chosen = digest[0] if digest else basic[0] if basic else None
        if chosen is None:
            raise RtspError(AUTH, "%s needs authentication of a kind not supported (neither Basic nor Digest)"
                            % method)
        stale = chosen.params.get("stale", "").lower() == "true"
        self._auth_tries += 1
        if self._auth_tries > 3 or (self._challenge is not None and not stale
                                    and self._challenge.scheme == chosen.scheme
                                    and self._challenge.params.get("nonce") == chosen.params.get("nonce")):
            raise RtspError(AUTH, "the server refused the credentials (401 to %s)" % method)
        self._challenge = chosen
        self._auth_count = 0
        return self._request(method, url, headers)

    def _described(self, response: Message) -> bytes:
        content_type = (response.header("content-type") or "application/sdp").lower()
        if "application/sdp" not in content_type:
            raise RtspError(UNSUPPORTED, "DESCRIBE answered %s, not a session description" % content_type[:40])
        try:
            sdp = response.body.decode()
        except UnicodeError:
            raise RtspError(MALFORMED, "the session description is not UTF-8") from None
        base = response.header("content-base") or response.header("content-location") or self.url.request_url()
        if base.lower().startswith("rtsp://"):
            base = parse_url(base).request_url()  # never credentials in a request line
        self.track = video_track(sdp, base)
        if self.track.control.lower().startswith("rtsp://"):
            self.track.control = parse_url(self.track.control).request_url()
        self.state = "setup"
        if self.transport == "tcp":
            transport = "RTP/AVP/TCP;unicast;interleaved=0-1"
        else:
            ports = self.client_ports
            assert ports is not None
            transport = "RTP/AVP;unicast;client_port=%d-%d" % ports
        return self._request("SETUP", self.track.control, [("Transport", transport)])

    def _set_up(self, response: Message) -> bytes:
        session = response.header("session")
        if not session:
            raise RtspError(MALFORMED, "SETUP answered without a Session")
        session_id, params = header_params(session)
        if not session_id:
            raise RtspError(MALFORMED, "SETUP answered an empty Session")
        self.session_id = session_id
        timeout = params.get("timeout", "")
        if 0 < number(timeout) < 86400:
            self.timeout_s = number(timeout)
        transport = response.header("transport") or ""
        spec, tparams = header_params(transport)
        if self.transport == "tcp":
            if "TCP" not in spec.upper() and "interleaved" not in tparams:
                raise RtspError(UNSUPPORTED, "the server answered SETUP with %s, not RTP over TCP: "
                                "try transport udp" % (spec[:30] or "no Transport"))
            channels = _ports(tparams.get("interleaved", "0-1"))
            if channels is None or channels[0] > 255 or channels[1] > 255:
                raise RtspError(MALFORMED, "SETUP answered bad interleaved channels")
            self.interleaved = channels
        else:
            if "TCP" in spec.upper():
                raise RtspError(UNSUPPORTED, "the server answered SETUP with RTP over TCP, asked for UDP")
            self.server_ports = _ports(tparams.get("server_port", ""))
        ssrc = tparams.get("ssrc", "")
        if ssrc:
            try:
                self.ssrc = int(ssrc, 16) & 0xFFFFFFFF
            except ValueError:
                self.ssrc = None
        self.state = "play"
        return self._request("PLAY", self._aggregate_url(), [("Session", self.session_id), ("Range", "npt=0.000-")])

    def _playing(self, response: Message, now_ms: int) -> Playing:
        track = self.track
        assert track is not None
        first_seq = rtptime = None
        info = response.header("rtp-info") or ""
        entries = _split_quoted(info)
        for entry in entries:
            _first, params = header_params(entry.replace("url=", ";url=", 1))
            url = params.get("url", "")
            if len(entries) == 1 or url == track.control or track.control.endswith(url):
                seq, ts = params.get("seq", ""), params.get("rtptime", "")
                first_seq = number(seq) & 0xFFFF if number(seq) >= 0 else None
                rtptime = number(ts) & 0xFFFFFFFF if number(ts) >= 0 else None
                break
        self.state = "playing"
        self._next_keepalive_ms = now_ms + self._keepalive_period_ms()
        return Playing(track, first_seq, rtptime, self.ssrc, self.interleaved, self.server_ports, self.timeout_s)


def _hint(method: str, status: int, transport: str) -> str:
    if status == 404:
        return ": no such stream (check the path)"
    if status == 461 and transport == "tcp":
        return ": the server does not send RTP over TCP (try transport udp)"
    if status == 461:
        return ": the server does not send RTP over UDP (try transport tcp)"
    if status == 403:
        return ": forbidden"
    return ""
