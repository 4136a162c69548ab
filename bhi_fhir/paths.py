"""Where the bundled FHIR artifacts and examples live, installed or in a checkout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent


def _bundled(name: str) -> Path:
    installed = _HERE / f"_{name}"  # wheel: force-included next to the package
    return installed if installed.is_dir() else _HERE.parent / name  # checkout / editable


def profiles_dir() -> Path:
    return _bundled("profiles")


def examples_dir() -> Path:
    return _bundled("examples")


def default_plan_path() -> Path:
    """The shipped example practice plan: what a command uses when it is given no ``--plan``."""
    return examples_dir() / "practice-plan.toml"


def bundled_questionnaires(root: Path | None = None) -> dict[str, dict[str, Any]]:
    """The screening Questionnaires shipped in profiles/questionnaires, by canonical url."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(((root or profiles_dir()) / "questionnaires").glob("*.json")):
        q = json.loads(path.read_text(encoding="utf-8"))
        if q.get("url"):
            out[str(q["url"])] = q
    return out
