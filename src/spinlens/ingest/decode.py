"""Bytes to text: find the encoding, refuse binary data and empty input.

Order of evidence, as browsers do it: a byte-order mark, then the declared charset (the HTTP
header, else a ``<meta>`` tag near the top of an HTML page), else detection (UTF-16 without a
BOM by where its NUL bytes fall, UTF-8, then charset-normalizer). Line breaks are normalised
to ``\\n`` (``\\r\\n`` and lone ``\\r``); NUL characters past the first few KB and a leading
BOM are dropped; everything else is kept exactly.
"""

from __future__ import annotations

import codecs
import re

import charset_normalizer

from spinlens.errors import IngestError

# Longest BOMs first: the UTF-32-LE mark begins with the UTF-16-LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

# How far into an HTML page to look for <meta charset>. The HTML standard's prescan reads
# 1024 bytes; real pages put long <script>/<style> blocks first, so look a little further.
META_PRESCAN_BYTES = 4096

# A NUL byte near the start means binary (git's heuristic reads the first 8000 bytes).
# Text encodings without NULs in the first 8000 bytes may still carry stray ones later:
# those are dropped instead.
NUL_PRESCAN_BYTES = 8000

# UTF-16 without a BOM is told from binary data by where its NULs fall: at most this share of
# them on the other parity (a Cyrillic or CJK character's high byte can be NUL-free, never the
# other way round; binary data has them on both about equally).
UTF16_STRAY_NULS = 0.05

# Share of control or U+FFFD replacement characters above which a decoding is junk. Real
# articles have none or a handful; random bytes decoded with any 8-bit codec give ~10%.
MAX_JUNK_SHARE = 0.01

_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([a-z0-9_:.+-]+)""", re.IGNORECASE)
# C0/C1 controls other than \t \n \v \f \r, DEL, and the replacement character.
_JUNK = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\ufffd]")
_NEWLINES = re.compile(r"\r\n?")
_HTML_START = re.compile(
    r"<(!doctype\s+html|html|head|body|meta|title|article|main|div|p|h1|h2)\b", re.IGNORECASE
)
# Browsers decode these labels as the Windows superset (WHATWG Encoding Standard): pages that
# declare iso-8859-1 commonly use cp1252's curly quotes, which latin-1 would turn into control
# characters, and Shift_JIS pages use cp932's extra symbols (circled digits, ～).
_BROWSER_SUPERSETS = {
    "ascii": "cp1252",
    "iso8859-1": "cp1252",
    "iso8859-9": "cp1254",
    "shift_jis": "cp932",
    "euc_kr": "cp949",
    "gb2312": "gbk",
}


def decode_bytes(
    data: bytes, declared: str | None = None, *, is_html: bool, what: str = "the document"
) -> str:
    """Decode ``data`` to text, or raise IngestError naming ``what`` ("the file", "the page").

    ``declared`` is a charset from outside the bytes (an HTTP Content-Type charset parameter).
    """
    if not data.strip():
        raise IngestError(f"{what} is empty")
    text = _decode(data, declared, is_html=is_html, what=what)
    return check_text(text, what=what)


def check_text(text: str, *, what: str = "the document") -> str:
    """Normalise line breaks, drop NULs and a leading byte-order mark (pasted from a file
    read without decoding it), and refuse empty or junk text."""
    text = _NEWLINES.sub("\n", text).replace("\x00", "").removeprefix("\ufeff")
    if not text.strip():
        raise IngestError(f"{what} is empty")
    if junk_share(text) > MAX_JUNK_SHARE:
        raise IngestError(f"{what} looks like binary data, not text")
    return text


def junk_share(text: str) -> float:
    """Share of ``text`` made of control characters and U+FFFD."""
    return len(_JUNK.findall(text)) / len(text) if text else 0.0


def looks_like_html(text: str) -> bool:
    """True when the start of ``text`` is markup (a doctype or a common element)."""
    head = text[:META_PRESCAN_BYTES].lstrip("\ufeff \t\r\n")
    return head.startswith("<") and _HTML_START.search(head) is not None


def parse_content_type(value: str | None) -> tuple[str | None, str | None]:
    """``"text/html; charset=UTF-8"`` -> ``("text/html", "UTF-8")``; ``None`` parts when absent."""
    if not value:
        return None, None
    media_type, _, params = value.partition(";")
    charset = None
    for param in params.split(";"):
        name, _, val = param.partition("=")
        if name.strip().lower() == "charset":
            charset = val.strip().strip("\"'") or None
    return media_type.strip().lower() or None, charset


def _decode(data: bytes, declared: str | None, *, is_html: bool, what: str) -> str:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(encoding, errors="replace")
    for declared_codec in (_codec(declared), _meta_charset(data) if is_html else None):
        if declared_codec:
            try:
                text = data.decode(declared_codec, errors="replace")
            except UnicodeError:  # codecs such as "idna" accept no error handler
                continue
            # A wrong declaration does not win over the bytes: fall back to detection.
            if junk_share(text) <= MAX_JUNK_SHARE:
                return text
    if b"\x00" in data[:NUL_PRESCAN_BYTES]:
        if (utf16 := _utf16_without_bom(data)) is not None:
            return utf16
        raise IngestError(f"{what} looks like binary data, not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    best = charset_normalizer.from_bytes(data).best()
    if best is None:
        raise IngestError(f"{what} looks like binary data, not text")
    return str(best)


def _utf16_without_bom(data: bytes) -> str | None:
    """``data`` decoded as UTF-16 when its NUL bytes say so, else None. Windows tools write
    UTF-16 without a byte-order mark; then the high byte of every space, digit and Latin letter
    is NUL, so NULs fall on odd offsets (little-endian) or even ones (big-endian), where in
    binary data they fall anywhere."""
    head = data[:NUL_PRESCAN_BYTES]
    odd, even = head[1::2].count(0), head[0::2].count(0)
    if len(data) % 2 or min(odd, even) > UTF16_STRAY_NULS * max(odd, even):
        return None
    text = data.decode("utf-16-le" if odd > even else "utf-16-be", errors="replace")
    return text if junk_share(text) <= MAX_JUNK_SHARE else None


def _meta_charset(data: bytes) -> str | None:
    match = _META_CHARSET.search(data[:META_PRESCAN_BYTES])
    if match is None:
        return None
    encoding = _codec(match.group(1).decode("ascii"))
    # A <meta> that could be read as ASCII cannot be UTF-16/32; the HTML standard says UTF-8.
    if encoding and encoding.startswith(("utf-16", "utf-32")):
        return "utf-8"
    return encoding


def _codec(label: str | None) -> str | None:
    """Python's codec name for a charset label, or None when unknown or not a text encoding."""
    if not label:
        return None
    try:
        name = codecs.lookup(label.strip()).name
        b"a".decode(name, "replace")  # refuses "base64" and other non-charset codecs
    except (LookupError, ValueError, UnicodeError):
        return None
    return _BROWSER_SUPERSETS.get(name, name)
