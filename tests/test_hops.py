"""benchmarks/hops.py: the station matcher, and the README's Table 1 path measured again."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import hops  # noqa: E402  (beside the benchmarks, not a package)

STACK = (
    "pkg.cli.main",
    "pkg.run.run_bench",
    "pkg.graph._drive",
    "pkg.run._execute",
    "pkg.files.atomic_write",
)


@pytest.mark.parametrize(
    ("station", "matches"),
    [
        ("files.atomic_write", True),
        ("run._execute>files.atomic_write", True),
        ("graph._drive>files.atomic_write", False),  # `>` is the direct caller only
        ("graph._drive>>files.atomic_write", True),  # `>>` anywhere above
        ("cli.main>>_drive>run._execute>files.atomic_write", True),
        ("run._execute>>cli.main>files.atomic_write", False),  # order matters
        ("run._execute", False),  # the station is the stack's last frame
        ("s.atomic_write", False),  # a qualified name's end, in whole dotted parts
        ("pkg.files.atomic_write", True),
    ],
)
def test_a_station_matches_the_end_of_a_stack(station: str, matches: bool) -> None:
    assert hops._matches(STACK, station) is matches


def test_the_table1_path_is_as_long_as_the_readme_says(tmp_path: Path) -> None:
    """Every station of both sets is reached from `cli.main`, in at most the README's hops: a
    longer path fails here until the README's table says so."""
    stacks = hops.trace(ROOT, tmp_path)
    spine, lines = hops.measure(stacks, hops.SPINE)
    branches, _ = hops.measure(stacks, hops.BRANCHES)
    assert spine <= 28 and branches <= 52
    assert all(line.split()[1] == "cli.main" for line in lines)
    assert spine < branches
