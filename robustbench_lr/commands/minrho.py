"""`robustbench-lr minrho`: minimum perturbation for >99% misclassification (Tables 3 and 10;
the rows of `experiments.minrho`, which documents them)."""

from __future__ import annotations

import argparse

from robustbench_lr.attacks.search import SEARCHES, SearchSettings
from robustbench_lr.commands.common import Flag, add_flags, settings_flags
from robustbench_lr.commands.evalflags import add_eval_flags, load_target_from, record
from robustbench_lr.config import from_fields
from robustbench_lr.experiments.minrho import MinRho, run_search
from robustbench_lr.profiles.schema import SEARCH_KEYS

HELP = "minimum perturbation for >99% misclassification: eps and rho per attack (Tables 3, 10)"
ATTACK_CHOICES = tuple(SEARCHES.names())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    searched = f"attack(s), comma-separated: {', '.join(ATTACK_CHOICES)} (default: all)"
    knobs = (*SEARCH_KEYS, "per_sample", "backend")
    attack = Flag("--attack", searched, None, "ifsgm,ill,deepfool")
    add_flags(parser, [attack, *settings_flags(SearchSettings, knobs)])
    add_eval_flags(parser, batch_default=SearchSettings.batch_size)


def run(args: argparse.Namespace) -> int:
    names = tuple(n.strip() for n in args.attack.split(",") if n.strip())
    search = MinRho(names, from_fields(SearchSettings, vars(args)))
    outcome = run_search(load_target_from(args), search)
    # A re-run's bisection may visit other ε than the last one did: replace the whole trace.
    return record(outcome, args.out, trace=("eps",))
