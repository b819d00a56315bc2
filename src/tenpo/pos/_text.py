"""Text helpers shared by the POS adapters: decoding, NFKC normalisation, CSV reading."""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterator
from datetime import date, datetime
from zoneinfo import ZoneInfo

from tenpo.core.bodies import strip_eof_marker

_INT = re.compile(r"[+-]?[0-9]+")
_MINUS_SIGNS = str.maketrans({"\u2212": "-", "\u2010": "-", "\u2012": "-", "\u2013": "-"})
_LOCAL_TS = re.compile(r"(\d{4})/(\d{1,2})/(\d{1,2}) +(\d{1,2}):(\d{2}):(\d{2})")
_LOCAL_DATE = re.compile(r"(\d{4})/(\d{1,2})/(\d{1,2})")


class DecodeProblem(ValueError):
    """The bytes are not valid in the expected encoding; the message names the byte offset."""


def decode(data: bytes, encoding: str) -> str:
    """``data`` decoded strictly, without a trailing Ctrl-Z end-of-file mark; raises
    :class:`DecodeProblem` naming the first bad byte."""
    try:
        return strip_eof_marker(data.decode(encoding))
    except UnicodeDecodeError as exc:
        bad = data[exc.start : exc.end].hex(" ")
        raise DecodeProblem(
            f"not valid {encoding.upper()}: byte(s) {bad} at byte offset {exc.start}"
        ) from exc


def rows(text: str) -> Iterator[tuple[int, list[str]]]:
    """CSV records of ``text`` with the (last) physical line each ends on; CRLF or LF, quoted
    newlines allowed, blank lines skipped. Raises ``csv.Error`` on malformed quoting."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    for record in reader:
        if record:
            yield reader.line_num, record


def nfkc(value: str) -> str:
    """NFKC-normalised and stripped (full-width digits and letters become ASCII)."""
    if value.isascii():
        return value.strip()
    return unicodedata.normalize("NFKC", value).translate(_MINUS_SIGNS).strip()


def parse_int(value: str) -> int:
    """An integer from a vendor field: full-width digits and thousands separators accepted."""
    if value.isascii():
        if value.isdigit():
            return int(value)
        text = value.replace(",", "").strip()
    else:
        text = nfkc(value).replace(",", "")
    if not _INT.fullmatch(text):
        raise ValueError(f"not an integer: {value!r}")
    return int(text)


def parse_local_ts(value: str) -> datetime:
    """A naive local time from ``yyyy/MM/dd HH:mm:ss``."""
    m = _LOCAL_TS.fullmatch(nfkc(value))
    if m is None:
        raise ValueError(f"{value!r} is not yyyy/MM/dd HH:mm:ss")
    try:
        y, mo, d, h, mi, s = (int(g) for g in m.groups())
        return datetime(y, mo, d, h, mi, s)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid date and time ({exc})") from exc


def parse_local_date(value: str) -> date:
    """A date from ``yyyy/MM/dd``."""
    m = _LOCAL_DATE.fullmatch(nfkc(value))
    if m is None:
        raise ValueError(f"{value!r} is not yyyy/MM/dd")
    try:
        return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid date ({exc})") from exc


_ZONES: dict[str, ZoneInfo] = {}


def zone(name: str) -> ZoneInfo:
    """A cached ``ZoneInfo``."""
    tz = _ZONES.get(name)
    if tz is None:
        tz = _ZONES[name] = ZoneInfo(name)
    return tz
