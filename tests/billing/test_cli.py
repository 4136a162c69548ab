"""`bhi-fhir bill` offline (--input files): report formats, bundle output, errors."""

from __future__ import annotations

import csv
import io
import json
import os

import pytest
from typer.testing import CliRunner

from bhi_fhir.cli import _register, app
from bhi_fhir.exit_codes import EXIT_DATAERR

from .builders import BHCM, PCP, chart, entry, visit

_register()
runner = CliRunner()


@pytest.fixture
def clinic(tmp_path):
    resources = [
        *chart(),
        entry("2026-10-05 10:00", 30),
        entry("2026-10-05 10:15", 30),  # overlaps: 45 counted
        entry("2026-10-20 10:00", 40),
        visit("2026-10-07 09:00", "99213"),
        {"resourceType": "Practitioner", "id": "pcp"},
    ]
    path = tmp_path / "clinic.ndjson"
    path.write_text("\n".join(json.dumps(r) for r in resources) + "\nnot json\n")
    rules = tmp_path / "plan.toml"
    rules.write_text(
        '[billing]\nprogram = "cocm"\ntimezone = "America/New_York"\n'
        f'billing_practitioner = "{PCP}"\ncare_managers = ["{BHCM}"]\n'
        "[billing.payers.Medicare]\nmax_99494_units = 2\n"
    )
    return path, rules


def invoke(*args):
    return runner.invoke(app, ["bill", *args], env={"COLUMNS": "300"})


def test_json_report(clinic, tmp_path):
    data, rules = clinic
    out = tmp_path / "bundle.json"
    result = invoke(
        "--month", "2026-10", "--input", str(data), "--rules", str(rules),
        "--format", "json", "--out", str(out),
    )  # fmt: skip
    # The input's last line is not JSON: reported, the rest billed, exit 65 (as apply/score).
    assert result.exit_code == EXIT_DATAERR, result.output
    report = json.loads(result.stdout)
    (row,) = report["patients"]
    assert row["minutes"] == 85
    assert row["codes"] == [{"code": "99492", "units": 1}]
    assert row["billable"] and row["result"] == "dry-run"
    assert row["mrn"] == "MRN-0001" and row["payer"] == "Medicare"
    assert row["diagnosis"] == ["F32.1"]
    assert row["requirements"] == {
        "consent": True,
        "initiating_visit": True,
        "psychiatric_consultant": True,
    }
    assert report["errors"][0]["line"] == len(data.read_text().splitlines())
    bundle = json.loads(out.read_text())
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == ["Encounter", "Provenance"]


def test_csv_report(clinic):
    data, rules = clinic
    result = invoke(
        "--month", "2026-10", "--input", str(data), "--rules", str(rules), "--format", "csv"
    )
    assert result.exit_code == EXIT_DATAERR, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows[0]["codes"] == "99492x1"
    assert rows[0]["billable"] == "True"
    assert rows[0]["patient"] == "Patient/p1"


def test_table_report(clinic):
    data, rules = clinic
    result = invoke("--month", "2026-10", "--input", str(data), "--rules", str(rules))
    assert result.exit_code == EXIT_DATAERR, result.output
    assert "99492x1" in result.stdout
    assert "MRN-0001" in result.stdout


def test_month_without_time_reports_nobody(clinic):
    data, rules = clinic
    result = invoke(
        "--month", "2026-09", "--input", str(data), "--rules", str(rules), "--format", "json"
    )
    assert json.loads(result.stdout)["patients"] == []


@pytest.mark.parametrize(
    "args",
    [
        ["--month", "2026-13", "--input", "x.ndjson"],
        ["--month", "2026-10"],
        ["--month", "2026-10", "--input", "x.ndjson", "--timezone", "Mars/Olympus"],
    ],
)
def test_bad_options_exit_2(args):
    assert invoke(*args).exit_code == 2


def test_open_month_is_not_written(clinic):
    _data, _ = clinic
    result = invoke("--month", "2999-01", "--server", "http://127.0.0.1:9/fhir")
    assert result.exit_code == 2
    assert "has not ended" in result.output


def test_bad_inputs_one_stderr_line_each_rest_billed_exit_65(clinic, tmp_path):
    """A bad line or file is one `error: file:line: message` line on stderr; the good input is
    still billed; exit 65, the code `apply` and `score` use for bad input data."""
    data, rules = clinic
    broken = tmp_path / "more.ndjson"
    broken.write_text('{"resourceType": "Patient", "id": "x"}\n[1, 2]\n')
    result = invoke(
        "--month", "2026-10", "--input", str(data), "--input", str(broken),
        "--input", str(tmp_path / "missing.ndjson"), "--rules", str(rules), "--format", "json",
    )  # fmt: skip
    assert result.exit_code == EXIT_DATAERR
    lines = result.stderr.strip().splitlines()
    n = len(data.read_text().splitlines())
    assert lines[0].startswith(f"error: {data}:{n}: not JSON")
    assert lines[1].startswith(f"error: {broken}:2: not a FHIR resource")
    assert lines[2].startswith(f"error: {tmp_path / 'missing.ndjson'}: cannot read file")
    assert len(lines) == 3
    (row,) = json.loads(result.stdout)["patients"]
    assert row["minutes"] == 85 and row["billable"]


def test_clean_input_exits_0(clinic, tmp_path):
    data, rules = clinic
    clean = tmp_path / "clean.ndjson"
    clean.write_text(data.read_text().replace("not json\n", ""))
    result = invoke("--month", "2026-10", "--input", str(clean), "--rules", str(rules))
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


def test_unreadable_sub_directory_is_an_error_not_skipped(clinic, tmp_path, monkeypatch):
    """A sub-directory that cannot be listed is reported (and exits 65), never silently
    skipped; the readable files are still billed."""
    data, rules = clinic
    root = tmp_path / "export"
    (root / "locked").mkdir(parents=True)
    (root / "clinic.ndjson").write_text(data.read_text().replace("not json\n", ""))
    real = os.scandir

    def scandir(path):  # a permission error the way os.walk meets one (also as root)
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    result = invoke("--month", "2026-10", "--input", str(root), "--rules", str(rules),
                    "--format", "json")  # fmt: skip
    assert result.exit_code == EXIT_DATAERR
    assert result.stderr.strip() == (
        f"error: {root / 'locked'}: cannot read directory: Permission denied"
    )
    (row,) = json.loads(result.stdout)["patients"]
    assert row["minutes"] == 85


def _bill_of_october() -> dict:
    """The bill an earlier run wrote for October (40 minutes then), as the files hold it."""
    from bhi_fhir.billing.encounter import billing_encounter
    from bhi_fhir.billing.ledger import Month, close_month, group_by_patient

    from .builders import PATIENT, RULES

    record = group_by_patient([*chart(), entry("2026-10-05 10:00", 40)])[PATIENT]
    (month,), _ = close_month(record, Month(2026, 10), RULES)
    bill = billing_encounter(month)
    bill["id"] = "bill1"
    bill["meta"] = {**bill["meta"], "versionId": "2"}
    return bill


def test_bill_whose_entries_are_all_in_error_is_proposed_for_cancellation(tmp_path):
    """Every October entry was later marked entered-in-error: the standing bill is flagged and
    its cancellation planned (versioned update + Provenance), not written from files."""
    rules = tmp_path / "rules.toml"
    rules.write_text(
        f'[billing]\ntimezone = "America/New_York"\nbilling_practitioner = "{PCP}"\n'
        f'care_managers = ["{BHCM}"]\n'
    )
    data = tmp_path / "clinic.ndjson"
    resources = [*chart(), entry("2026-10-05 10:00", 40, status="entered-in-error"),
                 _bill_of_october()]  # fmt: skip
    data.write_text("\n".join(json.dumps(r) for r in resources) + "\n")
    out = tmp_path / "bundle.json"
    result = invoke("--month", "2026-10", "--input", str(data), "--rules", str(rules),
                    "--format", "json", "--out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    (row,) = report["patients"]
    assert row["result"] == "would-cancel" and row["changed"] == ["status"]
    assert [r["code"] for r in row["reasons"]] == ["no-time-entries"]
    put, provenance = json.loads(out.read_text())["entry"]
    assert put["request"] == {"method": "PUT", "url": "Encounter/bill1", "ifMatch": 'W/"2"'}
    assert put["resource"]["status"] == "entered-in-error"
    assert provenance["resource"]["resourceType"] == "Provenance"
    # The month has no bill to cancel once it is withdrawn: nothing planned again.
    resources[-1]["status"] = "entered-in-error"
    data.write_text("\n".join(json.dumps(r) for r in resources) + "\n")
    again = invoke("--month", "2026-10", "--input", str(data), "--rules", str(rules),
                   "--format", "json")  # fmt: skip
    assert json.loads(again.stdout)["patients"] == []


def test_table_prints_input_text_as_is_not_as_markup_or_emoji(clinic):
    """References come from the input: Rich must not read them as markup ([red]) or emoji
    codes (:smile:), which would change or drop what the operator reads."""
    data, rules = clinic
    odd = "[red]p1:smile:"
    text = data.read_text().replace('"p1"', json.dumps(odd)).replace("Patient/p1", f"Patient/{odd}")
    odd_entry = entry(  # not a care manager's time: CoCM does not count it (CMS MLN909432)
        "2026-10-25 10:00", 30, patient=f"Patient/{odd}", id="[bold]te:x:",
        clinician="Practitioner/stranger",
    )
    data.write_text(text + json.dumps(odd_entry) + "\n")
    result = invoke("--month", "2026-10", "--input", str(data), "--rules", str(rules))
    assert f"Patient/{odd}" in result.stdout
    assert "[bold]te:x:" in result.stdout  # a time entry not counted, named as it is
    assert "😄" not in result.stdout
