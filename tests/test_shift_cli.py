"""`robustbench-lr shift`: a model's accuracy on CIFAR-10.1 and CINIC-10, read from small files
in their real layouts, printed with its Wilson interval and equal to a forward pass on the same
images; every bad input is one line on stderr, exit status 2, and no results file."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import robustbench_lr as rb
from robustbench_lr import results
from robustbench_lr.errors import InvalidArgument
from robustbench_lr.shifts import CIFAR10_CLASSES, load_shift
from robustbench_lr.stats import accuracy_interval
from tests.test_external_models import run_cli
from tests.test_shifts import _write_cifar101, _write_cinic
from tests.zoo_files import write_cifar10

LINE = re.compile(
    r"shift (\S+): acc ([\d.]+)% \(95% CI ([\d.]+)-([\d.]+)\), clean [\d.]+%, n=(\d+)"
)
N = 16


class LevelNet(nn.Module):
    """Predicts the red level of pixel (0, 0) mod 10, off by one where the green level is odd.

    The shift files encode their labels in those levels (CIFAR-10.1 image i is grey level i,
    label i % 10; CINIC-10 image j of class c is (c, j, 200)), so the model is right on about
    half of each set: an accuracy that a wrong label order or image subset would change.
    """

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        red, green = (x[:, :2, 0, 0] * 255).round().long().unbind(1)
        return nn.functional.one_hot((red + green % 2) % 10, 10).float() * self.scale


def level_net() -> nn.Module:
    return LevelNet()


def _data(root: Path) -> Path:
    """CIFAR-10 (the model's own test split), CIFAR-10.1 and CINIC-10 under `root`."""
    rng = np.random.default_rng(0)
    write_cifar10(root, [i % 10 for i in range(20)], rng.integers(0, 256, (20, 3072), np.uint8))
    _write_cifar101(root)
    _write_cinic(root, CIFAR10_CLASSES, per_class=2)
    return root


LEVEL_NET = ("--model", "tests.test_shift_cli:level_net", "--dataset", "cifar10")
DIGITS = ("--model", "tests.external_factory:tiny_cnn", "--dataset", "digits")


def _argv(root: Path, out: Path, *extra: str, model: tuple[str, ...] = LEVEL_NET) -> list[str]:
    return [
        "shift",
        *(*model, "--n", str(N), "--device", "cpu"),
        *("--data-root", str(root), "--out", str(out), *extra),
    ]


def _forward_accuracy(name: str, root: Path) -> float:
    x, y = load_shift(name, root, n=N, seed=0)
    with torch.no_grad():
        return 100.0 * (level_net()(x).argmax(1) == y).float().mean().item()


def test_shift_prints_a_forward_pass_accuracy_and_appends_rows(tmp_path: Path, capsys):
    root, out = _data(tmp_path), tmp_path / "results.csv"
    code, stdout, err = run_cli(_argv(root, out), capsys)
    assert code == 0, err
    printed = {m[1]: m.groups()[1:] for m in LINE.finditer(stdout)}
    assert list(printed) == ["cifar10.1", "cinic10"]  # default: every shift of cifar10
    for name, (acc, lo, hi, n) in printed.items():
        expected = _forward_accuracy(name, root)
        assert 0 < expected < 100 and acc == f"{expected:.2f}" and n == str(N)
        assert (lo, hi) == tuple(f"{v:.2f}" for v in accuracy_interval(expected, N))
    frame = results.read(out)
    assert set(frame["experiment"]) == {"shift"} and len(frame) == 4
    acc = frame[frame["metric"] == "acc"].set_index("attack")
    assert acc.loc["cinic10", "backend"] == "CINIC-10" and (acc["n"] == N).all()
    for name in printed:
        assert acc.loc[name, "value"] == pytest.approx(_forward_accuracy(name, root), abs=1e-4)
    assert f"4 rows -> {out}" in stdout


def test_shift_flag_is_repeatable_and_takes_comma_lists(tmp_path: Path, capsys):
    root, out = _data(tmp_path), tmp_path / "results.csv"
    argv = _argv(root, out, "--shift", "cinic10", "--shift", "cifar10.1,cinic10")
    code, stdout, err = run_cli(argv, capsys)
    assert code == 0, err
    assert [m[1] for m in LINE.finditer(stdout)] == ["cinic10", "cifar10.1"]
    code, stdout, _ = run_cli(_argv(root, out, "--shift", "cinic10"), capsys)
    assert code == 0 and len(LINE.findall(stdout)) == 1
    assert sorted(results.read(out)["attack"]) == ["cifar10.1"] * 2 + ["cinic10"] * 2


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


def _remove_cinic(root: Path) -> None:
    shutil.rmtree(root / "CINIC-10" / "test")


def _shrink_png(root: Path) -> None:
    from PIL import Image

    Image.new("RGB", (16, 16)).save(root / "CINIC-10" / "test" / "cat" / "cifar10-test-30.png")


@dataclass(frozen=True)
class Bad:
    """One bad input: extra flags, damage done to the data, what the one error line says."""

    id: str
    extra: tuple[str, ...]
    says: tuple[str, ...]
    damage: Callable[[Path], None] = field(default=lambda root: None)
    model: tuple[str, ...] = LEVEL_NET


BAD = [
    Bad(
        "unknown-name",
        ("--shift", "cifar10.2"),
        ("unknown distribution shift 'cifar10.2'; did you mean 'cifar10.1'?", "cifar10.1, cinic10"),
    ),
    Bad("unknown-in-list", ("--shift", "cinic10,cinic"), ("'cinic'; did you mean 'cinic10'?",)),
    Bad(
        "other-dataset",
        ("--shift", "cinic10"),
        ("shift 'cinic10' tests cifar10 models, not a digits model",),
        model=DIGITS,
    ),
    Bad("no-shift-for-dataset", (), ("no distribution shift tests digits models",), model=DIGITS),
    Bad(
        "missing-cifar101",
        (),
        ("cifar10.1_v6_data.npy is missing (--data-root", "); --download fetches it"),
        lambda root: shutil.rmtree(root / "CIFAR-10.1"),
    ),
    Bad(
        "missing-cifar101-data-file",
        (),
        ("cifar10.1_v6_data.npy is missing (--data-root", "CIFAR-10.1 and --download fetches it"),
        lambda root: (root / "CIFAR-10.1" / "cifar10.1_v6_data.npy").unlink(),
    ),
    Bad(
        "truncated-npy",
        ("--shift", "cifar10.1"),
        ("cifar10.1_v6_labels.npy is truncated or not a .npy file", "(--data-root", "--download"),
        lambda root: _truncate(root / "CIFAR-10.1" / "cifar10.1_v6_labels.npy"),
    ),
    Bad(
        "short-npy",
        (),
        ("cifar10.1_v6_data.npy holds uint8 (29, 32, 32, 3)", "(--data-root", "--download"),
        lambda root: _write_cifar101(root, cut=1),
    ),
    Bad(
        "missing-cinic",
        (),  # cifar10.1 is fine and comes first: it is read, not scored, before the failure
        ("CINIC-10/test is missing (--data-root", "CINIC-10 and --download fetches it again"),
        _remove_cinic,
    ),
    Bad(
        "small-cinic-png",
        ("--n", "100"),  # every image, so the bad one is read
        ("cifar10-test-30.png is 16 x 16, expected 32 x 32", "(--data-root", "--download"),
        _shrink_png,
    ),
    Bad("source", ("--source", "elsewhere"), ("--source does not apply to shift",)),
]


@pytest.mark.parametrize("case", BAD, ids=[case.id for case in BAD])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case: Bad, tmp_path: Path, capsys):
    root = _data(tmp_path / "data")
    case.damage(root)
    out = tmp_path / "out" / "results.csv"
    out.parent.mkdir()
    code, stdout, err = run_cli(_argv(root, out, *case.extra, model=case.model), capsys)
    assert code == 2
    assert err.startswith("robustbench-lr shift: error: ") and err.count("\n") == 1, err
    assert all(text in err for text in case.says), err
    assert not LINE.search(stdout) and list(out.parent.iterdir()) == []


def test_api_shift_gives_the_cli_rows(tmp_path: Path, capsys):
    root = _data(tmp_path)
    code, _, err = run_cli(_argv(root, tmp_path / "cli.csv", "--shift", "cinic10"), capsys)
    assert code == 0, err
    rows = rb.shift(
        level_net().eval(), "cifar10", "cinic10", N, data_root=root, out=tmp_path / "a.csv"
    )
    cli = results.read(tmp_path / "cli.csv")
    assert list(rows["metric"]) == list(cli["metric"]) == ["acc", "clean_acc"]
    assert rows["value"].tolist() == pytest.approx(cli["value"].tolist())
    assert len(results.read(tmp_path / "a.csv")) == 2


@pytest.mark.parametrize(
    ("dataset", "shifts", "says"),
    [
        ("cifar10", "cinic", "did you mean 'cinic10'"),
        ("cifar10", [], "names no shift"),
        ("digits", ["cifar10.1"], "does not test digits models"),
        ("digits", None, "has no distribution shift"),
    ],
)
def test_api_shift_refuses_bad_names_before_any_work(tmp_path: Path, dataset, shifts, says):
    net = level_net() if dataset == "cifar10" else nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    net.eval()
    with pytest.raises(InvalidArgument, match=re.escape(says)):
        rb.shift(net, dataset, shifts, data_root=tmp_path, out=tmp_path / "r.csv")
    assert list(tmp_path.iterdir()) == []
