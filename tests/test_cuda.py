"""The CUDA paths: bf16 autocast + channels_last training, CUDA determinism, attacks on the GPU.

CI has no GPU, so these are skipped there; they run where torch sees a CUDA device
(`pytest tests/test_cuda.py` on a GPU machine; README says when they last ran and what they
found). Each one mirrors a CPU test's claim on the device the paper's runs actually use.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from robustbench_lr import checkpoints
from robustbench_lr.attacks import robust_flags, run_attack
from robustbench_lr.attacks.harness import evaluate_attack
from robustbench_lr.attacks.search import threshold_search
from robustbench_lr.config import TrainConfig
from robustbench_lr.data import load
from robustbench_lr.devices import use_device
from robustbench_lr.evaluation import accuracy
from robustbench_lr.methods.weights import weight_layers, weight_matrix
from robustbench_lr.target import load_target
from robustbench_lr.train import train
from tests.conftest import SMALL

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(autouse=True)
def cuda_policy():
    """What every CLI command sets first: deterministic kernels and no TF32."""
    use_device("cuda")


METHODS = ("nlr", "1lr", "2lr", "bottle-lr", "snip", "srn", "sn")


def train_cuda(root: Path, method: str, seed: int = 0, **overrides) -> Path:
    """Train a small digits model on CUDA (bf16 autocast, channels_last) and return its folder."""
    cfg = TrainConfig(**{**SMALL, **overrides}, method=method, seed=seed)
    return train(cfg, root, device="cuda", progress=False).folder


@pytest.fixture(scope="module")
def cuda_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cuda_checkpoints")


@pytest.fixture(scope="module")
def trained(cuda_root: Path) -> dict[str, Path]:
    """Every method's digits ResNet18, trained on CUDA with the foundation recipe."""
    return {method: train_cuda(cuda_root, method) for method in METHODS}


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_under_autocast_and_evaluates_the_same_on_cpu(trained, method):
    folder = trained[method]
    meta = checkpoints.read_meta(folder)
    assert meta["device"] == "cuda"
    history = meta["history"]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in history)
    on_gpu, _ = checkpoints.load_model(folder, "cuda")
    on_cpu, _ = checkpoints.load_model(folder, "cpu")
    data = load("digits")
    gpu_acc = accuracy(on_gpu, data.x_test, data.y_test)
    cpu_acc = accuracy(on_cpu, data.x_test, data.y_test)
    assert gpu_acc >= 90.0, (method, gpu_acc)
    # The same weights in fp32 on two devices: TF32 convolutions may flip a borderline image.
    assert abs(gpu_acc - cpu_acc) <= 0.5, (method, gpu_acc, cpu_acc)


@pytest.mark.parametrize("method", ("sn", "srn"))
def test_unit_spectral_norm_holds_after_bf16_training(trained, method):
    """SN/SRN normalize in float32 even under bf16 autocast: sigma_1 stays 1, as on CPU."""
    model, _ = checkpoints.load_model(trained[method], "cpu")
    sigmas = {
        name: torch.linalg.matrix_norm(weight_matrix(m.weight.detach()), ord=2).item()
        for name, m in weight_layers(model)
    }
    assert all(abs(s - 1.0) <= 0.05 for s in sigmas.values()), sigmas


def test_cuda_training_repeats_bit_for_bit(tmp_path: Path):
    """With cuDNN deterministic and deterministic algorithms, the same seed gives the same bytes."""
    first = train_cuda(tmp_path / "a", "1lr", epochs=3)
    second = train_cuda(tmp_path / "b", "1lr", epochs=3)
    a, b = load_file(first / "model.safetensors"), load_file(second / "model.safetensors")
    differing = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differing, differing[:5]


def test_attacks_on_cuda_stay_in_ball_and_agree_across_backends(trained):
    ev = load_target(trained["nlr"], n=200, seed=0, device="cuda")
    model, x, y = ev.model, ev.x, ev.y
    kw = {"eps": 0.1, "steps": 7}
    ta = run_attack("ifsgm", model, x, y, backend="torchattacks", **kw)
    fb = run_attack("ifsgm", model, x, y, backend="foolbox", **kw)
    for x_adv in (ta, fb):
        assert x_adv.min() >= 0 and x_adv.max() <= 1
        assert (x_adv - x).abs().max() <= kw["eps"] + 1e-6
    acc_ta = robust_flags(model, ta, y).float().mean().item()
    acc_fb = robust_flags(model, fb, y).float().mean().item()
    assert abs(acc_ta - acc_fb) <= 0.01
    huge = run_attack("ifsgm", model, x, y, eps=0.5, steps=20)
    assert robust_flags(model, huge, y).float().mean().item() <= 0.05

    correct = robust_flags(model, x, y)
    fooled = ~robust_flags(model, run_attack("deepfool", model, x[correct], y[correct]), y[correct])
    assert fooled.float().mean().item() >= 0.99


def test_noise_and_search_on_cuda_repeat(trained):
    ev = load_target(trained["nlr"], n=100, seed=0, device="cuda")
    model, x, y = ev.model, ev.x, ev.y
    first = evaluate_attack("noise", model, x, y, p=0.8, seed=3, draws=2)
    again = evaluate_attack("noise", model, x, y, p=0.8, seed=3, draws=2)
    assert torch.equal(first.robust, again.robust)
    search = {"attack": "ifsgm", "alpha": 0.02, "max_steps": 20, "tol": 0.02, "eps_max": 0.5}
    found = threshold_search(model, x, y, rate=0.99, **search)
    assert found.misclassified > 0.99 and found.eps == found.eps
    assert threshold_search(model, x, y, rate=0.99, **search).eps == found.eps


@pytest.mark.parametrize("mode", ("compile", "reduce-overhead"))
def test_compiled_steps_train_like_eager_on_cuda(tmp_path: Path, mode: str):
    """A compiled step (inductor, or CUDA graphs) is the same training as eager,
    up to bf16 rounding: test accuracy within 1.5 points after the foundation recipe."""
    cfg = TrainConfig(**SMALL, method="nlr", seed=0)
    eager = train(cfg, tmp_path / "eager", device="cuda", progress=False)
    compiled = train(cfg, tmp_path / mode, device="cuda", progress=False, step_mode=mode)
    assert checkpoints.read_meta(compiled.folder)["step_mode"] == mode
    assert abs(eager.clean_acc - compiled.clean_acc) <= 1.5, (eager.clean_acc, compiled.clean_acc)


@pytest.mark.parametrize("precision", ("tf32", "bf16"))
def test_fast_crafting_never_counts_an_example_float32_calls_robust(trained, precision: str):
    """Crafted in TF32 or bf16, every example counted as fooled is misclassified by a
    strict float32 forward pass, and the fast attack is within 2 points of the float32 one."""
    from robustbench_lr.attacks.precision import crafting_in, strict

    ev = load_target(trained["nlr"], n=200, seed=0, device="cuda")
    model, x, y = ev.model, ev.x, ev.y
    for attack, kw in (("ifsgm", {"eps": 0.1, "steps": 7}), ("deepfool", {})):
        with crafting_in(precision):
            fast = run_attack(attack, model, x, y, **kw)
            fooled = ~robust_flags(model, fast, y)
        with strict(x.device), torch.no_grad():
            assert (model(fast[fooled]).argmax(1) != y[fooled]).all(), attack
        reference = ~robust_flags(model, run_attack(attack, model, x, y, **kw), y)
        assert abs(fooled.float().mean().item() - reference.float().mean().item()) <= 0.02
