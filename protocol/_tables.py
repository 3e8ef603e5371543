"""Settings tables (parsed TOML or JSON) into frozen msgspec structs, every problem at its key.

The agent's ``foa.toml`` and FMAN's worker configuration are both described by
``msgspec.Struct`` classes, so that one definition gives each key its default, its type and
its range, and ``Meta(description=...)`` is the sentence a user reads when a value is out of
range::

    keepalive_s: Annotated[int, Meta(ge=5, le=65_535, description="5 to 65535")] = 30

msgspec stops at the first problem and names it by a JSON path (``$.broker.keepalive_s``); a
person fixing a file wants every problem at once, each at the key they wrote
(``broker.keepalive_s``), and a "did you mean" for a misspelt key. :func:`convert_table` gives
that: it converts with msgspec and, only when that fails, walks the struct's fields to find
every problem. Pure: no files, no environment, no clock; the caller words its own errors
(each package keeps its own exception tree) from the :class:`FieldError` entries.

The two ends of reading a settings file are here too, so that every file of the project is
read and reported alike: :func:`parse_toml` turns the file's bytes into a table (a syntax
error with its line and column), and :func:`error_lines` and :func:`error_report` are what a
``config check`` command prints, as text or as JSON.
"""

from __future__ import annotations

import re
import tomllib
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import msgspec

from ._errors import FieldError

T = TypeVar("T")

_AT = re.compile(r"^(.*) - at `\$(.*)`$", re.S)
_KEY = re.compile(r"[.\[]")


def field_error(exc: Exception, *, path: str = "") -> FieldError:
    """msgspec's ``"Expected `int` - at `$.a[0]`"`` as ``FieldError("a[0]", "Expected `int`")``,
    under ``path`` when the value converted sits there in a larger document."""
    text = str(exc)
    m = _AT.match(text)
    if m is None:
        return FieldError(path, text)
    return FieldError(_join(path, m.group(2).lstrip(".")), m.group(1))


def closest_key(key: str, known: Iterable[str]) -> str | None:
    """The known key ``key`` most likely misspells, if one is close enough to suggest."""
    import difflib  # only a file with a mistake pays for it

    matches = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
    return matches[0] if matches else None


def unknown_key(
    path: str, key: str, known: Iterable[str], *, what: str = "unknown key"
) -> FieldError:
    """The error for ``key`` (at ``path``) that is not among ``known``, with a hint if one is
    close: ``unknown key (did you mean 'speed'?)``."""
    hint = closest_key(key, known)
    return FieldError(path, what + (f" (did you mean {hint!r}?)" if hint else ""))


def convert_table(
    data: Any, cls: type[T], *, path: str = ""
) -> tuple[T | None, tuple[FieldError, ...]]:
    """``data`` converted to the struct ``cls`` and no errors, or ``None`` and every problem
    found, each at its dotted key under ``path``.

    Messages: ``unknown key (did you mean 'x'?)``, ``missing`` (``missing table`` for a
    table), ``must be int, not str ('9')``, ``must be a table, not int``, ``one of 'a', 'b'``,
    and for a value outside its ``Meta`` bounds the ``Meta``'s description (msgspec's own
    words when it has none)."""
    try:
        return msgspec.convert(data, cls), ()
    except msgspec.ValidationError as exc:
        found = _problems(data, cls, path)
        return None, tuple(found or [field_error(exc, path=path)])


def check_value(value: Any, t: Any, *, path: str = "") -> tuple[FieldError, ...]:
    """Every problem of ``value`` as the type ``t`` (``Annotated[str, Meta(pattern=...)]``, a
    ``Literal``, a struct...), worded as :func:`convert_table` words them; empty if none."""
    return tuple(_problems(value, t, path))


def salvage_table(
    data: Any,
    cls: type[T],
    errors: Iterable[FieldError],
    *,
    path: str = "",
    fill: Mapping[str, Any] | None = None,
) -> T | None:
    """``data`` converted with every key that has an error left at its default, or ``None``
    when that is not possible (``data`` is not a table, or a required key is wrong and
    ``fill`` has no stand-in for it).

    Rules that span keys can then still be checked with what was right, as a file checker
    that lists every problem at once needs; a stand-in is a valid value the rules ignore."""
    if not isinstance(data, Mapping):
        return None
    prefix = f"{path}." if path else ""
    bad = {_KEY.split(e.path[len(prefix) :])[0] for e in errors if e.path.startswith(prefix)}
    kept = {**(fill or {}), **{k: v for k, v in data.items() if k not in bad}}
    try:
        return msgspec.convert(kept, cls)
    except msgspec.ValidationError:
        return None


def parse_toml(data: bytes) -> tuple[dict[str, Any] | None, FieldError | None]:
    """The table in ``data`` (a TOML file's bytes), or ``None`` and why it is not one: text
    that is not UTF-8, or a syntax error with its line and column, at the empty path (the
    file as a whole)."""
    try:
        return tomllib.loads(data.decode()), None
    except UnicodeDecodeError as exc:
        return None, FieldError("", f"not UTF-8 text: {exc}")
    except tomllib.TOMLDecodeError as exc:
        return None, FieldError("", f"not valid TOML: {exc}")


def error_lines(source: str, errors: Sequence[tuple[str, str]]) -> list[str]:
    """A file's problems as ``config check`` prints them: ``FILE: N error(s)``, then one
    indented ``key: message`` line each (``(file)`` for the file as a whole)."""
    return [
        f"{source}: {len(errors)} error(s)" if source else f"{len(errors)} error(s)",
        *(f"  {key or '(file)'}: {message}" for key, message in errors),
    ]


def error_report(source: str, errors: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """The same as JSON for scripts: ``{"file", "ok", "errors": [{"key", "message"}]}``."""
    return {
        "file": source,
        "ok": not errors,
        "errors": [{"key": key, "message": message} for key, message in errors],
    }


# -- finding every problem ------------------------------------------------------------------


def _join(path: str, key: str) -> str:
    if not key:
        return path
    if not path or key.startswith("["):
        return f"{path}{key}"
    return f"{path}.{key}"


def _strip(t: Any) -> tuple[Any, tuple[Any, ...]]:
    """``t`` without ``Annotated`` and without ``None`` in a union, and the ``Meta``s it had
    (a key that is absent is the ``None``; a TOML file cannot write one)."""
    metas: tuple[Any, ...] = ()
    while get_origin(t) is Annotated:
        t, *extra = get_args(t)
        metas += tuple(extra)
    if get_origin(t) in (Union, types.UnionType):
        args = [a for a in get_args(t) if a is not type(None)]
        if len(args) == 1:
            inner, more = _strip(args[0])
            return inner, metas + more
    return t, metas


def _is_struct(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, msgspec.Struct)


def _problems(value: Any, t: Any, path: str) -> list[FieldError]:
    base, _ = _strip(t)
    if _is_struct(base):
        return _struct_problems(value, base, path)
    if get_origin(base) is dict:
        return _dict_problems(value, base, path)
    return _value_problems(value, t, path)


def _not_table(value: Any, path: str) -> list[FieldError]:
    return [FieldError(path, f"must be a table, not {type(value).__name__}")]


def _struct_problems(value: Any, cls: type[msgspec.Struct], path: str) -> list[FieldError]:
    if not isinstance(value, Mapping):
        return _not_table(value, path)
    fields = msgspec.structs.fields(cls)
    known = [f.encode_name for f in fields]
    found = []
    if cls.__struct_config__.forbid_unknown_fields:
        found += [unknown_key(_join(path, k), k, known) for k in value if k not in known]
    for f in fields:
        key = _join(path, f.encode_name)
        if f.encode_name in value:
            found += _problems(value[f.encode_name], f.type, key)
        elif f.required:
            found.append(
                FieldError(key, "missing table" if _is_struct(_strip(f.type)[0]) else "missing")
            )
    if not found:  # every field is right on its own: a rule of the struct itself (__post_init__)
        try:
            msgspec.convert(value, cls)
        except msgspec.ValidationError as exc:
            found.append(field_error(exc, path=path))
    return found


def _dict_problems(value: Any, t: Any, path: str) -> list[FieldError]:
    if not isinstance(value, Mapping):
        return _not_table(value, path)
    key_type, value_type = get_args(t) or (str, Any)
    found = []
    for k, v in value.items():
        found += _value_problems(k, key_type, _join(path, str(k)))
        found += _problems(v, value_type, _join(path, str(k)))
    return found


def _value_problems(value: Any, t: Any, path: str) -> list[FieldError]:
    try:
        msgspec.convert(value, t)
        return []
    except msgspec.ValidationError as exc:
        failure = exc
    base, metas = _strip(t)
    if get_origin(base) is Literal:
        choices = get_args(base)
        kinds = {type(c) for c in choices}
        if type(value) in kinds:
            return [FieldError(path, "one of " + ", ".join(repr(c) for c in choices))]
        return [FieldError(path, _wrong_type(value, kinds))]
    try:
        msgspec.convert(value, base)
    except msgspec.ValidationError as exc:
        if get_origin(base) is None and isinstance(base, type):
            return [FieldError(path, _wrong_type(value, {base}))]
        return [field_error(exc, path=path)]  # inside a list or the like: msgspec's path
    described = [m.description for m in metas if getattr(m, "description", None)]
    if described:
        return [FieldError(path, described[0])]
    return [field_error(failure, path=path)]


def _wrong_type(value: Any, kinds: Iterable[type]) -> str:
    names = " or ".join(sorted(k.__name__ for k in kinds))
    return f"must be {names}, not {type(value).__name__} ({value!r})"
