"""robustbench-lr: reproduce and benchmark "Robustness via deep low-rank representations"."""

from robustbench_lr import numerics

# Before anything computes: pin the CPU code paths (numerics.py says why and how to opt out).
numerics.apply()

__version__ = "0.1.0"

# The Python API (README, "Python API"): imported on first use, so the CLI's start stays cheap.
import sys as _sys  # noqa: E402

from robustbench_lr.api import exports as _exports  # noqa: E402
from robustbench_lr.errors import InvalidArgument, RobustbenchLRError  # noqa: E402

__all__ = ["InvalidArgument", "RobustbenchLRError", "__version__", *_exports.EXPORTS]


def __getattr__(name: str):
    return _exports.lookup(_sys.modules[__name__], name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


_sys.modules[__name__].__class__ = _exports.Package
