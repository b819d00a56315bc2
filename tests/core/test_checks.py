"""The gateway's cheap IoT check and its OpenAPI pattern agree on what a blank device id is."""

from __future__ import annotations

import re
import sys

import pytest

from tenpo.core import checks
from tenpo.core.checks import VISIBLE_CHAR, MalformedBody, iot_events

# ECMA-262 WhiteSpace and LineTerminator: what JSON Schema's ``\s`` matches.
ECMA_SPACE = {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F}
ECMA_SPACE |= {0x205F, 0x3000, 0xFEFF, *range(0x2000, 0x200B)}


def test_visible_char_excludes_exactly_python_and_ecma_whitespace() -> None:
    visible = re.compile(VISIBLE_CHAR)
    blank = {c for c in range(sys.maxunicode + 1) if chr(c).isspace()} | ECMA_SPACE
    refused = {c for c in range(sys.maxunicode + 1) if not visible.fullmatch(chr(c))}
    assert refused == blank


@pytest.mark.parametrize("device_id", ["\x1e", " \t", "\ufeff", "\u3000", ""])
def test_a_device_id_of_whitespace_only_is_refused(device_id: str) -> None:
    with pytest.raises(MalformedBody, match="device_id"):
        iot_events({"events": [{"device_id": device_id}]})


def test_a_device_id_with_one_visible_character_passes() -> None:
    assert iot_events({"events": [{"device_id": " pc-1\x1e"}]}) == [{"device_id": " pc-1\x1e"}]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "a,b\r\n",
        'a,b\r\n1,2\r\n\r\n , \r\n"x\r\ny",2\r\n\u3000,\t\r\n3,4',
        'h\n"unterminated\n',
    ],
)
def test_csv_header_and_count_is_csv_rows_with_data_row_count(text: str) -> None:
    """The one-pass check keeps the parse, the errors and the count of the list-based one."""
    try:
        rows = checks.csv_rows(text)
    except checks.MalformedBody as exc:
        with pytest.raises(checks.MalformedBody, match="not valid CSV"):
            checks.csv_header_and_count(text)
        assert "CSV" in str(exc)
        return
    header, count = checks.csv_header_and_count(text)
    assert header == (rows[0] if rows else None)
    assert count == sum(1 for r in rows[1:] if any(f.strip() for f in r))
    assert count == checks.data_row_count(rows)
