"""More bad input, in tests/test_bad_inputs.py's table style: numbers nothing vouches for, data
the model cannot mean, and refusals that must leave no file and no half a message.

Each row is a `Case` run by the same check as there: one line on stderr, exit status 2, the
working folder untouched. Below the table, the good counterparts: what the same files give when
nothing is wrong (a moved npz found by content, a damaged model rebuilt and said so).
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from robustbench_lr import checkpoints, cli, results
from robustbench_lr.config import TrainConfig
from robustbench_lr.train import train
from tests.test_bad_inputs import Case, _exit_code, _snapshot

# The model every checkpoint case starts from; the `train` flags below name the same config.
CFG = TrainConfig(dataset="digits", arch="resnet18", width=0.25, epochs=1, train_limit=200)
TRAIN_FLAGS = ("--arch", "resnet18", "--width", "0.25", "--epochs", "1", "--train-limit", "200")
TRAIN_FLAGS += ("--out", "ck", "--no-progress")
NAN_MODEL = ("--model", "tests.external_factory:nan_logits", "--dataset", "digits")


@cache
def _trained_once() -> Path:
    """Checkpoint root `ck` holding CFG's model, trained once per session (a second)."""
    root = Path(tempfile.mkdtemp(prefix="bad-inputs-more-")) / "ck"
    train(CFG, root, device="cpu", progress=False)
    return root


def _checkpoint(root: Path) -> Path:
    """A copy of the trained root under `root/ck`, its model folder linked as `root/ckpt`."""
    shutil.copytree(_trained_once(), root / "ck")
    folder = next((root / "ck").rglob(checkpoints.META_FILE)).parent
    (root / "ckpt").symlink_to(folder)
    return folder


def _edited_meta(key: str, value: object) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        path = _checkpoint(root) / checkpoints.META_FILE
        meta = json.loads(path.read_text())
        path.write_text(json.dumps({**meta, key: value}, indent=2, sort_keys=True) + "\n")

    return setup


def _digits_like_npz(path: Path, stray: int | None = None) -> None:
    """Ten classes of 8x8 images (labels 0..9, six each); `stray` relabels one training image."""
    rng = np.random.default_rng(0)
    y_train = np.arange(60) % 10
    if stray is not None:
        y_train[-1] = stray
    np.savez(
        path,
        x_train=rng.integers(0, 255, (60, 8, 8, 1), dtype=np.uint8),
        y_train=y_train,
        x_test=rng.integers(0, 255, (20, 8, 8, 1), dtype=np.uint8),
        y_test=np.arange(20) % 10,
    )


def _npz_checkpoint(root: Path, move_to: str | None = None) -> Path:
    """A model trained in `root/train` on `npz:d.npz` (a relative path), linked as `root/ckpt`;
    the npz is then moved to `root/move_to`, or left where it was."""
    (root / "train").mkdir()
    _digits_like_npz(root / "train" / "d.npz")
    cfg = TrainConfig(dataset="npz:d.npz", arch="resnet18", width=0.25, epochs=1, batch_size=16)
    before = os.getcwd()
    os.chdir(root / "train")
    try:
        folder = train(cfg, "ck", device="cpu", progress=False).folder.resolve()
    finally:
        os.chdir(before)
    (root / "ckpt").symlink_to(folder)
    if move_to is not None:
        (root / "train" / "d.npz").rename(root / move_to)
    return folder


def _npz_beside_other_data(root: Path) -> None:
    _npz_checkpoint(root)
    _digits_like_npz(root / "other.npz", stray=3)  # one label differs: another file


def _torch_refused_pickle(root: Path) -> None:
    # Protocol 4 opens with a FRAME opcode that torch's weights-only unpickler does not know:
    # its error is not about a global, and its text is a page long.
    (root / "w.pt").write_bytes(pickle.dumps({"head.1.weight": 1}, protocol=4))


def _header_only_results(root: Path) -> None:
    (root / "r.csv").write_text(",".join(results.COLUMNS) + "\n")


CASES = [
    # a number nothing vouches for
    Case(
        "evaluate-meta-clean-acc-edited",
        ("evaluate", "--checkpoint", "ckpt"),
        r"meta\.json reports clean_acc 99\.9 but its train state .* records [0-9.]+: meta\.json "
        r"was edited",
        _edited_meta("clean_acc", 99.9),
    ),
    Case(
        "attack-meta-clean-acc-edited",
        ("attack", "--attack", "fgsm", "--checkpoint", "ckpt", "--out", "r.csv"),
        r"meta\.json reports clean_acc 99\.9 but",
        _edited_meta("clean_acc", 99.9),
    ),
    Case(
        "evaluate-meta-history-edited",
        ("evaluate", "--checkpoint", "ckpt"),
        r"meta\.json reports a history but its train state .* records another",
        _edited_meta("history", [{"epoch": 1, "test_acc": 99.9}]),
    ),
    # a stray label
    Case(
        "npz-stray-label",
        ("train", "--dataset", "npz:d.npz", "--epochs", "1"),
        r"d\.npz: y_train labels must be exactly 0\.\.K-1, but class\(es\) 10, 11 have no image "
        r"while label\(s\) 12 \(1 image\(s\)\) do; relabel them 0\.\.10$",
        lambda root: _digits_like_npz(root / "d.npz", stray=12),
    ),
    # NaN logits
    Case(
        "evaluate-nan-logits",
        ("evaluate", *NAN_MODEL),
        r"nan_logits returns non-finite logits \(NaN or infinity\) for a batch of 2 digits",
    ),
    Case(
        "attack-nan-logits",
        ("attack", "--attack", "fgsm", *NAN_MODEL, "--out", "r.csv"),
        r"returns non-finite logits",
    ),
    # a method option naming an unknown registry entry
    Case(
        "train-bottle-param-unknown",
        ("train", "--method", "bottle-lr", "--bottle-param", "normalised"),
        r"--bottle-param: unknown .*'normalised'; did you mean '\w+'\? valid choices: ",
    ),
    # taps the architecture lacks: refused before the checkpoint folder or its lock exist
    Case(
        "train-lr-rank-unknown-tap",
        ("train", "--method", "1lr", "--lr-rank", "foo=5", "--epochs", "1"),
        r"--lr-rank names taps \['foo'\] that this method does not use; its taps: pre_fc$",
    ),
    Case(
        "train-bottle-taps-unknown",
        ("train", "--method", "bottle-lr", "--bottle-taps", "foo", "--epochs", "1"),
        r"--bottle-taps \['foo'\] not in resnet18; its taps: .*pre_fc",
    ),
    # a checkpoint's npz named by content, wherever it lies
    Case(
        "evaluate-npz-moved-away",
        ("evaluate", "--checkpoint", "ckpt"),
        r"ckpt was trained on npz file d\.npz or /.*/train/d\.npz, which does not exist; pass "
        r"--dataset npz:PATH naming a file with the same content \(fingerprint [0-9a-f]{8}\)$",
        lambda root: _npz_checkpoint(root, move_to="moved.npz"),
    ),
    Case(
        "evaluate-npz-other-content",
        ("evaluate", "--checkpoint", "ckpt", "--dataset", "npz:other.npz"),
        r"--dataset npz:other\.npz holds other data than ckpt was trained on \(fingerprint "
        r"[0-9a-f]{8}, expected [0-9a-f]{8}\)$",
        _npz_beside_other_data,
    ),
    Case(
        "evaluate-registered-dataset-beside-checkpoint",
        ("evaluate", "--checkpoint", "ckpt", "--dataset", "digits"),
        r"--dataset digits does not apply to --checkpoint: .* takes only npz:PATH",
        _checkpoint,
    ),
    # an empty leaderboard
    Case(
        "leaderboard-header-only",
        ("leaderboard", "r.csv", "--out", "board.md"),
        r"r\.csv: no rows; a leaderboard with nothing to rank cannot pass",
        _header_only_results,
    ),
    # a refusal that quotes another library's message whole
    Case(
        "weights-torch-refusal-whole",
        (
            "evaluate",
            "--model",
            "tests.external_factory:tiny_cnn",
            "--dataset",
            "digits",
            "--weights",
            "w.pt",
        ),  # fmt: skip
        r"refuses it \(WeightsUnpickler error: Unsupported operand 149\); save model\.state_dict"
        r"\(\) with torch\.save, or as \.safetensors$",
        _torch_refused_pickle,
    ),
    # near-miss names
    Case("train-method-near-miss", ("train", "--method", "nrl"), r"did you mean 'nlr'\?"),
    Case(
        "train-dataset-near-miss",
        ("train", "--dataset", "CIFAR10"),
        r"unknown dataset 'CIFAR10'; did you mean 'cifar10'\? valid choices: ",
    ),
    Case(
        "attack-near-miss",
        ("attack", "--attack", "IFSGM", "--checkpoint", "x"),
        r"unknown attack 'IFSGM'; did you mean 'ifsgm'\?",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    monkeypatch.chdir(tmp_path)
    if case.setup is not None:
        case.setup(tmp_path)
    capsys.readouterr()  # what a setup's training printed is not the command's
    before = _snapshot(tmp_path)
    assert _exit_code(list(case.argv)) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"robustbench-lr {case.argv[0]}: error: "), lines[0]
    assert re.search(case.pattern, lines[0]), lines[0]
    assert _snapshot(tmp_path) == before


def test_case_ids_are_unique():
    from tests.test_bad_inputs import CASES as FIRST

    ids = [case.id for case in [*FIRST, *CASES]]
    assert len(ids) == len(set(ids))


# ---- the good counterparts ---------------------------------------------------------------------


def _run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    code = _exit_code(argv)
    return code, capsys.readouterr().out


def test_train_rewrites_an_edited_meta_from_the_train_state_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    monkeypatch.chdir(tmp_path)
    folder = _checkpoint(tmp_path)
    true_meta = (folder / checkpoints.META_FILE).read_bytes()
    true_acc = json.loads(true_meta)["clean_acc"]
    _edited_meta("clean_acc", 99.9)(tmp_path / "again")  # a second copy, edited
    again = next((tmp_path / "again" / "ck").rglob(checkpoints.META_FILE)).parent
    code, out = _run(["train", *TRAIN_FLAGS[:-3], "--out", str(tmp_path / "again" / "ck"),
                      "--no-progress"], capsys)  # fmt: skip
    assert code == 0
    assert "rebuilt model file and meta.json from the train state" in out
    assert "already complete" not in out and "99.90" not in out
    assert f"clean test accuracy {true_acc:.2f}%" in out
    rebuilt, measured = checkpoints.verify(again), json.loads(true_meta)
    for key in ("files", "epoch", "history", "clean_acc", "data_fingerprint", "config"):
        assert rebuilt[key] == measured[key], key


def test_train_says_it_rebuilt_a_truncated_model_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    monkeypatch.chdir(tmp_path)
    folder = _checkpoint(tmp_path)
    model = folder / checkpoints.MODEL_FILE
    intact = model.read_bytes()
    model.write_bytes(intact[:1000])
    code, out = _run(["train", *TRAIN_FLAGS], capsys)
    assert code == 0 and "rebuilt model file" in out and "already complete" not in out
    assert model.read_bytes() == intact
    code, out = _run(["train", *TRAIN_FLAGS], capsys)  # intact now: complete, and says so
    assert code == 0 and "already complete" in out and "rebuilt" not in out


def test_an_npz_checkpoint_reads_its_data_from_any_folder_and_a_moved_file_by_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    monkeypatch.chdir(tmp_path)
    _npz_checkpoint(tmp_path)
    where_trained = json.loads((tmp_path / "ckpt" / checkpoints.META_FILE).read_text())
    assert where_trained["npz_path"] == str((tmp_path / "train" / "d.npz").resolve())
    code, from_elsewhere = _run(["evaluate", "--checkpoint", "ckpt", "--json"], capsys)
    assert code == 0  # `npz:d.npz` is not here; the absolute path recorded is
    (tmp_path / "train" / "d.npz").rename(tmp_path / "moved.npz")
    code, moved = _run(
        ["evaluate", "--checkpoint", "ckpt", "--dataset", "npz:moved.npz", "--json"], capsys
    )
    assert code == 0
    first, second = (json.loads(out.splitlines()[-1]) for out in (from_elsewhere, moved))
    assert first["clean_acc"] == second["clean_acc"] and first["n"] == second["n"] == 20
    assert first["clean_acc"] == where_trained["clean_acc"]


def test_the_api_refuses_nan_logits_too():
    from robustbench_lr.external import ExternalModelError, ExternalTargetSpec
    from robustbench_lr.external_build import load_external_target

    spec = ExternalTargetSpec(dataset="digits", factory="tests.external_factory:nan_logits")
    with pytest.raises(ExternalModelError, match="non-finite logits"):
        load_external_target(spec, n=10)


def test_leaderboard_still_ranks_a_file_with_rows(tmp_path: Path, capsys: pytest.CaptureFixture):
    row = results.make_row(
        dataset="digits", arch="resnet18", method="nlr", experiment="clean",
        metric="clean_acc", value=97.0, n=100,
    )  # fmt: skip
    results.append(tmp_path / "r.csv", [row])
    code = cli.main(["leaderboard", str(tmp_path / "r.csv"), "--out", str(tmp_path / "b.md")])
    assert code == 0 and "97" in (tmp_path / "b.md").read_text()
