"""The ``bhi-fhir score`` contract (issue 2): exact JSON keys, errors on stderr with exit 2,
every good file still scored."""

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
    # The Bundle carries a female Patient: AUDIT-C 3 is positive for her (§1.7).
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
    assert result.returncode == 2
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 5, errors
    assert any("notjson.json" in e and "not JSON" in e for e in errors)
    assert any("patient.json" in e and "Patient" in e for e in errors)
    assert any("mixed.ndjson:2" in e for e in errors)
    assert any("missing.json" in e for e in errors)
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
