"""Every setting has one default, whichever face reaches it: the settings declaration, the
command's flag, the profile's key and the API's keyword.

A setting whose default differed by path (the noise draws were 1 in a profile, 5 on the
command line) gives two numbers for one experiment; these tests walk every field of every
settings declaration through each face that offers it and compare the values.
"""

from __future__ import annotations

import inspect
from dataclasses import fields
from typing import Any

import pytest

import robustbench_lr as rb
from robustbench_lr import cli
from robustbench_lr.analysis import AnalysisOptions
from robustbench_lr.attacks.search import SearchSettings
from robustbench_lr.audit import AuditOptions
from robustbench_lr.commands import attack as attack_command
from robustbench_lr.commands import audit as audit_command
from robustbench_lr.commands import corruptions as corruptions_command
from robustbench_lr.config import TrainConfig, from_fields
from robustbench_lr.experiments.attack import Sweep
from robustbench_lr.experiments.corruption import CorruptionSettings
from robustbench_lr.profiles import AUDIT_OPTIONS, parse_profile
from robustbench_lr.target import DEFAULT_N

MODEL = ["--checkpoint", "x"]
PROFILE = {"name": "p", "models": [{"arch": "resnet18", "methods": ["nlr"], "seeds": [0, 1]}]}


def _cli(*argv: str) -> dict[str, Any]:
    return vars(cli.parse(list(argv)))


def _declared(cls: type) -> dict[str, Any]:
    """Every field of a settings declaration with its default value."""
    return {f.name: getattr(cls(), f.name) for f in fields(cls)}


def _api(function: Any) -> dict[str, Any]:
    """The API function's keyword defaults."""
    parameters = inspect.signature(function).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def _disagreements(declared: dict[str, Any], face: dict[str, Any], skip=()) -> dict[str, Any]:
    """Fields the face offers under the declaration's name with another default."""
    return {
        name: (value, face[name])
        for name, value in declared.items()
        if name in face and name not in skip and face[name] != value
    }


def test_the_train_command_the_api_and_a_profile_train_the_declared_config():
    declared = _declared(TrainConfig)
    assert not _disagreements(declared, _cli("train"))
    assert not _disagreements(declared, _api(rb.train))
    # A profile sets arch, methods and seeds per group; every other field is left to the declaration.
    for config in parse_profile(PROFILE, "test").models:
        assert not _disagreements(declared, vars(config), skip=("arch", "method", "seed"))


def test_the_audit_command_the_api_and_a_profile_audit_with_the_declared_options():
    declared = _declared(AuditOptions)
    assert audit_command.options_from(cli.parse(["audit", *MODEL])) == AuditOptions()
    api = _api(rb.audit)
    assert api["eps"] is None and declared["eps"] is None  # both: the dataset's own ε
    assert not _disagreements(declared, api)
    # The bench audits with the profile's n and the attack grid's Square queries; a profile
    # that sets neither gives the declared ones.
    profile = parse_profile({**PROFILE, "audit": {"enabled": True}}, "test")
    assert profile.audit_n == declared["n"]
    assert profile.attacks.square_queries == declared["queries"]
    assert profile.audit_options == {}


def test_an_attack_sweep_has_one_default_on_every_path():
    declared = _declared_sweep()
    for name in ("ifsgm", "noise", "deepfool"):
        from_flags = attack_command.sweep_from(
            name, cli.parse(["attack", "--attack", name, *MODEL])
        )
        assert from_flags.settings() == Sweep(name).settings(), name
        assert (from_flags.draws, from_flags.batch_size) == (
            declared["draws"],
            declared["batch_size"],
        )
    assert parse_profile(PROFILE, "test").attacks.noise_draws == declared["draws"]
    for function in (rb.attack, rb.benchmark):
        assert _api(function)["batch_size"] == declared["batch_size"], function.__name__


def _declared_sweep() -> dict[str, Any]:
    sweep = Sweep("ifsgm")
    return {f.name: getattr(sweep, f.name) for f in fields(Sweep) if f.name != "attack"}


def test_the_minrho_command_and_a_profile_search_with_the_declared_settings():
    args = cli.parse(["minrho", *MODEL])
    assert from_fields(SearchSettings, vars(args)) == SearchSettings()
    profile = parse_profile(PROFILE, "test")
    assert from_fields(SearchSettings, profile.attacks.minrho_options) == SearchSettings()


def test_the_analyze_command_and_the_api_analyze_with_the_declared_options():
    declared = _declared(AnalysisOptions)
    assert not _disagreements(declared, _cli("analyze", "rank", *MODEL), skip=("device",))
    assert not _disagreements(declared, _api(rb.analyze), skip=("device",))


def test_the_corruption_command_and_a_profile_use_the_declared_settings():
    declared = _declared(CorruptionSettings)
    args = cli.parse(["corruptions", *MODEL])
    assert corruptions_command.settings_from(args) == CorruptionSettings()
    grid = parse_profile({**PROFILE, "corruptions": {"enabled": True}}, "test").corruptions
    assert (grid.source, grid.seed) == (declared["source"], declared["seed"])
    assert grid.corruptions == () and grid.severities == ()  # empty: all of them


def test_the_subset_size_and_seed_are_one_default_on_every_path():
    for argv in (["attack", "--attack", "ifsgm"], ["minrho"], ["corruptions"], ["shift"]):
        args = _cli(*argv, *MODEL)
        assert (args["n"], args["seed"]) == (DEFAULT_N, 0), argv[0]
    for function in (rb.benchmark, rb.shift):
        assert (_api(function)["n"], _api(function)["seed"]) == (DEFAULT_N, 0), function.__name__
    assert parse_profile(PROFILE, "test").n == DEFAULT_N


def test_the_shift_command_and_the_api_score_in_the_same_batches():
    from robustbench_lr.experiments.shift import ShiftSettings

    assert _cli("shift", *MODEL)["batch_size"] == _api(ShiftSettings)["batch_size"]


@pytest.mark.parametrize("command", ["attack", "minrho", "audit", "corruptions", "shift"])
def test_every_evaluating_command_has_the_results_file_of_the_others(command):
    extra = ["--attack", "ifsgm"] if command == "attack" else []
    assert _cli(command, *extra, *MODEL)["out"] == _cli("analyze", "rank", *MODEL)["out"]


def _accepts(parse: Any, *args: Any) -> bool:
    try:
        parse(*args)
    except (SystemExit, ValueError):
        return False
    return True


@pytest.mark.parametrize("name", AUDIT_OPTIONS)
def test_an_audit_budget_flag_and_its_profile_key_accept_the_same_values(name):
    flag = "--" + name.replace("_", "-")
    for value in (-1, 0, 1, 7, 2.5):
        by_flag = _accepts(cli.parse, ["audit", *MODEL, flag, str(value)])
        by_key = _accepts(parse_profile, {**PROFILE, "audit": {name: value}}, "test")
        assert by_flag == by_key, (name, value, by_flag)
