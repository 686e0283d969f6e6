"""Crafting precision: attacks may craft in TF32 / bf16, every verdict is float32.

bf16 autocast runs on the CPU too, so the mechanism is tested here: bounds hold, every example
counted as fooled is misclassified by a plain float32 forward pass, a model whose logits differ
by less than bf16's resolution has its bf16 "successes" overruled, and the default (strict
float32 on the CPU) is bit-for-bit the path the committed numbers came from.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from robustbench_lr import cli, results
from robustbench_lr.attacks import robust_flags, run_attack
from robustbench_lr.attacks.harness import evaluate_attack, evaluation_rows
from robustbench_lr.attacks.precision import (
    PRECISIONS,
    choose,
    confirm_fooled,
    craft_precision,
    crafting_in,
    verdict,
)
from robustbench_lr.registry import UnknownNameError, unknown_name
from robustbench_lr.target import load_target

N = 32
CPU = torch.device("cpu")
# Digits models shrug off CIFAR budgets: a budget that fools a good share of them.
LINF = {"eps": 0.15, "steps": 5}
CASES = [("ifsgm", None, LINF), ("ifsgm", "ours", LINF), ("deepfool", None, {"steps": 10})]


@pytest.fixture(scope="module")
def digits(nlr_digits: Path):
    return load_target(nlr_digits, n=N, seed=0)


@pytest.fixture(autouse=True)
def _default_precision():
    """`choose` is process-wide: no test may leave another precision for the next one."""
    yield
    choose(None)


def float32_predictions(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A plain float32 forward pass, written out here so the check does not trust `verdict`."""
    with torch.no_grad(), torch.autocast("cpu", enabled=False):
        return model.eval()(x.float()).argmax(1)


@pytest.mark.parametrize(("attack", "backend", "params"), CASES)
def test_bf16_crafting_stays_in_bounds_and_every_fooled_example_is_fooled_in_float32(
    digits, attack, backend, params
):
    model, x, y = digits.model, digits.x, digits.y
    with crafting_in("bf16"):
        x_adv = run_attack(attack, model, x, y, backend=backend, **params)
    assert x_adv.dtype == torch.float32 and 0 <= x_adv.min() and x_adv.max() <= 1
    if "eps" in params:
        assert (x_adv - x).abs().max() <= params["eps"] + 1e-6
    fooled = ~robust_flags(model, x_adv, y)
    assert fooled.sum() >= N // 4  # the attack still works
    assert (float32_predictions(model, x_adv)[fooled] != y[fooled]).all()


def test_bf16_deepfool_stops_no_sample_short_of_the_float32_boundary(digits):
    """DeepFool confirms its "fooled" in float32 before a sample leaves: every sample that bf16
    crafting leaves unfooled in float32 was still being attacked (one more step moves it),
    none was dropped at a bf16-only boundary."""
    model, x, y = digits.model, digits.x, digits.y
    with crafting_in("bf16"):
        x_adv, x_more = (run_attack("deepfool", model, x, y, steps=k) for k in (10, 11))
    correct = robust_flags(model, x, y)
    standing = robust_flags(model, x_adv, y) & correct
    assert standing.sum() <= correct.sum() // 4  # the attack still works
    assert (x_more[standing] != x_adv[standing]).flatten(1).any(1).all()


class Borderline(nn.Module):
    """Logits z0 = x0 + x1, z1 = z0 + 0.01·x2 − 0.0005 on 2x2 images: at x2 = 0.1 they differ by
    5e-4, under bf16's resolution at 0.5 (2^-8), so bf16 sees a tie (argmax 0) where float32
    sees class 1. Lowering x2 below 0.05 fools float32 too."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.01, 0.0]]))
            self.linear.bias.copy_(torch.tensor([0.0, -0.0005]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


@pytest.fixture
def borderline():
    x = torch.tensor([0.25, 0.25, 0.1, 0.5]).view(1, 1, 2, 2).repeat(4, 1, 1, 1)
    return Borderline().eval(), x, torch.ones(4, dtype=torch.long)


def test_the_float32_verdict_overrules_a_bf16_success(borderline):
    model, x, y = borderline
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert (model(x).argmax(1) == 0).all()  # bf16: "fooled" without any perturbation
        assert verdict(model, x, y).all()  # strict float32 inside the bf16 block: robust
    assert (float32_predictions(model, x) == y).all()
    with crafting_in("bf16"):
        called = torch.ones(4, dtype=torch.bool)
        assert not confirm_fooled(model, x, y, called).any()
        # No budget to move: a bf16-judged attack would report 0 %, float32 says 100 %.
        ev = evaluate_attack("ifsgm", model, x, y, backend="ours", eps=0.0, steps=3)
        assert ev.acc == 100.0 and ev.clean_acc == 100.0
        # DeepFool does not stop at the bf16 "success" of step 0: it keeps stepping. With bf16
        # logits tied, its linearized distance is 0 and each step only 1e-4 long, so it never
        # reaches the float32 boundary: a weaker attack, and reported as such (robust).
        x_adv = run_attack("deepfool", model, x, y, steps=10)
    assert (x_adv != x).flatten(1).any(1).all()
    assert (float32_predictions(model, x_adv) == y).all() and verdict(model, x_adv, y).all()


@pytest.mark.parametrize(("attack", "backend", "params"), CASES)
def test_the_default_on_cpu_is_strict_float32_bit_for_bit(digits, attack, backend, params):
    model, x, y = digits.model, digits.x, digits.y
    assert craft_precision(CPU).name == "float32" and craft_precision(CPU).exact
    default = run_attack(attack, model, x, y, backend=backend, **params)
    for name in ("float32", "tf32"):  # TF32 flags are CUDA's: no effect on the CPU
        with crafting_in(name):
            assert torch.equal(run_attack(attack, model, x, y, backend=backend, **params), default)


def test_only_a_non_float32_crafting_precision_is_recorded_in_the_rows(digits):
    model, x, y = digits.model, digits.x[:16], digits.y[:16]
    fooled = torch.ones(16, dtype=torch.bool)
    assert confirm_fooled(model, x, y, fooled) is fooled  # exact: no extra pass, nothing changed
    params = {}
    for name in ("float32", "bf16"):
        with crafting_in(name):
            ev = evaluate_attack("ifsgm", model, x, y, **LINF)
        params[name] = evaluation_rows(ev, {})[0]["param"]
    assert "craft" not in params["float32"] and "craft=bf16" in params["bf16"]


def test_a_bad_precision_name_is_one_line_listing_the_choices(nlr_digits, tmp_path, capsys):
    with pytest.raises(UnknownNameError) as err:
        choose("fp16")
    assert str(err.value) == unknown_name("crafting precision", "fp16", PRECISIONS.names())
    assert str(err.value).endswith(f"valid choices: {', '.join(PRECISIONS.names())}")
    argv = ["attack", "--checkpoint", str(nlr_digits), "--attack", "ifsgm", "--n", "8"]
    with pytest.raises(SystemExit):
        cli.main([*argv, "--craft-precision", "fp16"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--craft-precision" in lines[0]
    assert all(repr(name) in lines[0] for name in PRECISIONS.names())
    out = tmp_path / "r.csv"
    assert cli.main([*argv, "--craft-precision", "bf16", "--device", "cpu", "--out", str(out)]) == 0
    assert all("craft=bf16" in param for param in results.read(out).param)
