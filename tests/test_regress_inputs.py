"""The regression gate on bad inputs: one clear line and exit 2, never a PASS on nothing.

Each case writes a broken copy of a small, real results file (three rows: lines 2-4) as the
baseline or as the new results and expects the CLI to name that file and, where there is one,
the line. The good cases at the end prove the gate still passes and fails as before.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from robustbench_lr import results
from robustbench_lr.cli import main

MODEL = {"dataset": "digits", "arch": "resnet18", "width": 0.25, "method": "nlr", "device": "cpu"}
ROWS = [
    dict(MODEL, experiment="clean", attack="clean", metric="clean_acc", value=97.0, n=450),
    dict(MODEL, experiment="attack", attack="ifsgm", box="white", eps=8 / 255, steps=7),
    dict(MODEL, experiment="minrho", attack="deepfool", box="white", metric="rho", value=0.1),
]
ROWS[1].update(metric="acc", value=40.0, n=100)
FIELDS = len(results.COLUMNS)


def _write(path: Path, rows: list[dict], checkpoint: str = "/x/nlr/seed0") -> Path:
    results.append(path, [dict(r, checkpoint=checkpoint) for r in rows])
    return path


def _with_field(text: str, line: int, column: str, value: str) -> str:
    """`text` with one field of one file line replaced (these rows hold no quoted commas)."""
    lines = text.splitlines(keepends=True)
    fields = lines[line - 1].rstrip("\n").split(",")
    fields[results.COLUMNS.index(column)] = value
    lines[line - 1] = ",".join(fields) + "\n"
    return "".join(lines)


def _with_extra_field(text: str, line: int) -> str:
    lines = text.splitlines(keepends=True)
    lines[line - 1] = lines[line - 1].rstrip("\n") + ",surplus\n"
    return "".join(lines)


# (id, which input is broken, how its good text is broken, what the one error line must say)
CASES: list[tuple[str, str, Callable[[str], str | bytes], list[str]]] = [
    ("empty-baseline", "baseline", lambda t: "", ["is empty"]),
    ("empty-results", "results", lambda t: "", ["is empty"]),
    ("header-only-baseline", "baseline", lambda t: t.splitlines(True)[0], ["has no rows"]),
    ("header-only-results", "results", lambda t: t.splitlines(True)[0], ["has no rows"]),
    ("cut-mid-row", "baseline", lambda t: t[:-40], ["line 4: expected", "(truncated?)"]),
    (
        "cut-before-last-field",
        "results",
        lambda t: t[: -len(",Linf\n")],
        [f"line 4: expected {FIELDS} fields, got {FIELDS - 1} (truncated?)"],
    ),
    (
        "word-in-value",
        "baseline",
        lambda t: _with_field(t, 3, "value", "abc"),
        ["line 3: column 'value' holds 'abc', not a number"],
    ),
    (
        "empty-value",
        "results",
        lambda t: _with_field(t, 2, "value", ""),
        ["line 2: column 'value' holds '', not a number"],
    ),
    (
        "word-in-width",
        "baseline",
        lambda t: _with_field(t, 4, "width", "wide"),
        ["line 4: column 'width' holds 'wide', not a number"],
    ),
    (
        "fraction-in-steps",
        "baseline",
        lambda t: _with_field(t, 3, "steps", "7.5"),
        ["line 3: column 'steps' holds '7.5', not an integer"],
    ),
    (
        "fraction-in-n",
        "results",
        lambda t: _with_field(t, 2, "n", "4.5"),
        ["line 2: column 'n' holds '4.5', not an integer"],
    ),
    (
        "word-in-seed",
        "baseline",
        lambda t: _with_field(t, 4, "seed", "one"),
        ["line 4: column 'seed' holds 'one', not an integer"],
    ),
    (
        "word-after-blank-line",
        "baseline",
        lambda t: _with_field(t, 3, "eps", "big").replace("\n", "\n\n", 1),
        ["line 4: column 'eps' holds 'big', not a number"],
    ),
    (
        "extra-field-first-row",
        "baseline",
        lambda t: _with_extra_field(t, 2),
        [f"line 2: expected {FIELDS} fields, got {FIELDS + 1}"],
    ),
    (
        "extra-field-last-row",
        "results",
        lambda t: _with_extra_field(t, 4),
        [f"line 4: expected {FIELDS} fields, got {FIELDS + 1}"],
    ),
    (
        "binary-junk",
        "baseline",
        lambda t: b"\x89PNG\r\n\x1a\n" + bytes(range(256)),
        ["line 1: byte 0x89 is not UTF-8 text"],
    ),
    (
        "not-a-csv",
        "results",
        lambda t: "# Results\n\nSome prose, not a table.\n",
        ["line 1: not a robustbench-lr results header"],
    ),
    (
        "wrong-header",
        "baseline",
        lambda t: t.replace(",value,", ",score,", 1),
        ["line 1: not a robustbench-lr results header: missing ['value']"],
    ),
    (
        "no-shared-rows",
        "results",
        lambda t: t.replace("digits,", "cifar10,"),
        ["shares no rows with baseline", "dataset: ['cifar10'] vs ['digits']"],
    ),
]


@pytest.mark.parametrize(
    ("broken", "damage", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_is_one_error_line_and_exit_2(
    tmp_path: Path, capsys, broken: str, damage: Callable[[str], str | bytes], expected: list[str]
):
    paths = {
        "results": _write(tmp_path / "new.csv", ROWS),
        "baseline": _write(tmp_path / "baseline.csv", ROWS, checkpoint="/base/nlr/seed0"),
    }
    text = damage(paths[broken].read_text())
    if isinstance(text, bytes):
        paths[broken].write_bytes(text)
    else:
        paths[broken].write_text(text)
    argv = ["regress", "--results", str(paths["results"]), "--baseline", str(paths["baseline"])]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("robustbench-lr regress: error: ") and str(paths[broken]) in err, err
    for fragment in expected:
        assert fragment in err, err


def test_value_keeps_what_float_reads_and_a_complete_last_row_needs_no_newline(tmp_path: Path):
    path = tmp_path / "r.csv"
    text = _write(path, ROWS).read_text()
    text = _with_field(_with_field(text, 2, "value", "nan"), 3, "value", "inf")
    path.write_text(text.rstrip("\n"))  # as a person's editor may save it
    frame = results.read(path)
    assert frame["value"].isna().tolist() == [True, False, False]
    assert frame["value"].tolist()[1:] == [float("inf"), 0.1]
    assert frame["n"].dtype.kind == "i" and frame["steps"].dtype.kind == "i"


def test_gate_still_passes_fails_and_reports_missing_rows(tmp_path: Path, capsys):
    baseline = _write(tmp_path / "baseline.csv", ROWS, checkpoint="/base/nlr/seed0")
    same = _write(tmp_path / "same.csv", ROWS)
    worse = _write(tmp_path / "worse.csv", [dict(ROWS[0], value=90.0), *ROWS[1:]])
    partial = _write(tmp_path / "partial.csv", ROWS[:2])
    for path, status, word in [(same, 0, "PASS"), (worse, 1, "REGRESSED"), (partial, 1, "MISSING")]:
        capsys.readouterr()
        assert main(["regress", "--results", str(path), "--baseline", str(baseline)]) == status
        assert word in capsys.readouterr().out
