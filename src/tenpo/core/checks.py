"""Cheap synchronous checks of ingest bodies, run before anything is landed.

The gateway and each POS vendor's ``check`` (:mod:`tenpo.pos.vendors`) build on these.

They only catch what a sender must hear about at once (empty body, undecodable text, broken
JSON, wrong top-level shape) and extract the identifiers whose ownership the gateway checks
(store codes, device ids). Record-level validation is the streamer's job: a body that passes
here is kept exactly as received.
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

from tenpo.core import bodies
from tenpo.core.errors import BadInput


class MalformedBody(BadInput):
    """The request body cannot be read as the format the endpoint accepts."""

    http_status = 400
    title = "Malformed body"


class PayloadTooLarge(BadInput):
    """The request body is larger than ``max_body_bytes``."""

    http_status = 413
    title = "Content too large"


class UnsupportedEncoding(BadInput):
    """The body is text in another encoding than the one the vendor's format uses."""

    http_status = 415
    title = "Unsupported encoding"


class StreamedRequest(Protocol):
    """What :func:`read_body` needs of a request (Starlette's ``Request`` is one)."""

    @property
    def headers(self) -> Mapping[str, str]: ...

    def stream(self) -> AsyncIterator[bytes]: ...


async def read_body(request: StreamedRequest, limit: int, what: str = "body") -> bytes:
    """The request body, read in chunks; :class:`PayloadTooLarge` as soon as it passes ``limit``.

    A declared Content-Length over the limit is refused before reading anything, but the
    count of bytes actually received is what is enforced (chunked uploads have no length).
    ``what`` names the body in the message (``"budget body"``).
    """
    check_declared_length(request.headers.get("content-length", ""), limit, what)
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > limit:
            raise body_too_large(limit, what)
    return bytes(received)


def check_declared_length(declared: str, limit: int, what: str = "body") -> None:
    """:class:`PayloadTooLarge` when a ``Content-Length`` (as sent, maybe empty) is over
    ``limit`` (:func:`read_body`'s first check, for callers that read the body themselves)."""
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"{what} of {int(declared)} bytes exceeds the limit of {limit} bytes")


def body_too_large(limit: int, what: str = "body") -> PayloadTooLarge:
    """The error of a body that grew past ``limit`` while being read (:func:`read_body`'s)."""
    return PayloadTooLarge(f"{what} exceeds the limit of {limit} bytes")


def media_type(content_type: str | None) -> str:
    """The media type of a ``Content-Type`` header, lower case, without parameters."""
    return (content_type or "").split(";")[0].strip().lower()


VISIBLE_CHAR = (
    r"[^\t\n\v\f\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"
)
"""One character that is whitespace neither to Python's ``str.strip`` nor to JSON Schema's
(ECMA-262) ``\\s``: the same class in Python ``re`` and in an OpenAPI ``pattern``, so a field the
schema calls non-blank is exactly one the cheap checks accept."""
_VISIBLE = re.compile(VISIBLE_CHAR)


def refuse_utf8_as_cp932(body: bytes, vendor: str) -> None:
    """Raise :class:`UnsupportedEncoding` when a CP932 vendor's ``body`` is really UTF-8.

    Japanese text in CP932 is practically never valid UTF-8 (its lead bytes 0x81-0x9F are
    UTF-8 continuation bytes), so valid UTF-8 with non-ASCII characters, or a UTF-8 BOM, means
    the file was re-encoded on the way; decoding it as CP932 would produce mojibake.
    """
    if body.startswith(b"\xef\xbb\xbf") or (not body.isascii() and _is_utf8(body)):
        raise UnsupportedEncoding(
            f"body is UTF-8 text, but {vendor} sends CP932 (Shift_JIS): re-send the file as the"
            " register wrote it, or convert it to CP932",
            encoding="utf-8",
        )


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def require_columns(rows: list[list[str]], required: tuple[str, ...], what: str) -> None:
    """Raise :class:`MalformedBody` naming the missing columns of ``rows``' header row."""
    require_header(rows[0] if rows else None, required, what)


def require_header(row: list[str] | None, required: tuple[str, ...], what: str) -> None:
    """Raise :class:`MalformedBody` naming the columns of ``required`` the header ``row``
    (None: no header row) lacks."""
    if row is None:
        raise MalformedBody(f"{what} has no header row")
    header = {normalize_code(h).lstrip("\ufeff") for h in row}
    missing = [c for c in required if c not in header]
    if missing:
        raise MalformedBody(
            f"{what} is not in the vendor's format: header lacks {', '.join(missing)}"
        )


def require_body(body: bytes) -> None:
    """Raise :class:`MalformedBody` when ``body`` is empty."""
    if not body:
        raise MalformedBody("request body is empty")


def decode_cp932(body: bytes) -> str:
    """``body`` decoded as CP932 (Shift_JIS), without a trailing Ctrl-Z end-of-file mark (as
    the Pre-ETL reads it); :class:`MalformedBody` naming the bad offset."""
    try:
        return bodies.strip_eof_marker(body.decode("cp932"))
    except UnicodeDecodeError as exc:
        raise MalformedBody(
            f"body is not CP932 (Shift_JIS) text: undecodable byte(s) "
            f"{exc.object[exc.start : exc.end]!r} at offset {exc.start}",
            offset=exc.start,
        ) from exc


def decode_utf8(body: bytes) -> str:
    """``body`` decoded as UTF-8; :class:`MalformedBody` naming the bad offset."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedBody(
            f"body is not UTF-8 text: undecodable byte(s) "
            f"{exc.object[exc.start : exc.end]!r} at offset {exc.start}",
            offset=exc.start,
        ) from exc


def parse_json(body: bytes) -> Any:
    """The JSON value of a UTF-8 body; :class:`MalformedBody` naming the problem (the error
    position, nesting too deep, a number too long)."""
    text = decode_utf8(body)
    try:
        return bodies.loads(text)
    except bodies.BodyError as exc:
        cause = exc.__cause__
        if isinstance(cause, json.JSONDecodeError):
            raise MalformedBody(str(exc), line=cause.lineno, column=cause.colno) from exc
        raise MalformedBody(str(exc)) from exc


def csv_rows(text: str) -> list[list[str]]:
    """The rows of a CSV text (quoted fields may hold commas and newlines)."""
    try:
        return list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise MalformedBody(f"body is not valid CSV: {exc}") from exc


def csv_header_and_count(text: str) -> tuple[list[str] | None, int]:
    """The header row of a CSV text (None when it has none) and how many non-blank rows follow
    it: the parse and the errors of :func:`csv_rows` with :func:`data_row_count`, in one pass
    that keeps no row (a large upload's cheap check holds no list of its rows)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        count = sum(1 for row in reader if "".join(row).strip())
    except csv.Error as exc:
        raise MalformedBody(f"body is not valid CSV: {exc}") from exc
    return header, count


def csv_rows_with(text: str, delimiter: str) -> list[list[str]]:
    """The rows of a delimited text (``delimiter``: one character, e.g. tab)."""
    try:
        return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise MalformedBody(f"body is not valid delimited text: {exc}") from exc


def shown(value: str, limit: int = 64) -> str:
    """``value`` as a message names it: its ``repr``, cut after ``limit`` characters (an id
    is at most 64), so a problem never echoes (or logs) a huge value whole."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}… ({len(value)} chars)"


def require_text(value: str, what: str) -> str:
    """``value`` when it is Unicode text; :class:`MalformedBody` when it holds a lone surrogate.

    JSON may escape one (``"\\ud800"``) and ``json.loads`` reads it, but no database, file or
    table can store it: looking such an id up raised ``UnicodeEncodeError`` (a 500).
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MalformedBody(
            f"{what} {shown(value)} holds a lone surrogate"
            f" (U+{ord(value[exc.start]):04X}): not Unicode text"
        ) from None
    return value


def normalize_code(code: str) -> str:
    """A store/register code as Pre-ETL compares it: NFKC (full-width digits), trimmed."""
    return unicodedata.normalize("NFKC", code).strip()


def data_row_count(rows: list[list[str]]) -> int:
    """Rows after the header, ignoring blank lines (and rows of blank fields only)."""
    # A row's fields are all blank exactly when their concatenation is: one C-level strip.
    return sum(1 for r in rows[1:] if "".join(r).strip())


def iot_events(doc: Any) -> list[dict[str, Any]]:
    """The events of an IoT HTTP body ``{"events": [...]}``, each an object with a device_id."""
    if not isinstance(doc, dict) or not isinstance(doc.get("events"), list):
        raise MalformedBody('body must be a JSON object {"events": [...]}')
    try:  # the streamer's rule: {"events": [...]} that is also an event is ambiguous
        events: list[dict[str, Any]] = bodies.split_records(
            doc, "events", bodies.EVENT_FIELDS, "event"
        )
    except bodies.BodyError as exc:
        raise MalformedBody(str(exc)) from exc
    if not events:
        raise MalformedBody('"events" is empty')
    for i, event in enumerate(events):
        if not isinstance(event, dict):
            raise MalformedBody(f"events[{i}] is not a JSON object")
        device_id = event.get("device_id")
        if not isinstance(device_id, str) or not _VISIBLE.search(device_id):
            raise MalformedBody(f"events[{i}] has no device_id string")
    return events


def jsonl_objects(body: bytes) -> list[dict[str, Any]]:
    """The objects of a JSON Lines body (blank lines skipped); errors name the line."""
    text = decode_utf8(body)
    objects: list[dict[str, Any]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = bodies.loads(line)
        except bodies.BodyError as exc:
            raise MalformedBody(f"line {lineno}: {exc}", line=lineno) from exc
        if not isinstance(value, dict):
            raise MalformedBody(f"line {lineno} is not a JSON object", line=lineno)
        objects.append(value)
    if not objects:
        raise MalformedBody("body holds no JSON lines")
    return objects
