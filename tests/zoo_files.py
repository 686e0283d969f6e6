"""Files in real on-disk formats for the tests of external models: a CIFAR-10 in torchvision's
layout and a RobustBench model folder, both written offline from random bytes."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import torch

ZOO_NAME = "Wong2020Fast"  # CIFAR-10 Linf, a PreActResNet-18: the zoo's cheapest architecture


def write_cifar10(root: Path, labels: list[int], images: np.ndarray) -> None:
    """A CIFAR-10 in torchvision's layout: 5 training batches of 2 images, one test batch."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(1, 6):
        batch = {"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), "labels": [0, 1]}
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch))
    (folder / "test_batch").write_bytes(pickle.dumps({"data": images, "labels": labels}))


def write_zoo(root: Path, seed: int = 0) -> tuple[Path, torch.nn.Module]:
    """RobustBench's layout, `root/models/cifar10/Linf/<name>.pt`, holding the zoo architecture
    with random weights, and the RobustBench model_info record beside it; returns the model
    folder and the network."""
    from robustbench_lr import zoo

    rb = zoo._robustbench()
    torch.manual_seed(seed)
    net = rb.models[rb.dataset("cifar10")][rb.threat("Linf")][ZOO_NAME]["model"]().eval()
    (root / "models" / "cifar10" / "Linf").mkdir(parents=True)
    torch.save(net.state_dict(), root / "models" / "cifar10" / "Linf" / f"{ZOO_NAME}.pt")
    info = root / "model_info" / "cifar10" / "Linf" / f"{ZOO_NAME}.json"
    info.parent.mkdir(parents=True)
    record = {"name": "Fast is better than free", "clean_acc": "83.34", "autoattack_acc": "43.21"}
    info.write_text(json.dumps({**record, "architecture": "PreActResNet-18", "external": ""}))
    return root / "models", net
