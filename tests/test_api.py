"""The Python API: the same numbers as a forward pass and as the CLI, the caller's model handed
back as it was, and every bad argument one `InvalidArgument` naming it, with nothing written."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

import robustbench_lr as rb
from robustbench_lr import results
from robustbench_lr.checkpoints import CheckpointError
from robustbench_lr.cli import main
from robustbench_lr.data import DatasetError, load
from robustbench_lr.errors import InvalidArgument, RobustbenchLRError
from robustbench_lr.examples.digits_cnn import WEIGHTS, build
from robustbench_lr.locks import FolderBusyError
from robustbench_lr.registry import UnknownNameError
from robustbench_lr.stats import number_text
from robustbench_lr.target import uniform_subset
from tests.conftest import SMALL

FACTORY = "robustbench_lr.examples.digits_cnn:build"
N = 24
# A lowered AutoAttack budget (standard: 100 steps, 9 targets, 5000 queries), as CLI flags too.
AA = {"steps": 10, "targets": 2, "queries": 100}
AUDIT = {"steps": 5, "queries": 50, "targets": 2, "restarts": 1, "dlr_restarts": 1}
AUDIT |= {"noise_draws": 2, "deepfool_steps": 10}


def digits_cnn() -> nn.Module:
    """The shipped user model (`examples/digits_cnn.py`), weights loaded, in eval mode."""
    net = build()
    net.load_state_dict(load_file(str(WEIGHTS)))
    return net.eval()


def cli_rows(tmp_path: Path, *argv: str) -> pd.DataFrame:
    out = tmp_path / "cli.csv"
    model = ["--model", FACTORY, "--weights", str(WEIGHTS), "--dataset", "digits"]
    assert main([*argv, *model, "--name", "DigitsCNN", "--device", "cpu", "--out", str(out)]) == 0
    return results.read(out)


def same_rows(api: pd.DataFrame, cli: pd.DataFrame) -> None:
    """Row for row the same keys and the same value bits."""
    key = results.KEY
    api, cli = (f.sort_values(key).reset_index(drop=True) for f in (api, cli))
    pd.testing.assert_frame_equal(api[key], cli[key], check_dtype=False)
    assert [v.hex() for v in api["value"]] == [v.hex() for v in cli["value"]]


def test_benchmark_equals_a_forward_pass_and_the_cli(tmp_path: Path) -> None:
    net = digits_cnn()
    result = rb.benchmark(
        net,
        "digits",
        eps=8 / 255,
        n=N,
        attack_options=AA,
        audit=False,
        progress=False,
        name="DigitsCNN",
        out=tmp_path / "api.csv",
    )
    # Clean accuracy: a direct forward pass on the subset `--n N --seed 0` draws.
    data = load("digits")
    idx = uniform_subset(len(data.y_test), N, 0)
    with torch.no_grad():
        correct = net(data.x_test[idx]).argmax(1) == data.y_test[idx]
    assert torch.equal(result.clean_flags, correct)
    assert result.clean == 100.0 * correct.float().mean().item()
    # AutoAttack: the CLI's number on the same points, bit for bit, and the same rows.
    cli = cli_rows(
        tmp_path,
        "attack",
        "--attack",
        "autoattack-standard",
        "--eps",
        "8/255",
        "--n",
        str(N),
        *(f"--{k}={v}" for k, v in AA.items()),
    )
    acc = cli.query("metric == 'acc'")["value"].item()
    assert result.robust == acc and 0 < acc < result.clean
    same_rows(result.rows, cli)
    same_rows(results.read(tmp_path / "api.csv"), cli)
    clean, robust = result
    assert (clean, robust) == (result.clean, result.robust)
    lo, hi = result.interval("robust")
    assert lo < robust < hi and result.verdict is None and math.isnan(result.worst_case)
    assert f"| {number_text(robust)} " in result.to_markdown()


def test_audit_equals_the_cli_and_joins_the_benchmark(tmp_path: Path) -> None:
    net = digits_cnn()
    api = rb.audit(net, "digits", n=N, name="DigitsCNN", **AUDIT)
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in AUDIT.items()]
    same_rows(
        pd.DataFrame([results.make_row(**row) for row in api.rows]),
        cli_rows(tmp_path, "audit", "--n", str(N), *flags),
    )
    eps = api.report.battery.options.eps  # digits' own audit ε, 32/255
    result = rb.benchmark(
        net, "digits", eps=eps, n=N, attack_options=AA, audit_options=AUDIT, progress=False
    )
    assert torch.equal(result.audit.battery.worst_case, api.report.battery.worst_case)
    assert torch.equal(result.worst_case_flags, result.robust_flags & api.report.battery.worst_case)
    assert result.worst_case <= result.robust and result.verdict in ("pass", "warn", "fail")
    assert set(result.checks) == {c.name for c in api.report.checks}
    assert "Robustness audit" in result.to_markdown()


class DropoutNet(nn.Module):
    """Digits CNN with a dropout layer: in training mode its predictions are random."""

    def __init__(self) -> None:
        super().__init__()
        self.net = digits_cnn()
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.head(self.drop(self.net.features((x - self.net.mean) / 0.5)))


def test_a_model_in_training_mode_is_evaluated_in_eval_mode_and_handed_back() -> None:
    model = DropoutNet()
    options = {"dataset": "digits", "attack": "fgsm", "n": 60, "audit": False, "progress": False}
    reference = rb.benchmark(model.eval(), **options)
    model.train()
    model.net.head.eval()  # one submodule in eval mode on purpose: its own mode comes back
    with pytest.warns(UserWarning, match="training mode"):
        lent = rb.benchmark(model, **options)
    assert torch.equal(lent.clean_flags, reference.clean_flags)
    assert torch.equal(lent.robust_flags, reference.robust_flags)
    assert model.training and model.drop.training and not model.net.head.training


def test_attack_returns_the_batch_and_flags_a_forward_pass_confirms() -> None:
    net, data = digits_cnn(), load("digits")
    x, y = data.x_test[:40], data.y_test[:40]
    out = rb.attack(net, x, y, "ifsgm", eps=16 / 255, steps=5)
    assert out.x_adv.shape == x.shape and out.params["steps"] == 5
    assert (out.x_adv - x).abs().max() <= 16 / 255 + 1e-6 and 0 <= out.x_adv.min()
    with torch.no_grad():
        assert torch.equal(out.robust, net(out.x_adv).argmax(1) == y)
        assert torch.equal(out.clean, net(x).argmax(1) == y)
    assert out.acc < 100.0 * out.clean.float().mean().item()
    x_adv, robust = out
    assert x_adv is out.x_adv and robust is out.robust


def test_train_load_and_analyze_are_the_commands(nlr_digits: Path, tmp_path: Path) -> None:
    ckpt = rb.train(
        "nlr",
        "digits",
        "resnet18",
        out=nlr_digits.parents[3],
        progress=False,
        **{k: v for k, v in SMALL.items() if k not in ("dataset", "arch")},
    )
    assert ckpt.folder == nlr_digits  # already complete: found, not retrained
    model = rb.load(ckpt)
    assert not model.training
    data = load("digits")
    with torch.no_grad():
        acc = 100.0 * (model(data.x_test).argmax(1) == data.y_test).float().mean().item()
    assert acc == ckpt.clean_acc
    rows = rb.analyze("rank", ckpt, n=60)
    out = tmp_path / "cli.csv"
    assert (
        main(["analyze", "rank", "--checkpoint", str(nlr_digits), "--n", "60", "--out", str(out)])
        == 0
    )
    same_rows(rows, results.read(out))


def output_of(shape: str) -> nn.Module:
    """A digits network whose output is wrong in one way."""

    class Wrong(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = digits_cnn()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            logits = self.net(x)
            if shape == "flat":
                return logits.argmax(1)
            if shape == "nan":
                return torch.where(x.flatten(1).amax(1, keepdim=True) > 0.9, math.nan, logits)
            return logits[:, :5]

    return Wrong().eval()


digits_x = load("digits").x_test[:8]
digits_y = load("digits").y_test[:8]
BAD = [
    ("model", "no (N, classes)", lambda o: rb.benchmark(output_of("flat"), "digits", **o)),
    ("model", "does not match", lambda o: rb.benchmark(output_of("five"), "digits", **o)),
    ("model", "NaN", lambda o: rb.benchmark(output_of("nan"), "digits", n=None, **o)),
    ("model", "not a network", lambda o: rb.benchmark("resnet18", "digits", **o)),
    ("dataset", "did you mean 'digits'", lambda o: rb.benchmark(digits_cnn(), "digit", **o)),
    (
        "attack",
        "did you mean 'autoattack'",
        lambda o: rb.benchmark(digits_cnn(), "digits", attack="autoatack", **o),
    ),
    ("attack", "l2", lambda o: rb.benchmark(digits_cnn(), "digits", attack="deepfool", **o)),
    ("eps", "out of range", lambda o: rb.benchmark(digits_cnn(), "digits", eps=2.0, **o)),
    ("eps", "out of range", lambda o: rb.benchmark(digits_cnn(), "digits", eps=math.nan, **o)),
    ("threat", "valid: Linf", lambda o: rb.benchmark(digits_cnn(), "digits", threat="L2", **o)),
    ("n", "positive", lambda o: rb.benchmark(digits_cnn(), "digits", n=0, **o)),
    (
        "attack_options['step']",
        "valid: steps",
        lambda o: rb.benchmark(digits_cnn(), "digits", attack_options={"step": 3}, **o),
    ),
    (
        "preprocessing",
        "valid: None",
        lambda o: rb.benchmark(digits_cnn(), "digits", preprocessing=(1, 0), **o),
    ),
    ("x", "outside [0, 1]", lambda o: rb.attack(digits_cnn(), digits_x * 2, digits_y)),
    ("y", "unknown classes", lambda o: rb.attack(digits_cnn(), digits_x, digits_y + 10)),
    (
        "attack",
        "did you mean 'deepfool'",
        lambda o: rb.attack(digits_cnn(), digits_x, digits_y, "deepfol"),
    ),
    (
        "method",
        "did you mean 'nlr'",
        lambda o: rb.train("nrl", "digits", out=o["out"].parent / "ckpt"),
    ),
    (
        "lambda_c",
        "no option of method nlr",
        lambda o: rb.train("nlr", "digits", out=o["out"].parent / "ckpt", lambda_c=1.0),
    ),
    (
        "epochs",
        "positive",
        lambda o: rb.train("nlr", "digits", out=o["out"].parent / "ckpt", epochs=0),
    ),
    (
        "kind",
        "did you mean 'rank'",
        lambda o: rb.analyze("ranks", digits_cnn(), "digits", out=o["out"]),
    ),
    ("checkpoint", "no checkpoint", lambda o: rb.load(o["out"].parent)),
]


@pytest.mark.parametrize(("argument", "says", "call"), BAD, ids=[f"{a}:{s}" for a, s, _ in BAD])
def test_bad_input_is_one_invalid_argument_and_writes_nothing(
    tmp_path, argument, says, call
) -> None:
    out = tmp_path / "results.csv"
    with pytest.raises(InvalidArgument) as caught:
        call({"out": out, "progress": False})
    assert caught.value.argument == argument
    assert argument.split("[")[0] in str(caught.value) and says.lower() in str(caught.value).lower()
    assert isinstance(caught.value, (RobustbenchLRError, ValueError))
    assert list(tmp_path.iterdir()) == []


def test_every_error_of_the_package_is_one_type_and_keeps_its_own_base() -> None:
    for error, base in [
        (CheckpointError, RuntimeError),
        (DatasetError, RuntimeError),
        (FolderBusyError, RuntimeError),
        (UnknownNameError, KeyError),
        (InvalidArgument, ValueError),
    ]:
        assert issubclass(error, RobustbenchLRError) and issubclass(error, base)


def test_importing_the_package_stays_cheap_and_its_submodules_stay_modules() -> None:
    code = (
        "import sys, robustbench_lr as rb; assert 'torch' not in sys.modules, 'torch imported';"
        "import robustbench_lr.audit.checkpoint as c; assert callable(rb.train) and callable(rb.audit);"
        "import inspect; assert 'method' in inspect.signature(rb.train).parameters;"
        "import robustbench_lr.audit.checkpoint as d; assert c is d and rb.audit.AuditOptions;"
        "from robustbench_lr.train import train; assert rb.train.train is train"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_benchmark_on_cuda_runs_where_the_model_is_and_hands_it_back() -> None:
    net = digits_cnn().cuda()
    cpu = rb.benchmark(digits_cnn(), "digits", attack="ifsgm", n=60, audit=False, progress=False)
    gpu = rb.benchmark(net, "digits", attack="ifsgm", n=60, audit=False, progress=False)
    assert next(net.parameters()).is_cuda
    assert torch.equal(gpu.clean_flags, cpu.clean_flags)
    assert abs(gpu.robust - cpu.robust) <= 100.0 * 2 / 60  # float32 kernels differ by device
