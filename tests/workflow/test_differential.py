"""Differential checks: optimisations of score + facts + rules must not change any result.

The goldens were generated with the engine before the performance work:

* ``golden/clinic-apply.json`` is ``bhi-fhir apply examples/clinic --plan
  examples/practice-plan.toml --today 2026-11-26 --format json``; ``golden/clinic-bundle.json``
  is the ``--out`` transaction Bundle of the same run.
* ``golden/stream-digest.json`` is a SHA-256 over every write (identifier, method, rule, reason,
  sources, resource) of the benchmark's generated clinic (``stream_patients`` below: the
  generator's scenarios with per-patient seeds, both sexes), so every scenario is covered with
  different random draws than the committed clinic.

A change of behaviour (not of speed) regenerates them on purpose:
``.venv/bin/python -m tests.workflow.test_differential --regenerate``.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from bhi_fhir.cli import _register, app
from bhi_fhir.instruments import score_response, sex_of
from bhi_fhir.timeline import build_timeline
from bhi_fhir.workflow import apply, timeline_settings
from tests.clinic_generator import clinic_generator

from .helpers import ROOT, TODAY, plan, protocol

GOLDEN = Path(__file__).parent / "golden"
STREAM_PATIENTS = 23 * 20  # every scenario 20 times

_register()


def stream_patients(count: int, seed: int = 7) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """The benchmark's patients (benchmarks/bench_workflow.py ``patients``)."""
    gen = clinic_generator()
    for index in range(count):
        clinic = gen.Clinic(random.Random(seed * 1_000_003 + index))
        _, _, build = gen.SCENARIOS[index % len(gen.SCENARIOS)]
        ident = f"Patient/p{index:05d}"
        clinic.add({"resourceType": "Patient", "id": ident.split("/")[1],
                    "gender": "male" if index % 2 else "female"})  # fmt: skip
        build(clinic, ident, gen.CARE_MANAGERS[index % 2])
        yield ident, [r for rs in clinic.by_type.values() for r in rs]


def _apply_json() -> str:
    result = CliRunner().invoke(
        app,
        ["apply", str(ROOT / "examples" / "clinic"), "--plan",
         str(ROOT / "examples" / "practice-plan.toml"), "--today", TODAY.isoformat(),
         "--format", "json", "--out", str(GOLDEN.parent / ".differential-bundle.json")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return result.stdout


def _stream_digest() -> dict[str, Any]:
    p = plan()
    settings = timeline_settings(p)
    cut_points: Any = {"phq9": p.screening.phq9_positive, "phq2": p.screening.phq2_positive,
                       "gad7": p.screening.gad7_positive}  # fmt: skip
    caseloads: dict[str, int] = {}
    digest = hashlib.sha256()
    writes = skipped = responses = 0
    for ident, resources in stream_patients(STREAM_PATIENTS):
        sex = sex_of(next(r for r in resources if r["resourceType"] == "Patient"))
        scores = [
            score_response(r, patient_sex=sex, cut_points=cut_points)
            for r in resources
            if r["resourceType"] == "QuestionnaireResponse"
        ]
        responses += len(scores)
        result = apply(protocol(), build_timeline(ident, resources, scores, TODAY, settings), p,
                       caseloads=caseloads)  # fmt: skip
        for w in result.writes:
            record = [w.rule, w.output, w.identifier, w.method, w.reason, list(w.sources),
                      w.full_url, w.if_match, w.resource]  # fmt: skip
            digest.update(json.dumps(record, sort_keys=True, ensure_ascii=False).encode())
            writes += 1
        for s in result.skipped:
            digest.update(json.dumps([s.rule, s.identifier, s.why]).encode())
            skipped += 1
    return {"patients": STREAM_PATIENTS, "responses": responses, "writes": writes,
            "skipped": skipped, "sha256": digest.hexdigest()}  # fmt: skip


def test_clinic_apply_output_is_unchanged() -> None:
    expected = json.loads((GOLDEN / "clinic-apply.json").read_text(encoding="utf-8"))
    assert json.loads(_apply_json()) == expected
    bundle = GOLDEN.parent / ".differential-bundle.json"
    try:
        got = json.loads(bundle.read_text(encoding="utf-8"))
    finally:
        bundle.unlink(missing_ok=True)
    assert got == json.loads((GOLDEN / "clinic-bundle.json").read_text(encoding="utf-8"))


def test_generated_stream_is_unchanged() -> None:
    expected = json.loads((GOLDEN / "stream-digest.json").read_text(encoding="utf-8"))
    assert _stream_digest() == expected


if __name__ == "__main__" and "--regenerate" in sys.argv:
    (GOLDEN / "clinic-apply.json").write_text(_apply_json(), encoding="utf-8")
    (GOLDEN.parent / ".differential-bundle.json").replace(GOLDEN / "clinic-bundle.json")
    (GOLDEN / "stream-digest.json").write_text(
        json.dumps(_stream_digest(), indent=1) + "\n", encoding="utf-8"
    )


def test_apply_does_not_modify_the_facts() -> None:
    """The engine hands ``timeline.facts`` to FHIRPath without a copy: nothing may change it."""
    p = plan()
    for ident, resources in stream_patients(46):
        sex = sex_of(next(r for r in resources if r["resourceType"] == "Patient"))
        scores = [
            score_response(r, patient_sex=sex)
            for r in resources
            if r["resourceType"] == "QuestionnaireResponse"
        ]
        timeline = build_timeline(ident, resources, scores, TODAY, timeline_settings(p))
        before = json.dumps(timeline.facts, sort_keys=True)
        result = apply(protocol(), timeline, p)
        for write in result.writes:  # writing to an output never reaches back into the facts
            write.resource.setdefault("note", []).append({"text": "x"})
            for value in write.resource.values():
                if isinstance(value, dict):
                    value["x"] = 1
        assert json.dumps(timeline.facts, sort_keys=True) == before
