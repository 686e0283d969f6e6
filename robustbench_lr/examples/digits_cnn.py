"""A user's own digits model: a small CNN trained by a plain PyTorch loop, outside the suite.

The `cpu` profile puts it on the leaderboard through `[[models]] external = { factory =
"robustbench_lr.examples.digits_cnn:build", weights = "../examples/digits_cnn.safetensors" }`,
the path a user takes with their own network: a factory returning an `nn.Module` that takes
images in [0, 1] and returns logits (its normalization is its own), and a weights file.

    python -m robustbench_lr.examples.digits_cnn [--out FILE] [--epochs N]

trains it again. It trains on the suite's digits *training* split (`data.load("digits")`), so
the test images the bench attacks stay unseen, with Adam and a fixed seed: a different recipe
from the suite's SGD schedule on purpose, as a user's model would have.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from robustbench_lr.data import Data, load
from robustbench_lr.evaluation import accuracy

WEIGHTS = Path(__file__).with_name("digits_cnn.safetensors")
EPOCHS = 30
BATCH = 64
SEED = 0


class DigitsCNN(nn.Module):
    """conv(16) -> conv(32) -> pool -> FC(64) -> FC(10) on 1 x 8 x 8 digits in [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(0.5))
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, 64),
            nn.ReLU(),
        )
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features((x - self.mean) / 0.5))


def build() -> nn.Module:
    """The factory the profile names: the architecture, untrained (weights come from the file)."""
    return DigitsCNN()


def train(data: Data, epochs: int = EPOCHS, seed: int = SEED) -> nn.Module:
    """The user's recipe: Adam 1e-3, batch 64, `epochs` passes over the training split."""
    torch.manual_seed(seed)
    net = DigitsCNN()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    order = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(data.y_train), generator=order).split(BATCH):
            loss = nn.functional.cross_entropy(net(data.x_train[idx]), data.y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return net.eval()


def save(net: nn.Module, path: Path) -> None:
    """The weights as safetensors, written to a temporary name and renamed."""
    from safetensors.torch import save_file

    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp))
    tmp.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=WEIGHTS, help=f"default: {WEIGHTS}")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help=f"default: {EPOCHS}")
    args = parser.parse_args()
    data = load("digits")
    net = train(data, args.epochs)
    save(net, args.out)
    # This module's command-line entry point: it reports what it wrote, as the CLI does.
    print(f"{args.out}: clean test accuracy {accuracy(net, data.x_test, data.y_test):.2f}%")


if __name__ == "__main__":
    main()
