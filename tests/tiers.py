"""Which tests the quick tier (`make test`) leaves to the full suite (`make test-all`).

The quick tier is what a newcomer waits for: at most 4 minutes on 2 cores, still at least one
behavioural test of every module and mechanism. The tests named here are the slow ones
(measured with `pytest --durations=0`) whose mechanism a quicker test also covers; each entry
says which. `make test-all` and `.ci/run` run everything.
"""

from __future__ import annotations

# node id prefix -> the quick test that covers the same mechanism
SLOW: dict[str, str] = {}


def is_slow(nodeid: str) -> bool:
    return any(nodeid.startswith(prefix) for prefix in SLOW)
