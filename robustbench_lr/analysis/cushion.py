"""Layer cushion (Fig. 4c, Appendix E; Arora et al. 2018, "Stronger generalization bounds").

For layer i with weight W_i and input φ(x_{i−1}) (the activation it actually receives), the
cushion of one example is

    μ_i(x) = ‖W_i φ(x_{i−1})‖ / (‖W_i‖_F ‖φ(x_{i−1})‖),

and Arora et al.'s layer cushion is its minimum over the training set. A large value means the
example's signal lies along W_i's large singular directions, so the layer passes it on while
attenuating noise (the paper's explanation of the LR models' stability).

Conventions, since the definition is written for dense layers:
- Linear layers: W_i φ is the layer's output without its bias, so 0 ≤ μ ≤ 1 by Cauchy–Schwarz
  (‖Wv‖ ≤ ‖W‖₂‖v‖ ≤ ‖W‖_F‖v‖).
- Convolutions: W_i φ is the layer's output (bias removed), ‖·‖ the norm of the flattened maps,
  ‖W_i‖_F that of the kernel tensor, not of the convolution's Toeplitz matrix. Each input pixel
  meets up to k_h·k_w kernel taps, so a value can exceed 1 (by at most √(k_h·k_w) for stride 1);
  values compare between models of one architecture, as Fig. 4c and Appendix E use them.
- Examples whose layer input is all zero (0/0) are left out of that layer's statistics.

Every layer is measured on the training set (`--n`: a stratified subset of n training images),
and so is a randomly initialized network of the same architecture as the reference (built as
training builds it, so `--seed` = the checkpoint's training seed reproduces its initialization).

Rows (experiment `cushion`, tap = the layer's module path, param `random-init` for the
reference network): `cushion_min` (Arora's μ_i), `cushion_q10`, `cushion_q50`, `cushion_q90`;
n = examples counted. Per-layer histograms go to `figures/cushion_*.png`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from robustbench_lr.analysis.base import Analysis, AnalysisOptions
from robustbench_lr.analysis.plotting import figure_stem, save_figure
from robustbench_lr.checkpoints import build_from_meta
from robustbench_lr.data import stratified_subset
from robustbench_lr.devices import model_device
from robustbench_lr.experiments import Outcome
from robustbench_lr.methods.weights import weight_layers
from robustbench_lr.target import Target

QUANTILES = {"cushion_q10": 0.1, "cushion_q50": 0.5, "cushion_q90": 0.9}
RANDOM_INIT = "random-init"  # the `param` of the reference network's rows
BATCH = 256  # examples per forward pass while the hooks record


def layer_cushions(model: nn.Module, x: torch.Tensor) -> dict[str, np.ndarray]:
    """Per layer (module path -> array over examples) the ratio ‖Wφ‖ / (‖W‖_F ‖φ‖), in float64.

    Forward hooks read each layer's real input and output in eval mode, so the numbers hold for
    any architecture built from Conv2d / Linear modules without re-implementing its forward.
    """
    layers = dict(weight_layers(model))
    if not layers:
        raise ValueError("the model has no Conv2d or Linear layer to measure")
    found: dict[str, list[torch.Tensor]] = {name: [] for name in layers}

    def hook_for(name: str):
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            out = output
            if module.bias is not None:
                out = out - module.bias.view(1, -1, *([1] * (output.dim() - 2)))
            out_norm = out.flatten(1).double().norm(dim=1)
            in_norm = inputs[0].flatten(1).double().norm(dim=1)
            found[name].append((out_norm / (module.weight.double().norm() * in_norm)).cpu())

        return hook

    handles = [module.register_forward_hook(hook_for(name)) for name, module in layers.items()]
    was_training = model.training
    model.eval()
    device = model_device(model)
    try:
        with torch.no_grad():
            for start in range(0, len(x), BATCH):
                model(x[start : start + BATCH].to(device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return {name: torch.cat(values).numpy() for name, values in found.items()}


def cushion_summary(values: np.ndarray) -> tuple[dict[str, float], int]:
    """Arora's μ (the minimum) and the 10/50/90% quantiles over the finite values, and their count."""
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return dict.fromkeys(["cushion_min", *QUANTILES], math.nan), 0
    stats = {"cushion_min": float(finite.min())}
    stats.update({k: float(np.quantile(finite, q)) for k, q in QUANTILES.items()})
    return stats, len(finite)


def random_init_model(meta: dict, seed: int, device: torch.device) -> nn.Module:
    """The checkpoint's architecture, randomly initialized from `seed` (the global generator's
    state is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_from_meta(meta)
    return model.to(device).eval()


def cushion_rows(values: dict[str, np.ndarray], base: dict, param: str = "") -> list[dict]:
    rows = []
    for layer, per_example in values.items():
        stats, n = cushion_summary(per_example)
        rows += [
            {**base, "tap": layer, "param": param, "metric": metric, "value": value, "n": n}
            for metric, value in stats.items()
        ]
    return rows


def run_cushion(target: Target, options: AnalysisOptions) -> Outcome:
    """Appendix E: layer cushions of the trained network and of a random-init reference."""
    model, meta, data = target.model, target.meta, target.data
    x = data.x_train
    if options.n is not None:
        x = x[stratified_subset(data.y_train, options.n, options.seed)]
    trained = layer_cushions(model, x)
    reference = layer_cushions(random_init_model(meta, options.seed, model_device(model)), x)
    base = {**target.columns, "experiment": "cushion"}
    rows = cushion_rows(trained, base) + cushion_rows(reference, base, RANDOM_INIT)
    last = list(trained)[-1]
    lines = [
        f"{target.checkpoint}: {len(trained)} layers on {len(x)} training images; "
        f"last layer {last} median cushion {cushion_summary(trained[last])[0]['cushion_q50']:.3f} "
        f"(random init {cushion_summary(reference[last])[0]['cushion_q50']:.3f})"
    ]
    png = plot_histograms(options.results, meta["config"], trained, reference)
    return Outcome(rows, lines, [png])


def plot_histograms(
    out: Path, cfg: dict, trained: dict[str, np.ndarray], reference: dict[str, np.ndarray]
) -> Path:
    """Fig. 4c / Figs. 12-15: one histogram panel per layer, trained vs random init."""
    names = list(trained)
    cols = min(5, len(names))
    rows = math.ceil(len(names) / cols)
    fig = Figure(figsize=(3.0 * cols, 2.2 * rows))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, name in zip(axes, names, strict=False):
        for label, values in (("trained", trained[name]), ("random init", reference[name])):
            finite = values[np.isfinite(values)]
            ax.hist(finite, bins=30, alpha=0.6, label=label)
        ax.set_title(name.removeprefix("stages."), fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize=6)
    fig.suptitle(f"layer cushion: {cfg['method']} {cfg['arch']} on {cfg['dataset']}", fontsize=9)
    return save_figure(fig, out, figure_stem("cushion", cfg))


CUSHION = Analysis(
    name="cushion",
    summary="layer cushion per conv/linear layer on training images vs a random-init network, Fig. 4c",
    run=run_cushion,
    suite_models_only=True,
    needs_train=True,
)
