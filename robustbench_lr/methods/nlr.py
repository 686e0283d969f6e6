"""N-LR: plain training, the paper's baseline (no regularizer, every hook a no-op)."""

from robustbench_lr.methods.base import Method

NLR = Method(
    name="nlr",
    summary="plain training without any low-rank regularizer (the paper's N-LR)",
    family="baseline",
)
