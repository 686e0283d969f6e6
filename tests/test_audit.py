"""The robustness audit: strong attacks, gradient-masking checks, worst-case accuracy.

An honest N-LR digits model must pass every check at the digits audit ε (32/255); two models
that mask gradients on purpose (a zero backward pass, and a softmax saturated ×1000 that
exposes only probabilities) must fail the checks that detect masking, while attacks that need
no gradients of the target (Square, transfer from N-LR) still bring their accuracy down. The
transfer source is a second N-LR model (seed 1): crafted on the target itself, transfer would
be a white-box attack and `whitebox-beats-transfer` would pass by construction.
Budgets are cut (n, queries, steps) to keep the file near a minute on 2 cores.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from robustbench_lr import cli, leaderboard, results
from robustbench_lr.attacks import frozen, robust_flags, run_attack
from robustbench_lr.audit import (
    CHECKS,
    AuditOptions,
    audit_model,
    default_eps,
    probe_determinism,
    probe_gradients,
    sweep_eps,
)
from robustbench_lr.checkpoints import load_model
from robustbench_lr.commands import audit as audit_command
from robustbench_lr.profiles import AUDIT_OPTIONS, load_profile, parse_profile
from robustbench_lr.target import load_target
from tests.conftest import audit_checkpoint_on_cpu

EPS = default_eps("digits")
# The CPU defaults with a smaller subset and budget (the bench runs n=200, 1000 queries).
HONEST = AuditOptions(
    eps=EPS, n=100, queries=200, steps=10, targets=1, restarts=2, dlr_restarts=1, noise_draws=3
)
# Masked models defeat every gradient attack, so nothing leaves the batch early: keep it tiny.
MASKED = AuditOptions(
    eps=EPS,
    n=40,
    queries=150,
    steps=5,
    targets=1,
    restarts=1,
    dlr_restarts=1,
    noise_draws=3,
    deepfool_steps=5,
)
# The checks that see through gradient masking (Athalye et al. 2018; Carlini et al. 2019).
MASKING_CHECKS = {
    "gradients-nonzero-finite",
    "unbounded-to-chance",
    "deepfool-succeeds",
    "whitebox-beats-transfer",
}


class _ZeroBackward(torch.autograd.Function):
    """Identity forward, all-zero backward: the crudest obfuscated gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(grad)


class ZeroGradient(nn.Module):
    """The wrapped model's predictions, but gradients w.r.t. the input are zero."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(_ZeroBackward.apply(x))


class SaturatedSoftmax(nn.Module):
    """Exposes only softmax(1000·logits): same argmax, gradients underflow to zero."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(1000.0 * self.inner(x), dim=1)


class NoisyOutput(nn.Module):
    """A randomized defence: fresh noise on the logits at every forward pass, even in eval."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        return out + 0.1 * torch.randn_like(out)


@pytest.fixture(scope="module")
def digits(nlr_digits: Path):
    return load_target(nlr_digits, n=HONEST.n, seed=0)


@pytest.fixture(scope="module")
def other_nlr(nlr_digits_seed1: Path) -> Path:
    """A second N-LR digits model (seed 1): the transfer source, as the bench's other N-LR."""
    return nlr_digits_seed1


@pytest.fixture(scope="module")
def audited(nlr_digits: Path, other_nlr: Path):
    """The N-LR checkpoint's audit (the bench's entry point), transfer crafted on seed 1."""
    return audit_checkpoint_on_cpu(nlr_digits, HONEST, source=other_nlr)


@pytest.fixture(scope="module")
def honest(audited):
    return audited.report


@pytest.fixture(
    scope="module", params=[ZeroGradient, SaturatedSoftmax], ids=["zero-grad", "saturated"]
)
def masked(request, digits, other_nlr):
    """Audit of a masked wrapper of the N-LR model; transfer is crafted on the seed-1 model."""
    model = request.param(digits.model).eval()
    source, _ = load_model(other_nlr, "cpu")
    x, y = digits.x[: MASKED.n], digits.y[: MASKED.n]
    return request.param, audit_model(model, x, y, MASKED, source=source)


def test_nlr_digits_passes_every_check(honest):
    statuses = {c.name: c.status for c in honest.checks}
    assert list(statuses) == CHECKS.names()
    assert statuses == dict.fromkeys(CHECKS.names(), "pass"), [c.detail for c in honest.checks]
    # the audit ε is where the model is partly robust, so the comparisons compare something
    assert 5.0 < honest.battery.acc("ifsgm-20") < honest.clean_acc - 20.0
    assert honest.battery.acc("sweep-0.5") <= 100.0 / 10 + 5.0


def test_worst_case_is_below_every_attack_on_the_same_examples(honest):
    b = honest.battery
    at_eps = [label for label, run in b.runs.items() if run.at_eps]
    assert {"apgd-ce", "apgd-dlr", "apgd-t", "fab-t", "square", "transfer", "linf-noise"} <= set(
        at_eps
    )
    for label in at_eps:
        assert not (b.worst_case & ~b.flags(label)).any(), label
        assert honest.worst_case_acc <= b.acc(label)
    for label in ("apgd-ce", "apgd-t", "fab-t", "square"):
        assert honest.autoattack_acc <= b.acc(label)
    assert honest.worst_case_acc <= honest.autoattack_acc
    # the ensemble is stronger than the bench's headline attack on this model
    assert honest.worst_case_acc < b.acc("ifsgm-20")


def test_autoattack_attack_is_at_most_its_first_component(digits):
    """The registered `autoattack` (torchattacks' MultiAttack over our components) keeps only
    examples that APGD-CE with the same seed and steps could not break."""
    x, y = digits.x[:60], digits.y[:60]
    budget = {"eps": EPS, "steps": 10, "seed": 3}
    aa = robust_flags(
        digits.model,
        run_attack("autoattack", digits.model, x, y, targets=2, queries=100, **budget),
        y,
    )
    ce = robust_flags(
        digits.model, run_attack("apgd-ce", digits.model, x, y, restarts=1, **budget), y
    )
    clean = robust_flags(digits.model, x, y)
    assert not (aa & ~ce).any() and not (aa & ~clean).any()
    assert aa.sum() < clean.sum()


def test_masked_models_fail_the_masking_checks(masked):
    wrapper, report = masked
    statuses = {c.name: c.status for c in report.checks}
    failed = {name for name, status in statuses.items() if status == "fail"}
    assert MASKING_CHECKS <= failed, statuses
    assert statuses["deterministic"] == "pass"
    b = report.battery
    # gradient attacks see nothing (at most the random starts' luck) ...
    assert report.whitebox_acc >= report.clean_acc - 10.0
    # ... while attacks without the target's gradients still break it (transfer from another
    # seed costs the unmasked model ~40 pp at this ε)
    assert b.acc("transfer") <= report.clean_acc - 25.0
    if wrapper is ZeroGradient:
        assert statuses["whitebox-beats-square"] == "fail"
        assert b.acc("square") <= report.clean_acc - 40.0
    else:  # only saturated probabilities to read: Square finds a few examples, noise some too
        assert b.acc("square") < report.clean_acc
    assert report.worst_case_acc <= b.acc("transfer")


def test_probes_catch_zero_gradients_and_randomness(digits):
    x, y = digits.x[:30], digits.y[:30]
    honest = probe_gradients(digits.model, x, y)
    assert honest.correct >= 25 and honest.zero == 0 and honest.nonfinite == 0
    masked = probe_gradients(ZeroGradient(digits.model), x, y)
    assert masked.correct == honest.correct and masked.zero_share == 100.0
    assert probe_determinism(digits.model, x) == 0.0
    torch.manual_seed(0)
    assert probe_determinism(NoisyOutput(digits.model), x) > 0.0


def test_strong_attacks_are_seeded_and_leave_the_global_rng_alone(digits):
    x, y = digits.x[:20], digits.y[:20]
    state = torch.get_rng_state()
    with frozen(digits.model):
        first = run_attack("square", digits.model, x, y, eps=EPS, queries=30, seed=5)
        again = run_attack("square", digits.model, x, y, eps=EPS, queries=30, seed=5)
        other = run_attack("square", digits.model, x, y, eps=EPS, queries=30, seed=6)
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert torch.equal(torch.get_rng_state(), state)
    assert (first - x).abs().max() <= EPS + 1e-6


def test_sweep_reaches_the_top_budget():
    assert sweep_eps(32 / 255, 0.5) == pytest.approx([32 / 255, 64 / 255, 0.5])
    assert sweep_eps(8 / 255, 0.5) == pytest.approx([8 / 255, 16 / 255, 32 / 255, 64 / 255, 0.5])
    assert sweep_eps(0.5, 0.5) == [0.5]


def test_rows_feed_the_leaderboard(audited, nlr_digits, tmp_path):
    frame = results.append(tmp_path / "results.csv", audited.rows)
    summary = frame[(frame["experiment"] == "audit") & (frame["attack"] == "audit")]
    value = dict(zip(summary["metric"], summary["value"], strict=True))
    assert value["worst_case_acc"] == pytest.approx(audited.report.worst_case_acc)
    assert value["failed_checks"] == 0 and (summary["eps"] == EPS).all()
    statuses = frame[frame["attack"].str.startswith("check:") & (frame["metric"] == "status")]
    assert len(statuses) == len(CHECKS.names()) and (statuses["value"] == 0).all()
    at_eps = frame[(frame["metric"] == "acc") & ((frame["eps"] - EPS).abs() < 1e-9)]
    # 12 attacks at ε, and the authors' standard AutoAttack beside the port's components.
    assert len(at_eps) == 13 and value["worst_case_acc"] <= at_eps["value"].min()
    assert "autoattack-standard" in set(at_eps["attack"])
    assert 0 <= value["autoattack_agreement"] <= 100
    meta = load_target(nlr_digits, n=1).meta
    clean = results.make_row(
        **results.model_fields(meta, nlr_digits), experiment="clean", metric="clean_acc", value=97.0
    )
    table = leaderboard.build(
        pd.concat([frame, pd.DataFrame([clean])]), leaderboard.Threat(eps=EPS)
    )
    assert table.loc[0, "worst_case_acc"] == pytest.approx(audited.report.worst_case_acc)
    assert table.loc[0, "audit"] == "pass"
    assert audited.filename == "audit_digits_resnet18-w0.25_nlr_seed0_eps32.md"


def test_transfer_check_is_skipped_without_a_source(honest):
    b = honest.battery
    alone = replace(
        b,
        runs={k: r for k, r in b.runs.items() if not r.transfer},
        evaluations={k: e for k, e in b.evaluations.items() if k != "transfer"},
    )
    check = CHECKS["whitebox-beats-transfer"]
    result = check.run(alone)
    assert result.status == "skip" and "--source" in result.detail
    full = check.run(b)
    assert full.status == "pass" and full.count <= 1  # of 100 examples: the 1% tolerance


def test_cli_writes_rows_and_markdown(honest, nlr_digits, tmp_path, capsys, monkeypatch):
    """The command's own job: flags -> options, rows appended, audit_*.md beside the results.
    The battery itself is the fixture's (re-running it here would only repeat it)."""
    import robustbench_lr.audit.checkpoint as checkpoint

    seen = {}

    def recorded(model, x, y, options, source=None):
        seen.update(options=options, n=len(y), source=source)
        return honest

    monkeypatch.setattr(checkpoint, "audit_model", recorded)
    out = tmp_path / "reports" / "results.csv"
    argv = ["audit", "--checkpoint", str(nlr_digits), "--n", "10", "--queries", "10"]
    argv += ["--steps", "2", "--targets", "1", "--device", "cpu", "--out", str(out)]
    argv += ["--dlr-restarts", "3", "--noise-draws", "4", "--deepfool-steps", "5"]
    assert cli.main(argv) == 0
    options = seen["options"]
    assert options.eps == pytest.approx(EPS)  # digits default
    assert (options.n, options.queries, options.steps, options.targets) == (10, 10, 2, 1)
    assert (options.dlr_restarts, options.noise_draws, options.deepfool_steps) == (3, 4, 5)
    assert (options.restarts, options.batch_size) == (AuditOptions.restarts, 256)
    assert seen["n"] == 10 and seen["source"] is None
    summary = results.read(out).query("attack == 'audit'").set_index("metric")["value"]
    assert summary["worst_case_acc"] == pytest.approx(honest.worst_case_acc)
    text = (out.parent / "audit_digits_resnet18-w0.25_nlr_seed0_eps32.md").read_text()
    assert all(f"| {name} " in text for name in CHECKS.names())
    assert "**Verdict: PASS**" in text and "worst case per example" in text
    assert "robust accuracy" in capsys.readouterr().out
    assert cli.main([*argv, "--eps", "0.9"]) == 2
    assert "audit eps must be in (0, 0.5]" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        cli.main([*argv, "--deepfool-steps", "0"])
    assert stop.value.code == 2
    assert "--deepfool-steps: 0 is not an integer >= 1" in capsys.readouterr().err


def test_command_defaults_are_the_audit_options():
    args = cli.parse(["audit", "--checkpoint", "x"])
    assert audit_command.options_from(args) == AuditOptions()


PROFILE = {"name": "p", "models": [{"arch": "resnet18", "methods": ["nlr"], "seeds": [0, 1]}]}


def test_profile_audit_keys_reach_the_command_flags():
    """Every [audit] budget key is an AuditOptions field and the audit flag of the same name,
    so `--<key>=<value>` for each of `Profile.audit_options` gives the profile's audit."""
    given = {key: 7 for key in AUDIT_OPTIONS}
    profile = parse_profile({**PROFILE, "audit": {"enabled": True, **given}}, "test")
    assert profile.audit_options == given
    flags = [f"--{key.replace('_', '-')}={value}" for key, value in profile.audit_options.items()]
    args = cli.parse(["audit", "--checkpoint", "x", *flags])
    assert audit_command.options_from(args) == AuditOptions(**given)
    assert parse_profile(PROFILE, "test").audit_options == {}


@pytest.mark.parametrize(
    ("audit", "message"),
    [
        ({"step": 100}, r"unknown key 'step' in \[audit\]; did you mean 'steps'\?"),
        ({"targets": 0}, r"audit\.targets = 0 is not an integer >= 1"),
        ({"attack_seed": -1}, r"audit\.attack_seed = -1 is not an integer >= 0"),
        ({"noise_draws": 2.5}, r"audit\.noise_draws = 2.5 is not an integer >= 1"),
    ],
    ids=["typo", "zero-targets", "negative-seed", "float-draws"],
)
def test_profile_audit_keys_are_checked(audit, message):
    with pytest.raises(ValueError, match=message):
        parse_profile({**PROFILE, "audit": audit}, "test")


@pytest.mark.parametrize("name", ["paper", "paper-fast"])
def test_paper_profiles_use_autoattack_budget(name):
    """What the AuditOptions docstring promises: AutoAttack's standard steps, targets, queries."""
    profile = load_profile(name)
    assert profile.audit_options == {"steps": 100, "targets": 9}
    assert profile.attacks.square_queries == 5000
