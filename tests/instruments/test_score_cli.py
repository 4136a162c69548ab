"""The ``bhi-fhir score`` contract: exact JSON keys, errors on stderr with exit 65, every good
file still scored; hostile input and bulk-export folders."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bhi_fhir.instruments.cli import JSON_KEYS
from bhi_fhir.instruments.questionnaires import build
from bhi_fhir.instruments.registry import INSTRUMENTS
from bhi_fhir.paths import examples_dir, profiles_dir
from tests.instruments.build import PHQ9, frequency, response
from tests.instruments.screen_records import (
    derived_observations,
    phq9_response,
    synthea_bundle,
    synthea_screen,
)

EXE = [sys.executable, "-m", "bhi_fhir"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EXE, "score", *args], capture_output=True, text=True, check=False)


def test_examples_json_contract() -> None:
    result = run(str(examples_dir() / "screening"), "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == 9
    assert all(tuple(row) == JSON_KEYS for row in rows)
    by_id = {row["questionnaireResponse"]: row for row in rows}
    phq9 = by_id["QuestionnaireResponse/ex-phq9-1"]
    assert (phq9["instrument"], phq9["total"], phq9["severity"]) == ("phq9", 12, "moderate")
    assert "suicide-risk" in phq9["flags"]
    # The Bundle carries a female Patient: AUDIT-C 3 is positive for her (US Core AUDIT-C).
    assert by_id["QuestionnaireResponse/ex-auditc-1"]["positive"] is True


def test_bad_files_reported_and_the_rest_scored(tmp_path: Path) -> None:
    (tmp_path / "notjson.json").write_text("{oops")
    (tmp_path / "patient.json").write_text('{"resourceType": "Patient", "id": "x"}')
    (tmp_path / "notfhir.json").write_text('{"hello": 1}')
    good = response(frequency(PHQ9, [1] * 9))
    lines = [json.dumps(good), "not json", json.dumps({**good, "id": "qr-2"})]
    (tmp_path / "mixed.ndjson").write_text("\n".join(lines) + "\n")
    result = run(str(tmp_path / "notjson.json"), str(tmp_path / "patient.json"),
                 str(tmp_path / "notfhir.json"), str(tmp_path / "mixed.ndjson"),
                 str(tmp_path / "missing.json"), "--format", "json")
    assert result.returncode == 65
    lines = result.stderr.strip().splitlines()
    errors = [e for e in lines if e.startswith("error: ")]
    assert len(errors) == 4, lines
    assert any("notjson.json" in e and "not JSON" in e for e in errors)
    assert any("notfhir.json" in e and "no resourceType" in e for e in errors)
    assert any("mixed.ndjson:2" in e for e in errors)
    assert any("missing.json" in e for e in errors)
    # A Patient is not a response: skipped and counted, not an error.
    assert [e for e in lines if e not in errors] == [
        f"skipped: {tmp_path / 'patient.json'}: 1 Patient (not QuestionnaireResponse)"]
    assert [r["questionnaireResponse"] for r in json.loads(result.stdout)] == [
        "QuestionnaireResponse/qr-1", "QuestionnaireResponse/qr-2"]


def test_questionnaire_and_patient_options(tmp_path: Path) -> None:
    questionnaire = build(INSTRUMENTS[0])
    questionnaire["url"] = "urn:local:phq"
    for q_item in questionnaire["item"][:9]:
        for option in q_item["answerOption"]:
            option["extension"] = [{"url": "http://hl7.org/fhir/StructureDefinition/itemWeight",
                                    "valueDecimal": 2}]
    (tmp_path / "q.json").write_text(json.dumps(questionnaire))
    qr = response(frequency(PHQ9, [0] * 9, prefix=""), canonical="urn:local:phq")
    (tmp_path / "qr.json").write_text(json.dumps(qr))
    result = run(str(tmp_path / "qr.json"), "--questionnaire", str(tmp_path / "q.json"),
                 "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["total"] == 18


def test_table_output_is_readable() -> None:
    result = run(str(examples_dir() / "screening" / "cssrs-high.json"))
    assert result.returncode == 0
    assert "ex-cssrs-1" in result.stdout and "high" in result.stdout


def test_committed_questionnaires_match_the_specs() -> None:
    for spec in INSTRUMENTS:
        committed = json.loads((profiles_dir() / "questionnaires" / f"{spec.id}.json").read_text())
        assert committed == build(spec), f"regenerate profiles/questionnaires ({spec.id})"


def _auditc_example() -> tuple[dict[str, object], dict[str, object]]:
    bundle = json.loads((examples_dir() / "screening" / "auditc-bundle.json").read_text())
    patient, qr = (entry["resource"] for entry in bundle["entry"])
    return patient, qr


def test_hostile_files_are_one_line_each_and_the_rest_is_scored(tmp_path: Path) -> None:
    good = response(frequency(PHQ9, [1] * 9))
    (tmp_path / "a-deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp_path / "b-bigint.json").write_text('{"resourceType": "Patient", "n": ' + "9" * 5000 + "}")
    (tmp_path / "c-inf.json").write_text(json.dumps({**good, "id": "inf"}).replace(
        '"status"', '"n": 1e999, "status"'))
    lines = [json.dumps({**good, "id": f"qr-{n}"}) for n in range(1, 101)]
    lines[99] = '{"n": ' + "[" * 5000 + "]" * 5000 + "}"  # line 100
    (tmp_path / "File.ndjson").write_text("\n".join(lines) + "\n")
    result = run(str(tmp_path), "--format", "json")
    assert result.returncode == 65, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"error: {tmp_path / 'File.ndjson'}:100: nested deeper than 128",
        f"error: {tmp_path / 'a-deep.json'}: nested deeper than 128",
        f"error: {tmp_path / 'b-bigint.json'}:1: number longer than 64 characters",
        f"error: {tmp_path / 'c-inf.json'}:1: number out of range",
    ]
    assert [r["questionnaireResponse"] for r in json.loads(result.stdout)] == [
        f"QuestionnaireResponse/qr-{n}" for n in range(1, 100)]


def test_an_export_folder_skips_and_counts_what_it_does_not_score(tmp_path: Path) -> None:
    patient, qr = _auditc_example()
    export = tmp_path / "export"
    export.mkdir()
    (export / "Patient.ndjson").write_text(json.dumps(patient) + "\n")
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    (export / "Observation.ndjson").write_text(
        "".join(json.dumps({**observation, "id": str(n)}) + "\n" for n in range(5000)))
    (export / "Medication.ndjson").write_text('{"resourceType": "Medication", "id": "m"}\n')
    (export / "parameters.json").write_text('{"resourceType": "Parameters", "parameter": []}')
    (export / "QuestionnaireResponse.ndjson").write_text(json.dumps(qr) + "\n")
    result = run(str(export), "--format", "json")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"skipped: {export / name}: {counts} (not QuestionnaireResponse)" for name, counts in [
            ("Medication.ndjson", "1 Medication"), ("Observation.ndjson", "5000 Observation"),
            ("Patient.ndjson", "1 Patient"), ("parameters.json", "1 Parameters")]]
    (row,) = json.loads(result.stdout)
    # The export's own Patient gives the sex: AUDIT-C 3 is positive for a woman (US Core AUDIT-C).
    assert (row["instrument"], row["total"], row["positive"]) == ("auditc", 3, True)


def test_user_text_is_never_markup_or_emoji(tmp_path: Path) -> None:
    good = response(frequency(PHQ9, [1] * 9), rid="[b]:100:")
    (tmp_path / "Export.ndjson").write_text(json.dumps(good) + "\n" + "{oops\n")
    result = run(str(tmp_path / "Export.ndjson"))
    assert result.returncode == 65
    assert f"{tmp_path / 'Export.ndjson'}:2: not JSON" in result.stderr, result.stderr
    assert "[b]:100:" in result.stdout, result.stdout


def test_json_output_is_the_same_text_as_one_dump(tmp_path: Path) -> None:
    for args in ([str(examples_dir() / "screening")], [str(tmp_path)]):
        result = run(*args, "--format", "json")
        assert result.returncode == 0, result.stderr
        assert result.stdout == json.dumps(json.loads(result.stdout), indent=2) + "\n"


def test_a_large_bundle_is_scored_entry_by_entry(tmp_path: Path) -> None:
    patient, qr = _auditc_example()
    entries = [{"resource": patient}] + [
        {"resource": {**qr, "id": f"a-{n}"}} for n in range(2000)]
    (tmp_path / "b.json").write_text(json.dumps({"resourceType": "Bundle", "entry": entries}))
    result = run(str(tmp_path / "b.json"), "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == 2000 and all(row["positive"] is True for row in rows)


# Screens stored as Observations (Synthea 3.3: DiagnosticReport 44249-1 + one
# total Observation 44261-6, urn:uuid references in a transaction Bundle; US Core screening our own
# Observations derivedFrom the response). PHQ-9 15: moderately severe, positive (Kroenke 2001).
WHEN = "2026-11-02T10:00:00Z"


def test_a_synthea_bundle_is_scored_with_its_source(tmp_path: Path) -> None:
    (tmp_path / "synthea.json").write_text(json.dumps(synthea_bundle("p1", WHEN)))
    result = run(str(tmp_path), "--format", "json")
    assert result.returncode == 0, result.stderr
    # The report and its total are the screen; only the Patient is skipped (it gives the sex).
    assert result.stderr.splitlines() == [
        f"skipped: {tmp_path / 'synthea.json'}: 1 Patient (not QuestionnaireResponse)"]
    (row,) = json.loads(result.stdout)
    assert tuple(row) == JSON_KEYS
    assert (row["questionnaireResponse"], row["source"]) == (None, "DiagnosticReport/dr-p1")
    assert (row["instrument"], row["total"], row["severity"], row["positive"]) == (
        "phq9", 15, "moderately-severe", True)
    assert "suicide-item-unknown" in row["flags"]  # a total says nothing about item 9


def test_a_screen_stored_three_ways_is_listed_once(tmp_path: Path) -> None:
    qr = phq9_response("p1", WHEN)
    vitals = {"resourceType": "Observation", "id": "hr", "status": "final",
              "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
              "subject": {"reference": "Patient/p1"}}
    observations = [*derived_observations(qr), *synthea_screen("p1", WHEN), vitals]
    (tmp_path / "Observation.ndjson").write_text(
        "".join(json.dumps(o) + "\n" for o in observations))
    (tmp_path / "QuestionnaireResponse.ndjson").write_text(json.dumps(qr) + "\n")
    result = run(str(tmp_path), "--format", "json")
    assert result.returncode == 0, result.stderr
    # Only the heart rate is not a screen.
    assert result.stderr.splitlines() == [
        f"skipped: {tmp_path / 'Observation.ndjson'}: 1 Observation (not QuestionnaireResponse)"]
    (row,) = json.loads(result.stdout)
    assert (row["questionnaireResponse"], row["source"], row["total"]) == (
        "QuestionnaireResponse/qr-1", None, 15)
