"""Validate a generated resource with fhir.resources R4B models (design.md decision 1). Pure."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

__all__ = ["ResourceInvalid", "validate_resource"]


class ResourceInvalid(ValueError):
    """A resource the engine built does not validate; the message lists the problems."""


@lru_cache(maxsize=32)
def _model(kind: str) -> Any:
    return get_fhir_model_class(kind)


def validate_resource(resource: Mapping[str, Any]) -> None:
    """Raise :class:`ResourceInvalid` unless ``resource`` is a valid R4B resource."""
    kind = str(resource.get("resourceType"))
    try:
        _model(kind).model_validate(dict(resource))
    except (ValidationError, ValueError, KeyError) as exc:
        problems = (
            "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            if isinstance(exc, ValidationError)
            else str(exc)
        )
        raise ResourceInvalid(f"{kind} does not validate: {problems}") from None
