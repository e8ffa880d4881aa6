"""Safe msgpack encoding of task payloads and outputs.

Carries dicts, lists (tuples arrive as lists), str, bytes, int, float, bool,
None, datetime, date, timedelta, Decimal, UUID, sets, dataclasses and pydantic
models. A dataclass or model travels as its type name and fields; on the other
side it arrives as the registered type of that name (``register_type``) or,
unregistered, as a :class:`Record` with attribute access. Decoding never
imports anything named by the data.

``encode`` refuses, naming the part, what would not arrive whole: a dict key that
would arrive unhashable (a tuple arrives as a list, a frozenset as a set), an int
beyond 64 bits, a value nested deeper than ``MAX_DEPTH`` levels or containing itself.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import threading
import uuid
from collections.abc import Iterator, Mapping
from enum import Enum
from typing import Any

import msgpack
from pydantic import BaseModel

from .errors import EncodeError

_DATETIME, _DATE, _TIMEDELTA, _DECIMAL, _UUID, _SET, _OBJECT = range(1, 8)

_registry: dict[str, type[Any]] = {}

MAX_DEPTH = 1023
"""Most levels of lists and dicts one value may nest: msgpack's own limit (its unpacker's
stack; its packer goes one level further, which then would not decode)."""
MAX_NESTED_OBJECTS = 100
"""Most levels of dataclasses, models, sets and timedeltas one value may nest."""
_INT_RANGE = "-2**63 to 2**64-1"
_SCALARS = frozenset({int, float, str, bytes, bool, type(None)})
_nesting = threading.local()
"""How many ext values (dataclass, set, ...) the current thread is encoding inside another."""


class _TooDeep(ValueError):
    """A value nested deeper than encode allows, or one that contains itself."""

class Record(Mapping[str, Any]):
    """A dataclass or model whose type is not registered here: its fields, by attribute or key."""

    __slots__ = ("_fields", "_type")

    def __init__(self, type_name: str, fields: dict[str, Any]) -> None:
        object.__setattr__(self, "_type", type_name)
        object.__setattr__(self, "_fields", fields)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._fields[name]
        except KeyError:
            raise AttributeError(
                f"{self._type} record has no field {name!r} (fields: {', '.join(self._fields)})"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{self._type} record is read-only")

    def __getitem__(self, key: str) -> Any:
        return self._fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Record):
            return bool(self._type == other._type and self._fields == other._fields)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self._type, tuple(self._fields)))

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._fields.items())
        return f"{self._type.rpartition('.')[2]}({inner})"

    def __reduce__(self) -> Any:  # never picklable: payloads are msgpack only
        raise TypeError("Record objects are not picklable")

    @property
    def type_name(self) -> str:
        """The name the sender's type travelled under."""
        return str(self._type)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (nested records stay records)."""
        return dict(self._fields)

def type_name(cls: type[Any]) -> str:
    """The name a class travels under: ``module.QualName``."""
    return f"{cls.__module__}.{cls.__qualname__}"

def register_type(cls: type[Any], name: str | None = None) -> type[Any]:
    """Let values named ``name`` (default: ``module.QualName`` of ``cls``) decode as ``cls``.

    Usable as a class decorator. Only dataclasses and pydantic models qualify.
    """
    is_model = isinstance(cls, type) and issubclass(cls, BaseModel)
    if not ((isinstance(cls, type) and dataclasses.is_dataclass(cls)) or is_model):
        raise TypeError(f"register_type takes a dataclass or pydantic model, not {cls!r}")
    _registry[name or type_name(cls)] = cls
    return cls

def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value

def _hashable(value: Any) -> Any:
    """Set members travel as msgpack arrays; tuples and frozensets come back as tuples."""
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, set):
        return frozenset(value)
    return value


def _pack_nested(value: Any) -> bytes:
    """_pack of a value inside an ext value, counting how deep those nest: each nesting
    restarts msgpack's own depth limit, and a dataclass containing itself never ends."""
    depth = getattr(_nesting, "depth", 0)
    if depth >= MAX_NESTED_OBJECTS:
        raise _TooDeep(f"more than {MAX_NESTED_OBJECTS} dataclasses, models or sets "
                       "nested in each other")
    _nesting.depth = depth + 1
    try:
        return _pack(value)
    finally:
        _nesting.depth = depth


def _default(obj: Any) -> msgpack.ExtType:
    if isinstance(obj, int):  # msgpack hands over the ints it cannot carry
        raise OverflowError(f"out of msgpack's 64-bit range ({_INT_RANGE}); send it as a "
                            "str or a Decimal")
    if isinstance(obj, dt.datetime):
        return msgpack.ExtType(_DATETIME, obj.isoformat().encode())
    if isinstance(obj, dt.date):
        return msgpack.ExtType(_DATE, obj.isoformat().encode())
    if isinstance(obj, dt.timedelta):
        return msgpack.ExtType(_TIMEDELTA, _pack_nested([obj.days, obj.seconds, obj.microseconds]))
    if isinstance(obj, decimal.Decimal):
        return msgpack.ExtType(_DECIMAL, str(obj).encode())
    if isinstance(obj, uuid.UUID):
        return msgpack.ExtType(_UUID, obj.bytes)
    if isinstance(obj, (set, frozenset)):
        return msgpack.ExtType(_SET, _pack_nested(list(obj)))
    if isinstance(obj, Record):
        return msgpack.ExtType(_OBJECT, _pack_nested([obj.type_name, obj.to_dict()]))
    if isinstance(obj, BaseModel):
        fields = {name: getattr(obj, name) for name in type(obj).model_fields}
        return msgpack.ExtType(_OBJECT, _pack_nested([type_name(type(obj)), fields]))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        return msgpack.ExtType(_OBJECT, _pack_nested([type_name(type(obj)), fields]))
    raise TypeError(f"cannot encode {type(obj).__name__}")

def _ext_hook(code: int, data: bytes) -> Any:
    if code == _DATETIME:
        return dt.datetime.fromisoformat(data.decode())
    if code == _DATE:
        return dt.date.fromisoformat(data.decode())
    if code == _TIMEDELTA:
        days, seconds, micros = _unpack(data)
        return dt.timedelta(days=days, seconds=seconds, microseconds=micros)
    if code == _DECIMAL:
        return decimal.Decimal(data.decode())
    if code == _UUID:
        return uuid.UUID(bytes=data)
    if code == _SET:
        return {_hashable(item) for item in _unpack(data)}
    if code == _OBJECT:
        name, fields = _unpack(data)
        cls = _registry.get(name)
        if cls is None:
            return Record(name, fields)
        if isinstance(cls, type) and issubclass(cls, BaseModel):
            return cls.model_validate(_plain(fields))
        return cls(**fields)
    return msgpack.ExtType(code, data)

def _pack(value: Any) -> bytes:
    return msgpack.packb(value, default=_default, use_bin_type=True, datetime=False)  # type: ignore[no-any-return]

def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)

def encode(value: Any, what: str = "data") -> bytes:
    """msgpack bytes of ``value``; EncodeError naming the offending part if it cannot travel
    (or would not decode on the other side: see the module's doc)."""
    try:
        payload = _pack(value)
    except RecursionError:
        raise EncodeError(_too_deep(what, "it nests too deeply for Python")) from None
    except _TooDeep as exc:
        raise EncodeError(_too_deep(what, str(exc))) from None
    except (TypeError, OverflowError, ValueError) as exc:
        if "recursion limit" in str(exc):  # msgpack's own, at MAX_DEPTH
            raise EncodeError(_too_deep(what, f"more than {MAX_DEPTH} levels of lists and "
                                              "dicts")) from None
        where, bad = _find_unencodable(value, what)
        if isinstance(bad, int) and not isinstance(bad, bool):
            raise EncodeError(f"cannot encode {where}: {bad} is out of msgpack's 64-bit "
                              f"range ({_INT_RANGE}); send it as a str or a Decimal") from None
        raise EncodeError(
            f"cannot encode {where}: {bad!r} of type {type(bad).__name__} "
            f"({exc}); use dicts, lists, str, bytes, numbers, bool, None, datetime, UUID, "
            "Decimal, sets, dataclasses or pydantic models"
        ) from None
    if type(value) in _SCALARS:  # no dict inside: nothing to check
        return payload
    try:
        _check_keys(payload)
    except msgpack.StackError:
        raise EncodeError(_too_deep(what, f"more than {MAX_DEPTH} levels of lists and "
                                          "dicts")) from None
    except TypeError as exc:
        found = _find_bad_key(value, what)
        if found is None:
            raise EncodeError(f"cannot encode {what}: it would not decode ({exc})") from None
        where, key = found
        arrives = "a list" if isinstance(key, (tuple, list)) else "a set"
        raise EncodeError(
            f"cannot encode {where}: {key!r} of type {type(key).__name__} cannot be a dict "
            f"key here: it would arrive as {arrives}, which cannot be one; use str, int, "
            "float, bool, None, bytes, datetime, UUID or Decimal keys") from None
    return payload


def _too_deep(what: str, detail: str) -> str:
    return (f"cannot encode {what}: it is nested too deeply ({detail}), or it contains "
            "itself")


def _key_hook(code: int, data: bytes) -> Any:
    """ext_hook of the key check: checks the values inside an ext value, and stands for it
    by a value as hashable as what decode makes of it (only a set is not)."""
    if code in (_SET, _OBJECT, _TIMEDELTA):
        _check_keys(data)
    return [] if code == _SET else code


def _check_keys(payload: bytes) -> None:
    """TypeError when decode would meet a dict key it cannot hash (a tuple arrives as a
    list), StackError when it nests deeper than decode goes; msgpack's C unpacker finds
    both, at about the cost of packing."""
    # raw: strings stay bytes, as hashable as str and a third of the cost to unpack
    msgpack.unpackb(payload, ext_hook=_key_hook, raw=True, strict_map_key=False)


def _find_bad_key(value: Any, path: str, depth: int = 0) -> tuple[str, Any] | None:
    """Walk ``value`` to the first dict key that would not arrive hashable: (path, key)."""
    children: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, (tuple, frozenset)):
                return f"{path} key {k!r}", k
            children.append((f"{path}[{k!r}]", v))
    elif isinstance(value, (list, tuple, set, frozenset)):
        children = [(f"{path}[{i}]", v) for i, v in enumerate(value)]
    elif isinstance(value, (BaseModel, Record)) or (
            dataclasses.is_dataclass(value) and not isinstance(value, type)):
        children = [(f"{path}.{k}", v) for k, v in _fields(value).items()]
    if depth < MAX_DEPTH:
        for child_path, child in children:
            found = _find_bad_key(child, child_path, depth + 1)
            if found is not None:
                return found
    return None


def _fields(value: Any) -> dict[str, Any]:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, BaseModel):
        return {n: getattr(value, n) for n in type(value).model_fields}
    return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}


def decode(data: bytes) -> Any:
    """The value ``encode`` produced; records for unregistered dataclasses and models."""
    return _unpack(data)


@dataclasses.dataclass(frozen=True)
class Undecodable:
    """A stored value that does not decode (a task hash edited by hand, bytes written by
    another program): what ``client.get`` and ``wait`` give in its place, instead of
    raising, so that the rest of the task can still be read."""

    field: str
    """The task hash's field: ``data`` or ``output``."""
    error: str
    """Why it does not decode."""
    raw: bytes = dataclasses.field(repr=False)
    """The stored bytes."""

    def __str__(self) -> str:
        return f"undecodable {self.field} ({self.error})"


def decode_field(data: bytes, field: str) -> Any:
    """``decode(data)``, or an :class:`Undecodable` naming ``field`` when it does not decode."""
    try:
        return _unpack(data)
    except Exception as exc:  # whatever the bytes make msgpack or a registered type raise
        return Undecodable(field, f"{type(exc).__name__}: {exc}", bytes(data))

def _find_unencodable(value: Any, path: str, depth: int = 0) -> tuple[str, Any]:
    """Walk ``value`` to the first part msgpack rejects; returns (path, that part)."""
    children: Iterator[tuple[str, Any]]
    if isinstance(value, dict):
        children = (
            item
            for k, v in value.items()
            for item in ((f"{path} key {k!r}", k), (f"{path}[{k!r}]", v))
        )
    elif isinstance(value, (list, tuple, set, frozenset)):
        children = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    elif isinstance(value, BaseModel):
        children = ((f"{path}.{n}", getattr(value, n)) for n in type(value).model_fields)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        children = ((f"{path}.{f.name}", getattr(value, f.name)) for f in dataclasses.fields(value))
    else:
        return path, value
    if depth >= MAX_DEPTH:
        return path, value
    for child_path, child in children:
        try:
            _pack(child)
        except (TypeError, OverflowError, ValueError):
            return _find_unencodable(child, child_path, depth + 1)
    return path, value


def jsonable(value: Any) -> Any:
    """JSON's view of a decoded payload: records and models as objects, bytes as text."""
    if isinstance(value, Record):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, BaseModel):
        return {k: jsonable(getattr(value, k)) for k in type(value).model_fields}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(value).decode()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
