"""examples/generate_clinic.py as a module: it is a script beside the package, not part of it."""

from __future__ import annotations

import importlib.util
from functools import cache
from types import ModuleType

from bhi_fhir.paths import examples_dir


@cache
def clinic_generator() -> ModuleType:
    """The synthetic-clinic generator, loaded once."""
    spec = importlib.util.spec_from_file_location(
        "generate_clinic", examples_dir() / "generate_clinic.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
