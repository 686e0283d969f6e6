"""PGD-AT and TRADES (methods/adversarial.py) trained by the shared loop on digits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from robustbench_lr.attacks.loop import away_from_label, signed_gradient_loop
from robustbench_lr.audit.options import AuditOptions
from robustbench_lr.methods import METHODS
from robustbench_lr.methods.adversarial import step_size
from tests.conftest import audit_checkpoint_on_cpu, train_small

EPOCHS = 20  # the cpu profile's digits run
# Digits' own budget (its audit ε, 32/255: two of the 17 grey levels). Two PGD steps of
# 2.5·ε/2 already give the robustness the test asks for and keep training ~3x N-LR's cost.
DIGITS_PGD = {"at_eps": "32/255", "at_steps": "2"}
# Cheaper than AuditOptions' defaults (the same battery and checks, fewer iterations), applied
# to both models alike.
AUDIT = AuditOptions(
    n=100,
    queries=200,
    steps=20,
    targets=1,
    restarts=1,
    dlr_restarts=1,
    noise_draws=2,
    deepfool_steps=20,
)


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory, nlr_digits_20: Path) -> dict[str, object]:
    """N-LR and PGD-AT on the same data, epochs and seed, each audited at digits' ε (32/255);
    PGD-AT's transfer attacks are crafted on this N-LR, so every check of its audit runs.

    The N-LR is the session's 20-epoch one (`nlr_digits_20`), shared with the LR-pair tests.
    """
    root, nlr = tmp_path_factory.mktemp("adversarial"), nlr_digits_20
    pgd = train_small(root, "pgd-at", 0, epochs=EPOCHS, method_options=DIGITS_PGD)
    return {
        "nlr": audit_checkpoint_on_cpu(nlr, AUDIT).report,
        "pgd-at": audit_checkpoint_on_cpu(pgd, AUDIT, source=nlr).report,
    }


def test_pgd_at_is_20_points_more_robust_than_nlr_and_passes_every_check(audited):
    nlr, pgd = audited["nlr"], audited["pgd-at"]
    assert pgd.battery.options.eps == pytest.approx(32 / 255)
    # Random restarts vs one zero-start run differ on a robust model by a few examples either
    # way, with the CPU's rounding (82 % vs 80 % on an AVX2-only EPYC: a warning there, a pass
    # here), so that heuristic may warn; every other check passes and none fails.
    not_passed = {c.name: c for c in pgd.checks if c.status != "pass"}
    assert set(not_passed) <= {"restarts"}, not_passed
    assert all(c.status == "warn" for c in not_passed.values()), not_passed
    assert pgd.worst_case_acc >= nlr.worst_case_acc + 20, (pgd.worst_case_acc, nlr.worst_case_acc)
    assert pgd.clean_acc >= 90.0


def test_trades_trains_and_the_same_seed_gives_the_same_bytes(tmp_path: Path):
    limited = {"epochs": 1, "train_limit": 256, "test_limit": 50}
    runs = [
        train_small(tmp_path / run, "trades", 0, **limited, method_options={"at_steps": "2"})
        for run in ("a", "b")
    ]
    first, second = ((f / "model.safetensors").read_bytes() for f in runs)
    assert first == second
    meta = (runs[0] / "meta.json").read_text()
    assert '"trades_kl"' in meta  # β·KL, logged apart from the clean cross-entropy


def test_options_parse_fractions_and_reject_bad_values():
    opts = METHODS["pgd-at"].resolve({"at_eps": "8/255", "at_steps": "10"})
    assert opts == {"at_eps": pytest.approx(8 / 255), "at_steps": 10, "at_alpha": None}
    assert step_size(opts) == pytest.approx(2 / 255)  # Madry's 2.5·ε/steps
    assert METHODS["trades"].resolve({})["trades_beta"] == 6.0
    for name, bad, flag in (("at_eps", "0", "--at-eps"), ("at_steps", "0", "--at-steps")):
        with pytest.raises(ValueError, match=flag):
            METHODS["pgd-at"].resolve({name: bad})
    with pytest.raises(ValueError, match="does not apply to method 'pgd-at'"):
        METHODS["pgd-at"].resolve({"trades_beta": "6"})


def test_loop_start_is_projected_and_judged_first():
    """The loop's random start (PGD-AT's): projected into the ε-ball ∩ [0, 1], then stepped."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    x = torch.full((2, 1, 2, 2), 0.5)
    y = torch.tensor([0, 1])
    start = x + torch.tensor([1.0, -1.0]).view(2, 1, 1, 1)  # far outside the ball
    seen = []
    run = signed_gradient_loop(
        model,
        x,
        y,
        rule=away_from_label,
        eps=0.1,
        alpha=0.05,
        steps=1,
        start=start,
        on_step=lambda s: seen.append(s.x_adv),
    )
    assert torch.allclose(seen[0], x + torch.tensor([0.1, -0.1]).view(2, 1, 1, 1))
    assert (run.final - x).abs().max() <= 0.1 + 1e-6
