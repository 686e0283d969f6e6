"""Bad command-line input: one line on stderr naming the problem, exit status 2, no file touched.

One table of cases. Flag values are checked while parsing, so a case may name a
checkpoint that does not exist: the flag's error must fire first. A new bad input is one more
`Case` row; `setup` writes whatever files the case needs into the (temporary) working folder.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from robustbench_lr import cli, results
from robustbench_lr.commands.common import json_line


@dataclass(frozen=True)
class Case:
    """argv, a regex the one stderr line must contain, and optional files to create first."""

    id: str
    argv: tuple[str, ...]
    pattern: str
    setup: Callable[[Path], None] | None = None


def _results_csv(root: Path) -> None:
    (root / "results.csv").write_text("experiment,metric,value\n")


CKPT = ("--checkpoint", "no-such-checkpoint")
ATTACK = ("attack", "--attack", "ifsgm", *CKPT)
MINRHO = ("minrho", *CKPT)
AUDIT = ("audit", *CKPT)
ANALYZE = ("analyze", "rank", *CKPT)
RANGE_EPS = r"expected a number in \(0, 1\]"

CASES = [
    # program level
    Case("no-command", (), r"required: COMMAND"),
    Case("unknown-command", ("nope",), r"invalid choice: 'nope'"),
    Case("unrecognized-flag", ("evaluate", *CKPT, "--bogus"), r"unrecognized arguments: --bogus"),
    # train
    Case("train-epochs-0", ("train", "--epochs", "0"), r"--epochs: 0 is not an integer >= 1"),
    Case("train-epochs-neg", ("train", "--epochs", "-1"), r"--epochs: -1 is not an integer >= 1"),
    Case("train-epochs-abc", ("train", "--epochs", "abc"), r"--epochs: abc is not an integer"),
    Case(
        "train-batch-0", ("train", "--batch-size", "0"), r"--batch-size: 0 is not an integer >= 1"
    ),
    Case("train-seed-neg", ("train", "--seed", "-1"), r"--seed: -1 is not an integer >= 0"),
    Case("train-width-0", ("train", "--width", "0"), r"--width: 0 is not a number > 0"),
    Case("train-width-neg", ("train", "--width", "-0.5"), r"--width: -0.5 is not a number > 0"),
    Case("train-lr-0", ("train", "--lr", "0"), r"--lr: 0 is not a number > 0"),
    Case("train-lr-nan", ("train", "--lr", "nan"), r"--lr: nan is not a finite number"),
    Case("train-lr-inf", ("train", "--lr", "inf"), r"--lr: inf is not a finite number"),
    Case("train-lr-abc", ("train", "--lr", "abc"), r"--lr: 'abc' is not a number"),
    Case(
        "train-weight-decay-neg",
        ("train", "--weight-decay", "-0.001"),
        r"--weight-decay: -0.001 is not a number >= 0",
    ),
    Case("train-limit-0", ("train", "--train-limit", "0"), r"--train-limit: 0 is not an integer"),
    Case("test-limit-neg", ("train", "--test-limit", "-5"), r"--test-limit: -5 is not an integer"),
    Case(
        "train-method-option-junk",
        ("train", "--method", "snip", "--snip-sparsity", "abc"),
        r"--snip-sparsity: could not convert string to float: 'abc'",
    ),
    Case(
        "train-method-option-range",
        ("train", "--method", "1lr", "--lr-every", "0"),
        r"--lr-every: --lr-every takes an integer >= 1, got '0'",
    ),
    Case("train-unknown-method", ("train", "--method", "nope"), r"unknown method 'nope'.*nlr"),
    Case("train-unknown-arch", ("train", "--arch", "alexnet"), r"resnet18, resnet50, vgg19"),
    Case(
        "train-unknown-dataset", ("train", "--dataset", "nope"), r"'nope'.*valid choices: .*digits"
    ),
    Case("train-unknown-device", ("train", "--device", "tpu"), r"--device: invalid choice: 'tpu'"),
    # evaluate
    Case("evaluate-no-checkpoint-flag", ("evaluate",), r"required: --checkpoint"),
    Case("evaluate-missing-checkpoint", ("evaluate", *CKPT), r"no-such-checkpoint.*missing"),
    Case(
        "evaluate-test-limit-0",
        ("evaluate", *CKPT, "--test-limit", "0"),
        r"--test-limit: 0 is not an integer >= 1",
    ),
    # attack: budgets, steps, noise, counts
    Case("attack-steps-neg", (*ATTACK, "--steps", "-3"), r"--steps: -3 is not an integer >= 1$"),
    Case("attack-steps-0", (*ATTACK, "--steps", "0"), r"--steps: 0 is not an integer >= 1"),
    Case("attack-steps-list", (*ATTACK, "--steps", "7,0"), r"--steps: 0 is not an integer >= 1"),
    Case("attack-steps-float", (*ATTACK, "--steps", "2.5"), r"--steps: 2.5 is not an integer"),
    Case("attack-eps-2", (*ATTACK, "--eps", "2"), r"--eps: 2 is not a number in \(0, 1\]"),
    Case("attack-eps-0", (*ATTACK, "--eps", "0"), r"--eps: 0 is not a number in \(0, 1\]"),
    Case("attack-eps-neg", (*ATTACK, "--eps", "-1"), r"--eps: -1 is not a number in \(0, 1\]"),
    Case("attack-eps-inf", (*ATTACK, "--eps", "inf"), r"--eps: inf is not a finite number; "),
    Case("attack-eps-nan", (*ATTACK, "--eps", "nan"), r"--eps: nan is not a finite number; "),
    Case("attack-eps-8/0", (*ATTACK, "--eps", "8/0"), r"--eps: 8/0 has a zero denominator; "),
    Case("attack-eps-abc", (*ATTACK, "--eps", "abc"), r"--eps: 'abc' is not a number.*8/255; "),
    Case("attack-eps-list", (*ATTACK, "--eps", "8/255,2"), r"--eps: 2 is not a number in"),
    Case("attack-eps-list-junk", (*ATTACK, "--eps", "8/255,x/2"), r"--eps: 'x/2' is not a number"),
    Case("attack-eps-empty-list", (*ATTACK, "--eps", ","), r"--eps: , is an empty list"),
    Case(
        "attack-eps-empty-item",
        (*ATTACK, "--eps", "8/255,,16/255"),
        r"--eps: 8/255,,16/255 has an empty item at position 2: separate items by one comma",
    ),
    Case(
        "attack-eps-trailing-comma",
        (*ATTACK, "--eps", "8/255,"),
        r"--eps: 8/255, has an empty item at position 2",
    ),
    Case("attack-alpha-0", (*ATTACK, "--alpha", "0"), r"--alpha: 0 is not a number in \(0, 1\]"),
    Case("attack-p-above-1", (*ATTACK, "--p", "1.5"), r"--p: 1.5 is not a number in \[0, 1\]"),
    Case("attack-p-neg", (*ATTACK, "--p", "0.4,-0.1"), r"--p: -0.1 is not a number in \[0, 1\]"),
    Case("attack-sigma-0", (*ATTACK, "--sigma", "0"), r"--sigma: 0 is not a number > 0"),
    Case("attack-draws-0", (*ATTACK, "--noise-draws", "0"), r"--noise-draws: 0 is not an integer"),
    Case("attack-seed-neg", (*ATTACK, "--attack-seed", "-1"), r"--attack-seed: -1 is not an"),
    Case("attack-queries-0", (*ATTACK, "--queries", "0"), r"--queries: 0 is not an integer >= 1"),
    Case("attack-targets-0", (*ATTACK, "--targets", "0"), r"--targets: 0 is not an integer >= 1"),
    Case("attack-restarts-0", (*ATTACK, "--restarts", "0"), r"--restarts: 0 is not an integer"),
    Case(
        "attack-candidates-1", (*ATTACK, "--candidates", "1"), r"--candidates: 1 is not an .*>= 2"
    ),
    Case(
        "attack-overshoot-neg", (*ATTACK, "--overshoot", "-1"), r"--overshoot: -1 is not a number"
    ),
    Case("attack-n-0", (*ATTACK, "--n", "0"), r"--n: 0 is not an integer >= 1"),
    Case("attack-seed-subset-neg", (*ATTACK, "--seed", "-2"), r"--seed: -2 is not an integer >= 0"),
    Case("attack-batch-0", (*ATTACK, "--batch-size", "0"), r"--batch-size: 0 is not an integer"),
    Case(
        "attack-unknown-attack",
        ("attack", "--attack", "pgd", *CKPT),
        r"unknown attack 'pgd'; did you mean 'pgd-l2'\? valid choices: ifsgm, ill",
    ),
    Case("attack-missing-checkpoint", ATTACK, r"no-such-checkpoint.*missing"),
    # minrho
    Case("minrho-max-steps-0", (*MINRHO, "--max-steps", "0"), r"--max-steps: 0 is not an integer"),
    Case("minrho-alpha-0", (*MINRHO, "--alpha", "0/255"), r"--alpha: 0/255 is not a number in"),
    Case("minrho-tol-0", (*MINRHO, "--tol", "0"), r"--tol: 0 is not a number in \(0, 1\]"),
    Case("minrho-eps-max-2", (*MINRHO, "--eps-max", "2"), r"--eps-max: 2 is not a number in"),
    Case("minrho-eps-max-8/0", (*MINRHO, "--eps-max", "8/0"), rf"8/0 has a zero.*{RANGE_EPS}"),
    Case("minrho-rate-1", (*MINRHO, "--rate", "1"), r"--rate: 1 is not a number in \(0, 1\)"),
    Case("minrho-rate-0", (*MINRHO, "--rate", "0"), r"--rate: 0 is not a number in \(0, 1\)"),
    Case("minrho-rate-nan", (*MINRHO, "--rate", "nan"), r"--rate: nan is not a finite number"),
    Case("minrho-n-0", (*MINRHO, "--n", "0"), r"--n: 0 is not an integer >= 1"),
    Case(
        "minrho-unknown-attack",
        (*MINRHO, "--attack", "pgd"),
        r"unknown minrho attack 'pgd'; valid choices: ifsgm, ill, deepfool",
    ),
    # audit
    Case("audit-eps-0", (*AUDIT, "--eps", "0"), r"--eps: 0 is not a number in \(0, 1\]"),
    Case("audit-eps-8/0", (*AUDIT, "--eps", "8/0"), rf"--eps: 8/0 has a zero.*{RANGE_EPS}"),
    Case("audit-eps-inf", (*AUDIT, "--eps", "inf"), r"--eps: inf is not a finite number"),
    Case("audit-n-0", (*AUDIT, "--n", "0"), r"--n: 0 is not an integer >= 1"),
    Case("audit-queries-0", (*AUDIT, "--queries", "0"), r"--queries: 0 is not an integer >= 1"),
    Case("audit-steps-neg", (*AUDIT, "--steps", "-3"), r"--steps: -3 is not an integer >= 1"),
    Case("audit-targets-0", (*AUDIT, "--targets", "0"), r"--targets: 0 is not an integer >= 1"),
    Case("audit-restarts-0", (*AUDIT, "--restarts", "0"), r"--restarts: 0 is not an integer"),
    Case("audit-batch-0", (*AUDIT, "--batch-size", "0"), r"--batch-size: 0 is not an integer"),
    Case("audit-missing-checkpoint", AUDIT, r"no-such-checkpoint.*missing"),
    # analyze
    Case("analyze-n-0", (*ANALYZE, "--n", "0"), r"--n: 0 is not an integer >= 1"),
    Case("analyze-seed-neg", (*ANALYZE, "--seed", "-1"), r"--seed: -1 is not an integer >= 0"),
    Case("analyze-dims-0", (*ANALYZE, "--dims", "full,0"), r"--dims: 0 is neither 'full' nor"),
    Case("analyze-dims-neg", (*ANALYZE, "--dims", "-5"), r"--dims: -5 is neither 'full' nor"),
    Case("analyze-dims-abc", (*ANALYZE, "--dims", "10,abc"), r"--dims: abc is neither 'full'"),
    Case("analyze-option-no-equals", (*ANALYZE, "--option", "k"), r"expected KEY=VALUE, got 'k'"),
    Case("analyze-unknown-kind", ("analyze", "nope", *CKPT), r"KIND: invalid choice: 'nope'"),
    Case("analyze-missing-checkpoint", ANALYZE, r"no-such-checkpoint.*missing"),
    # leaderboard, regress, report
    Case("leaderboard-eps-0", ("leaderboard", "r.csv", "--eps", "0"), r"--eps: 0 is not a number"),
    Case("leaderboard-steps-0", ("leaderboard", "r.csv", "--steps", "0"), r"--steps: 0 is not an"),
    Case("leaderboard-missing-file", ("leaderboard", "r.csv"), r"r.csv does not exist"),
    Case(
        "regress-tol-pp-neg",
        ("regress", "--results", "results.csv", "--baseline", "results.csv", "--tol-pp", "-1"),
        r"--tol-pp: -1 is not a number >= 0",
        _results_csv,
    ),
    Case(
        "regress-tol-rel-nan",
        ("regress", "--results", "results.csv", "--baseline", "results.csv", "--tol-rel", "nan"),
        r"--tol-rel: nan is not a finite number; expected a number >= 0",
        _results_csv,
    ),
    Case("report-missing-file", ("report", "r.csv", "--out", "out"), r"r.csv does not exist"),
    # bench
    # Limits belong to a profile's models (and to `train`): the bench offers no flag to ignore.
    Case(
        "bench-train-limit",
        ("bench", "--train-limit", "5"),
        r"unrecognized arguments: --train-limit",
    ),
    Case(
        "attack-test-limit", (*ATTACK, "--test-limit", "5"), r"unrecognized arguments: --test-limit"
    ),
    Case("bench-executor", ("bench", "--executor", "dask"), r"--executor: invalid choice: 'dask'"),
    Case(
        "bench-job-gpus", ("bench", "--job-gpus", "2"), r"--job-gpus: 2 is not a number in \[0, 1\]"
    ),
    Case(
        "bench-slurm-option",
        ("bench", "--slurm-option", "mem"),
        r"--slurm-option: expected KEY=VALUE",
    ),
    Case(
        "bench-unknown-profile",
        ("bench", "--profile", "nope"),
        r"unknown profile 'nope'; valid choices: .*cpu",
    ),
    Case(
        "bench-unknown-stage", ("bench", "--stages", "train,nope"), r"unknown bench stage\(s\) nope"
    ),
]


# ---- bad files: profiles, results, datasets and checkpoints -----------------------------------


def _profile(text: str) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        (root / "p.toml").write_text(
            'name = "p"\n[[models]]\narch = "resnet18"\nmethods = ["nlr"]\n' + text
        )

    return setup


def _rows_csv(root: Path, name: str, dataset: str = "digits") -> Path:
    from robustbench_lr import results

    row = results.make_row(
        dataset=dataset, arch="resnet18", method="nlr", metric="clean_acc", value=97.0
    )
    results.append(root / name, [row])
    return root / name


def _header_only_baseline(root: Path) -> None:
    _rows_csv(root, "new.csv")
    (root / "base.csv").write_text((root / "new.csv").read_text().splitlines()[0] + "\n")


def _truncated_baseline(root: Path) -> None:
    _rows_csv(root, "new.csv")
    (root / "base.csv").write_text((root / "new.csv").read_text()[:-30])


def _disjoint_baseline(root: Path) -> None:
    _rows_csv(root, "new.csv")
    _rows_csv(root, "base.csv", dataset="cifar10")


def _npz(root: Path, n_train: int) -> None:
    import numpy as np

    images = np.zeros((n_train, 8, 8, 1), np.uint8)
    np.savez(
        root / "d.npz",
        x_train=images,
        y_train=np.zeros(n_train, np.int64),
        x_test=np.zeros((4, 8, 8, 1), np.uint8),
        y_test=np.zeros(4, np.int64),
    )


def _trained(damage: str) -> Callable[[Path], None]:
    """A one-epoch digits model under root/ck, then `damage` done to it."""

    def setup(root: Path) -> None:
        import numpy as np

        from robustbench_lr.config import TrainConfig
        from robustbench_lr.train import train

        dataset = "digits"
        if damage == "npz-changed":
            rng = np.random.default_rng(0)
            arrays = {
                "x_train": rng.integers(0, 255, (64, 8, 8, 1), dtype=np.uint8),
                "y_train": np.arange(64) % 4,
                "x_test": rng.integers(0, 255, (16, 8, 8, 1), dtype=np.uint8),
                "y_test": np.arange(16) % 4,
            }
            np.savez(root / "d.npz", **arrays)
            dataset = f"npz:{root / 'd.npz'}"
        cfg = TrainConfig(dataset=dataset, arch="resnet18", width=0.25, epochs=1, train_limit=200)
        folder = train(cfg, root / "ck", device="cpu", progress=False).folder
        (root / "ckpt").symlink_to(folder)
        if damage == "truncated-model":
            model = folder / "model.safetensors"
            model.write_bytes(model.read_bytes()[:1000])
        elif damage == "stale-model":  # weights from another epoch than meta.json vouches for
            model = folder / "model.safetensors"
            raw = bytearray(model.read_bytes())
            raw[-1] ^= 1
            model.write_bytes(bytes(raw))
        elif damage == "npz-changed":
            arrays["x_test"] = arrays["x_test"][::-1].copy()
            np.savez(root / "d.npz", **arrays)

    return setup


FILE_CASES = [
    Case(
        "profile-unknown-attack-key",
        ("bench", "--profile", "p.toml"),
        r"unknown key 'ifsgm_epss' in \[attacks\]; did you mean 'ifsgm_eps'\?",
        _profile('[attacks]\nifsgm_epss = ["8/255"]\n'),
    ),
    Case(
        "profile-unknown-top-key",
        ("bench", "--profile", "p.toml"),
        r"unknown key 'epoch'.*did you mean 'epochs'\?",
        _profile("epoch = 8\n"),
    ),
    Case(
        "profile-string-boolean",
        ("bench", "--profile", "p.toml"),
        r"attacks\.blackbox.*'false'",
        _profile('[attacks]\nblackbox = "false"\n'),
    ),
    Case(
        "profile-epochs-0",
        ("bench", "--profile", "p.toml"),
        r"epochs = 0",
        _profile('[[models]]\narch = "vgg19"\nmethods = ["nlr"]\nepochs = 0\n'),
    ),
    Case(
        "profile-not-toml", ("bench", "--profile", "p.toml"), r"not valid TOML", _profile("[[[\n")
    ),
    Case(
        "regress-header-only-baseline",
        ("regress", "--results", "new.csv", "--baseline", "base.csv"),
        r"base.csv has no rows",
        _header_only_baseline,
    ),
    Case(
        "regress-truncated-baseline",
        ("regress", "--results", "new.csv", "--baseline", "base.csv"),
        rf"base.csv line 2: expected {len(results.COLUMNS)} fields",
        _truncated_baseline,
    ),
    Case(
        "regress-no-shared-rows",
        ("regress", "--results", "new.csv", "--baseline", "base.csv"),
        r"shares no rows with baseline base.csv",
        _disjoint_baseline,
    ),
    Case(
        "npz-empty-training-set",
        ("train", "--dataset", "npz:d.npz", "--epochs", "1"),
        r"x_train holds no images",
        lambda root: _npz(root, 0),
    ),
    Case(
        "npz-text-file",
        ("train", "--dataset", "npz:d.npz", "--epochs", "1"),
        r"d.npz is not an npz archive",
        lambda root: (root / "d.npz").write_text("x_train,y_train\n1,2\n"),
    ),
    Case(
        "train-no-batch",
        ("train", "--train-limit", "1", "--epochs", "1"),
        r"1 training image\(s\) at batch size 128 leave no batch",
    ),
    Case(
        "evaluate-truncated-model",
        ("evaluate", "--checkpoint", "ckpt"),
        r"model.safetensors does not match its commit point meta.json",
        _trained("truncated-model"),
    ),
    Case(
        "attack-stale-model",
        ("attack", "--attack", "fgsm", "--checkpoint", "ckpt", "--out", "r.csv"),
        r"model.safetensors does not match its commit point meta.json",
        _trained("stale-model"),
    ),
    Case(
        "evaluate-npz-changed",
        ("evaluate", "--checkpoint", "ckpt"),
        r"npz file .*d.npz changed since .* was trained \(fingerprint",
        _trained("npz-changed"),
    ),
]
CASES += FILE_CASES

if not torch.cuda.is_available():
    CASES.append(Case("no-cuda", ("evaluate", *CKPT, "--device", "cuda"), r"cuda is not available"))


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under `root` with its mtime and size: a failed command must leave all alone."""
    return {
        str(path.relative_to(root)): (path.stat().st_mtime_ns, path.stat().st_size)
        for path in root.rglob("*")
    }


def _exit_code(argv: list[str]) -> int:
    """`cli.main` in-process: argparse's usage errors raise SystemExit, the rest return."""
    try:
        return cli.main(argv)
    except SystemExit as stop:
        return stop.code


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    monkeypatch.chdir(tmp_path)  # relative defaults (reports/, checkpoints/) land in tmp_path
    if case.setup is not None:
        case.setup(tmp_path)
    before = _snapshot(tmp_path)  # tmp_path is also the working folder
    assert _exit_code(list(case.argv)) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    command = case.argv[0] if case.argv and case.argv[0] in cli.COMMAND_MODULES else None
    prefix = f"robustbench-lr {command}: error: " if command else "robustbench-lr: error: "
    assert lines[0].startswith(prefix), lines[0]
    assert re.search(case.pattern, lines[0]), lines[0]
    assert _snapshot(tmp_path) == before


def test_case_ids_are_unique():
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))


def test_json_lines_stay_valid_json_when_a_number_is_nan():
    # `train` and `evaluate --json` end with such a line; bare NaN is not JSON.
    line = json_line({"checkpoint": "c", "clean_acc": float("nan"), "n": 0})
    assert json.loads(line) == {"checkpoint": "c", "clean_acc": None, "n": 0}
    assert "NaN" not in line
