"""scikit-learn's 8x8 digits: the offline default dataset (shipped with scikit-learn)."""

from __future__ import annotations

import math

import numpy as np
import torch

from robustbench_lr.data.base import Data, DatasetSpec, LoadOptions, _channel_stats
from robustbench_lr.data.digests import _array_digest


def load_digits(options: LoadOptions) -> Data:
    """scikit-learn's 8x8 digits (ships with the package): the offline default.

    Values 0..16 are scaled to [0, 1]; a fixed stratified 75/25 split (random_state=0).
    """
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None, :, :]
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, stratify=y, random_state=0)
    x_train = torch.from_numpy(x_tr)
    mean, std = _channel_stats(x_train)
    spec = DatasetSpec("digits", 1, 8, 10, mean, std, augment=False)
    return Data(
        spec,
        x_train,
        torch.from_numpy(y_tr),
        torch.from_numpy(x_te),
        torch.from_numpy(y_te),
        _array_digest(bunch.images, bunch.target),
    )


# Digits images are nearly binary with wide margins: an N-LR digits ResNet18 keeps ~90% under
# IFSGM at 8/255, where every attack fails on the same examples and the audit's checks compare
# nothing. At 32/255 it is partly robust (IFSGM-20 ~17%, FGSM ~33%): the attacks disagree and
# the checks have something to measure.
# L2: CIFAR's 0.5 scaled by sqrt(64 / 3072) pixels and by digits' 4x larger L-inf budget (32/255).
DIGITS_AUDIT_EPS = 32 / 255
DIGITS_L2_EPS = 0.5 * math.sqrt(64 / 3072) * 4
