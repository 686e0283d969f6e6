"""The names `import robustbench_lr` offers, each imported on first use.

The CLI starts with `import robustbench_lr`; the API pulls in torch, the attacks and pandas.
So the package resolves `robustbench_lr.benchmark` and the others through a module-level
`__getattr__` (PEP 562): the first use imports the API, the CLI never does.

Two API functions share their name with a submodule: `train` (robustbench_lr/train.py) and
`audit` (robustbench_lr/audit/). Putting the function in the package's namespace would hide
the module from `import robustbench_lr.audit.checkpoint as c`, `mock.patch("robustbench_lr.
train.x")` and every other dotted lookup, silently once the API had been touched. So the
attribute stays the module, and the module becomes callable: calling it calls the API
function (`CallableModule`), whose signature `inspect.signature` and notebooks show.
"""

from __future__ import annotations

import importlib
import inspect
import types
from typing import Any

# Public name -> the module that defines it.
EXPORTS = {
    "benchmark": "robustbench_lr.api.benchmark",
    "BenchmarkResult": "robustbench_lr.api.result",
    "attack": "robustbench_lr.api.experiments",
    "AttackResult": "robustbench_lr.api.experiments",
    "audit": "robustbench_lr.api.experiments",
    "analyze": "robustbench_lr.api.experiments",
    "shift": "robustbench_lr.api.experiments",
    "train": "robustbench_lr.api.training",
    "load": "robustbench_lr.api.training",
    "Checkpoint": "robustbench_lr.api.training",
}
# API functions named like a submodule of the package: the attribute is the callable module.
SUBMODULE_NAMES = ("train", "audit")


def api_value(name: str) -> Any:
    """The public object `name`, importing its module."""
    return getattr(importlib.import_module(EXPORTS[name]), name)


class CallableModule(types.ModuleType):
    """A submodule that is also the API function of its name: `robustbench_lr.train(...)`."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return api_value(self.__name__.rpartition(".")[2])(*args, **kwargs)

    @property
    def __signature__(self) -> inspect.Signature:
        return inspect.signature(api_value(self.__name__.rpartition(".")[2]))


class Package(types.ModuleType):
    """The package's own module type: hands out its two named submodules callable."""

    def __getattribute__(self, name: str) -> Any:
        value = super().__getattribute__(name)
        if name in SUBMODULE_NAMES and type(value) is types.ModuleType:
            value.__class__ = CallableModule
        return value


def lookup(package: types.ModuleType, name: str) -> Any:
    """The package's `__getattr__`: an API name, imported now and kept; else AttributeError."""
    if name in SUBMODULE_NAMES:
        return importlib.import_module(f"{package.__name__}.{name}")
    if name in EXPORTS:
        value = api_value(name)
        setattr(package, name, value)
        return value
    raise AttributeError(f"module {package.__name__!r} has no attribute {name!r}")
