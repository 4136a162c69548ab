"""``--demo``: the bundled synthetic clinic (examples/clinic/*.ndjson) in memory, no EHR."""

from __future__ import annotations

from bhi_fhir.paths import examples_dir
from smart_app.config import Settings
from smart_app.data import MemorySource


def demo_source(settings: Settings) -> MemorySource:
    folder = settings.demo_clinic or examples_dir() / "clinic"
    if not folder.is_dir():
        raise SystemExit(f"no demo clinic at {folder} (NDJSON files expected)")
    return MemorySource.from_ndjson_dir(folder)
