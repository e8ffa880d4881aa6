"""The msgpack codec: what travels, what arrives, and what is refused (with a path)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import math
import sys
import time
import uuid
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from ceylon_redis import EncodeError, Record, ValidationError, register_type
from ceylon_redis.codec import MAX_DEPTH, _registry, decode, encode, type_name


def roundtrip(value: Any) -> Any:
    data = encode(value)
    assert isinstance(data, bytes)
    return decode(data)


# --- plain values -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        {"a": 1, "b": [1, 2, {"c": None}]},
        [1, "two", 3.5, None, True, False],
        "",
        "héllo wörld ✓",
        b"",
        b"\x00\xff binary \x80",
        0,
        -1,
        2**63 - 1,
        -(2**63),
        2**64 - 1,
        1.5,
        -0.0,
        1e308,
        True,
        False,
        None,
        {},
        [],
        {1: "int key", "s": "str key"},
    ],
    ids=repr,
)
def test_plain_values_round_trip(value: Any) -> None:
    out = roundtrip(value)
    assert out == value
    assert type(out) is type(value)


def test_bytes_stay_bytes_and_str_stays_str() -> None:
    out = roundtrip({"b": b"abc", "s": "abc"})
    assert out["b"] == b"abc" and isinstance(out["b"], bytes)
    assert out["s"] == "abc" and isinstance(out["s"], str)


def test_tuple_arrives_as_list() -> None:
    assert roundtrip((1, 2, (3,))) == [1, 2, [3]]


def test_naive_datetime_round_trips_naive() -> None:
    value = dt.datetime(2024, 2, 29, 13, 14, 15, 123456)
    out = roundtrip(value)
    assert out == value
    assert type(out) is dt.datetime
    assert out.tzinfo is None


@pytest.mark.parametrize(
    "tz",
    [dt.timezone.utc, dt.timezone(dt.timedelta(hours=5, minutes=30)),
     dt.timezone(-dt.timedelta(hours=8))],
)
def test_aware_datetime_keeps_its_offset(tz: dt.tzinfo) -> None:
    value = dt.datetime(2023, 12, 31, 23, 59, 59, 1, tzinfo=tz)
    out = roundtrip(value)
    assert out == value
    assert out.utcoffset() == value.utcoffset()


def test_date_stays_date_not_datetime() -> None:
    value = dt.date(1999, 12, 31)
    out = roundtrip(value)
    assert out == value
    assert type(out) is dt.date


@pytest.mark.parametrize(
    "value",
    [dt.timedelta(0), dt.timedelta(days=3, seconds=7, microseconds=11),
     dt.timedelta(days=-1, seconds=5), dt.timedelta(microseconds=-1)],
)
def test_timedelta_round_trips(value: dt.timedelta) -> None:
    out = roundtrip(value)
    assert out == value
    assert type(out) is dt.timedelta


@pytest.mark.parametrize(
    "value",
    [decimal.Decimal("0.1"), decimal.Decimal("-123456789012345678901234567890.000001"),
     decimal.Decimal("1E+30"), decimal.Decimal("Infinity")],
)
def test_decimal_round_trips_exactly(value: decimal.Decimal) -> None:
    out = roundtrip(value)
    assert isinstance(out, decimal.Decimal)
    assert str(out) == str(value)


def test_decimal_nan_round_trips() -> None:
    out = roundtrip(decimal.Decimal("NaN"))
    assert isinstance(out, decimal.Decimal) and out.is_nan()


def test_uuid_round_trips() -> None:
    value = uuid.uuid4()
    out = roundtrip({"id": value})
    assert out == {"id": value}
    assert isinstance(out["id"], uuid.UUID)


def test_set_and_frozenset_arrive_as_set() -> None:
    assert roundtrip({1, 2, "x"}) == {1, 2, "x"}
    assert type(roundtrip({1, 2})) is set
    assert roundtrip(frozenset({"a", "b"})) == {"a", "b"}
    assert roundtrip(set()) == set()


def test_special_values_nested_in_containers() -> None:
    value = {
        "when": [dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc), dt.date(2020, 1, 2)],
        "amount": {"eur": decimal.Decimal("12.50")},
        "tags": {"x", "y"},
        "span": dt.timedelta(hours=1),
        "ids": [uuid.UUID(int=1), uuid.UUID(int=2)],
    }
    assert roundtrip(value) == value


def test_float_nan_and_inf_round_trip() -> None:
    assert math.isnan(roundtrip(float("nan")))
    assert roundtrip(float("inf")) == float("inf")
    assert roundtrip(float("-inf")) == float("-inf")


# --- dataclasses and pydantic models -------------------------------------------------------


@dataclasses.dataclass
class Job:
    difficulty: int
    title: str
    tags: list[str] = dataclasses.field(default_factory=list)


class Query(BaseModel):
    text: str
    limit: int = 10
    when: dt.datetime | None = None


def test_unregistered_dataclass_arrives_as_record() -> None:
    assert type_name(Job) not in _registry
    out = roundtrip(Job(difficulty=3, title="hard", tags=["a"]))
    assert isinstance(out, Record)
    assert not isinstance(out, Job)
    assert out.difficulty == 3
    assert out.title == "hard"
    assert out["difficulty"] == 3
    assert out["tags"] == ["a"]
    assert out.type_name == f"{__name__}.Job"
    assert dict(out) == {"difficulty": 3, "title": "hard", "tags": ["a"]}
    assert out.to_dict() == {"difficulty": 3, "title": "hard", "tags": ["a"]}
    assert len(out) == 3
    assert "title" in out


def test_unregistered_pydantic_model_arrives_as_record() -> None:
    when = dt.datetime(2024, 5, 1, 12, tzinfo=dt.timezone.utc)
    out = roundtrip({"q": Query(text="find", when=when)})["q"]
    assert isinstance(out, Record)
    assert out.text == "find"
    assert out.limit == 10
    assert out.when == when
    assert out["text"] == "find"
    assert out.type_name == f"{__name__}.Query"


def test_record_unknown_attribute_names_the_fields() -> None:
    out = roundtrip(Job(difficulty=1, title="t"))
    with pytest.raises(AttributeError, match="difficulty"):
        _ = out.nope
    with pytest.raises(KeyError):
        _ = out["nope"]


def test_record_is_read_only_and_not_picklable() -> None:
    import pickle

    out = roundtrip(Job(difficulty=1, title="t"))
    with pytest.raises(AttributeError):
        out.difficulty = 5
    assert out.difficulty == 1
    with pytest.raises(TypeError):
        pickle.dumps(out)


def test_record_re_encodes_as_the_same_record() -> None:
    out = roundtrip(Job(difficulty=2, title="x"))
    again = roundtrip(out)
    assert isinstance(again, Record)
    assert again == out
    assert again.type_name == out.type_name


@dataclasses.dataclass
class Point:
    x: int
    y: int


@dataclasses.dataclass
class Segment:
    start: Point
    end: Point
    label: str = ""


class Inner(BaseModel):
    value: decimal.Decimal
    at: dt.date


class Outer(BaseModel):
    name: str
    inner: Inner
    items: list[Inner] = []


@pytest.fixture
def registered() -> Any:
    """Register this module's types for one test, and unregister them after."""
    names = []

    def reg(cls: type, name: str | None = None) -> None:
        register_type(cls, name)
        names.append(name or type_name(cls))

    yield reg
    for n in names:
        _registry.pop(n, None)


def test_registered_dataclass_arrives_as_itself_also_nested(registered: Any) -> None:
    registered(Point)
    registered(Segment)
    value = Segment(Point(1, 2), Point(3, 4), "s")
    out = roundtrip({"seg": value, "pts": [Point(5, 6)]})
    assert isinstance(out["seg"], Segment)
    assert isinstance(out["seg"].start, Point)
    assert isinstance(out["seg"].end, Point)
    assert out["seg"] == value
    assert out["pts"] == [Point(5, 6)]
    assert isinstance(out["pts"][0], Point)


def test_registered_outer_with_unregistered_inner_dataclass(registered: Any) -> None:
    registered(Segment)
    out = roundtrip(Segment(Point(1, 2), Point(3, 4)))
    assert isinstance(out, Segment)
    assert isinstance(out.start, Record)
    assert out.start.x == 1


def test_registered_pydantic_model_arrives_as_itself_also_nested(registered: Any) -> None:
    registered(Outer)
    registered(Inner)
    value = Outer(name="o", inner=Inner(value=decimal.Decimal("1.25"), at=dt.date(2020, 1, 1)),
                  items=[Inner(value=decimal.Decimal("2"), at=dt.date(2021, 1, 1))])
    out = roundtrip([value])
    assert isinstance(out[0], Outer)
    assert isinstance(out[0].inner, Inner)
    assert isinstance(out[0].items[0], Inner)
    assert out[0] == value


def test_registered_pydantic_model_with_unregistered_inner_model(registered: Any) -> None:
    """An inner model that arrives as a Record is turned into fields for validation."""
    registered(Outer)
    value = Outer(name="o", inner=Inner(value=decimal.Decimal("1.25"), at=dt.date(2020, 1, 1)))
    out = roundtrip(value)
    assert isinstance(out, Outer)
    assert out == value


def test_register_type_under_another_name(registered: Any) -> None:
    registered(Point, "shapes.Point")

    @dataclasses.dataclass
    class Sender:
        x: int
        y: int

    raw = msgpack.packb(msgpack.ExtType(7, msgpack.packb(["shapes.Point", {"x": 1, "y": 2}])))
    assert decode(raw) == Point(1, 2)
    # a type of another name still arrives as a record
    out = roundtrip(Sender(1, 2))
    assert isinstance(out, Record)


def test_register_type_is_a_decorator_and_rejects_other_classes() -> None:
    @dataclasses.dataclass
    class Local:
        a: int

    try:
        assert register_type(Local) is Local
        assert isinstance(roundtrip(Local(1)), Local)
    finally:
        _registry.pop(type_name(Local), None)
    assert isinstance(roundtrip(Local(1)), Record)

    class Plain:
        pass

    with pytest.raises(TypeError, match="dataclass or pydantic"):
        register_type(Plain)


@pytest.mark.parametrize("name", [None, "jobs.Job"])
def test_register_type_rejects_a_dataclass_instance(name: str | None) -> None:
    """An instance is not a type: TypeError, and nothing registered (or decode would break)."""
    before = dict(_registry)
    try:
        with pytest.raises(TypeError, match="dataclass or pydantic"):
            register_type(Job(1, "x"), name)  # type: ignore[arg-type]
        assert _registry == before
    finally:
        _registry.clear()
        _registry.update(before)


def test_decoding_never_imports_what_the_data_names() -> None:
    names = ["os.system", "subprocess.Popen", "ctypes_not_loaded_module.Evil", "builtins.eval",
             "antigravity.fly"]
    before = set(sys.modules)
    for name in names:
        payload = msgpack.packb(msgpack.ExtType(7, msgpack.packb([name, {"cmd": "touch /tmp/x"}])))
        out = decode(payload)
        assert isinstance(out, Record)
        assert out.type_name == name
        assert out.cmd == "touch /tmp/x"
    assert set(sys.modules) == before
    assert "antigravity" not in sys.modules


def test_unknown_ext_code_is_left_as_ext_type() -> None:
    payload = msgpack.packb(msgpack.ExtType(42, b"raw"))
    assert decode(payload) == msgpack.ExtType(42, b"raw")


# --- what cannot travel --------------------------------------------------------------------


def test_encode_error_names_the_path_of_the_bad_value() -> None:
    with pytest.raises(EncodeError) as info:
        encode({"a": [1, object()]})
    msg = str(info.value)
    assert "data['a'][1]" in msg
    assert "object" in msg
    assert isinstance(info.value, ValidationError)
    assert isinstance(info.value, TypeError)
    assert isinstance(info.value, ValueError)


def test_encode_error_uses_the_given_root_name() -> None:
    with pytest.raises(EncodeError, match=r"output\['x'\]"):
        encode({"x": lambda: 1}, "output")


def test_encode_error_path_through_dataclass_and_model() -> None:
    @dataclasses.dataclass
    class Holder:
        items: list[Any]

    with pytest.raises(EncodeError, match=r"data\[0\]\.items\[2\]"):
        encode([Holder(items=[1, 2, object()])])

    class M(BaseModel):
        model_config = {"arbitrary_types_allowed": True}
        thing: Any

    with pytest.raises(EncodeError, match=r"data\['m'\]\.thing"):
        encode({"m": M(thing=object())})


def test_encode_error_names_a_bad_dict_key() -> None:
    with pytest.raises(EncodeError, match=r"data\['d'\] key"):
        encode({"d": {(1, object()): 1}})


@pytest.mark.parametrize("big", [2**64, -(2**63) - 1, 10**30])
def test_ints_over_64_bits_raise_encode_error(big: int) -> None:
    with pytest.raises(EncodeError) as info:
        encode({"n": [big]})
    assert "data['n'][0]" in str(info.value)
    assert str(big) in str(info.value)
    assert "out of msgpack's 64-bit range (-2**63 to 2**64-1)" in str(info.value)
    assert "cannot encode int" not in str(info.value)


@dataclasses.dataclass(frozen=True)
class _Key:
    k: Any = None


@pytest.mark.parametrize("value, where, arrives", [
    ({"n": 1, (1, 2): "t"}, "data key (1, 2)", "a list"),
    ({"a": [{"b": {frozenset({1}): 2}}]}, "data['a'][0]['b'] key frozenset({1})", "a set"),
    ([_Key(k={(1,): 2})], "data[0].k key (1,)", "a list"),
    ({"s": {_Key(k=(1, ((2,), 3)))}, "x": {((2,), 3): 1}}, "data['x'] key ((2,), 3)", "a list"),
], ids=["tuple", "frozenset-nested", "in-a-dataclass", "nested-tuple"])
def test_a_dict_key_that_would_arrive_unhashable_is_refused(value: Any, where: str,
                                                            arrives: str) -> None:
    """A tuple key packs (as an array) but arrives as a list, which no dict can hold: the
    worker failed on it. Refused at encode, naming the key."""
    with pytest.raises(EncodeError) as info:
        encode(value)
    msg = str(info.value)
    assert msg.startswith(f"cannot encode {where}:"), msg
    assert f"it would arrive as {arrives}" in msg


@pytest.mark.parametrize("key", [1, -2.5, "s", b"b", None, True, dt.date(2020, 1, 2),
                                 dt.datetime(2020, 1, 2, 3, 4), dt.timedelta(3),
                                 decimal.Decimal("1.5"), uuid.UUID(int=7), _Key(1)], ids=repr)
def test_dict_keys_that_arrive_hashable_pass(key: Any) -> None:
    out = roundtrip({key: "v", "nested": [{key: 1}]})
    assert len(out) == 2 and list(out["nested"][0].values()) == [1]


def _nested_lists(depth: int) -> list[Any]:
    root: list[Any] = []
    cur = root
    for _ in range(depth):
        cur.append([])
        cur = cur[0]
    return root


@dataclasses.dataclass
class _Node:
    next: Any = None


def _self_dict() -> Any:
    d: dict[str, Any] = {"n": 1}
    d["self"] = d
    return d


def _self_node() -> Any:
    n = _Node()
    n.next = n
    return n


def _self_list_in_dict() -> Any:
    items: list[Any] = []
    items.append({"k": items})
    return items


@pytest.mark.parametrize("make", [_self_dict, lambda: _nested_lists(5000), _self_node,
                                  _self_list_in_dict, lambda: {"a": _nested_lists(1023)}],
                         ids=["dict-in-itself", "lists-5000-deep", "dataclass-in-itself",
                              "list-in-itself", "lists-1024-deep"])
def test_recursive_or_too_deep_payloads_are_refused_at_once(make: Any) -> None:
    """Took 9-11 s and raised RecursionError; now a prompt EncodeError."""
    value = make()
    began = time.monotonic()
    with pytest.raises(EncodeError, match=r"^cannot encode data: it is nested too deeply "
                                          r"\(.*\), or it contains itself$"):
        encode(value)
    assert time.monotonic() - began < 1.0


def _depth(value: Any) -> int:
    depth = 0
    while isinstance(value, (list, dict)) and value:
        value = value[0] if isinstance(value, list) else next(iter(value.values()))
        depth += 1
    return depth + isinstance(value, (list, dict))


def test_nesting_up_to_the_limits_travels() -> None:
    assert _depth(_nested_lists(3)) == 4
    assert _depth(roundtrip(_nested_lists(MAX_DEPTH - 1))) == MAX_DEPTH
    assert _depth(roundtrip({"a": _nested_lists(MAX_DEPTH - 2)})) == MAX_DEPTH
    chain: Any = None
    for _ in range(90):
        chain = _Node(chain)
    out = roundtrip(chain)
    for _ in range(90):
        out = out.next
    assert out is None


def test_encode_error_for_unencodable_top_level_value() -> None:
    class Thing:
        pass

    with pytest.raises(EncodeError, match=r"cannot encode data: .*Thing"):
        encode(Thing())


# --- properties ----------------------------------------------------------------------------

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
)
_values = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None, database=None)
@given(_values)
def test_property_nested_json_like_values_round_trip(value: Any) -> None:
    out = roundtrip(value)
    assert out == value
    assert type(out) is type(value)


@settings(max_examples=100, deadline=None, database=None)
@given(st.lists(st.integers(min_value=-(2**63), max_value=2**64 - 1)
                | st.text() | st.binary(), max_size=10).map(set))
def test_property_sets_of_hashable_scalars_round_trip(value: set[Any]) -> None:
    assert roundtrip(value) == value


@pytest.mark.parametrize("value", [{(1, 2), (3, 4)}, {frozenset({1, 2})},
                                   {(1, 2): "t", "n": 1}, {frozenset({1}): 1},
                                   [{"a": {(1,): 1}}]],
                         ids=["set-of-tuples", "set-of-frozensets", "tuple-key",
                              "frozenset-key", "nested-tuple-key"])
def test_whatever_encode_accepts_decodes(value: Any) -> None:
    """A payload enqueue accepts must be decodable by the worker (else it is a poison task)."""
    try:
        data = encode(value)
    except EncodeError:
        return  # refusing it up front is fine too
    out = decode(data)
    assert len(out) == len(value)
