"""Peak memory (RSS) of ``bhi-fhir score --format json`` as the input grows, before and after.

Writes N copies of the example PHQ-9 response (ids varied) as NDJSON and as one Bundle, runs
``score`` on each in a fresh process and reads that process's peak RSS (``wait4``). With
``--before REF`` the same inputs are also scored by the code at git REF (extracted with
``git archive`` into a temporary folder and put first on PYTHONPATH), side by side:

    .venv/bin/python benchmarks/bench_score_memory.py [--sizes 20000,200000] [--before REF]

Nothing here is asserted; the numbers are for the reader. Measured on the 2-core dev machine
(other jobs running, so the seconds are loose), before = the commit before the streaming reader:

    input                       MB   before MB      s   after MB      s
    20,000 NDJSON               24         342   10.2         83    8.8
    20,000 Bundle               25         325   17.0         88   13.0
    200,000 NDJSON             243        2675  110.6         83   88.6
    200,000 Bundle             246        2504  123.4         88   92.4
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from peak_rss import code_at, measured_run

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "screening" / "phq9-moderate-item9.json"


def write_inputs(folder: Path, count: int) -> tuple[Path, Path]:
    qr = json.loads(EXAMPLE.read_text())
    ndjson, bundle = folder / f"qr-{count}.ndjson", folder / f"bundle-{count}.json"
    with ndjson.open("w") as lines, bundle.open("w") as whole:
        whole.write('{"resourceType": "Bundle", "type": "collection", "entry": [\n')
        for n in range(count):
            text = json.dumps({**qr, "id": f"qr-{n}"})
            lines.write(text + "\n")
            whole.write(("" if n == 0 else ",\n") + '{"resource": ' + text + "}")
        whole.write("\n]}\n")
    return ndjson, bundle


def peak(path: Path, code: Path | None) -> tuple[float, float, int]:
    """Peak RSS in MB, seconds, and exit code of one ``score`` run."""
    return measured_run(["score", str(path), "--format", "json"], code)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20000,200000")
    parser.add_argument("--before", help="git ref of the code to compare with")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-score-") as tmp:
        folder = Path(tmp)
        old = code_at(args.before, folder)
        print(f"{'input':<22} {'MB':>7}  {'before MB':>10} {'s':>6}  {'after MB':>9} {'s':>6}")
        for count in sizes:
            for path in write_inputs(folder, count):
                size = path.stat().st_size / 1e6
                before = peak(path, old) if old else None
                after = peak(path, None)
                was = f"{before[0]:>10.0f} {before[1]:>6.1f}" if before else f"{'-':>10} {'-':>6}"
                label = f"{count:,} {'NDJSON' if path.suffix == '.ndjson' else 'Bundle'}"
                print(f"{label:<22} {size:>7.0f}  {was}  {after[0]:>9.0f} {after[1]:>6.1f}",
                      flush=True)
                path.unlink()


if __name__ == "__main__":
    main()
