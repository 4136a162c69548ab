"""The ``bhi-fhir`` command line.

Commands live next to the code they drive; this module only wires them together.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="bhi-fhir",
    help="Behavioral-health integration on FHIR: score screenings, run the BHI workflow, "
    "sync, bill.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    # Each command module registers itself on `app`; keep imports here so `--help` stays cheap.
    from bhi_fhir.billing import cli as _bill_cli  # noqa: F401
    from bhi_fhir.fhir import doctor as _doctor_cli  # noqa: F401
    from bhi_fhir.instruments import cli as _score_cli  # noqa: F401
    from bhi_fhir.sync import cli as _sync_cli  # noqa: F401
    from bhi_fhir.workflow import cli as _apply_cli  # noqa: F401
    from smart_app import cli as _serve_cli  # noqa: F401


def main() -> None:
    _register()
    app()
