"""SNIP, SRN and SN (Table 2's parameter-space comparisons) trained end to end on digits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from robustbench_lr import checkpoints, models
from robustbench_lr.config import TrainConfig, checkpoint_dir
from robustbench_lr.data import load
from robustbench_lr.evaluation import accuracy
from robustbench_lr.methods import METHODS, TrainContext
from robustbench_lr.methods.srn import StableRankNorm
from robustbench_lr.methods.weights import stable_rank, weight_layers, weight_matrix
from robustbench_lr.train import epoch_batches
from tests.conftest import SMALL, train_small
from tests.test_train import kill_and_resume, train_args

COMPARISONS = ("snip", "srn", "sn")
RESNET18_WEIGHT_LAYERS = 21  # stem, 16 block convs, 3 shortcuts, fc


class _TrainedOnFirstUse(dict):
    """Method name -> checkpoint folder, each method trained when a test first asks for it, so
    that a tier running only some of the tests trains only their methods."""

    def __init__(self, root: Path):
        super().__init__()
        self.root = root

    def __missing__(self, method: str) -> Path:
        self[method] = train_small(self.root, method, 0)
        return self[method]


@pytest.fixture(scope="module")
def trained(ckpt_root: Path) -> dict[str, Path]:
    """Checkpoint folders of the three methods, foundation recipe, seed 0."""
    return _TrainedOnFirstUse(ckpt_root)


@pytest.fixture(scope="module")
def digits():
    return load("digits")


def prepared(method: str, seed: int, data, **options):
    """A fresh model and aux module built exactly as `train` builds them before its first step."""
    spec = METHODS[method]
    torch.manual_seed(seed)
    model = models.build(SMALL["arch"], data.spec, SMALL["width"])
    first = epoch_batches(len(data.y_train), 128, seed, -1)[0]
    ctx = TrainContext(
        model,
        SMALL["arch"],
        data.spec,
        (data.x_train[first], data.y_train[first]),
        SMALL["epochs"],
        1,
        seed,
        torch.device("cpu"),
    )
    return model, spec.prepare(ctx, spec.resolve(options))


def plain_matrices(folder: Path) -> dict[str, torch.Tensor]:
    """Every conv/linear weight of the exported plain model, as the (out, in·k·k) matrix."""
    model, _ = checkpoints.load_model(folder)
    return {name: weight_matrix(module.weight.detach()) for name, module in weight_layers(model)}


@pytest.mark.parametrize("method", COMPARISONS)
def test_trains_to_90_percent_and_loads_as_a_plain_model(method: str, trained, digits):
    meta = checkpoints.read_meta(trained[method])
    assert meta["finished"] and meta["clean_acc"] >= 90.0
    model, _ = checkpoints.load_model(trained[method])  # strict load: no parametrization keys left
    assert accuracy(model, digits.x_test, digits.y_test) == pytest.approx(meta["clean_acc"])
    assert meta["method_options"] == METHODS[method].resolve({})


@pytest.mark.parametrize("method", COMPARISONS)
def test_training_state_resumes_into_a_freshly_prepared_model(method: str, trained, digits):
    """What a resume does (prepare, then load the saved state) reproduces the exported weights."""
    state = load_file(str(trained[method] / checkpoints.STATE_FILE))
    model, aux = prepared(method, 0, digits)
    model.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("model/")})
    aux.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("aux/")})
    exported = load_file(str(trained[method] / checkpoints.MODEL_FILE))
    again = checkpoints.plain_state_dict(model)
    assert again.keys() == exported.keys()
    assert all(torch.equal(again[k], exported[k]) for k in exported)


def test_snip_prunes_exactly_the_requested_fraction(trained):
    meta = checkpoints.read_meta(trained["snip"])
    info = meta["method_info"]
    matrices = plain_matrices(trained["snip"])
    total = sum(m.numel() for m in matrices.values())
    zeros = sum(int((m == 0).sum()) for m in matrices.values())
    assert info["snip_prunable_weights"] == total
    assert info["snip_kept_weights"] == round(0.3 * total)
    assert abs(zeros - (total - round(0.3 * total))) <= len(matrices)  # one weight per layer
    fractions = info["snip_kept_fraction"]
    assert set(fractions) == set(matrices) and len(fractions) == RESNET18_WEIGHT_LAYERS
    for name, matrix in matrices.items():
        assert 0.0 < fractions[name] <= 1.0, name
        assert abs(float((matrix != 0).float().mean()) - fractions[name]) <= 1.0 / matrix.numel()
    assert min(fractions.values()) < 0.2 < 0.9 < max(fractions.values())  # global, not per layer


def test_snip_mask_depends_only_on_the_seed(trained, digits):
    state = load_file(str(trained["snip"] / checkpoints.STATE_FILE))
    saved = {k[4:]: v for k, v in state.items() if k.startswith("aux/")}
    _, again = prepared("snip", 0, digits)
    _, other = prepared("snip", 1, digits)
    assert again.state_dict().keys() == saved.keys()
    assert all(torch.equal(again.state_dict()[k], saved[k]) for k in saved)
    assert not all(torch.equal(other.state_dict()[k], saved[k]) for k in saved)


def test_snip_options_are_checked(digits):
    with pytest.raises(ValueError, match=r"--snip-sparsity must be in \[0, 1\), got 1"):
        METHODS["snip"].resolve({"snip_sparsity": "1"})
    with pytest.raises(
        ValueError, match=r"--snip-batch 200 exceeds the training batch \(128 images\)"
    ):
        prepared("snip", 0, digits, snip_batch="200")
    with pytest.raises(ValueError, match="does not apply to method 'snip'"):
        METHODS["snip"].resolve({"srn_rank_ratio": "0.5"})


def test_srn_layers_have_unit_spectral_norm_and_bounded_stable_rank(trained):
    matrices = plain_matrices(trained["srn"])
    assert len(matrices) == RESNET18_WEIGHT_LAYERS
    for name, matrix in matrices.items():
        target = max(1.0, 0.3 * min(matrix.shape))
        assert float(torch.linalg.matrix_norm(matrix, ord=2)) == pytest.approx(1.0, abs=0.05), name
        assert stable_rank(matrix) <= 1.05 * target, name
    layers = checkpoints.read_meta(trained["srn"])["method_info"]["srn_layers"]
    assert layers["stages.fc"]["target_stable_rank"] == pytest.approx(3.0)  # 0.3 · min(10, 128)


def test_sn_layers_have_unit_spectral_norm(trained):
    matrices = plain_matrices(trained["sn"])
    assert len(matrices) == RESNET18_WEIGHT_LAYERS
    for name, matrix in matrices.items():
        assert float(torch.linalg.matrix_norm(matrix, ord=2)) == pytest.approx(1.0, abs=0.05), name


def test_srn_map_is_the_papers_optimum():
    """σ₁ → 1, stable rank cut to exactly r when above it, W/σ₁ untouched when already below."""
    gen = torch.Generator().manual_seed(0)
    full = torch.randn(64, 200, generator=gen)  # stable rank ≈ 20 > r = 0.1 · 64
    low = torch.outer(torch.randn(64, generator=gen), torch.randn(200, generator=gen)) + 0.01 * full
    for weight, rank_ratio in ((full, 0.1), (low, 0.3)):
        srn = StableRankNorm(weight, rank_ratio).eval()
        srn._power_method(weight, 500)
        out = srn(weight)
        assert float(torch.linalg.matrix_norm(out, ord=2)) == pytest.approx(1.0, abs=1e-4)
        expected = min(stable_rank(weight), rank_ratio * 64)
        assert stable_rank(out) == pytest.approx(expected, rel=1e-3)
    assert torch.allclose(out, low / torch.linalg.matrix_norm(low, ord=2), atol=1e-5)


def test_srn_resumes_after_sigkill_with_identical_weights(tmp_path: Path, trained):
    args = train_args("srn")
    folder = checkpoint_dir(
        tmp_path,
        TrainConfig(**SMALL, method="srn", seed=0, method_options=METHODS["srn"].resolve({})),
    )
    kill_and_resume(tmp_path, args, folder)
    assert (folder / "model.safetensors").read_bytes() == (
        trained["srn"] / "model.safetensors"
    ).read_bytes()
