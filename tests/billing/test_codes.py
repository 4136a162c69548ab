"""select_codes: every threshold, caps, G0323, RHC/FQHC 2026 and APCM add-on gating."""

from __future__ import annotations

import pytest

from bhi_fhir.billing.codes import (
    BilledCode,
    PayerRules,
    Thresholds,
    UnsupportedBillingRules,
    select_codes,
)
from bhi_fhir.codes import CPT, HCPCS

from .sources import (
    S41,
    S41_99484,
    S41_APCM,
    S41_G0323,
    S41_G2214,
    S42,
    S43_FQHC,
    S72,
    S74,
)


def codes(*pairs: tuple[str, int] | str) -> list[BilledCode]:
    return [BilledCode(p) if isinstance(p, str) else BilledCode(*p) for p in pairs]


COCM_ROWS = [
    # month_kind, minutes, expected, source
    ("initial", 0, codes(), S42),
    ("initial", 15, codes(), S42),
    ("initial", 16, codes("G2214"), S41_G2214),
    ("initial", 30, codes("G2214"), S42),
    ("initial", 31, codes("G2214"), S42),
    ("initial", 35, codes("G2214"), S42),
    ("initial", 36, codes("99492"), S41),
    ("initial", 75, codes("99492"), S42),
    ("initial", 76, codes("99492"), S42),
    ("initial", 85, codes("99492"), S42),
    ("initial", 86, codes("99492", ("99494", 1)), S72),
    ("initial", 105, codes("99492", ("99494", 1)), S42),
    ("initial", 106, codes("99492", ("99494", 1)), S42),
    ("initial", 115, codes("99492", ("99494", 1)), S42),
    ("initial", 116, codes("99492", ("99494", 2)), S42),
    ("initial", 145, codes("99492", ("99494", 2)), S42),
    ("initial", 146, codes("99492", ("99494", 3)), S41),
    ("subsequent", 0, codes(), S42),
    ("subsequent", 15, codes(), S42),
    ("subsequent", 16, codes("G2214"), S41_G2214),
    ("subsequent", 30, codes("G2214"), S42),
    ("subsequent", 31, codes("99493"), S41),
    ("subsequent", 35, codes("99493"), S42),
    ("subsequent", 36, codes("99493"), S42),
    ("subsequent", 75, codes("99493"), S42),
    ("subsequent", 76, codes("99493", ("99494", 1)), S72),
    ("subsequent", 85, codes("99493", ("99494", 1)), S42),
    ("subsequent", 86, codes("99493", ("99494", 1)), S42),
    ("subsequent", 105, codes("99493", ("99494", 1)), S42),
    ("subsequent", 106, codes("99493", ("99494", 2)), S42),
    ("subsequent", 115, codes("99493", ("99494", 2)), S42),
    ("subsequent", 116, codes("99493", ("99494", 2)), S42),
    ("subsequent", 135, codes("99493", ("99494", 2)), S42),
    ("subsequent", 136, codes("99493", ("99494", 3)), S41),
]


@pytest.mark.parametrize(("kind", "minutes", "expected", "source"), COCM_ROWS)
def test_cocm_thresholds(kind, minutes, expected, source):
    assert select_codes("cocm", kind, minutes) == expected, source


@pytest.mark.parametrize(
    ("minutes", "qualification", "expected", "source"),
    [
        (0, None, codes(), S41_99484),
        (19, None, codes(), S41_99484),
        (20, None, codes("99484"), S41_99484),
        (60, None, codes("99484"), S41_99484),
        (20, "physician", codes("99484"), S41_99484),
        (20, "np", codes("99484"), S41_99484),
        (19, "psychologist", codes(), S41_G0323),
        (20, "psychologist", codes("G0323"), S41_G0323),
        (20, "csw", codes("G0323"), S41_G0323),
        (20, "counselor", codes("G0323"), S41_G0323),
        (20, "mft", codes("G0323"), S41_G0323),
    ],
)
def test_general_bhi(minutes, qualification, expected, source):
    for kind in ("initial", "subsequent"):
        assert select_codes("bhi", kind, minutes, clinician=qualification) == expected, source


@pytest.mark.parametrize(
    ("kind", "minutes", "cap", "expected", "source"),
    [
        ("subsequent", 200, None, codes("99493", ("99494", 5)), S74),
        ("subsequent", 200, 4, codes("99493", ("99494", 4)), S74),  # NC Medicaid
        ("subsequent", 200, 2, codes("99493", ("99494", 2)), S74),  # vendor
        ("initial", 116, 1, codes("99492", ("99494", 1)), S74),
        ("initial", 116, 0, codes("99492"), S74),
        ("subsequent", 75, 2, codes("99493"), S74),
    ],
)
def test_99494_payer_caps(kind, minutes, cap, expected, source):
    payer = PayerRules(name="payer", max_99494_units=cap)
    assert select_codes("cocm", kind, minutes, payer=payer) == expected, source


@pytest.mark.parametrize("setting", ["fqhc", "rhc"])
@pytest.mark.parametrize(("kind", "minutes", "_expected_", "source"), COCM_ROWS)
def test_rhc_fqhc_2026_bill_cpt_cocm_codes_never_g0512(setting, kind, minutes, _expected_, source):
    got = select_codes("cocm", kind, minutes, setting=setting, year=2026)
    assert got == _expected_, S43_FQHC
    assert all(c.code != "G0512" for c in got), S43_FQHC


@pytest.mark.parametrize("setting", ["fqhc", "rhc"])
def test_rhc_fqhc_before_2026_is_refused_not_guessed(setting):
    with pytest.raises(UnsupportedBillingRules, match="G0512"):
        select_codes("cocm", "initial", 70, setting=setting, year=2025)  # S43_FQHC


def test_office_setting_before_2026_uses_the_same_cpt_rules():
    assert select_codes("cocm", "initial", 36, setting="office", year=2025) == codes("99492"), S41


@pytest.mark.parametrize(
    ("program", "kind", "minutes", "apcm", "year", "expected", "source"),
    [
        ("cocm", "initial", 50, True, 2026, codes("G0568"), S41_APCM),
        ("cocm", "subsequent", 50, True, 2026, codes("G0569"), S41_APCM),
        ("bhi", "subsequent", 25, True, 2026, codes("G0570"), S41_APCM),
        # no 99494 analog: 200 minutes is still one add-on code
        ("cocm", "subsequent", 200, True, 2026, codes("G0569"), S41_APCM),
        # not time-based: a few minutes of service qualify, none do not
        ("cocm", "initial", 5, True, 2026, codes("G0568"), S41_APCM),
        ("cocm", "initial", 0, True, 2026, codes(), S41_APCM),
        # without an APCM base by the same practitioner: standalone codes
        ("cocm", "initial", 50, False, 2026, codes("99492"), S41_APCM),
        ("bhi", "subsequent", 25, False, 2026, codes("99484"), S41_APCM),
        # the add-ons start 1 Jan 2026
        ("cocm", "initial", 50, True, 2025, codes("99492"), S41_APCM),
    ],
)
def test_apcm_behavioral_health_add_ons(program, kind, minutes, apcm, year, expected, source):
    got = select_codes(program, kind, minutes, apcm_base_same_practitioner=apcm, year=year)
    assert got == expected, source


def test_code_systems():
    assert BilledCode("99492").system == CPT
    assert BilledCode("G2214").system == HCPCS
    assert str(BilledCode("99494", 2)) == "99494 x2"


def test_thresholds_are_configurable():
    strict = Thresholds(cocm_subsequent_from=40)
    assert select_codes("cocm", "subsequent", 35, thresholds=strict) == codes("G2214")


@pytest.mark.parametrize("bad", [("cocm", "initial", -1), ("ccm", "initial", 5), ("cocm", "x", 5)])
def test_bad_arguments(bad):
    with pytest.raises(ValueError):
        select_codes(*bad)
