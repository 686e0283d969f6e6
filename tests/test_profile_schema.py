"""The profile schema: every key known, every value checked, before any work starts.

A table of bad profiles (unknown keys at each level, wrong types, out-of-range values, string
booleans), each failing with a one-line error that names the key path; the shipped profiles
still load; and a property: any TOML-like table parses to a `Profile` or fails with a one-line
ValueError / UnknownNameError, never any other exception.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import re
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import tomllib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robustbench_lr.config import TrainConfig
from robustbench_lr.methods import METHODS, all_options
from robustbench_lr.profiles import (
    AttackGrid,
    MinrhoOptions,
    Profile,
    load_profile,
    parse_profile,
    shipped_profiles,
)
from robustbench_lr.registry import UnknownNameError

SOURCE = "test.toml"
# Two seeds: every model's black-box examples come from the N-LR model of the other seed.
BASE = {"name": "t", "models": [{"arch": "resnet18", "methods": ["nlr", "1lr"], "seeds": [0, 1]}]}


def _with(path: str, value: Any, raw: dict[str, Any] | None = None) -> dict[str, Any]:
    """A copy of `raw` (default BASE) with the dotted `path` set to `value` (digits: indices)."""
    raw = copy.deepcopy(BASE if raw is None else raw)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node = raw
    for part in parents:
        node = node[part] if isinstance(part, int) else node.setdefault(part, {})
    node[last] = value
    return raw


def _without(key: str) -> dict[str, Any]:
    return {k: v for k, v in BASE.items() if k != key}


def _assert_one_line(err: Exception, source: str = SOURCE) -> str:
    message = str(err)
    assert message.startswith(f"profile {source}: "), message
    assert len(message.splitlines()) == 1 and "\n" not in message, message
    return message


NAME = UnknownNameError
GROUPS_TWICE = {"name": "t", "models": [BASE["models"][0], {**BASE["models"][0], "lr": 0.2}]}

# (id, profile, error type, pattern searched in the message)
BAD = [
    # unknown keys at every level, with difflib's suggestion
    ("top", _with("epoch", 8), ValueError, r"unknown key 'epoch' at the top level; did you mean 'epochs'\?"),
    ("attacks", _with("attacks.ifsgm_epss", ["8/255"]), ValueError, r"unknown key 'ifsgm_epss' in \[attacks\]; did you mean 'ifsgm_eps'\?"),
    ("group", _with("models.0.widht", 0.5), ValueError, r"unknown key 'widht' in \[models\[0\]\]; did you mean 'width'\?"),
    ("group-option", _with("models.0.method_options.1lr.lr_rankk", "5"), ValueError, r"unknown option 'lr_rankk' in \[models\[0\]\.method_options\.1lr\]; did you mean 'lr_rank'\?"),
    ("option", _with("method_options.1lr.lr_everyy", 5), ValueError, r"unknown option 'lr_everyy' in \[method_options\.1lr\]; did you mean 'lr_every'\?"),
    ("option-of-none", _with("method_options.nlr.lr_rank", "5"), ValueError, r"unknown option 'lr_rank' in \[method_options\.nlr\]; valid choices: none$"),
    ("method", _with("method_options.nrl", {}), NAME, r"unknown method 'nrl' in \[method_options\]; did you mean 'nlr'\? valid choices: nlr, 1lr"),
    ("minrho-options", _with("attacks.minrho_options.max_step", 100), ValueError, r"unknown minrho option 'max_step' in \[attacks\.minrho_options\]; did you mean 'max_steps'\?"),
    ("minrho-only", _with("attacks.minrho_only.archs", ["resnet18"]), ValueError, r"unknown model field 'archs' in \[attacks\.minrho_only\]; did you mean 'arch'\?"),
    ("analyses", _with("analyses.kind", ["rank"]), ValueError, r"unknown key 'kind' in \[analyses\]; did you mean 'kinds'\?"),
    ("audit", _with("audit.enable", True), ValueError, r"unknown key 'enable' in \[audit\]; did you mean 'enabled'\?"),
    ("no-close-match", _with("attacks.zzzz", 1), ValueError, r"unknown key 'zzzz' in \[attacks\]; valid choices: ifsgm_eps, ifsgm_steps, "),
    ("newline-key", _with("a\nb", 1), ValueError, r"unknown key 'a\\nb' at the top level"),
    # string (and integer) booleans
    ("blackbox-str", _with("attacks.blackbox", "false"), ValueError, r"attacks\.blackbox = 'false' is not true or false"),
    ("curves-str", _with("attacks.curves", "true"), ValueError, r"attacks\.curves = 'true' is not true or false"),
    ("enabled-int", _with("audit.enabled", 1), ValueError, r"audit\.enabled = 1 is not true or false"),
    # counts: TOML integers >= 1 (seeds >= 0)
    ("epochs-0", _with("epochs", 0), ValueError, r"^profile test\.toml: epochs = 0 is not an integer >= 1$"),
    ("epochs-str", _with("epochs", "8"), ValueError, r"epochs = '8' is not an integer >= 1"),
    ("epochs-float", _with("models.0.epochs", 8.0), ValueError, r"models\[0\]\.epochs = 8\.0 is not an integer >= 1"),
    ("n", _with("n", -5), ValueError, r"n = -5 is not an integer >= 1"),
    ("minrho-n", _with("attacks.minrho_n", 0), ValueError, r"attacks\.minrho_n = 0 is not"),
    ("audit-n", _with("audit.n", 0), ValueError, r"audit\.n = 0 is not an integer >= 1"),
    ("noise-draws", _with("attacks.noise_draws", True), ValueError, r"attacks\.noise_draws = True is not an integer"),
    ("square-queries", _with("attacks.square_queries", 0), ValueError, r"attacks\.square_queries = 0 is not"),
    ("steps-item", _with("attacks.ifsgm_steps", [7, 0]), ValueError, r"attacks\.ifsgm_steps\[1\] = 0 is not an integer >= 1"),
    ("seed", _with("models.0.seeds", [-1]), ValueError, r"models\[0\]\.seeds\[0\] = -1 is not an integer >= 0"),
    ("seeds-twice", _with("models.0.seeds", [0, 0]), ValueError, r"models\[0\]\.seeds = \[0, 0\] is not a non-empty list of distinct items"),
    ("train-limit", _with("train_limit", 0), ValueError, r"train_limit = 0 is not an integer >= 1"),
    # budgets in (0, 1], probabilities in [0, 1], positive widths and learning rates
    ("eps-2", _with("attacks.ifsgm_eps", ["8/255", "2"]), ValueError, r"attacks\.ifsgm_eps\[1\] = '2' is not a budget in \(0, 1\]"),
    ("eps-0", _with("attacks.ifsgm_eps", [0]), ValueError, r"attacks\.ifsgm_eps\[0\] = 0 is not a budget"),
    ("eps-div0", _with("attacks.curve_eps", "1/0"), ValueError, r"attacks\.curve_eps = '1/0' is not a budget"),
    ("eps-junk", _with("audit.eps", "eight"), ValueError, r"audit\.eps = 'eight' is not a budget"),
    ("eps-nan", _with("attacks.curve_eps", float("nan")), ValueError, r"attacks\.curve_eps = nan is not a budget"),
    ("eps-bool", _with("audit.eps", True), ValueError, r"audit\.eps = True is not a budget"),
    ("eps-empty", _with("attacks.ifsgm_eps", []), ValueError, r"attacks\.ifsgm_eps = \[\] is not a non-empty list"),
    ("eps-not-list", _with("attacks.ifsgm_eps", "8/255"), ValueError, r"attacks\.ifsgm_eps = '8/255' is not a non-empty list"),
    ("noise-p", _with("attacks.noise_p", [0.4, 1.5]), ValueError, r"attacks\.noise_p\[1\] = 1\.5 is not a number in \[0, 1\]"),
    ("noise-p-nan", _with("attacks.noise_p", [float("nan")]), ValueError, r"attacks\.noise_p\[0\] = nan is not a number"),
    ("width-0", _with("models.0.width", 0), ValueError, r"models\[0\]\.width = 0 is not a number > 0"),
    ("width-inf", _with("models.0.width", float("inf")), ValueError, r"models\[0\]\.width = inf is not a number > 0"),
    ("lr-str", _with("lr", "0.1"), ValueError, r"lr = '0\.1' is not a number > 0"),
    ("lr-neg", _with("models.0.lr", -0.1), ValueError, r"models\[0\]\.lr = -0\.1 is not a number > 0"),
    # names
    ("name-empty", _with("name", ""), ValueError, r"name = '' is not a name of 1-100 letters"),
    ("name-path", _with("name", "../evil"), ValueError, r"name = '\.\./evil' is not a name"),
    ("name-int", _with("name", 5), ValueError, r"name = 5 is not a name"),
    ("no-name", _without("name"), ValueError, r"missing required key 'name' at the top level"),
    ("no-models", _without("models"), ValueError, r"missing required key 'models' at the top level"),
    ("models-empty", _with("models", []), ValueError, r"models = \[\] is not a non-empty list"),
    ("models-table", _with("models", {"arch": "resnet18"}), ValueError, r"models = \{'arch': 'resnet18'\} is not a non-empty list"),
    ("no-arch", _with("models", [{"methods": ["nlr"]}]), ValueError, r"missing required key 'arch' in \[models\[0\]\]"),
    ("methods-empty", _with("models.0.methods", []), ValueError, r"models\[0\]\.methods = \[\] is not a non-empty list"),
    ("methods-twice", _with("models.0.methods", ["nlr", "nlr"]), ValueError, r"models\[0\]\.methods = .* distinct"),
    ("method-name", _with("models.0.methods", ["nlr", "nrl"]), NAME, r"models\[0\]\.methods\[1\]: unknown method 'nrl'; did you mean 'nlr'\? valid choices: nlr, "),
    ("arch-name", _with("models.0.arch", "resnet81"), NAME, r"models\[0\]\.arch: unknown architecture 'resnet81'; did you mean 'resnet18'\?"),
    ("arch-type", _with("models.0.arch", ["resnet18"]), ValueError, r"models\[0\]\.arch = \['resnet18'\] is not a string"),
    ("dataset", _with("dataset", "cifar11"), NAME, r"dataset: unknown dataset 'cifar11'; did you mean 'cifar10'\?.*npz:PATH"),
    ("analysis", _with("analyses.kinds", ["rnk"]), NAME, r"analyses\.kinds\[0\]: unknown analysis 'rnk'; did you mean 'rank'\?"),
    ("table", _with("tables", ["table11"]), NAME, r"tables\[0\]: unknown table 'table11'"),
    ("minrho-attack", _with("attacks.minrho", ["pgd"]), NAME, r"attacks\.minrho\[0\]: unknown minrho attack 'pgd'; valid choices: ifsgm, ill, deepfool"),
    ("backend", _with("attacks.minrho_options.backend", "fb"), NAME, r"attacks\.minrho_options\.backend: unknown deepfool backend 'fb'"),
    ("selector-value", _with("attacks.minrho_only.arch", "resnet18"), ValueError, r"attacks\.minrho_only\.arch = 'resnet18' is not a non-empty list"),
    ("selector-name", _with("attacks.minrho_only.method", ["1-lr"]), NAME, r"attacks\.minrho_only\.method\[0\]: unknown method '1-lr'; did you mean '1lr'\?"),
    # minrho flags, method options, analysis options
    ("rate", _with("attacks.minrho_options.rate", 1.0), ValueError, r"attacks\.minrho_options\.rate = 1\.0 is not a number in \(0, 1\)"),
    ("alpha", _with("attacks.minrho_options.alpha", "0"), ValueError, r"attacks\.minrho_options\.alpha = '0' is not a budget"),
    ("max-steps", _with("attacks.minrho_options.max_steps", "100"), ValueError, r"attacks\.minrho_options\.max_steps = '100' is not an integer >= 1"),
    ("option-range", _with("method_options.snip.snip_sparsity", 1.5), ValueError, r"method_options\.snip\.snip_sparsity = 1\.5 is invalid: --snip-sparsity must be in \[0, 1\)"),
    ("option-type", _with("method_options.1lr.lr_every", [5]), ValueError, r"method_options\.1lr\.lr_every = \[5\] is not a string or a number that --lr-every takes"),
    ("option-inf", _with("method_options.snip.snip_batch", float("inf")), ValueError, r"method_options\.snip\.snip_batch = inf is invalid"),
    ("option-name", _with("method_options.bottle-lr.bottle_param", "loose"), NAME, r"method_options\.bottle-lr\.bottle_param: unknown .*'loose'; valid choices: normalized, free"),
    ("options-not-table", _with("method_options.1lr", "lr_rank=5"), ValueError, r"method_options\.1lr = 'lr_rank=5' is not a table"),
    ("group-stray-method", _with("models.0.method_options.snip", {}), ValueError, r"models\[0\]\.method_options\.snip: the group does not train method 'snip' \(its methods: nlr, 1lr\)"),
    ("analysis-option-list", _with("analyses.options.eps", ["8/255"]), ValueError, r"analyses\.options\.eps = \['8/255'\] is not a string or a finite number"),
    ("analysis-option-bench", _with("analyses.options.source", "x"), ValueError, r"analyses\.options\.source = 'x' is not allowed here: the bench sets it per model"),
    ("analysis-option-newline-key", _with("analyses.options", {"a\nb": True}), ValueError, r'analyses\.options\."a\\nb" = True is not'),
    # whole sections of the wrong kind, and two groups on one checkpoint folder
    ("attacks-not-table", _with("attacks", 5), ValueError, r"attacks = 5 is not a table"),
    ("group-not-table", _with("models", ["resnet18"]), ValueError, r"models\[0\] = 'resnet18' is not a table \(\[\[models\]\]\)"),
    ("one-folder", GROUPS_TWICE, ValueError, r"models\[0\] and models\[1\] both train nlr resnet18 width 1 seed 0 on 'digits'"),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "kind", "pattern"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_a_bad_profile_fails_with_one_line_naming_the_key(
    raw: dict[str, Any], kind: type[Exception], pattern: str
):
    with pytest.raises(kind) as caught:
        parse_profile(raw, SOURCE)
    assert type(caught.value) is kind  # ValueError for schema errors, not a KeyError in disguise
    assert re.search(pattern, _assert_one_line(caught.value)), str(caught.value)


def test_a_bad_file_names_its_path_and_the_key(tmp_path: Path):
    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\n[[models]]\narch = "resnet18"\nmethods = ["nlr"]\n'
                    '[attacks]\nblackbox = "false"\n')  # fmt: skip
    with pytest.raises(ValueError, match=r"attacks\.blackbox = 'false' is not true or false"):
        load_profile(str(path))
    path.write_text('name = "mine"\n[[models]\n')
    with pytest.raises(ValueError) as caught:
        load_profile(str(path))
    assert "not valid TOML" in _assert_one_line(caught.value, str(path))


@pytest.mark.parametrize("name", shipped_profiles())
def test_the_shipped_profiles_load_and_equal_their_parsed_text(name: str):
    profile = load_profile(name)
    assert profile.name == name and profile.models
    folder = resources.files("robustbench_lr.profiles")
    text = folder.joinpath(f"{name}.toml").read_text()
    # Relative weights paths are read beside the profile: parse from the same folder.
    assert parse_profile(tomllib.loads(text), profile.source_path, Path(str(folder))) == profile


def test_left_out_keys_keep_the_dataclass_defaults():
    profile = parse_profile(BASE, SOURCE)
    expected_models = tuple(
        TrainConfig(arch="resnet18", method=m, seed=seed, method_options=METHODS[m].resolve({}))
        for m in ("nlr", "1lr")
        for seed in (0, 1)
    )
    assert profile == Profile(name="t", models=expected_models, source_path=SOURCE)
    assert (profile.n, profile.audit, profile.audit_n, profile.attacks) == (
        500,
        False,
        200,
        AttackGrid(),
    )


def test_groups_inherit_the_top_level_and_minrho_options_are_parsed():
    raw = _with("attacks.minrho_options", {"alpha": "2/255", "max_steps": 100, "rate": 0.9})
    raw.update(dataset="svhn", epochs=3, lr=1, train_limit=10)
    raw["models"][0].update(epochs=2, width=0.5, seeds=[2, 1])
    profile = parse_profile(raw, SOURCE)
    first = profile.models[0]
    assert (first.dataset, first.epochs, first.lr, first.train_limit, first.width) == (
        "svhn",
        2,
        1.0,
        10,
        0.5,
    )
    assert [c.seed for c in profile.models] == [2, 1, 2, 1]
    assert profile.attacks.minrho_options == {"alpha": 2 / 255, "max_steps": 100, "rate": 0.9}


def test_every_minrho_option_is_a_minrho_flag_and_every_searchable_attack_is_accepted():
    from robustbench_lr.commands import minrho

    parser = argparse.ArgumentParser()
    minrho.add_arguments(parser)
    dests = {action.dest for action in parser._actions}
    assert set(MinrhoOptions.keys()) <= dests
    raw = _with("attacks.minrho", list(minrho.ATTACK_CHOICES))
    assert parse_profile(raw, SOURCE).attacks.minrho == tuple(minrho.ATTACK_CHOICES)


# ---- property: anything TOML can hold gives a Profile or a one-line error --------------------
# A valid profile is drawn, then up to three mutations: a value anywhere replaced by junk (every
# TOML type, nan and ±inf, near-miss names), a key dropped, or a stray key added.

# One valid value per method option (`resolve` takes them as the CLI's text or TOML numbers).
OPTION_SAMPLES = {
    "lr_lambda_c": 0.1,
    "lr_lambda_n": 0,
    "lr_every": 5,
    "lr_projection": "randomized",
    "lr_nystrom_ensemble": 2,
    "lr_rank": "5",
    "lr_warmup_epochs": 0,
    "lr_w_step": "0.25",
    "bottle_taps": "pre_fc",
    "bottle_param": "free",
    "snip_sparsity": 0.5,
    "snip_batch": 16,
    "srn_rank_ratio": 0.3,
    "power_iteration": "batched",
    "at_eps": "8/255",
    "at_steps": 3,
    "at_alpha": "2/255",
    "trades_beta": 6,
}
NEAR_MISSES = ["8/255", "1/0", "nan", "0", "5", "false", "nrl", "resnet81", "npz:", "lr_rankk"]
SCALARS = st.one_of(
    st.integers(-2, 6),
    st.integers(),
    st.floats(),  # nan and ±inf included
    st.text(max_size=6),
    st.booleans(),
    st.sampled_from(NEAR_MISSES),
)
JUNK = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
STRAY_KEYS = st.sampled_from(["epoch", "ifsgm_epss", "widht", "kind", "lr_rankk", "n", "eps"])
COUNT = st.integers(1, 5)
EPS = st.sampled_from(["8/255", "1/255", 0.03, 1])
SOME = st.booleans()  # whether an optional key is set


def test_every_method_option_has_a_sample_for_the_property():
    assert set(OPTION_SAMPLES) == {o.name for o in all_options()}


@st.composite
def _group(draw: st.DrawFn, arch: str) -> dict[str, Any]:
    methods = draw(st.lists(st.sampled_from(METHODS.names()), min_size=1, max_size=3, unique=True))
    group: dict[str, Any] = {"arch": arch, "methods": methods}
    if draw(SOME):
        group["seeds"] = draw(st.lists(st.integers(0, 3), min_size=1, max_size=2, unique=True))
    if draw(SOME):
        group.update(epochs=draw(COUNT), width=draw(st.sampled_from([0.25, 0.5, 1])), lr=0.05)
    tuned = [m for m in methods if METHODS[m].options and draw(SOME)]
    if tuned:
        group["method_options"] = {
            m: {o.name: OPTION_SAMPLES[o.name] for o in METHODS[m].options[:2]} for m in tuned
        }
    return group


@st.composite
def _valid_profile(draw: st.DrawFn) -> dict[str, Any]:
    archs = draw(st.lists(st.sampled_from(["resnet18", "vgg19"]), min_size=1, unique=True))
    raw: dict[str, Any] = {"name": "p", "models": [draw(_group(arch)) for arch in archs]}
    if draw(SOME):
        raw.update(dataset="digits", epochs=draw(COUNT), n=draw(COUNT), train_limit=100)
    if draw(SOME):
        raw["method_options"] = {"1lr": {"lr_rank": "5"}, "snip": {"snip_sparsity": 0.7}}
    if draw(SOME):
        raw["attacks"] = {
            "ifsgm_eps": draw(st.lists(EPS, min_size=1, max_size=3)),
            "ifsgm_steps": [7, 20],
            "blackbox": draw(st.booleans()),
            "noise_p": draw(st.lists(st.floats(0, 1), min_size=1, max_size=3)),
            "minrho": draw(st.lists(st.sampled_from(["ifsgm", "ill", "deepfool"]), unique=True)),
            "minrho_options": {"alpha": draw(EPS), "max_steps": draw(COUNT), "rate": 0.9},
            "minrho_only": {"arch": ["resnet18"], "width": [0.25, 1.0]},
            "curves": draw(st.booleans()),
            "curve_eps": draw(EPS),
        }
    if draw(SOME):
        raw["analyses"] = {"kinds": ["rank", "hybrid"], "options": {"eps": "64/255", "steps": 20}}
    if draw(SOME):
        raw["audit"] = {"enabled": draw(st.booleans()), "n": draw(COUNT), "eps": draw(EPS)}
    if draw(SOME):
        raw["tables"] = ["table1", "table3"]
    return raw


def _places(node: Any) -> list[tuple[Any, Any]]:
    """Every (container, key or index) inside a table, nested ones included."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    places = []
    for key, value in items:
        places.append((node, key))
        if isinstance(value, (dict, list)):
            places += _places(value)
    return places


@st.composite
def _mutated_profile(draw: st.DrawFn) -> dict[str, Any]:
    raw = draw(_valid_profile())
    for _ in range(draw(st.integers(0, 3))):
        places = _places(raw)
        if not places:  # every key was dropped: an empty table is a case of its own
            break
        container, key = draw(st.sampled_from(places))
        action = draw(st.sampled_from(["junk", "drop", "stray"]))
        if action == "junk":
            container[key] = draw(JUNK)
        elif action == "drop" and isinstance(container, dict):
            del container[key]
        elif isinstance(container, dict):
            container[draw(STRAY_KEYS | st.text(max_size=5))] = draw(JUNK)
    return raw


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated_profile())
def test_any_table_gives_a_profile_or_a_one_line_error(raw: dict[str, Any]):
    try:
        profile = parse_profile(raw, "any.toml")
    except (ValueError, UnknownNameError) as err:
        _assert_one_line(err, "any.toml")
    else:
        assert isinstance(profile, Profile) and profile.models


def test_the_grids_stay_frozen_dataclasses_and_check_what_code_gives_them():
    grid = dataclasses.replace(AttackGrid(), curves=True, ifsgm_eps=("4/255",))
    assert grid.curves and grid.ifsgm_eps == (4 / 255,) and dataclasses.is_dataclass(grid)
    with pytest.raises(dataclasses.FrozenInstanceError):
        grid.curves = False  # type: ignore[misc]
    with pytest.raises(ValueError):  # pydantic's ValidationError is a ValueError
        AttackGrid(noise_draws=0)
