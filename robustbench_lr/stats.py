"""Confidence intervals for the accuracies the suite reports, and digits to show numbers with.

An accuracy on n test examples is a binomial proportion: on the 450-example digits test split
one example is 0.22 points, so two models 0.5 points apart may not differ at all. Every table,
the leaderboard and the regression gate therefore carry the 95 % Wilson score interval
(Wilson 1927), which, unlike the normal approximation p ± z·sqrt(p(1-p)/n), stays inside
[0, 100] and is not a zero-width interval at 0 % or 100 % — exactly where robust accuracies
under strong attacks and clean accuracies on easy data sit.

The formula is a few lines, so it is written out here rather than imported: scipy is in the
venv, but its Wilson interval (`scipy.stats.binomtest(k, n).proportion_ci("wilson")`) builds a
hypothesis test around every cell of every table, and the rows here hold a percentage and `n`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z95 = 1.96
PERCENT = 100.0
# Accuracies the results file stores as a fraction of `n` rather than in percent: the hybrid
# max-margin classifier's accuracy on the adversarial examples that fooled the network.
FRACTION_METRICS = frozenset({"maxmargin_acc"})


def accuracy_scale(metric: str) -> float | None:
    """100 for an accuracy in percent of `n`, 1 for one stored as a fraction, None otherwise.

    Accuracies are the metrics named `*acc*` (`acc`, `clean_acc`, `worst_case_acc`, ...): a
    count of correct examples out of `n`. ρ, ε, ranks and checks are not proportions.
    """
    name = metric.lower()
    if name in FRACTION_METRICS:
        return 1.0
    return PERCENT if "acc" in name else None


def wilson_interval(successes: int, n: int) -> tuple[float, float]:
    """The Wilson score interval of `successes` out of `n`, in percent; (nan, nan) if n = 0."""
    if n <= 0:
        return (math.nan, math.nan)
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in [0, n={n}], got {successes}")
    p = successes / n
    z2 = Z95 * Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # At p = 0 the lower bound is 0 and at p = 1 the upper bound is 1, exactly; computed, they
    # carry rounding crumbs (1 - 1e-16), and a 100 % baseline would then lie above a 100 % run's
    # interval: the gate would call an unchanged number a drop.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return (100 * low, 100 * high)


def successes_of(value: float, n: int, scale: float = PERCENT) -> int:
    """The count of correct examples behind an accuracy (`value` out of `scale`) on `n`.

    Accuracies are stored as float32 means (97.77777791 % of 450), so the count is rounded.
    """
    return min(n, max(0, round(value * n / scale)))


def accuracy_interval(value: float, n: int, scale: float = PERCENT) -> tuple[float, float]:
    """The Wilson interval of an accuracy given as `value` out of `scale` on `n` examples,
    on the same scale; (nan, nan) without examples or without a value."""
    if n <= 0 or not math.isfinite(value):
        return (math.nan, math.nan)
    lo, hi = wilson_interval(successes_of(value, n, scale), n)
    return (lo * scale / PERCENT, hi * scale / PERCENT)


@dataclass(frozen=True)
class SeedSummary:
    """An accuracy over several seeds: the pooled examples' interval and the seed spread.

    The pooled interval treats every seed's examples as draws of one model family, so it
    measures test-set noise; the spread (min, max, std over seeds) measures training noise,
    which the pooled interval does not see. Both are reported because either can dominate.
    """

    mean: float
    lo: float
    hi: float
    n: int
    seeds: int
    min: float
    max: float
    std: float


def pooled_accuracy(
    values: Sequence[float], ns: Sequence[int], scale: float = PERCENT
) -> SeedSummary:
    """Pool per-seed accuracies (`values` out of `scale`, on `ns` examples) into a summary.

    `mean` is the plain mean over seeds (what the tables always showed); the interval is that
    of all seeds' correct examples over all their examples; `std` is the sample standard
    deviation over seeds (0 for one seed). Seeds without a value are left out.
    """
    if len(values) != len(ns):
        raise ValueError(f"{len(values)} accuracies but {len(ns)} example counts")
    pairs = [(float(v), int(k)) for v, k in zip(values, ns, strict=True) if math.isfinite(v)]
    if not pairs:
        return SeedSummary(math.nan, math.nan, math.nan, 0, 0, math.nan, math.nan, math.nan)
    kept = [v for v, _ in pairs]
    total = sum(k for _, k in pairs)
    correct = sum(successes_of(v, k, scale) for v, k in pairs)
    lo, hi = (bound * scale / PERCENT for bound in wilson_interval(correct, total))
    mean = sum(kept) / len(kept)
    spread = sum((v - mean) ** 2 for v in kept) / (len(kept) - 1) if len(kept) > 1 else 0.0
    return SeedSummary(mean, lo, hi, total, len(kept), min(kept), max(kept), math.sqrt(spread))


def decimals(value: float, places: int = 2, digits: int = 2) -> int:
    """Decimal places to show `value` with: `places`, or more when that leaves fewer than
    `digits` significant digits (DeepFool's ρ ≈ 0.003 would print as 0.00 with two).

    The digits are counted on the value as it will print: an accuracy of 2/200 scored in
    float32 is 0.99999998 %, which prints as 1.0 with one place, not as 1.00."""
    if not math.isfinite(value) or value == 0:
        return places
    if places + _exponent(value, places) + 1 >= digits:
        return places
    more = digits - 1 - _exponent(value, None)
    return digits - 1 - _exponent(value, more)


def _exponent(value: float, places: int | None) -> int:
    """The decimal exponent of `value` rounded to `places` (unrounded for None, or where the
    rounding leaves 0)."""
    rounded = abs(value if places is None else round(value, places))
    return math.floor(math.log10(rounded or abs(value)))


def number_text(value: float, places: int = 2, digits: int = 2) -> str:
    """`value` with `decimals(value, places, digits)` decimal places ('' for NaN)."""
    if math.isnan(value):
        return ""
    return f"{value:.{decimals(value, places, digits)}f}"


def interval_text(lo: float, hi: float, places: int = 1) -> str:
    """An interval as `[lo, hi]` with `places` decimals ('' when there is none)."""
    if math.isnan(lo) or math.isnan(hi):
        return ""
    return f"[{lo:.{places}f}, {hi:.{places}f}]"


def estimate_text(
    mean: float, std: float, count: int, places: int, lo: float = math.nan, hi: float = math.nan
) -> str:
    """`mean ± std [lo, hi]`, the one cell format of the tables and the leaderboard.

    `± std` is the seed spread (shown for several seeds), `[lo, hi]` the 95 % interval (shown
    for accuracies); small numbers keep two significant digits (`decimals`). NaN is "—":
    computed but undefined, e.g. a search that never reached its target.
    """
    if math.isnan(mean):
        return "—"
    shown = decimals(mean, places)
    text = f"{mean:.{shown}f}"
    if count > 1 and not math.isnan(std):
        text += f" ± {std:.{shown}f}"
    interval = interval_text(lo, hi, places)
    return f"{text} {interval}" if interval else text
