"""``tools/test`` says loudly, before and after the run, that the browser tier is skipped for
lack of Chromium, and fails at once when ``BHI_REQUIRE_BROWSER=1`` (CI)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BANNER = "NO CHROMIUM at"


def stub_venv(folder: Path) -> Path:
    """A stand-in environment: pip does nothing, pytest records that it ran and passes."""
    bin_dir = folder / "bin"
    bin_dir.mkdir(parents=True)
    for name, body in (("python", "exit 0"), ("pip", "exit 0"),
                       ("pytest", f'touch "{folder}/pytest-ran"; echo "1 passed"; exit 0')):
        script = bin_dir / name
        script.write_text(f"#!/usr/bin/env bash\n{body}\n", encoding="utf-8")
        script.chmod(0o755)
    return folder


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        **os.environ,
        "BHI_VENV": str(stub_venv(tmp_path / "venv")),
        "BHI_FHIR_BASE_URL": "http://127.0.0.1:9/fhir",  # given: no local HAPI is started
        "BHI_CHROMIUM": str(tmp_path / "no-chromium"),
        **env,
    }
    if "BHI_REQUIRE_BROWSER" not in env:  # as on a developer's machine, whatever CI set
        environ.pop("BHI_REQUIRE_BROWSER", None)
    return subprocess.run([str(ROOT / "tools" / "test"), *args], capture_output=True,
                          text=True, env=environ, timeout=120, check=False)


@pytest.mark.parametrize(
    ("args", "banners"),
    [((), 2), (("tests/browser",), 2), (("-q", "tests/instruments"), 0)],
    ids=["whole-suite", "browser-tier", "other-tier-only"],
)
def test_skipped_browser_tier_is_announced(tmp_path: Path, args: tuple[str, ...],
                                           banners: int) -> None:
    done = run(tmp_path, *args)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count(BANNER) == banners
    assert (tmp_path / "venv" / "pytest-ran").exists()


def test_required_browser_fails_before_the_run(tmp_path: Path) -> None:
    done = run(tmp_path, BHI_REQUIRE_BROWSER="1")
    assert done.returncode == 1
    assert BANNER in done.stderr
    assert "BHI_REQUIRE_BROWSER=1" in done.stderr
    assert not (tmp_path / "venv" / "pytest-ran").exists()


def test_chromium_present_is_silent(tmp_path: Path) -> None:
    chromium = tmp_path / "chromium"
    chromium.write_text("#!/bin/sh\n", encoding="utf-8")
    chromium.chmod(0o755)
    done = run(tmp_path, BHI_CHROMIUM=str(chromium), BHI_REQUIRE_BROWSER="1")
    assert done.returncode == 0, done.stderr
    assert BANNER not in done.stderr
