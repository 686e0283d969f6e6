"""How many function-to-function hops one Table 1 number travels, measured instead of counted.

Runs `robustbench-lr bench` on a one-model profile (digits, ResNet18 N-LR, one IFSGM setting,
two epochs; about ten seconds) under `sys.setprofile`, keeps only the package's own frames and
prints, for each station of the number's path, the first call chain that reached it from
`cli.main`, then the size of the union of those chains (distinct caller→callee edges).

The rule, so that two versions of the code are measured alike:
- a hop is a call from a package function to a package function; a library in between (a
  pydantic validator, a module's `forward` through `nn.Module.__call__`) makes it one hop;
- comprehensions, lambdas and module bodies are transparent (they are not functions a reader
  follows);
- a station is a chain of names, each matched as the end of a qualified name (whole dotted
  parts), `a>b` meaning `b` called by `a` and `a>>b` meaning `b` called somewhere below `a`;
  the chain to a station is the first stack in which it was entered.

Two station sets ship. `spine`: the stations the number itself passes (the profile read, its
planning, the target's loading, the attack, the robust/fooled decision, the row, the shard, the
merge and the table's file). `branches`: the spine plus the side branches a reader follows to
see where a part of the number comes from (the profile's registry-name checks, the model's
construction and forward pass, the row's numerics fingerprint, the table's paper columns).
Another version of the code names its functions differently: pass its stations with
`--station` (repeatable) and its checkout with `--repo`.

Written by hand because no profiler reports call chains to chosen functions; `sys.setprofile`
sees every Python call, which is what a reader following the code sees.

    python benchmarks/hops.py                  # this checkout, both station sets
    python benchmarks/hops.py --repo /tmp/old --station profiles.parse_profile ...
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROFILE = """
name = "hops"
description = "one model, one attack: the path of one Table 1 number"
dataset = "digits"
epochs = 2
n = 40
[[models]]
arch = "resnet18"
width = 0.25
methods = ["nlr"]
[attacks]
ifsgm_eps = ["16/255"]
ifsgm_steps = [3]
blackbox = false
noise_p = [0.5]
[analyses]
kinds = []
"""

SPINE = (
    "loading.parse_profile",
    "stages.plan_attacks",
    "target.load_target",
    "checkpoints.load_model",
    "attacks.run_attack",
    "base.robust_flags",
    "run._execute>results.make_row",
    "run._execute>results.write>files.atomic_write",
    "run._merge>results.write>files.atomic_write",
    "engine.render>files.atomic_write",
)
BRANCHES = SPINE + (
    "rules.check_name>registry.Registry.__iter__",
    "load_target>>resnet.BasicBlock.__init__>resnet._shortcut",
    "evaluate_attack>>resnet.BasicBlock.forward",
    "run_setting>>numerics.fingerprint>numerics.mode",
    "paper.counterparts>paper._key",
)
STATION_SETS = {"spine": SPINE, "branches": BRANCHES}

TRANSPARENT = re.compile(r"<(listcomp|dictcomp|setcomp|genexpr|lambda|module)>")


class CallStacks:
    """Every distinct package-only call stack, as tuples of qualified names."""

    def __init__(self, package: Path) -> None:
        self.prefix = str(package.resolve()) + os.sep
        self.frames: list[str | None] = []  # None: a frame outside the package
        self.seen: dict[tuple[str, ...], None] = {}  # insertion-ordered set

    def __call__(self, frame, event: str, _arg) -> None:
        if event == "call":
            code = frame.f_code
            if not code.co_filename.startswith(self.prefix):
                self.frames.append(None)
                return
            name = f"{frame.f_globals.get('__name__', '?')}.{code.co_qualname}"
            if TRANSPARENT.search(name):
                self.frames.append(None)
                return
            self.frames.append(name)
            stack = tuple(f for f in self.frames if f is not None)
            self.seen.setdefault(stack, None)
        elif event == "return" and self.frames:
            self.frames.pop()

    def first(self, station: str) -> tuple[str, ...] | None:
        """The first stack that ends at `station`'s last name and holds its chain."""
        for stack in self.seen:
            if _matches(stack, station):
                return stack
        return None


def _matches(stack: tuple[str, ...], station: str) -> bool:
    """`stack` ends with `station`'s chain: `>` its next frame, `>>` a later one."""
    names = re.split(r">>?", station)
    links = re.findall(r">>?", station)
    at = len(stack) - 1
    if at < 0 or not _named(stack[at], names[-1]):
        return False
    for name, link in zip(reversed(names[:-1]), reversed(links), strict=True):
        below = range(at - 1, at - 2, -1) if link == ">" else range(at - 1, -1, -1)
        at = next((i for i in below if i >= 0 and _named(stack[i], name)), -1)
        if at < 0:
            return False
    return True


def _named(frame: str, name: str) -> bool:
    """`name` is `frame`'s qualified name or its end, in whole dotted parts."""
    return frame == name or frame.endswith("." + name)


def trace(repo: Path, work: Path) -> CallStacks:
    """The bench on `PROFILE` in `work`, with the package imported from `repo`."""
    sys.path.insert(0, str(repo))
    from robustbench_lr import cli  # from `repo`, hence after the path is set

    if not Path(cli.__file__).resolve().is_relative_to(repo.resolve()):
        raise SystemExit(f"robustbench_lr was imported from {cli.__file__}, not from {repo}")
    (work / "hops.toml").write_text(PROFILE)
    stacks = CallStacks(repo / "robustbench_lr")
    argv = ["bench", "--profile", "hops.toml", "--out", "out", "--checkpoints", "ck"]
    cwd = Path.cwd()
    os.chdir(work)
    sys.setprofile(stacks)
    try:
        code = cli.main([*argv, "--no-progress"])
    finally:
        sys.setprofile(None)
        os.chdir(cwd)
        sys.path.remove(str(repo))
    if code:
        raise SystemExit(f"the traced bench exited {code}")
    return stacks


def measure(stacks: CallStacks, stations: tuple[str, ...]) -> tuple[int, list[str]]:
    """Hops in the union of the chains to `stations`, and one line per station."""
    edges: set[tuple[str, str]] = set()
    lines = []
    for station in stations:
        stack = stacks.first(station)
        if stack is None:
            raise SystemExit(f"station {station!r} was never reached: is it this code's name?")
        edges |= set(itertools.pairwise(stack))
        short = " → ".join(frame.removeprefix("robustbench_lr.") for frame in stack)
        lines.append(f"{len(stack) - 1:>3}  {short}")
    return len(edges), lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=ROOT, help="checkout to measure")
    parser.add_argument("--station", action="append", help="a station (default: both sets)")
    args = parser.parse_args()
    sets = {"given": tuple(args.station)} if args.station else STATION_SETS
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    with tempfile.TemporaryDirectory() as work:
        stacks = trace(args.repo.resolve(), Path(work))
    for label, stations in sets.items():
        hops, lines = measure(stacks, stations)
        print(f"\n{label}: {hops} hops (union of the chains below; each line: its length)")
        print("\n".join(lines))


if __name__ == "__main__":
    main()
