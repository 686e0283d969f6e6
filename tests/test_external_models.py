"""External models: your own `--model MODULE:FACTORY --weights FILE`, a RobustBench
zoo model from local files, and their `[[models]]` profile entries.

An external model goes through the same commands as a checkpoint, and its rows name it by a
name and a digest of its weights (`external:<name>@<sha12>`, method `<name>@<sha12>`), so the
regression gate compares two runs of the same weights and never two different ones. Every bad
input is one line on stderr, exit status 2. The models are tiny (tests/external_factory.py);
the zoo's architecture is RobustBench's own PreActResNet-18 with random weights, on a CIFAR-10
of a few random images in torchvision's on-disk format.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from robustbench_lr import cli, results
from robustbench_lr.external import ExternalTargetSpec
from robustbench_lr.external_build import load_external_target, resolve
from robustbench_lr.profiles import parse_profile
from robustbench_lr.registry import UnknownNameError
from tests.conftest import train_small
from tests.external_factory import Payload, cifar_cnn, tiny_cnn
from tests.zoo_files import ZOO_NAME, write_cifar10, write_zoo

FACTORY = "tests.external_factory:tiny_cnn"


def run_cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """`cli.main` in-process: exit status (argparse's usage errors raise SystemExit), out, err."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _weights(net: torch.nn.Module, folder: Path, stem: str) -> tuple[Path, Path]:
    """`net`'s state saved both ways: safetensors and a torch.save'd state dict."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(folder / f"{stem}.safetensors"))
    torch.save(state, folder / f"{stem}.pt")
    return folder / f"{stem}.safetensors", folder / f"{stem}.pt"


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two different weights of the tiny digits model (seeds 0 and 1), each in both formats."""
    folder = tmp_path_factory.mktemp("weights")
    found = {}
    for seed in (0, 1):
        torch.manual_seed(seed)
        found[f"st{seed}"], found[f"pt{seed}"] = _weights(tiny_cnn(), folder, f"tiny{seed}")
    return found


def _model(path: Path, name: str = "tiny") -> list[str]:
    return ["--model", FACTORY, "--weights", path, "--dataset", "digits", "--name", name]


def _rows(path: Path) -> results.pd.DataFrame:
    return results.read(path)


def test_rows_name_the_model_and_its_weights_in_both_formats(
    weights: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
):
    digest = resolve(ExternalTargetSpec("digits", factory=FACTORY, weights=str(weights["st0"])))
    same = resolve(ExternalTargetSpec("digits", factory=FACTORY, weights=str(weights["pt0"])))
    assert digest.digest == same.digest  # the weights, not the file format, are the identity
    ident = f"tiny@{digest.digest[:12]}"

    code, out, _ = run_cli(["evaluate", *_model(weights["pt0"]), "--json"], capsys)
    record = json.loads(out.splitlines()[-1])
    assert code == 0 and record["checkpoint"] == f"external:{ident}" and record["n"] == 450
    assert (record["arch"], record["method"], record["dataset"]) == ("TinyNet", ident, "digits")

    out_csv = tmp_path / "attack.csv"
    argv = ["attack", "--attack", "ifsgm", "--eps", "16/255", "--steps", "2", "--n", "20"]
    code, _, _ = run_cli([*argv, *_model(weights["st0"]), "--out", out_csv], capsys)
    frame = _rows(out_csv)
    assert code == 0 and len(frame) > 0
    assert set(frame["checkpoint"]) == {f"external:{ident}"} and set(frame["method"]) == {ident}
    assert set(frame["arch"]) == {"TinyNet"} and set(frame["n"]) == {20}


def test_regress_compares_the_same_weights_and_never_different_ones(
    weights: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
):
    argv = ["attack", "--attack", "ifsgm", "--eps", "16/255", "--steps", "2", "--n", "20"]
    runs = {"a": "st0", "b": "pt0", "other": "st1"}
    for csv, key in runs.items():
        code, _, _ = run_cli(
            [*argv, *_model(weights[key]), "--out", tmp_path / f"{csv}.csv"], capsys
        )
        assert code == 0
    gate = ["regress", "--baseline", tmp_path / "a.csv", "--results"]
    code, out, _ = run_cli([*gate, tmp_path / "b.csv"], capsys)
    assert code == 0 and "MISSING" not in out  # same weights, other file format: one model
    code, out, err = run_cli([*gate, tmp_path / "other.csv"], capsys)
    assert code != 0  # another model under the same name: nothing is compared as the same
    other = _rows(tmp_path / "other.csv")
    assert set(other["method"]).isdisjoint(_rows(tmp_path / "a.csv")["method"])


def test_audit_and_an_analysis_at_a_hooked_tap(
    weights: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
):
    budget = ["--n", "8", "--queries", "10", "--steps", "2", "--targets", "1", "--restarts", "1"]
    budget += ["--dlr-restarts", "1", "--noise-draws", "1", "--deepfool-steps", "2"]
    out_csv = tmp_path / "audit.csv"
    code, out, _ = run_cli(["audit", *_model(weights["st0"]), *budget, "--out", out_csv], capsys)
    frame = _rows(out_csv)
    assert code == 0 and set(frame["experiment"]) == {"audit"}
    assert frame["checkpoint"].str.startswith("external:tiny@").all()
    assert "worst_case_acc" in set(frame["metric"])
    assert list(tmp_path.glob("audit_digits_TinyNet-w1_tiny-*_seed0_eps32.md"))

    analyze = ["analyze", "rank", *_model(weights["st0"]), "--n", "40", "--out", tmp_path / "r.csv"]
    code, _, _ = run_cli([*analyze, "--tap", "features.1"], capsys)
    rank = _rows(tmp_path / "r.csv")
    assert code == 0 and set(zip(rank["tap"], rank["param"], strict=True)) == {("features.1", "")}
    assert "rank99" in set(rank["metric"])
    assert set(rank["checkpoint"]) == set(frame["checkpoint"])
    code, _, err = run_cli(analyze, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--tap MODULE.PATH" in err


def test_black_box_source_must_be_of_the_external_models_data(
    weights: dict[str, Path], cifar_root: Path, tmp_path: Path, capsys
):
    # A trained digits checkpoint as the source; one epoch on 64 images is enough to craft on.
    nlr_digits = train_small(tmp_path, "nlr", epochs=1, width=0.125, train_limit=64, test_limit=32)
    argv = ["attack", "--attack", "ifsgm", "--eps", "16/255", "--steps", "2", "--n", "10"]
    code, _, _ = run_cli(
        [*argv, *_model(weights["st0"]), "--source", nlr_digits, "--out", tmp_path / "bb.csv"],
        capsys,
    )
    frame = _rows(tmp_path / "bb.csv")
    assert (
        code == 0 and set(frame["box"]) == {"black"} and set(frame["source"]) == {str(nlr_digits)}
    )

    torch.manual_seed(0)
    cifar_weights, _ = _weights(cifar_cnn(), tmp_path, "cifar")
    cifar_model = ["--model", "tests.external_factory:cifar_cnn", "--weights", cifar_weights]
    code, _, err = run_cli(
        [
            *argv,
            *cifar_model,
            "--dataset",
            "cifar10",
            "--data-root",
            cifar_root,
            "--source",
            nlr_digits,
        ],
        capsys,
    )
    assert code == 2 and len(err.strip().splitlines()) == 1 and "same data" in err


# ---- a RobustBench zoo model from local files -------------------------------------------------


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    images = np.random.default_rng(1).integers(0, 256, (6, 3072), dtype=np.uint8)
    write_cifar10(root, [0, 1, 2, 3, 4, 5], images)
    return root


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    return write_zoo(tmp_path_factory.mktemp("zoo"))


def test_a_zoo_model_loads_offline_and_matches_a_direct_forward_pass(
    zoo_dir: tuple[Path, torch.nn.Module], tmp_path: Path, capsys: pytest.CaptureFixture
):
    model_dir, net = zoo_dir
    images = np.random.default_rng(2).integers(0, 256, (8, 3072), dtype=np.uint8)
    x = torch.from_numpy(images.reshape(-1, 3, 32, 32)).float().div(255)
    with torch.no_grad():
        predicted = net(x).argmax(1).tolist()
    labels = predicted[:4] + [(p + 1) % 10 for p in predicted[4:]]  # 4 of 8 right: 50 %
    write_cifar10(tmp_path, labels, images)

    zoo = ["--robustbench", ZOO_NAME, "--model-dir", model_dir, "--dataset", "cifar10"]
    code, out, _ = run_cli(["evaluate", *zoo, "--data-root", tmp_path, "--json"], capsys)
    record = json.loads(out.splitlines()[-1])
    assert code == 0 and record["clean_acc"] == pytest.approx(50.0) and record["n"] == 8
    assert record["checkpoint"].startswith(f"robustbench:{ZOO_NAME}@")

    spec = ExternalTargetSpec("cifar10", robustbench=ZOO_NAME, model_dir=str(model_dir))
    target = load_external_target(spec, n=None, options=_options(tmp_path))
    assert (
        target.meta["zoo"]["clean_acc"] == 83.34 and target.meta["zoo"]["autoattack_acc"] == 43.21
    )
    assert target.meta["zoo"]["external_acc"] is None
    assert target.columns["method"] == record["method"]

    code, _, err = run_cli(
        ["evaluate", *zoo[:2], "--model-dir", tmp_path / "none", *zoo[4:]], capsys
    )
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--model-dir" in err and "--download" in err


def _options(root: Path):
    from robustbench_lr.data import LoadOptions

    return LoadOptions(data_root=str(root))


# ---- bad inputs: one line each, exit 2 ----------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    id: str
    argv: tuple[str, ...]
    pattern: str
    weights: str = ""  # which file `_bad_weights` writes for the case
    command: tuple[str, ...] = ("evaluate",)


def _bad_weights(kind: str, folder: Path) -> Path:
    torch.manual_seed(0)
    state = tiny_cnn().state_dict()
    if kind == "keys":
        state["extra.weight"] = state.pop("head.1.weight")
    elif kind == "shapes":
        state["head.1.weight"] = torch.zeros(10, 3)
    elif kind == "pickle":
        state = {**state, "payload": Payload()}
    path = folder / f"{kind}.pt"
    torch.save(state, path)
    return path


DIGITS = ("--dataset", "digits")
BAD = [
    Bad(
        "no-module",
        ("--model", "no_such_module_xyz:build", *DIGITS),
        r"cannot import no_such_module_xyz",
    ),
    Bad(
        "no-attribute",
        ("--model", "tests.external_factory:nope", *DIGITS),
        r"has no attribute 'nope'",
    ),
    Bad("not-module-ref", ("--model", "tests.external_factory", *DIGITS), r"is not MODULE:FACTORY"),
    Bad(
        "not-a-module",
        ("--model", "tests.external_factory:not_a_module", *DIGITS),
        r"returned a str, not a torch\.nn\.Module",
    ),
    Bad(
        "input-size",
        ("--model", "tests.external_factory:cifar_cnn", *DIGITS),
        r"does not take digits images of shape \(1, 8, 8\)",
    ),
    Bad(
        "classes",
        ("--model", "tests.external_factory:five_classes", *DIGITS),
        r"returns \(2, 5\) .* expected logits of shape \(2, 10\)",
    ),
    Bad(
        "keys",
        ("--model", FACTORY, *DIGITS),
        r"missing keys head\.1\.weight; unexpected keys extra\.weight",
        "keys",
    ),
    Bad(
        "shapes",
        ("--model", FACTORY, *DIGITS),
        r"shapes \(file vs model\) head\.1\.weight \(10, 3\) vs \(10, 256\)",
        "shapes",
    ),
    Bad(
        "pickle",
        ("--model", FACTORY, *DIGITS),
        r"weights_only=True\) refuses it \(it pickles tests\.external_factory\.Payload\)",
        "pickle",
    ),
    Bad(
        "no-weights-file",
        ("--model", FACTORY, "--weights", "missing.safetensors", *DIGITS),
        r"weights file missing\.safetensors does not exist",
    ),
    Bad("no-dataset", ("--model", FACTORY), r"--model needs --dataset NAME"),
    Bad(
        "bad-dataset",
        ("--model", FACTORY, "--dataset", "digitz"),
        r"--dataset: unknown dataset 'digitz'; did you mean 'digits'\? valid choices: digits",
    ),
    Bad(
        "two-models",
        ("--model", FACTORY, "--checkpoint", "x", *DIGITS),
        r"--checkpoint and --model name two models",
    ),
    Bad(
        "weights-on-checkpoint",
        ("--checkpoint", "x", "--weights", "w.pt"),
        r"--weights does not apply to --checkpoint",
    ),
    Bad(
        "bad-name",
        ("--model", FACTORY, *DIGITS, "--name", "a/b"),
        r"--name: 'a/b' is not a model name",
    ),
    Bad(
        "zoo-unknown",
        ("--robustbench", "NoSuchModel2099", "--dataset", "cifar10"),
        r"unknown RobustBench model 'NoSuchModel2099'",
    ),
    Bad("zoo-dataset", ("--robustbench", ZOO_NAME, *DIGITS), r"dataset 'digits' has no zoo"),
    Bad(
        "analysis-needs-checkpoint",
        ("--model", FACTORY, *DIGITS),
        r"analysis cushion needs a trained --checkpoint .* take: rank, ",
        command=("analyze", "cushion"),
    ),
]


@pytest.mark.parametrize("case", BAD, ids=lambda case: case.id)
def test_a_bad_external_model_is_one_line_exit_2(
    case: Bad, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    monkeypatch.chdir(tmp_path)
    argv = list(case.argv)
    if case.weights:
        argv += ["--weights", str(_bad_weights(case.weights, tmp_path))]
    code, out, err = run_cli([*case.command, *argv], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert re.search(case.pattern, err), err


# ---- profile entries ----------------------------------------------------------------------------

BASE = {
    "name": "t",
    "attacks": {"blackbox": False},
    "models": [{"arch": "resnet18", "methods": ["nlr"]}],
}


def _profile(*entries: dict, **top) -> object:
    return parse_profile({**BASE, **top, "models": [*BASE["models"], *entries]}, "test.toml")


def test_profile_entries_parse_into_specs_and_leave_training_groups_alone():
    plain = parse_profile(BASE, "test.toml")
    profile = _profile(
        {
            "external": {"factory": FACTORY, "weights": "w.safetensors"},
            "name": "mine",
            "tap": "features",
        },
        {
            "robustbench": {"name": ZOO_NAME, "model_dir": "zoo", "threat": "L2"},
            "dataset": "cifar10",
        },
        dataset="digits",
    )
    assert profile.models == plain.models and plain.external_models == ()
    assert profile.external_models == (
        ExternalTargetSpec(
            "digits", factory=FACTORY, weights="w.safetensors", name="mine", tap="features"
        ),
        ExternalTargetSpec("cifar10", robustbench=ZOO_NAME, threat="L2", model_dir="zoo"),
    )
    assert [s.label for s in profile.external_models] == ["mine", ZOO_NAME]


BAD_ENTRIES = [
    (
        "factory-form",
        {"external": {"factory": "no_colon"}},
        r"models\[1\]\.external\.factory = 'no_colon' is not \"MODULE:FACTORY\"",
    ),
    (
        "no-factory",
        {"external": {"weights": "w.pt"}},
        r"missing required key 'factory' in \[models\[1\]\.external\]",
    ),
    (
        "typo",
        {"external": {"factory": FACTORY, "wieghts": "w.pt"}},
        r"unknown key 'wieghts' in \[models\[1\]\.external\]; did you mean 'weights'\?",
    ),
    (
        "training-key",
        {"external": {"factory": FACTORY}, "arch": "resnet18"},
        r"unknown key 'arch' in \[models\[1\]\]",
    ),
    (
        "both",
        {"external": {"factory": FACTORY}, "robustbench": {"name": ZOO_NAME}},
        r"models\[1\]: an entry is external or robustbench, not both",
    ),
    (
        "zoo-dataset",
        {"robustbench": {"name": ZOO_NAME}},
        r"models\[1\]: dataset 'digits' has no RobustBench models",
    ),
    (
        "zoo-threat",
        {"robustbench": {"name": ZOO_NAME, "threat": "L1"}, "dataset": "cifar10"},
        r"unknown threat model 'L1'",
    ),
    (
        "zoo-download",
        {"robustbench": {"name": ZOO_NAME, "download": "yes"}, "dataset": "cifar10"},
        r"download = 'yes' is not true or false",
    ),
    (
        "name",
        {"external": {"factory": FACTORY}, "name": "a b"},
        r"models\[1\]\.name = 'a b' is not a name",
    ),
]


@pytest.mark.parametrize(
    "entry, pattern", [c[1:] for c in BAD_ENTRIES], ids=[c[0] for c in BAD_ENTRIES]
)
def test_a_bad_profile_entry_is_one_line_naming_its_key(entry: dict, pattern: str):
    with pytest.raises((ValueError, UnknownNameError)) as err:  # a name: the registries' error
        _profile(entry)
    assert "\n" not in str(err.value) and re.search(pattern, str(err.value)), err.value


def test_two_entries_of_one_name_are_refused():
    entry = {"external": {"factory": FACTORY}}
    with pytest.raises(ValueError, match=r"models\[1\] and models\[2\] are both named 'tiny_cnn'"):
        _profile(entry, {**entry, "external": {"factory": FACTORY, "weights": "other.pt"}})
