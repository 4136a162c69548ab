"""Where the bundled FHIR artifacts and examples live, installed or in a checkout."""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def _bundled(name: str) -> Path:
    installed = _HERE / f"_{name}"  # wheel: force-included next to the package
    return installed if installed.is_dir() else _HERE.parent / name  # checkout / editable


def profiles_dir() -> Path:
    return _bundled("profiles")


def examples_dir() -> Path:
    return _bundled("examples")
