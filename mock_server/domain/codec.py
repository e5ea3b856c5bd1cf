"""Dataclasses <-> JSON documents: how both stores keep records and SQLite keeps everything."""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

import orjson

T = TypeVar("T")


_SCALARS = frozenset({str, int, float, bool, type(None)})
# The field names of each dataclass met so far (None: the type is no dataclass), so that a
# record costs one dict lookup per value rather than is_dataclass() and fields() each time.
_FIELD_NAMES: dict[type, tuple[str, ...] | None] = {}


def to_doc(value: object) -> Any:
    """A value tree as JSON values: dataclasses to objects, tuples to arrays, enums to values."""
    cls = type(value)
    if cls in _SCALARS:
        return value
    try:
        names = _FIELD_NAMES[cls]
    except KeyError:
        is_record = dataclasses.is_dataclass(value) and not isinstance(value, type)
        names = tuple(f.name for f in dataclasses.fields(value)) if is_record else None  # type: ignore[arg-type]
        _FIELD_NAMES[cls] = names
    if names is not None:
        return {name: to_doc(getattr(value, name)) for name in names}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [to_doc(v) for v in value]
    if isinstance(value, dict):
        return {k: to_doc(v) for k, v in value.items()}
    return value


@functools.cache
def _decoder(tp: Any) -> Callable[[Any], Any]:
    """Builds the inverse of `to_doc` for one annotation, once per annotation."""
    supertype = getattr(tp, "__supertype__", None)  # a NewType
    if supertype is not None:
        return _decoder(supertype)
    origin = typing.get_origin(tp)
    if origin is types.UnionType or origin is typing.Union:
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"only `X | None` unions are stored, not {tp}")
        one = _decoder(inner[0])
        return lambda raw: None if raw is None else one(raw)
    if origin is tuple:
        item = _decoder(typing.get_args(tp)[0])
        return lambda raw: tuple(item(v) for v in raw)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return functools.partial(from_doc, tp)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp
    return lambda raw: raw  # str, int, float, bool and `object` (JSON bodies) are JSON already


_PLANS: dict[type, tuple[tuple[str, Callable[[Any], Any]], ...]] = {}


def _fields(cls: type) -> tuple[tuple[str, Callable[[Any], Any]], ...]:
    plan = _PLANS.get(cls)
    if plan is None:
        hints = typing.get_type_hints(cls)
        plan = tuple((f.name, _decoder(hints[f.name])) for f in dataclasses.fields(cls))
        _PLANS[cls] = plan
    return plan


def from_doc(cls: type[T], doc: dict[str, Any]) -> T:
    """The dataclass `to_doc` gave `doc`; a field missing from an older row takes its default."""
    return cls(**{name: dec(doc[name]) for name, dec in _fields(cls) if name in doc})


def dump_bytes(value: object) -> bytes:
    """Compact UTF-8 JSON of `value` (the document `to_doc` makes of it), read by `loads`.

    orjson encodes dataclasses, enums and tuples itself, in one C call (a journal entry: ~1 us
    against ~10 us for to_doc + json.dumps). What it refuses, a str holding a lone surrogate or
    an int past 64 bits, goes the old way, whose ASCII escapes store any str unchanged. The
    text is always JSON: a non-finite float would be written as null (json.dumps wrote
    `Infinity`, which no JSON reader takes); no stored record holds one (see the store tests).
    """
    try:
        return exact(orjson.dumps(value))
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return _escaped(value).encode()


def _escaped(value: object) -> str:
    """The old way, for what orjson refuses: ASCII escapes keep any str as it was."""
    return json.dumps(to_doc(value), separators=(",", ":"))


def exact(data: bytes) -> bytes:
    """`data` copied into a bytes object of its own size. orjson hands back its working
    buffer: a 500-byte document holds ~4 KB of heap for as long as it is kept (20,000 journal
    entries: 82 MB against 9 MB copied), so what is kept is copied first."""
    return memoryview(data).tobytes()


def dumps(value: object) -> str:
    """`dump_bytes` as text (SQLite keeps documents in TEXT columns)."""
    try:
        return orjson.dumps(value).decode()  # the str is a copy of its own size
    except TypeError:
        return _escaped(value)


def loads(cls: type[T], text: str | bytes) -> T:
    return from_doc(cls, json.loads(text))
