"""Representation analyses: hybrids, max-margin robustness, stability, cushion,
class-wise variance, clusters and transfer, on the session's digits N-LR model."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from robustbench_lr import cli, plots, results
from robustbench_lr.analysis import ANALYSES, AnalysisOptions
from robustbench_lr.analysis.classwise import class_top1_shares
from robustbench_lr.analysis.compression import (
    FULL,
    fit_hybrid,
    fooled_mask,
    hybrid_rows,
    maxmargin_accuracy,
    tap_features,
)
from robustbench_lr.analysis.cushion import layer_cushions
from robustbench_lr.analysis.examples import examples_path, load_examples
from robustbench_lr.analysis.stability import binned_medians, stability_pairs
from robustbench_lr.analysis.transfer import other_labelling, same_images
from robustbench_lr.attacks import rho, run_attack
from robustbench_lr.data import Data, load
from tests.conftest import analysis_target, run_analysis, train_small

# A strong, short attack: digits images need far more than the CIFAR budgets to be fooled.
ATTACK = {"attacks": "ifsgm", "eps": "0.3", "steps": "5"}


@pytest.fixture(scope="module")
def loaded(nlr_digits: Path):
    """The N-LR digits model, its meta and its full train and test sets."""
    target = analysis_target(nlr_digits, AnalysisOptions(device="cpu"), train=True)
    return target.model, target.meta, target.data


@pytest.fixture(scope="module")
def parity_digits(ckpt_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained on the digits images relabelled by parity, stored as an npz dataset."""
    digits = load("digits")
    path = tmp_path_factory.mktemp("npz") / "parity.npz"
    np.savez(
        path,
        x_train=digits.x_train.numpy(),
        y_train=(digits.y_train % 2).numpy(),
        x_test=digits.x_test.numpy(),
        y_test=(digits.y_test % 2).numpy(),
    )
    return train_small(ckpt_root, "nlr", 0, dataset=f"npz:{path}", epochs=3)


def test_hybrid_full_matches_network_and_two_dims_lose_accuracy(loaded):
    model, _, data = loaded
    rows, heads = hybrid_rows(model, data, "pre_fc", (FULL, 2), 0, {})
    value = {(r["metric"], r["tap"], r.get("dim")): r["value"] for r in rows}
    network = value[("network_acc", "pre_fc", None)]
    full, two = value[("hybrid_acc", "pre_fc", math.inf)], value[("hybrid_acc", "pre_fc", 2.0)]
    assert network > 90
    assert abs(full - network) <= 3
    assert two < full - 5
    fc = model.stages["fc"]
    assert value[("params_replaced", "pre_fc", None)] == fc.weight.numel() + fc.bias.numel()
    assert value[("params_linear", "pre_fc", math.inf)] == fc.weight.numel() + fc.bias.numel()
    assert value[("params_pca", "pre_fc", 2.0)] == 2 * fc.in_features
    assert set(heads) == {FULL, 2}


def test_pca_is_fitted_on_training_features_only(loaded):
    model, _, data = loaded
    train, test = (
        tap_features(model, data.x_train, "pre_fc"),
        tap_features(model, data.x_test, "pre_fc"),
    )
    head = fit_hybrid(train, data.y_train.numpy(), 10, 0)
    scaler, pca = head.named_steps["scale"], head.named_steps["pca"]
    assert np.allclose(scaler.mean_, train.mean(0), atol=1e-5)
    both = np.concatenate([train, test]).mean(0)
    assert not np.allclose(scaler.mean_, both, atol=1e-3)
    standardized_train, standardized_test = scaler.transform(train), scaler.transform(test)
    assert np.allclose(pca.mean_, standardized_train.mean(0), atol=1e-5)
    assert np.abs(standardized_test.mean(0)).max() > 10 * np.abs(pca.mean_).max()


def test_pca_dimension_out_of_range_is_a_clear_error(loaded):
    model, _, data = loaded
    train = tap_features(model, data.x_train[:20], "pre_fc")
    with pytest.raises(ValueError, match="PCA can give 1..20"):
        fit_hybrid(train, data.y_train[:20].numpy(), 50, 0)


def test_maxmargin_counts_only_the_examples_that_fooled_the_network(loaded):
    model, _, data = loaded
    x, y = data.x_test[:120], data.y_test[:120]
    x_adv = run_attack("ifsgm", model, x, y, eps=0.3, steps=5)
    fooled = fooled_mask(model, x, x_adv, y)
    head = fit_hybrid(tap_features(model, data.x_train, "pre_fc"), data.y_train.numpy(), FULL, 0)
    value, n = maxmargin_accuracy(head, model, "pre_fc", x_adv, y, fooled)
    assert 0 < n == int(fooled.sum()) < len(y) + 1
    assert 0.0 <= value <= 1.0
    by_hand = (
        head.predict(tap_features(model, x_adv, "pre_fc"))[fooled.numpy()] == y[fooled].numpy()
    )
    assert value == pytest.approx(by_hand.mean())
    nothing, zero = maxmargin_accuracy(
        head, model, "pre_fc", x, y, torch.zeros(len(y), dtype=torch.bool)
    )
    assert math.isnan(nothing) and zero == 0


def test_a_nan_row_survives_the_results_file(tmp_path: Path):
    # maxmargin writes NaN with n = 0 when no example fooled the network
    out = tmp_path / "results.csv"
    results.append(out, [{"experiment": "maxmargin", "metric": "maxmargin_acc", "value": math.nan}])
    frame = results.append(out, [{"experiment": "maxmargin", "metric": "other", "value": 0.5}])
    assert math.isnan(frame["value"].iloc[0]) and frame["value"].iloc[1] == 0.5
    assert results.read(out)["value"].isna().tolist() == [True, False]


def test_layer_cushion_matches_a_hand_computation():
    net = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 2.0, 0.0], [0.0, 1.0, -1.0]]))
        net[0].bias.copy_(torch.tensor([0.5, -4.0]))
        net[2].weight.copy_(torch.tensor([[3.0, 4.0]]))
    values = layer_cushions(net, torch.ones(1, 3))
    # Layer 0: W x = (3, 0) (bias excluded), ‖W‖_F = √7, ‖x‖ = √3.
    assert values["0"][0] == pytest.approx(3 / math.sqrt(21), rel=1e-12)
    # Layer 2 sees relu(W x + b) = (3.5, 0): |3·3.5| / (5 · 3.5) = 0.6.
    assert values["2"][0] == pytest.approx(0.6, rel=1e-12)


def test_layer_cushion_of_linear_layers_lies_in_unit_interval(loaded):
    model, _, data = loaded
    values = layer_cushions(model, data.x_train[:200])
    assert len(values) == 21  # 20 convolutions + the FC of ResNet18
    fc = values["stages.fc"]
    assert ((fc > 0) & (fc <= 1)).all()
    assert all(np.isfinite(v).all() and (v > 0).all() for v in values.values())


def test_stability_pairs_drop_untouched_inputs_and_bin_every_pair(loaded):
    model, _, data = loaded
    x = data.x_test[:40]
    x_adv = x.clone()
    x_adv[:25] = (x[:25] + 0.05).clamp(0, 1)
    inp, rep = stability_pairs(model, x, x_adv, "pre_fc")
    assert len(inp) == len(rep) == 25
    delta = (x_adv[:25] - x[:25]).flatten(1).double()
    assert np.allclose(
        inp, (delta.square().sum(1) / x[:25].flatten(1).double().square().sum(1)).numpy()
    )
    assert (rep > 0).all()
    bins = binned_medians(inp, rep, 2)
    assert sum(b[4] for b in bins) == 25
    assert all(lo <= med < hi for lo, hi, med, _, _ in bins)


def test_classwise_share_of_first_singular_value():
    rank_one = torch.outer(torch.arange(1.0, 6.0), torch.tensor([1.0, 2.0, 2.0]))
    two_equal = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    acts = torch.cat([rank_one, two_equal])
    labels = torch.tensor([3] * 5 + [7] * 2)
    shares = class_top1_shares(acts, labels)
    assert shares == {3: pytest.approx(1.0), 7: pytest.approx(0.5)}


def test_transfer_from_parity_features_to_digit_labels(parity_digits: Path, tmp_path: Path):
    options = AnalysisOptions(device="cpu", extra={"labels": "digits"})
    rows = run_analysis("transfer", parity_digits, tmp_path / "results.csv", options).rows
    assert all(r["tap"] == "pre_fc" and r["dim"] == math.inf for r in rows)
    value = {r["param"]: r["value"] for r in rows}
    own = next(v for k, v in value.items() if k.startswith("labels=npz"))
    assert own > 85  # the parity task the model was trained on
    assert value["labels=digits"] > 40  # 10 classes: far above the 10% of chance
    assert all(r["n"] == 450 for r in rows)


def test_transfer_without_a_second_labelling_says_so(nlr_digits: Path, tmp_path: Path):
    outcome = run_analysis(
        "transfer", nlr_digits, tmp_path / "r.csv", AnalysisOptions(device="cpu")
    )
    assert outcome.rows == [] and "--option labels=DATASET" in outcome.lines[0]


def test_transfer_refuses_different_images():
    digits = load("digits")
    other = Data(digits.spec, digits.x_train.flip(0), digits.y_train, digits.x_test, digits.y_test)
    with pytest.raises(ValueError, match="do not hold the same train images"):
        same_images(digits, other, "digits", "flipped")


def test_the_other_labelling_is_a_fact_of_the_dataset_entry():
    assert other_labelling("cifar100-coarse") == "cifar100"
    assert other_labelling("cifar100") == "cifar100-coarse"
    assert other_labelling("digits") is None and other_labelling("npz:/any/file.npz") is None


def test_the_bench_runs_per_box_come_from_the_analysis_entries():
    crafting = {name for name in ANALYSES if ANALYSES[name].crafts_adversarial}
    assert crafting == {"maxmargin", "stability", "deepfool-examples"}
    assert ANALYSES["maxmargin"].boxes == ("white", "black", "matched")
    assert ANALYSES["stability"].boxes == ("white", "black")
    assert all(ANALYSES[name].boxes == ("white",) for name in ANALYSES if name not in crafting)


def test_the_entries_that_read_training_images_say_so():
    """The faces load the training split only for these (fitted heads, cushion, PCA clusters)."""
    reading = {name for name in ANALYSES if ANALYSES[name].needs_train}
    assert reading == {"hybrid", "hybrid-deep", "maxmargin", "cushion", "clusters"}


def test_deepfool_examples_keep_the_images_fig3_draws(nlr_digits: Path, tmp_path: Path):
    out = tmp_path / "results.csv"
    options = AnalysisOptions(device="cpu", extra={"images": "4"})
    outcome = run_analysis("deepfool-examples", nlr_digits, out, options)
    loaded = analysis_target(nlr_digits, AnalysisOptions(device="cpu"))
    meta, data = loaded.meta, loaded.data
    fields = results.model_fields(meta, nlr_digits)
    saved = load_examples(examples_path(tmp_path / "figures", fields), "nlr")
    # The first four test images, every model the same ones; DeepFool fools the N-LR model.
    assert torch.equal(torch.from_numpy(saved.x), data.x_test[:4])
    assert (saved.y == data.y_test[:4].numpy()).all() and (saved.pred != saved.y).all()
    expected = rho(torch.from_numpy(saved.x_adv), torch.from_numpy(saved.x)).double().numpy()
    assert [r["value"] for r in outcome.rows] == pytest.approx(expected.tolist())
    assert [r["param"] for r in outcome.rows] == [f"image={i}" for i in range(4)]
    assert all(0 < r["value"] < 1 and r["attack"] == "deepfool" for r in outcome.rows)
    # The report's Fig. 3 finds the images from the rows alone.
    png = plots.FIGURES.get("fig3_deepfool_examples")(
        results.append(out, outcome.rows), out.parent / "figures"
    )
    assert png is not None and png.stat().st_size > 1000


def _frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([results.make_row(**r) for r in rows], columns=results.COLUMNS)


CASES = {
    "hybrid": {"dims": (FULL, 5)},
    "hybrid-deep": {"dims": (FULL, 10)},
    "maxmargin": {"n": 60, "extra": ATTACK},
    "stability": {"n": 40, "extra": ATTACK},
    "cushion": {"n": 100},
    "classwise": {},
    "clusters": {},
    "rank": {},
    "deepfool-examples": {"n": 40, "extra": {"images": "3"}},
}


@pytest.mark.portable
@pytest.mark.parametrize("kind", list(CASES), ids=list(CASES))
def test_analysis_rows_are_deterministic_and_in_the_results_schema(kind, nlr_digits, tmp_path):
    options = AnalysisOptions(device="cpu", **CASES[kind])
    out = tmp_path / "results.csv"
    first = run_analysis(kind, nlr_digits, out, options)
    second = run_analysis(kind, nlr_digits, out, options)
    assert first.rows
    assert _frame(first.rows).equals(_frame(second.rows))  # bit-identical, NaN included
    frame = results.append(out, first.rows)
    assert list(frame.columns) == results.COLUMNS and len(frame) == len(first.rows)
    assert (frame["experiment"] == kind.removesuffix("-deep")).all()
    assert (frame["checkpoint"] == str(nlr_digits)).all()
    for path in first.files:
        assert path.parent == tmp_path / "figures" and path.stat().st_size > 1000
    if kind == "maxmargin":
        assert all(0 <= r["value"] <= 1 and r["n"] > 0 for r in first.rows)
    if kind == "cushion":
        layer = [r for r in first.rows if r["tap"] == "stages.fc"]
        fc = {r["metric"]: r["value"] for r in layer if r["param"] == ""}
        rand = {r["metric"]: r["value"] for r in layer if r["param"] == "random-init"}
        assert 0 < fc["cushion_min"] <= fc["cushion_q50"] <= fc["cushion_q90"] <= 1
        assert fc["cushion_q50"] > rand["cushion_q50"]  # Fig. 4c: training moves it right
    if kind == "hybrid-deep":  # Table 5b: the head replaces ResNet block 4 and the FC
        model = analysis_target(nlr_digits, AnalysisOptions(device="cpu")).model
        replaced = [model.stages["layer4"], model.stages["fc"]]
        count = sum(p.numel() for m in replaced for p in m.parameters())
        assert {"pre_block4": count} == {
            r["tap"]: r["value"] for r in first.rows if r["metric"] == "params_replaced"
        }
    if kind == "clusters":
        assert -1 <= first.rows[0]["value"] <= 1


def test_analyze_command_accepts_full_in_dims(nlr_digits: Path, tmp_path: Path, capsys):
    out = tmp_path / "results.csv"
    code = cli.main(
        [
            "analyze",
            "hybrid",
            "--checkpoint",
            str(nlr_digits),
            "--dims",
            "full,3",
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    frame = results.read(out)
    hybrid = frame[frame["metric"] == "hybrid_acc"]
    assert set(zip(hybrid["tap"], hybrid["dim"], hybrid["param"], strict=True)) == {
        ("pre_fc", math.inf, ""),
        ("pre_fc", 3.0, ""),
    }
    assert "d=full" in capsys.readouterr().out


def test_matched_protocol_counts_examples_that_fool_both_networks(
    nlr_digits: Path, nlr_digits_seed1: Path, tmp_path: Path
):
    from robustbench_lr.analysis.adversarial import AttackRun, matched_examples
    from robustbench_lr.attacks import resolve
    from robustbench_lr.checkpoints import load_model

    # Table 6's judge is a 1-LR model; the counting does not depend on which network judges, so
    # the session's second N-LR (already trained for other tests) stands in for it.
    judged_by = nlr_digits_seed1

    extra = {"attacks": "ifsgm,deepfool", "eps": "0.3", "steps": "10", "stop_on": str(judged_by)}
    options = AnalysisOptions(device="cpu", n=60, extra=extra)
    rows = run_analysis("maxmargin", nlr_digits, tmp_path / "results.csv", options).rows
    assert {r["box"] for r in rows} == {"matched"}
    assert {r["source"] for r in rows} == {str(judged_by)}
    assert all(0 <= r["value"] <= 1 and r["n"] > 0 for r in rows)

    # The counted examples: crafted on N-LR, fooled both N-LR and the judge.
    loaded = analysis_target(nlr_digits, options)
    nlr, data = loaded.model, loaded.data
    judge, _ = load_model(judged_by, "cpu")
    run = AttackRun("ifsgm", *resolve("ifsgm", eps=0.3, steps=10))
    x_adv = matched_examples(run, nlr, judge, data.x_test, data.y_test)
    both = fooled_mask(nlr, data.x_test, x_adv, data.y_test) & fooled_mask(
        judge, data.x_test, x_adv, data.y_test
    )
    ifsgm = next(r for r in rows if r["attack"] == "ifsgm")
    assert ifsgm["n"] == int(both.sum())
    assert (x_adv - data.x_test).abs().max() <= 0.3 + 1e-6


def test_deepfool_extension_stops_at_the_first_scale_that_fools_the_judge():
    from robustbench_lr.attacks.search import EXTEND_SCALES, extend_until_fooled

    judge = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        judge.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))  # class = larger coordinate
    x = torch.tensor([[0.6, 0.1], [0.6, 0.1]])
    y = torch.tensor([0, 0])
    # Perturbations of 0.05 and 0.2 toward class 1: the judge flips once 0.1 + s·d > 0.6 - s·d.
    x_adv = x + torch.tensor([[-0.05, 0.05], [-0.2, 0.2]])
    out = extend_until_fooled(judge, x, x_adv, y)
    scales = (out - x)[:, 1] / (x_adv - x)[:, 1]
    assert (judge(out).argmax(1) == 1).all()
    for scale, needed in zip(scales.tolist(), [5.0, 1.25], strict=True):
        first = min(s for s in EXTEND_SCALES if s > needed)
        assert scale == pytest.approx(first)


def test_stop_on_and_source_cannot_be_combined(nlr_digits: Path, tmp_path: Path):
    extra = {**ATTACK, "stop_on": str(nlr_digits), "source": str(nlr_digits)}
    with pytest.raises(ValueError, match="cannot be combined"):
        run_analysis(
            "maxmargin",
            nlr_digits,
            tmp_path / "r.csv",
            AnalysisOptions(device="cpu", n=20, extra=extra),
        )
