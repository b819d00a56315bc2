"""``bodies.loads`` reads every body as ``json.loads`` does (orjson is only its fast path)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tenpo.core.bodies import BodyError, loads

_EDGE = [
    '{"a":1,"a":2}',
    "1E400",
    "-1e400",
    "NaN",
    "[Infinity, -Infinity]",
    '"\\ud800"',
    "123456789012345678901234567890",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    '{"id": 12345678901234567890123}',
    "-0",
    "-0.0",
    "1e-400",
    "0.1",
    '"\\u0000"',
    '"\\u00e9\\u30c6"',
    " \t\r\n[1, 2.5e-3, true, null] ",
    "[" * 200 + "]" * 200,
]
_BAD = ["[1,]", '{"a":1}x', '"\t"', "\ufeff{}", "", "01", "{'a': 1}", "[" * 100000]


def _same(a: Any, b: Any) -> bool:
    """Equal values of equal types all the way down (1 == 1.0 is not enough; NaN equals NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


@pytest.mark.parametrize("text", _EDGE)
def test_edge_cases_read_as_json_loads_reads_them(text: str) -> None:
    assert _same(loads(text), json.loads(text))
    assert _same(loads(text.encode()), json.loads(text.encode()))


@pytest.mark.parametrize("text", _BAD)
def test_what_json_loads_refuses_is_a_body_error(text: str) -> None:
    with pytest.raises(BodyError):
        loads(text)


def test_the_error_names_json_loads_position() -> None:
    with pytest.raises(BodyError, match=r"line 2 column 3 \(char 6\)"):
        loads("[1,\n  ]")


def test_big_integers_stay_integers() -> None:
    value = loads('{"n": 98765432109876543210, "m": [-9223372036854775809]}')
    assert value == {"n": 98765432109876543210, "m": [-9223372036854775809]}
    assert isinstance(value["n"], int)


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(_json, st.booleans())
def test_any_json_document_reads_as_json_loads_reads_it(value: Any, as_bytes: bool) -> None:
    text = json.dumps(value, ensure_ascii=False)
    body: str | bytes = text.encode("utf-8", "surrogatepass") if as_bytes else text
    try:
        want: Any = json.loads(body)
    except ValueError:
        with pytest.raises(BodyError):
            loads(body)
        return
    assert _same(loads(body), want)
