"""JSON bodies as the gateway and the Pre-ETLs both read them: one parser, one shape rule.

The gateway checks a body, counts its records and answers 202; the streamer later loads the
same bytes. Both must see the same records, so both call these functions:

* :func:`loads` — ``json.loads``'s value and verdict, whose failures are all :class:`BodyError`
  (a ``ValueError``): invalid JSON, nesting deeper than the parser's recursion limit, an
  integer literal longer than Python converts (4,300 digits), never a ``RecursionError`` or a
  crash. orjson parses first (several times faster); whatever it refuses or could read
  differently (NaN, ``1e400``, lone surrogates, integers beyond 64 bits, deep nesting) goes
  through ``json.loads``, so the value is always the standard library's.
* :func:`split_records` — a body is one record, an array of records, or ``{"<wrapper>": [...]}``.
  An object that has the wrapper key *and* fields of a record is ambiguous (is it one record, or
  a wrapper?) and refused, instead of one side loading the outer object and the other the
  inner list.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

__all__ = [
    "EVENT_FIELDS",
    "RECEIPT_FIELDS",
    "BodyError",
    "loads",
    "split_records",
    "strip_eof_marker",
]

RECEIPT_FIELDS = frozenset(
    {"storeCode", "registerId", "receiptId", "transactedAt", "type", "items", "subtotal", "tax",
     "total"}
)  # fmt: skip
"""Top-level fields of a vendor B receipt (FORMATS.md)."""

EVENT_FIELDS = frozenset(
    {"v", "device_id", "seq", "type", "line", "interval_start", "interval_end", "in", "out",
     "track_id", "points", "ts", "status", "firmware", "battery"}
)  # fmt: skip
"""Top-level fields of a device event (FORMATS.md)."""


class BodyError(ValueError):
    """The body is not JSON tenpo can read, or not of the expected shape; says why."""


# 19 digits in a row: the only literals orjson reads differently from json.loads when both
# accept them are integers beyond 64 bits (orjson gives a float), and those have ≥ 19 digits.
# Found by mapping digits to "9" and the rest to " " (C speed; a regex costs more than parsing).
_DIGITS_ONLY = bytes(0x39 if 0x30 <= i <= 0x39 else 0x20 for i in range(256))
_LONG_DIGITS = b"9" * 19


def _long_digit_run(text: str | bytes) -> bool:
    raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    return _LONG_DIGITS in raw.translate(_DIGITS_ONLY)


def loads(text: str | bytes, *, parse_float: Callable[[str], Any] | None = None) -> Any:
    """The JSON value of ``text`` (as ``json.loads`` reads it); :class:`BodyError` naming the
    problem otherwise."""
    if parse_float is None and not _long_digit_run(text):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass  # json.loads decides (it accepts NaN, 1e400...) and names the error
    try:
        return json.loads(text, parse_float=parse_float)
    except json.JSONDecodeError as exc:
        raise BodyError(
            f"invalid JSON at line {exc.lineno} column {exc.colno} (char {exc.pos}): {exc.msg}"
        ) from exc
    except RecursionError as exc:
        raise BodyError("JSON nested too deeply") from exc
    except ValueError as exc:
        # Integer literals beyond sys.get_int_max_str_digits() (a DoS guard of Python's).
        raise BodyError(f"JSON number too long: {exc}") from exc


def split_records(doc: Any, wrapper: str, fields: frozenset[str], what: str) -> list[Any]:
    """The records of ``doc``: one ``what`` object, an array, or ``{wrapper: [...]}``.

    :class:`BodyError` when ``doc`` is another JSON type, when ``wrapper`` is not an array, or
    when an object has both ``wrapper`` and fields of a ``what`` (ambiguous).
    """
    if isinstance(doc, list):
        return doc
    if not isinstance(doc, dict):
        raise BodyError(
            f'body must be a {what} object, an array of {what}s or {{"{wrapper}": [...]}},'
            f" not {_json_type(doc)}"
        )
    if wrapper not in doc:
        return [doc]
    clash = sorted(fields & doc.keys())
    if clash:
        raise BodyError(
            f'ambiguous body: an object with both "{wrapper}" and {what} field(s)'
            f" {', '.join(map(repr, clash))}; send either one {what} or"
            f' {{"{wrapper}": [...]}}, not both'
        )
    records = doc[wrapper]
    if not isinstance(records, list):
        raise BodyError(f'"{wrapper}" must be an array of {what} objects')
    return records


def strip_eof_marker(text: str) -> str:
    """``text`` without a trailing Ctrl-Z (0x1A, the DOS end-of-file mark some Windows exports
    append), so it is not read as one more record; anything else is left as received."""
    end = text.rstrip("\r\n")
    if end.endswith("\x1a"):
        return end.rstrip("\x1a") + text[len(end) :]
    return text


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return type(value).__name__
