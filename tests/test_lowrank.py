"""The low-rank regularizer: projections, gradients, 1-LR vs N-LR, Bottle-LR, resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from robustbench_lr import models
from robustbench_lr.analysis import AnalysisOptions
from robustbench_lr.analysis.rank import rank_at, variance_ratio
from robustbench_lr.checkpoints import load_model
from robustbench_lr.cli import main
from robustbench_lr.data import load
from robustbench_lr.evaluation import predict
from robustbench_lr.lowrank.projection import PROJECTIONS, project
from robustbench_lr.methods import METHODS, Progress, TrainContext
from robustbench_lr.registry import UnknownNameError
from robustbench_lr.results import read
from tests.conftest import SMALL, run_analysis, train_small
from tests.test_train import kill_and_resume

PROJECTION_NAMES = PROJECTIONS.names()


def _sym(m: int, seed: int) -> torch.Tensor:
    a = torch.randn(m, m, generator=torch.Generator().manual_seed(seed))
    return (a + a.T) / 2


def _psd_rank(m: int, k: int, seed: int) -> torch.Tensor:
    a = torch.randn(m, k, generator=torch.Generator().manual_seed(seed))
    return a @ a.T


# ---- projections -------------------------------------------------------------------------------

MATRICES = {
    "indefinite": lambda: _sym(80, 0),
    "psd_full_rank": lambda: _psd_rank(80, 80, 1),
    "not_symmetric": lambda: torch.randn(80, 80, generator=torch.Generator().manual_seed(2)),
}


@pytest.mark.parametrize("matrix", list(MATRICES))
@pytest.mark.parametrize("name", PROJECTION_NAMES)
def test_projection_is_symmetric_psd_and_rank_at_most_r(name: str, matrix: str) -> None:
    w = MATRICES[matrix]()
    out = project(name, w, 7, torch.Generator().manual_seed(0), 3)
    assert out.dtype == torch.float32
    assert torch.equal(out, out.T)
    assert torch.linalg.matrix_rank(out).item() <= 7
    assert torch.linalg.eigvalsh(out.double()).min().item() >= -1e-5 * out.norm().item()
    assert out.norm() > 0.1 * w.norm() / 80**0.5  # not the trivial zero matrix


@pytest.mark.parametrize("true_rank", [5, 8])
@pytest.mark.parametrize("name", PROJECTION_NAMES)
def test_projection_recovers_a_matrix_of_rank_at_most_r(name: str, true_rank: int) -> None:
    w = _psd_rank(120, true_rank, 3)
    out = project(name, w, 8, torch.Generator().manual_seed(0), 2)
    assert ((out - w).norm() / w.norm()).item() < 1e-4


@pytest.mark.parametrize("name", PROJECTION_NAMES)
def test_projection_is_float32_and_seeded(name: str) -> None:
    w = _sym(64, 4)
    first = project(name, w.bfloat16(), 6, torch.Generator().manual_seed(5), 2)
    again = project(name, w.bfloat16(), 6, torch.Generator().manual_seed(5), 2)
    assert first.dtype == torch.float32
    assert torch.equal(first, again)


def test_exact_projection_is_the_best_rank_r_psd_approximation() -> None:
    w = _sym(50, 6)
    values, vectors = torch.linalg.eigh(w.double())
    top = values[-4:].clamp_min(0)
    best = (vectors[:, -4:] * top) @ vectors[:, -4:].T
    assert torch.allclose(project("exact", w, 4), best.float(), atol=1e-5)


def test_unknown_projection_lists_choices() -> None:
    with pytest.raises(UnknownNameError, match="exact, randomized, nystrom"):
        project("svd", torch.eye(3), 1)
    with pytest.raises(ValueError, match="--lr-projection 'svd'; valid choices: exact"):
        METHODS["1lr"].resolve({"lr_projection": "svd"})


# ---- options ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"lr_rank": "pre_fc=ten"}, "TAP=RANK"),
        ({"lr_rank": "0"}, ">= 1"),
        ({"lr_w_step": "1.5"}, r"\(0, 1\)"),
        ({"lr_every": "0"}, "--lr-every takes an integer >= 1"),
        ({"lr_lambda_c": "-1"}, "--lr-lambda-c takes a number >= 0"),
        ({"snip_sparsity": "0.5"}, "does not apply"),
    ],
)
def test_bad_lr_options_are_clear_errors(given: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        METHODS["1lr"].resolve(given)


def _context(
    method: str, opts: dict, arch: str = "resnet18"
) -> tuple[models.StagedNet, torch.nn.Module, dict]:
    torch.manual_seed(0)
    data = load("digits", train_limit=64)
    model = models.build(arch, data.spec, 0.25)
    resolved = METHODS[method].resolve(opts)
    METHODS[method].structure(model, arch, resolved)
    ctx = TrainContext(
        model,
        arch,
        data.spec,
        (data.x_train[:32], data.y_train[:32]),
        7,
        10,
        0,
        torch.device("cpu"),
    )
    return model, METHODS[method].prepare(ctx, resolved), resolved


def test_ranks_default_by_tap_and_cap_at_m() -> None:
    _, aux, _ = _context("2lr", {})
    sizes = {tap: b.ws.shape[0] for tap, b in aux.branches.items()}
    assert sizes == {"pre_block4": 256, "pre_fc": 128}  # 64 channels at 2x2; 128 pooled
    assert {tap: b.rank for tap, b in aux.branches.items()} == {"pre_block4": 256, "pre_fc": 100}
    _, aux, _ = _context("2lr", {"lr_rank": "pre_fc=7,pre_block4=9"})
    assert {tap: b.rank for tap, b in aux.branches.items()} == {"pre_block4": 9, "pre_fc": 7}
    assert aux.warmup == 1  # round(50/350 x 7 epochs)
    with pytest.raises(ValueError, match="its taps: pre_fc"):
        _context("1lr", {"lr_rank": "pre_block4=5"})


def test_vgg19_2lr_uses_fc1_and_fc3_inputs() -> None:
    _, aux, _ = _context("2lr", {"lr_rank": "3"}, arch="vgg19")
    assert list(aux.branches) == ["fc1_in", "fc3_in"]


# ---- gradients --------------------------------------------------------------------------------


def _penalty_grads(opts: dict, keys: list[str]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Gradient of the stem conv weight and of Ws from the chosen loss terms only."""
    model, aux, resolved = _context("1lr", {"lr_warmup_epochs": "0", **opts})
    x = load("digits", train_limit=64).x_train[:16]
    _, acts = model.run(x, METHODS["1lr"].taps("resnet18", resolved))
    terms = METHODS["1lr"].penalty(aux, acts, Progress(0, 1, 7), resolved)
    sum(terms.losses[k] for k in keys).backward()
    stem = next(model.stages["stem"].parameters())
    return stem.grad, aux.branches["pre_fc"].ws.grad


@pytest.mark.parametrize(
    ("term", "reaches_net", "reaches_w"),
    [
        ("lr_c@pre_fc", True, False),
        ("lr_n@pre_fc", True, False),
        ("lr_fit@pre_fc", False, True),
    ],
)
def test_loss_terms_reach_the_intended_parameters(
    term: str, reaches_net: bool, reaches_w: bool
) -> None:
    stem_grad, w_grad = _penalty_grads({}, [term])
    assert (stem_grad is not None and stem_grad.abs().sum().item() > 0) == reaches_net
    assert (w_grad is not None and w_grad.abs().sum().item() > 0) == reaches_w


def test_lc_alone_reaches_the_layers_before_the_tap() -> None:
    stem_grad, _ = _penalty_grads({"lr_lambda_n": "0"}, ["lr_c@pre_fc", "lr_n@pre_fc"])
    assert stem_grad.abs().sum().item() > 0


def test_warmup_keeps_the_losses_off_the_network() -> None:
    model, aux, resolved = _context("1lr", {"lr_warmup_epochs": "2"})
    _, acts = model.run(load("digits", train_limit=64).x_train[:16], ["pre_fc"])
    terms = METHODS["1lr"].penalty(aux, acts, Progress(1, 5, 7), resolved)
    assert set(terms.losses) == {"lr_fit@pre_fc"} and set(terms.logs) == {"lr_relerr@pre_fc"}
    assert terms.logs["lr_relerr@pre_fc"].item() == pytest.approx(1.0)  # W = 0 at start


# ---- training: 1-LR vs N-LR on digits ---------------------------------------------------------

EPOCHS = 20
LR5 = {"lr_rank": "5"}


@pytest.fixture(scope="module")
def lr_pair(tmp_path_factory: pytest.TempPathFactory, nlr_digits_20: Path) -> dict[str, Path]:
    """N-LR and 1-LR (rank 5) digits ResNet18 w0.25, 20 epochs, seed 0.

    A checkpoint root of their own: the session root already holds the 8-epoch N-LR of
    `nlr_digits`, and the same folder with another epoch count is (rightly) refused.
    """
    root = tmp_path_factory.mktemp("lr_pair")
    return {
        "nlr": nlr_digits_20,
        "1lr": train_small(root, "1lr", epochs=EPOCHS, method_options=LR5),
    }


def test_1lr_lowers_the_rank_at_equal_accuracy(lr_pair: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "results.csv"
    rank99, acc = {}, {}
    for method, folder in lr_pair.items():
        outcome = run_analysis("rank", folder, out, AnalysisOptions(device="cpu"))
        rank99[method] = next(r["value"] for r in outcome.rows if r["metric"] == "rank99")
        acc[method] = load_model(folder)[1]["clean_acc"]
        assert outcome.files[0].exists()
    assert rank99["1lr"] <= 10 < rank99["nlr"]
    assert acc["1lr"] >= acc["nlr"] - 2.0


def test_1lr_history_logs_the_reconstruction_error(lr_pair: dict[str, Path]) -> None:
    meta = load_model(lr_pair["1lr"])[1]
    errors = [h["lr_relerr@pre_fc"] for h in meta["history"]]
    assert len(errors) == EPOCHS and errors[-1] < 0.5 * errors[0]
    warm_up, first_on = meta["history"][2], meta["history"][3]  # round(50/350 x 20) = 3 epochs
    assert "lr_c@pre_fc" not in warm_up and "lr_c@pre_fc" in first_on
    branch = meta["method_info"]["lr_branches"]["pre_fc"]
    assert branch["rank"] == 5
    assert branch["w_trace"] == pytest.approx(5, abs=0.05)  # W ends as a rank-5 projection
    assert meta["method_options"]["lr_projection"] == "randomized"


def test_1lr_checkpoint_is_the_plain_architecture(lr_pair: dict[str, Path]) -> None:
    folder = lr_pair["1lr"]
    model, meta = load_model(folder)
    data = load("digits")
    plain = models.build("resnet18", data.spec, 0.25)
    plain.load_state_dict(load_file(str(folder / "model.safetensors")), strict=True)
    assert len(plain.tap_transforms) == 0
    assert torch.equal(predict(plain, data.x_test), predict(model, data.x_test))
    state = load_file(str(folder / "train_state.safetensors"))
    assert state["aux/branches.pre_fc.ws"].shape == (128, 128) and "aux/branches.pre_fc.b" in state


def test_analyze_rank_cli_writes_rows_and_png(
    lr_pair: dict[str, Path], tmp_path: Path, capsys
) -> None:
    out = tmp_path / "reports" / "results.csv"
    for folder in lr_pair.values():
        assert main(f"analyze rank --checkpoint {folder} --out {out} --device cpu".split()) == 0
    frame = read(out)
    ranks = frame[frame["metric"] == "rank99"].set_index("method")["value"]
    curve = frame[(frame["metric"] == "variance_ratio") & (frame["method"] == "1lr")]
    curve = curve.sort_values("steps")
    assert set(frame["tap"]) == {"pre_fc"} and set(frame["param"]) == {""}
    assert set(frame["backend"]) == {"exact"}
    assert list(curve["steps"]) == list(range(1, 129)) and curve["value"].is_monotonic_increasing
    assert curve["value"].iloc[-1] == pytest.approx(1.0, abs=1e-5)
    assert ranks["1lr"] < ranks["nlr"]
    assert (out.parent / "figures" / "rank_digits_resnet18_w0.25_pre_fc.png").stat().st_size > 1000
    assert "rank99 =" in capsys.readouterr().out
    bad_tap = f"analyze rank --checkpoint {lr_pair['1lr']} --tap nowhere --out {out}".split()
    assert main(bad_tap) == 2


def test_randomized_variance_ratio_matches_exact_on_its_range() -> None:
    acts = torch.randn(300, 12) @ torch.randn(12, 200) + 0.01 * torch.randn(300, 200)
    exact, backend = variance_ratio(acts)
    approx, approx_backend = variance_ratio(acts, exact_max=100, k=20)
    assert (backend, approx_backend) == ("exact", "randomized") and len(approx) == 20
    assert torch.allclose(approx, exact[:20], atol=1e-4)
    assert rank_at(exact, 0.99) == rank_at(approx, 0.99) <= 12
    assert torch.isnan(torch.tensor(rank_at(approx[:5], 0.99)))


# ---- Bottle-LR and 2-LR -----------------------------------------------------------------------


def test_bottle_lr_representation_has_rank_at_most_r(ckpt_root: Path) -> None:
    folder = train_small(ckpt_root, "bottle-lr", epochs=3, method_options={"lr_rank": "4"})
    model, meta = load_model(folder)
    acts = models.activations(model, load("digits").x_test, ["pre_fc"])["pre_fc"]
    singular = torch.linalg.svdvals(acts.double())
    assert (singular[4:] <= 1e-5 * singular[0]).all()  # rank <= 4 by construction
    assert meta["method_info"] == {"bottlenecks": {"pre_fc": {"m": 128, "rank": 4}}}
    assert meta["clean_acc"] > 50


def test_normalized_bottleneck_trains_at_the_recipe_lr(tmp_path: Path) -> None:
    # The paper's literal W̄l ("free") diverged to NaN at epoch 4-5 in this exact setting.
    folder = train_small(tmp_path, "bottle-lr", epochs=20, method_options={"lr_rank": "5"})
    meta = load_model(folder)[1]
    assert meta["method_options"]["bottle_param"] == "normalized"
    assert meta["clean_acc"] > 95


def test_unknown_bottleneck_parametrization_lists_the_choices() -> None:
    with pytest.raises(UnknownNameError, match="valid choices: normalized, free"):
        METHODS.get("bottle-lr").resolve({"bottle_param": "orthogonal"})


def test_2lr_trains_two_branches(ckpt_root: Path) -> None:
    folder = train_small(
        ckpt_root,
        "2lr",
        epochs=2,
        train_limit=512,
        method_options={"lr_rank": "pre_fc=5,pre_block4=20", "lr_projection": "nystrom"},
    )
    meta = load_model(folder)[1]
    assert set(meta["method_info"]["lr_branches"]) == {"pre_block4", "pre_fc"}
    assert {"lr_relerr@pre_block4", "lr_relerr@pre_fc"} <= set(meta["history"][-1])


# ---- resume after SIGKILL ---------------------------------------------------------------------


def test_lr_resume_after_sigkill_is_bit_identical(ckpt_root: Path, tmp_path: Path) -> None:
    """Killed after epoch 1 of 4 (4 steps each): the rank projections (steps 5, 10, 15) and
    their Nyström draws happen after the resume and must replay exactly."""
    opts = {"lr_rank": "5", "lr_projection": "nystrom", "lr_warmup_epochs": "1", "lr_every": "5"}
    resolved = METHODS["1lr"].resolve(opts)  # what the CLI stores in the config
    reference = train_small(
        ckpt_root, "1lr", epochs=4, seed=1, train_limit=512, method_options=resolved
    )
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in opts.items()]
    args = [
        "--method",
        "1lr",
        "--seed",
        "1",
        "--epochs",
        "4",
        "--train-limit",
        "512",
        "--width",
        str(SMALL["width"]),
        *flags,
    ]
    folder = tmp_path / reference.relative_to(ckpt_root)
    kill_and_resume(tmp_path, args, folder, kill_after_epoch=1)
    for name in ("model.safetensors", "train_state.safetensors"):
        assert (folder / name).read_bytes() == (reference / name).read_bytes(), name
