"""Validate a generated resource with fhir.resources R4B models. Pure.

Full pydantic validation of a resource costs ~0.6 ms, more than scoring and rules together, and
the engine writes the same few template shapes over and over. So validation is split into what
it actually depends on, with the same verdict as validating every resource in full:

* the **shape** — which keys, nesting, list lengths, ``None``/empty values, non-string
  leaves (numbers, booleans) and ``resourceType`` values. Everything the models check beyond
  single values (unknown keys, required elements, one-of-many choice types, null complex
  elements, wrong complex types) is a function of the shape alone;
* every **string leaf**, checked against the FHIR primitive type the model declares at its
  path (``code``, ``dateTime``, ``string``, ``xhtml``, ...) with that type's own validator.

The first resource of a shape is validated in full; only when that passes, and the primitive
type of every string leaf's path could be read from the models, is the shape remembered. A
later resource of a remembered shape only has its string leaves checked (each distinct value
once per path). Any failure falls back to the full validation, so the error message is
always the model's own.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Final

from fhir.resources.R4B import get_fhir_model_class
from pydantic import TypeAdapter, ValidationError

__all__ = ["ResourceInvalid", "clear_caches", "validate_resource"]

_SHAPE_LIMIT: Final = 4096
_VALUE_LIMIT: Final = 8192
_STRING: Final = "\x00str"  # stands for a string leaf in a shape
_SCALARS: Final = frozenset({int, float, bool, type(None)})


class _Unusual(Exception):
    """A value of a type other than JSON's (a Mapping that is not a dict, ...): no shape."""


class ResourceInvalid(ValueError):
    """A resource the engine built does not validate; the message lists the problems."""


@lru_cache(maxsize=32)
def _model(kind: str) -> Any:
    return get_fhir_model_class(kind)


def _full(resource: Mapping[str, Any]) -> None:
    kind = str(resource.get("resourceType"))
    try:
        _model(kind).model_validate(dict(resource))
    except (ValidationError, ValueError, KeyError) as exc:
        problems = (
            "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            if isinstance(exc, ValidationError)
            else str(exc)
        )
        raise ResourceInvalid(f"{kind} does not validate: {problems}") from None


def _shape(
    value: dict[str, Any], path: tuple[str, ...], leaves: list[tuple[tuple[str, ...], str]]
) -> Any:
    """A hashable skeleton of ``value``; string leaves (with their path) go to ``leaves``.

    A (contained) resource restarts the path at ``#<resourceType>``.
    """
    kind = value.get("resourceType")
    if isinstance(kind, str):
        path = (f"#{kind}",)
    items: list[Any] = []
    for key, item in value.items():
        kind_of = type(item)
        if kind_of is str:
            if key == "resourceType":
                items.append((key, item))  # checked against the model class: keep it
            else:
                leaves.append(((*path, key), item))
                items.append((key, _STRING))
        elif kind_of is dict:
            items.append((key, _shape(item, (*path, key), leaves)))
        elif kind_of is list:
            items.append((key, _list_shape(item, (*path, key), leaves)))
        elif kind_of in _SCALARS:
            items.append((key, kind_of.__name__, item))
        else:
            raise _Unusual
    return tuple(items)


def _list_shape(
    values: list[Any], path: tuple[str, ...], leaves: list[tuple[tuple[str, ...], str]]
) -> Any:
    items: list[Any] = ["["]
    for item in values:
        kind_of = type(item)
        if kind_of is str:
            leaves.append((path, item))
            items.append(_STRING)
        elif kind_of is dict:
            items.append(_shape(item, path, leaves))
        elif kind_of is list:
            items.append(_list_shape(item, path, leaves))
        elif kind_of in _SCALARS:
            items.append((kind_of.__name__, item))
        else:
            raise _Unusual
    return tuple(items)


def _unwrap(annotation: Any) -> Any:
    """``Optional[List[X]]`` / ``X | None`` → ``X`` (an Annotated primitive or a model type)."""
    while True:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return None
            annotation = args[0]
        elif origin in (list, typing.List):  # noqa: UP006 - fhir.resources uses typing.List
            annotation = typing.get_args(annotation)[0]
        else:
            return annotation


@lru_cache(maxsize=1024)
def _fields(model: Any) -> dict[str, Any]:
    return {(f.alias or name): f for name, f in model.model_fields.items()}


@lru_cache(maxsize=4096)
def _leaf_adapter(kind: str, path: tuple[str, ...]) -> TypeAdapter[Any] | None:
    """The validator of the primitive type at ``path`` in ``kind``, or None if unknown."""
    try:
        model = _model(kind)
        for position, name in enumerate(path):
            if name.startswith("#"):  # the resource itself, or a contained one
                model = _model(name[1:])
                continue
            field = _fields(model).get(name)
            if field is None:
                return None
            annotation = _unwrap(field.annotation)
            if annotation is None:
                return None
            if position == len(path) - 1:
                if typing.get_origin(annotation) is not typing.Annotated:
                    return None  # a string where a complex type belongs: never cached
                return TypeAdapter(annotation)
            klass = getattr(annotation, "get_model_klass", None)
            if klass is None:
                return None
            model = klass()
    except Exception:  # an unexpected model layout: validate such shapes in full
        return None
    return None


_SHAPES: dict[tuple[str, Any], bool] = {}
_VALUES: dict[tuple[str, tuple[str, ...], str], bool] = {}


def _leaf_ok(kind: str, path: tuple[str, ...], value: str) -> bool:
    key = (kind, path, value)
    found = _VALUES.get(key)
    if found is None:
        adapter = _leaf_adapter(kind, path)
        if adapter is None:
            return False
        try:
            adapter.validate_python(value)
            found = True
        except (ValidationError, ValueError, TypeError):
            found = False
        if len(_VALUES) >= _VALUE_LIMIT:
            _VALUES.clear()
        _VALUES[key] = found
    return found


def validate_resource(resource: Mapping[str, Any]) -> None:
    """Raise :class:`ResourceInvalid` unless ``resource`` is a valid R4B resource."""
    kind = str(resource.get("resourceType"))
    leaves: list[tuple[tuple[str, ...], str]] = []
    try:
        key = (kind, _shape(dict(resource), (f"#{kind}",), leaves))
    except _Unusual:
        _full(resource)
        return
    if key in _SHAPES:
        if all(_leaf_ok(kind, path, value) for path, value in leaves):
            return
        _full(resource)  # raises with the model's message
        return  # pragma: no cover - a leaf check stricter than the model: model decides
    _full(resource)
    if all(_leaf_adapter(kind, path) is not None for path, _ in leaves):
        if len(_SHAPES) >= _SHAPE_LIMIT:
            _SHAPES.clear()
        _SHAPES[key] = True


def clear_caches() -> None:
    """Forget remembered shapes and values (tests)."""
    _SHAPES.clear()
    _VALUES.clear()
