"""`make perf`: run every benchmark script in this folder; each writes its section of reports/perf.md."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main() -> int:
    """Run each `benchmarks/*.py` (but this one and private helpers) in turn; fail if one fails."""
    scripts = sorted(
        p for p in HERE.glob("*.py") if p.name != Path(__file__).name and not p.name.startswith("_")
    )
    for script in scripts:
        print(f"== {script.name}", flush=True)
        subprocess.run([sys.executable, str(script)], check=True, cwd=HERE.parent)
    print("wrote reports/perf.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
