"""Files people write: YAML read with the line of every field, and pydantic's refusals in words and
at a place a person can act on (`file:line: field: message`).

The topology, the scenarios, the node configs and the ExpressRoute model all read through here, so
a mistake reads the same wherever it is made. It depends on nothing else in bgplab, so every layer
(the ExpressRoute model below the lab harness included) can use it.

Wording comes from the schema where it can: a field's `title` names what it holds ("a VLAN ID"),
and its range and choices come from its constraints, so a refusal says "0 is out of range; a VLAN
ID is 1..4094". A rule between fields raises `FieldError` to name the field that breaks it.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, NoReturn, TypeVar, Union, get_args, get_origin, get_type_hints

import annotated_types
import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

__all__ = [
    "FieldError", "Source", "SourceError", "YamlError", "canonical", "empty_if_none", "load_yaml", "refusals",
    "validate",
]  # fmt: skip

Special = Callable[[ErrorDetails], str | None]
"""A schema's own wording for some errors (None: the general wording)."""

_M = TypeVar("_M", bound=BaseModel)


class SourceError(ValueError):
    """A file bgplab cannot use: where (file, line, dotted field) and what would be valid."""

    def __init__(self, file: str, line: int | None, field: str, message: str) -> None:
        self.file = file
        self.line = line
        self.field = field
        self.message = message
        self.where = file if line is None else f"{file}:{line}"
        super().__init__(f"{self.where}: {field}: {message}" if field else f"{self.where}: {message}")


class YamlError(SourceError):
    """Text that is not YAML. `detail` is the parser's complaint (where, what it expected), for the
    readers whose messages have long said "not valid YAML"."""

    def __init__(self, file: str, line: int | None, column: int | None, detail: str) -> None:
        where = "" if column is None else f" at column {column}"
        super().__init__(file, line, "", f"YAML syntax error{where}: {detail}")
        self.detail = detail


class FieldError(ValueError):
    """Raised in a validator to put the message at a field below the one validated: a rule between
    fields (a name that must exist elsewhere, two values that must differ) names the one that breaks it."""

    def __init__(self, path: Sequence[str | int], message: str) -> None:
        super().__init__(message)
        self.path = tuple(path)


def canonical(parse: Callable[[str], object], refusal: str) -> Callable[[str], str]:
    """A pydantic AfterValidator: the text as `parse` writes it back (an address compressed, a UUID
    in lower case), so equal values compare equal; `refusal` (formatted with `value`) where it fails."""

    def check(value: str) -> str:
        try:
            return str(parse(value))
        except ValueError:
            raise ValueError(refusal.format(value=value)) from None

    return check


def empty_if_none(value: Any) -> Any:
    """A key written with nothing after it (`vnets:`) stands for an empty mapping (a pydantic BeforeValidator)."""
    return {} if value is None else value


def _field_path(loc: Sequence[int | str]) -> str:
    """A pydantic location as the dotted field a person reads: `circuits.c1.peerings[0]`."""
    path = ""
    for part in loc:
        if part == "[key]":
            continue
        path = _child(path, part)
    return path


def _child(path: str, key: object) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _parent(path: str) -> str:
    if path.endswith("]"):
        return path[: path.rindex("[")]
    return path.rpartition(".")[0]


class Source:
    """A file's name and where each dotted field starts, for errors."""

    def __init__(self, file: str, lines: Mapping[str, int], error: type[SourceError] = SourceError) -> None:
        self.file = file
        self.lines = lines
        self.error = error

    def line(self, path: str) -> int | None:
        """The line of `path`, or of the nearest field around it that has one."""
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = _parent(path)

    def fail(self, path: str, message: str) -> NoReturn:
        raise self.error(self.file, self.line(path), path, message)


# ---------------------------------------------------------------- YAML with line numbers


def load_yaml(text: str, file: str, error: type[SourceError] = SourceError) -> tuple[Any, Source]:
    """The document and its `Source`; a duplicate key is refused (YAML would silently keep the last),
    as `error`. Text that is not YAML raises YamlError."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, Source(file, {}, error)
        _check_duplicate_keys(node, "", Source(file, {}, error), [])
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "cannot be read"
        context = ""
        if exc.context and exc.problem:
            started = exc.context_mark
            on = f" that starts on line {started.line + 1}" if started and mark and started.line != mark.line else ""
            context = f" ({exc.context}{on})"
        line, column = (None, None) if mark is None else (mark.line + 1, mark.column + 1)
        raise YamlError(file, line, column, f"{problem}{context}") from None
    except yaml.YAMLError as exc:
        raise YamlError(file, None, None, str(exc)) from None
    finally:
        loader.dispose()
    lines = {"": node.start_mark.line + 1}
    _record_lines(node, "", lines, [])
    return data, Source(file, lines, error)


def _check_duplicate_keys(node: yaml.Node, path: str, src: Source, stack: list[int]) -> None:
    if id(node) in stack:
        return
    stack.append(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                line = key.start_mark.line + 1
                if key.value in seen:
                    raise src.error(
                        src.file, line, _child(path, key.value),
                        f"duplicate key {key.value!r} (first on line {seen[key.value]}); YAML would keep only this "
                        "one, so say it once",
                    )  # fmt: skip
                seen[key.value] = line
                _check_duplicate_keys(value, _child(path, key.value), src, stack)
    elif isinstance(node, yaml.SequenceNode):
        for n, item in enumerate(node.value):
            _check_duplicate_keys(item, _child(path, n), src, stack)
    stack.pop()


def _record_lines(node: yaml.Node, path: str, lines: dict[str, int], stack: list[int]) -> None:
    if id(node) in stack:
        return
    stack.append(id(node))
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                child = _child(path, key.value)
                lines.setdefault(child, key.start_mark.line + 1)
                _record_lines(value, child, lines, stack)
    elif isinstance(node, yaml.SequenceNode):
        for n, item in enumerate(node.value):
            child = _child(path, n)
            lines.setdefault(child, item.start_mark.line + 1)
            _record_lines(item, child, lines, stack)
    stack.pop()


# ---------------------------------------------------------------- pydantic errors, for humans


def validate(model: type[_M], data: Any, src: Source, *, special: Special | None = None) -> _M:
    """`data` as `model`, or the refusal that comes first in the file: one at a time, the first a
    reader meets (a wrong key early on often explains the errors after it)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        found = refusals(exc, model, special)
    ranked = sorted(enumerate(found), key=lambda item: (src.line(item[1][0]) or 0, item[0]))
    path, message = ranked[0][1]
    src.fail(path, message)


def refusals(exc: ValidationError, root: type[BaseModel], special: Special | None = None) -> list[tuple[str, str]]:
    """(dotted field, message) of each of `exc`'s errors, in pydantic's order."""
    found = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, FieldError):
            loc += cause.path
        worded = special(error) if special is not None else None
        found.append((_field_path(loc), worded or _message(error, root)))
    return found


def _message(error: ErrorDetails, root: type[BaseModel]) -> str:
    kind = error["type"]
    loc = tuple(error["loc"])
    value = error.get("input")
    ctx = error.get("ctx") or {}
    info = _field_at(root, loc)
    title = info.title if info is not None else None
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        allowed = list(_fields(_type_at(root, loc[:-1])))
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown key {loc[-1]!r}{hint}; allowed: {', '.join(allowed)}"
    if kind == "missing":
        return "required"
    if kind == "literal_error":
        if title:
            choices = get_args(_unwrap(info.annotation)) if info is not None else ()
            return f"{value!r} is not {title}; use one of {', '.join(map(str, choices))}"
        return f"{value!r} is not valid here; use one of {ctx.get('expected', '')}"
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", error["msg"]))
    low, high = _limits(info)
    if kind in ("int_type", "int_parsing", "int_from_float"):
        if title and low is not None:
            return f"{value!r} is not a number; {title} is an integer {low}..{high}"
        return f"{value!r} is not a whole number"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        if title and low is not None:
            return f"{value} is out of range; {title} is {low}..{high}"
        return f"{value!r} is out of range: {error['msg'].lower()}"
    if kind in ("float_type", "float_parsing"):
        return f"{value!r} is not a number"
    if kind in ("bool_type", "bool_parsing"):
        return f"{value!r}: expected true or false"
    if kind in ("string_type", "str_type"):
        hint = "; quote it" if isinstance(value, int | float) else ""
        return f"{value!r}: expected text{hint}"
    if kind == "list_type":
        return f"expected a list, got {_type_name(value)}"
    if kind in ("dict_type", "model_type", "model_attributes_type", "mapping_type", "dataclass_type"):
        return f"expected a mapping of keys to settings, got {_type_name(value)}"
    return str(error["msg"])


def _type_name(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _fields(cls: Any) -> dict[str, tuple[Any, FieldInfo | None]]:
    """A model's or a dataclass's keys as written (aliases) -> (annotation, field info)."""
    if isinstance(cls, type) and issubclass(cls, BaseModel):
        return {info.alias or name: (info.annotation, info) for name, info in cls.model_fields.items()}
    if dataclasses.is_dataclass(cls):
        hints = get_type_hints(cls, include_extras=True)
        return {f.name: (hints[f.name], None) for f in dataclasses.fields(cls)}
    return {}


def _type_at(root: type[BaseModel], loc: Sequence[int | str]) -> Any:
    """The model or dataclass that `loc` (a pydantic error location) points into, if any."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        fields = _fields(current)
        if fields:
            if str(part) not in fields:
                return None
            current = fields[str(part)][0]
        elif get_origin(current) in (list, tuple, Sequence) and isinstance(part, int):
            current = get_args(current)[0]
        elif get_origin(current) in (dict, Mapping) and isinstance(part, str):
            current = get_args(current)[1]
        else:
            return None
    return _unwrap(current)


def _field_at(root: type[BaseModel], loc: Sequence[int | str]) -> FieldInfo | None:
    if not loc:
        return None
    entry = _fields(_type_at(root, loc[:-1])).get(str(loc[-1]))
    return None if entry is None else entry[1]


def _limits(info: FieldInfo | None) -> tuple[Any, Any]:
    """A field's ge/le bounds, on the field or on the type inside its Optional."""
    if info is None:
        return None, None
    metadata = list(info.metadata)
    annotation = info.annotation
    while annotation is not None:
        origin = get_origin(annotation)
        if origin is Annotated:
            args = get_args(annotation)
            metadata += [m for item in args[1:] for m in (item.metadata if isinstance(item, FieldInfo) else [item])]
            annotation = args[0]
        elif origin is Union or origin is types.UnionType:
            annotation = next(a for a in get_args(annotation) if a is not type(None))
        else:
            break
    low = next((m.ge for m in metadata if isinstance(m, annotated_types.Ge)), None)
    high = next((m.le for m in metadata if isinstance(m, annotated_types.Le)), None)
    return low, high


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin is Union or origin is types.UnionType:
            arms = [a for a in get_args(annotation) if a is not type(None)]
            annotation = arms[0]
        else:
            return annotation
