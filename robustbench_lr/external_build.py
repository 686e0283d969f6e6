"""An external model from its spec: the user's `MODULE:FACTORY` (`external.py`) or a RobustBench
zoo entry (`zoo.py`), as the `ExternalTarget` every evaluation reads.

Its own module so that `zoo` can build on `external`'s spec and checks without `external`
importing `zoo` back.
"""

from __future__ import annotations

from pathlib import Path

import torch

from robustbench_lr import zoo
from robustbench_lr.data import LoadOptions
from robustbench_lr.external import (
    ExternalTarget,
    ExternalTargetSpec,
    TappedModel,
    build_network,
    load_weights,
    read_weights,
    weights_digest,
)
from robustbench_lr.target import DEFAULT_N, Target, load_target


def resolve(spec: ExternalTargetSpec) -> ExternalTarget:
    """Build the model `spec` names and load its weights (on the CPU, eval mode)."""
    if spec.robustbench:
        net = zoo.build(spec)
        details = zoo.model_info(spec.robustbench, spec.dataset, spec.threat, spec.model_dir)
    else:
        net = build_network(spec.factory)
        if spec.weights:
            load_weights(net, read_weights(spec.weights), f"weights file {spec.weights}")
        details = {"name": spec.label, "factory": spec.factory, "weights": spec.weights}
    model = TappedModel(net.cpu()).eval()
    digest = weights_digest(net)
    # The `arch` column: what the network is (its class), not what its factory is called.
    return ExternalTarget(spec, model, digest, type(net).__name__, {**details, "digest": digest})


def load_external_target(
    spec: ExternalTargetSpec,
    n: int | None = DEFAULT_N,
    seed: int = 0,
    device: torch.device | str = "cpu",
    *,
    options: LoadOptions | None = None,
    source: str | Path | None = None,
    train: bool = False,
) -> Target:
    """The `Target` of an external model: `load_target`'s subset, source and checks."""
    return load_target(
        resolve(spec), n=n, seed=seed, source=source, device=device, options=options, train=train
    )
