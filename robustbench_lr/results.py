"""The one tidy long-format results file every table, plot, leaderboard and gate reads.

One row = one number: `value` of `metric` for one model (dataset, arch, width, method, seed,
checkpoint) under one experiment (attack, box, source, backend, eps, steps, alpha, p, dim,
severity, tap, param). `p` (the noise probability), `dim` (the PCA dimension; `inf` = no
projection, shown as "full") and `severity` (a common corruption's, 1-5) are numbers and NaN where
they do not apply; `tap` names the representation an analysis reads; `param` holds the
experiment's remaining settings as `k=v;k=v` text.
Rows are keyed by every column except `value` and `n`; appending a row whose key exists
replaces it, so re-running a command never duplicates and the bench can skip finished work.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from robustbench_lr import numerics
from robustbench_lr.files import atomic_write

COLUMNS = [
    "dataset",
    "arch",
    "width",
    "method",
    "seed",
    "checkpoint",
    "experiment",
    "attack",
    "box",
    "source",
    "backend",
    "eps",
    "steps",
    "alpha",
    "p",
    "dim",
    "severity",
    "tap",
    "param",
    "metric",
    "value",
    "n",
    "device",
    "numerics",
    "threat",
]
# `device` (where the model was trained: bf16 on CUDA, float32 on CPU) describes a row rather
# than identifying it, so a re-run elsewhere still replaces its row instead of doubling it.
# `numerics` (`numerics.row_key`: the code paths that trained and evaluated the model) tells the
# gate whether a row may be compared bit for bit; it describes a row too.
KEY = [c for c in COLUMNS if c not in ("value", "n", "device", "numerics")]
# `threat` ("Linf", "L2") is part of the key: an L2 row of an attack never replaces its Linf row.
# Columns added after results files were first written, with what an older file implies.
LATER_COLUMNS = {"device": "", "numerics": "", "threat": "Linf"}
# Settings that are numbers where they apply and NaN elsewhere (which a plain
# `DataFrame.to_csv` writes as ''): the noise probability, the PCA dimension, a corruption's
# severity.
OPTIONAL_NUMBERS = ("p", "dim", "severity")
# Columns an older file kept inside its `param` text (`_split_param` reads them out).
SPLIT_COLUMNS = (*OPTIONAL_NUMBERS, "tap")
# Experiments whose older `param` named the tap they read: `<tap>` or `<tap>:k=v[:k=v]`, and
# cushion's `[random-init:]<layer>`.
_TAPPED = frozenset(
    {"rank", "clusters", "classwise", "stability", "hybrid", "maxmargin", "transfer", "cushion"}
)
_NUMERIC = {
    "width": float,
    "seed": int,
    "eps": float,
    "steps": int,
    "alpha": float,
    **dict.fromkeys(OPTIONAL_NUMBERS, float),
    "value": float,
    "n": int,
}
# A zoo model's accuracies as RobustBench reports them (`meta["zoo"]`): rows of this file under
# this experiment, one per metric, which the bench writes and the leaderboard shows beside ours.
ZOO_REPORTED = "zoo-reported"
ZOO_REPORTED_METRICS = ("clean_acc", "autoattack_acc")
_DEFAULTS: dict[str, Any] = {
    "width": 1.0,
    "seed": 0,
    "eps": 0.0,
    "steps": 0,
    "alpha": 0.0,
    **dict.fromkeys(OPTIONAL_NUMBERS, math.nan),
    "n": 0,
    "threat": "Linf",
}


# The key of a row wherever it was made: without the machine-specific checkpoint path.
PLACELESS_KEY = [c for c in KEY if c != "checkpoint"]


def placeless(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows as two runs in different folders can compare them: a black-box source keeps only
    its model identity (the last 4 parts of its path), and of rows that share `PLACELESS_KEY`
    the last stays."""
    frame = frame.copy()
    frame["source"] = frame["source"].map(lambda s: "/".join(Path(s).parts[-4:]) if s else s)
    return frame.drop_duplicates(subset=PLACELESS_KEY, keep="last")


def model_fields(meta: Mapping[str, Any], checkpoint: str | Path) -> dict[str, Any]:
    """The columns that identify a model, taken from its checkpoint's meta.json.

    `dataset` is the label training recorded (`data.dataset_label`: an npz by its content, no
    path); checkpoints from before labels show their config's dataset name.
    """
    cfg = meta["config"]
    return {
        "dataset": meta.get("dataset_label") or cfg["dataset"],
        "arch": cfg["arch"],
        "width": float(cfg["width"]),
        "method": cfg["method"],
        "seed": int(cfg["seed"]),
        "checkpoint": str(checkpoint),
        "device": meta.get("device", ""),
        "numerics": numerics.row_key(
            meta.get("numerics_key", ""), numerics.current_key(meta.get("device") or "cpu")
        ),
    }


def make_row(**fields: Any) -> dict[str, Any]:
    """A complete row: unknown columns are an error, missing ones get neutral defaults."""
    if stray := set(fields) - set(COLUMNS):
        raise KeyError(f"unknown result columns {sorted(stray)}; columns are {COLUMNS}")
    row = {c: fields.get(c, _DEFAULTS.get(c, "")) for c in COLUMNS}
    for column, kind in _NUMERIC.items():
        row[column] = kind(row[column])
    return row


def black_box_note(frame: pd.DataFrame) -> str:
    """One sentence on which models crafted the black-box rows of `frame`, read off the rows'
    `source` folders (`<method>/seed<k>`), so a table says the protocol its numbers came from."""
    black = frame[(frame["box"] == "black") & (frame["source"] != "")]
    if black.empty:
        return ""
    folders = black["source"].map(Path)
    external = black["checkpoint"].str.contains(":", regex=False)
    same = (folders.map(lambda f: f.name) == "seed" + black["seed"].astype(str)) & ~external
    methods = ", ".join(sorted(set(folders.map(lambda f: f.parent.name))))
    if same.all():
        return (
            f"Black-box: transfer from the {methods} model of the same seed (the paper's "
            "protocol; it shares the attacked model's initialization and data order)."
        )
    if not same.any():
        return (
            f"Black-box: transfer from an independently seeded {methods} model (another seed "
            f"than the attacked model's); the {methods} rows are the {methods}→{methods} control."
        )
    return f"Black-box: transfer from {methods} models, of the same seed for some rows only."


def read(path: str | Path) -> pd.DataFrame:
    """The results file as a DataFrame with typed columns (empty frame if it does not exist).

    A malformed file (cut mid-row, a word in a numeric column, not a CSV at all) is a ValueError
    naming the file and the line: the gate and the tables must not run on a half-read file. The
    happy path is one plain `read_csv`; only a failure pays for `_diagnosis`' line-by-line scan.
    """
    path = Path(path)
    if not path.exists():
        return _empty_frame()
    try:
        frame = pd.read_csv(
            path,
            keep_default_na=False,
            na_values={c: [""] for c in OPTIONAL_NUMBERS},
            dtype={c: str for c in COLUMNS if c not in _NUMERIC},
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(_diagnosis(path) or f"{path}: {err}") from err
    # A first row with one field too many makes pandas take column 1 as the index; a file that
    # does not end in a newline was cut mid-row unless a person wrote it (then it still reads).
    suspect = not isinstance(frame.index, pd.RangeIndex) or not _ends_with_newline(path)
    problem = (suspect and _diagnosis(path)) or _header_problem(path, list(frame.columns))
    if problem:
        raise ValueError(problem)
    frame = frame.assign(**{c: v for c, v in LATER_COLUMNS.items() if c not in frame.columns})
    missing = [c for c in SPLIT_COLUMNS if c not in frame.columns]
    if missing:
        frame = _split_param(frame, missing)
    frame = frame[[*COLUMNS, *(c for c in frame.columns if c not in COLUMNS)]]
    for column, kind in _NUMERIC.items():
        try:
            frame[column] = _converted(frame[column], kind)
        except (ValueError, TypeError) as err:
            raise ValueError(_diagnosis(path) or f"{path}: column {column!r}: {err}") from err
    return one_row_per_key(frame, str(path))


def check_appendable(path: str | Path) -> None:
    """ValueError unless rows can be appended to `path` (a results file, or none yet): checked
    before the work whose rows go there, which a folder or a foreign CSV would otherwise waste."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a results CSV")
    if blocked := [p for p in path.parents if p.exists() and not p.is_dir()]:
        raise ValueError(f"{path} cannot be created: {blocked[0]} is a file, not a folder")
    read(path)


def one_row_per_key(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """`frame` with exact copies of a row dropped (a file given twice, rows pasted twice), or
    ValueError where one key holds two different numbers: pooling both would count one
    measurement twice, narrow every interval, and average a run with another."""
    if not frame.duplicated(subset=KEY).any():
        return frame
    frame = frame[~frame.duplicated(subset=[*KEY, "value", "n"])].reset_index(drop=True)
    if len(clash := frame[frame.duplicated(subset=KEY, keep=False)]):
        row = clash.iloc[0]
        raise ValueError(
            f"{where}: {len(clash)} rows share a key with different numbers, e.g. "
            f"{row['metric']} of {row['experiment']} {row['attack']} on {row['checkpoint']}: "
            "a results file holds one number per key"
        )
    return frame


def _split_param(frame: pd.DataFrame, missing: list[str]) -> pd.DataFrame:
    """An older file's rows with the `missing` ones of `SPLIT_COLUMNS` read out of `param`.

    Files written before those settings had columns (users' results, committed baselines)
    carried them as text: noise rows `draws=2;mask=pixel;p=0.4;...`, hybrid rows `pre_fc:d=10`
    (`d=full`: no PCA), other analyses `<tap>` or `<tap>:class=3`, corruption rows
    `seed=0;severity=3`. Read out here, once, so every reader sees numbers and an older row keeps
    the key a re-run of it writes. A file that has `tap` keeps its `p`, `dim` and `tap`: its
    `param` holds no tap, so reading one out of it would take a setting for the tap.
    """
    rows = zip(frame["experiment"], frame["param"], strict=True)
    split = pd.DataFrame(
        [_split_row(e, t, "tap" in missing) for e, t in rows],
        columns=[*SPLIT_COLUMNS, "param"],
        index=frame.index,
    )
    return frame.assign(**{c: split[c] for c in [*missing, "param"]})


def _split_row(experiment: str, param: str, tapped: bool) -> tuple[float, float, float, str, str]:
    """(p, dim, severity, tap, the rest of `param`) of one older row; p, dim and tap only
    where `tapped` (the file lacks them)."""
    severity = math.nan
    if experiment == "corruption":
        severity, param = _take(param.split(";") if param else [], "severity=")
    if not tapped:
        return math.nan, math.nan, severity, "", param
    if experiment in _TAPPED:
        parts = param.split(":")
        tap = parts.pop(-1 if experiment == "cushion" else 0)
        dim, rest = _take(parts, "d=")
        return math.nan, dim, severity, tap, rest
    p, rest = _take(param.split(";") if param else [], "p=")
    return p, math.nan, severity, "", rest


def _take(parts: list[str], prefix: str) -> tuple[float, str]:
    """The number of the `prefix` item among `parts` (NaN if none; `full`, no PCA, is inf) and
    the other items joined with ';'."""
    text = next((x.removeprefix(prefix) for x in parts if x.startswith(prefix)), "")
    number = math.inf if text == "full" else float(text) if text else math.nan
    return number, ";".join(x for x in parts if not x.startswith(prefix))


def _empty_frame() -> pd.DataFrame:
    """A results file not written yet: no rows, but typed columns callers can filter as usual."""
    return pd.DataFrame({c: pd.Series(dtype=_NUMERIC.get(c, object)) for c in COLUMNS})


def _ends_with_newline(path: Path) -> bool:
    """Whether the last byte is a newline (`to_csv` always writes one); empty files count."""
    with path.open("rb") as handle:
        if handle.seek(0, io.SEEK_END) == 0:
            return True
        handle.seek(-1, io.SEEK_END)
        return handle.read(1) == b"\n"


def _converted(column: pd.Series, kind: type) -> pd.Series:
    """`column` as `kind`; an int column pandas did not parse as integers is refused, since
    `astype(int)` would silently turn a count of 4.5 into 4."""
    if kind is int and len(column) and not pd.api.types.is_integer_dtype(column):
        raise ValueError("not every entry is an integer")
    return column.astype(kind)


def _diagnosis(path: Path) -> str | None:
    """What is wrong with `path`, as "<file> line <n>: <problem>" (None if nothing is found).

    The slow path of `read`: a csv scan of the whole file, with the file's own line numbers
    (header = line 1), so a person can open the file at the broken line.
    """
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        return f"{path} line {line}: byte {raw[err.start]:#04x} is not UTF-8 text: not a CSV file"
    rows = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(rows, None)
        if header is None:
            return f"{path} is empty: a results file has at least a header line"
        if problem := _header_problem(path, header):
            return problem
        for fields in rows:
            if fields and (problem := _row_problem(header, fields)):
                return f"{path} line {rows.line_num}: {problem}"
    except csv.Error as err:
        return f"{path} line {rows.line_num}: {err}"
    return None


def _header_problem(path: Path, header: list[str]) -> str | None:
    """Which columns the header lacks (an older file may lack the `LATER_COLUMNS` and the
    `SPLIT_COLUMNS`), or None."""
    later = {*LATER_COLUMNS, *SPLIT_COLUMNS}
    if missing := [c for c in COLUMNS if c not in header and c not in later]:
        return f"{path} line 1: not a robustbench-lr results header: missing {missing}"
    return None


def _row_problem(header: list[str], fields: list[str]) -> str | None:
    """Why one data row cannot be read (too few or too many fields, a non-number), or None."""
    if len(fields) != len(header):
        hint = " (truncated?)" if len(fields) < len(header) else ""
        return f"expected {len(header)} fields, got {len(fields)}{hint}"
    row = dict(zip(header, fields, strict=True))
    for column, kind in _NUMERIC.items():
        if column not in row or (column in OPTIONAL_NUMBERS and row[column] == ""):
            continue
        try:
            kind(row[column])
        except ValueError:
            wanted = "an integer" if kind is int else "a number"
            return f"column {column!r} holds {row[column]!r}, not {wanted}"
    return None


def read_many(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Several results files concatenated (leaderboards merge runs)."""
    paths = list(paths)
    if not paths:
        return _empty_frame()
    merged = pd.concat([read(p) for p in paths], ignore_index=True)
    return one_row_per_key(merged, ", ".join(str(p) for p in paths))


def _key_strings(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """One text per row of its `columns`; NaN (a `p`, `dim` or `severity` that does not
    apply) is "nan"."""
    return frame[columns].astype(str).fillna("nan").agg("\x1f".join, axis=1)


def append(
    path: str | Path, rows: Iterable[Mapping[str, Any]], trace: tuple[str, ...] = ()
) -> pd.DataFrame:
    """Add rows, replacing any existing row with the same key; written atomically.

    `trace` names key columns along which the new rows are one whole trace (a bisection's
    evaluated ε): old rows that match a new row on every other key column are dropped too, so
    a re-run whose search visits other points leaves none of the old run's points behind.
    """
    new = pd.DataFrame([make_row(**r) for r in rows], columns=COLUMNS)
    old = read(path)
    if new.empty:
        return old
    if not old.empty:
        # `scope` is KEY less `trace`: a row equal on the whole key is equal on `scope` too.
        scope = [c for c in KEY if c not in trace]
        old = old[~_key_strings(old, scope).isin(set(_key_strings(new, scope)))]
    merged = pd.concat([old, new], ignore_index=True) if not old.empty else new
    merged = merged.drop_duplicates(subset=KEY, keep="last")
    write(path, merged)
    return merged


def write(path: str | Path, frame: pd.DataFrame) -> None:
    """Write a results frame atomically, in the one format `read` parses.

    NaN (e.g. an analysis with no examples to measure) is written as "nan", which `read`
    parses back; pandas' default empty field would not survive `keep_default_na=False`.
    """
    atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False, na_rep="nan"))
