"""The black-box control: which model crafts each model's black-box examples.

By default an independently seeded N-LR (the next seed), so N-LR itself gets black-box rows (the
N-LR -> N-LR control); the paper's same-seed protocol is an option; a profile where some model
would silently lose its black-box rows is refused before any work starts.
"""

from __future__ import annotations

import pytest

from robustbench_lr.profiles import load_profile, parse_profile
from robustbench_lr.registry import UnknownNameError

TWO_NLR_SEEDS = {
    "name": "t",
    "dataset": "digits",
    "models": [
        {"arch": "resnet18", "methods": ["nlr", "1lr"], "seeds": [0, 1]},
        {"arch": "resnet18", "methods": ["sn"], "seeds": [0]},
    ],
}


def _sources(raw: dict) -> dict[tuple[str, int], tuple[str, int] | None]:
    profile = parse_profile(raw, "t.toml")
    return {
        (m.method, m.seed): (s.method, s.seed) if (s := profile.black_box_source(m)) else None
        for m in profile.models
    }


def test_by_default_every_model_is_attacked_with_examples_of_another_seeds_nlr():
    assert _sources(TWO_NLR_SEEDS) == {
        ("nlr", 0): ("nlr", 1),  # the control: N-LR from another N-LR
        ("nlr", 1): ("nlr", 0),
        ("1lr", 0): ("nlr", 1),
        ("1lr", 1): ("nlr", 0),
        ("sn", 0): ("nlr", 1),
    }


def test_the_papers_same_seed_protocol_is_an_option():
    raw = {**TWO_NLR_SEEDS, "attacks": {"blackbox_protocol": "same-seed"}}
    assert _sources(raw) == {
        ("nlr", 0): None,  # crafted on itself would be white-box: no black-box rows
        ("nlr", 1): None,
        ("1lr", 0): ("nlr", 0),
        ("1lr", 1): ("nlr", 1),
        ("sn", 0): ("nlr", 0),
    }


def test_a_model_without_an_independent_source_is_refused_in_one_line():
    raw = {"name": "t", "models": [{"arch": "resnet18", "methods": ["nlr", "1lr"]}]}
    with pytest.raises(ValueError) as err:
        parse_profile(raw, "t.toml")
    message = str(err.value)
    assert "\n" not in message and "blackbox_protocol = 'independent'" in message
    assert "add another seed to the nlr model" in message
    parse_profile({**raw, "attacks": {"blackbox": False}}, "t.toml")  # no black box: fine


def test_an_unknown_protocol_lists_the_valid_ones():
    raw = {**TWO_NLR_SEEDS, "attacks": {"blackbox_protocol": "same_seed"}}
    with pytest.raises(
        UnknownNameError, match="did you mean 'same-seed'.*valid choices: independent, same-seed"
    ):
        parse_profile(raw, "t.toml")


@pytest.mark.parametrize("name", ["smoke", "cpu"])
def test_the_shipped_profiles_craft_every_black_box_example_on_another_seed(name: str):
    profile = load_profile(name)
    for cfg in profile.models:
        source = profile.black_box_source(cfg)
        assert source is not None and source.method == "nlr" and source.seed != cfg.seed
        assert (source.arch, source.width, source.dataset) == (cfg.arch, cfg.width, cfg.dataset)


def _black_rows(pairs: list[tuple[int, str]]):
    import pandas as pd

    from robustbench_lr import results

    rows = [
        results.make_row(
            dataset="digits",
            arch="resnet18",
            method="1lr",
            seed=seed,
            checkpoint=f"ck/digits/resnet18-w0.25/1lr/seed{seed}",
            experiment="attack",
            attack="ifsgm",
            box="black",
            source=source,
            metric="acc",
            value=50.0,
            n=100,
        )
        for seed, source in pairs
    ]
    return pd.DataFrame(rows, columns=results.COLUMNS)


def test_tables_say_which_protocol_their_black_box_rows_came_from():
    from robustbench_lr.results import black_box_note

    nlr = "ck/digits/resnet18-w0.25/nlr/seed"
    assert "independently seeded nlr" in black_box_note(
        _black_rows([(0, nlr + "1"), (1, nlr + "0")])
    )
    assert "same seed" in black_box_note(_black_rows([(0, nlr + "0"), (1, nlr + "1")]))
    assert "for some rows only" in black_box_note(_black_rows([(0, nlr + "0"), (1, nlr + "0")]))
