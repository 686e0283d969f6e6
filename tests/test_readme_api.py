"""The README's opening Python example runs as written and says what it claims.

The first thing a reader copies must work: the first ```python block of README.md is run
here in a fresh namespace, then its result is checked against a forward pass.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

README = Path(__file__).parents[1] / "README.md"


def first_python_block(text: str) -> str:
    """The body of the first ```python fenced block of `text`."""
    found = re.search(r"^```python\n(.*?)^```", text, flags=re.S | re.M)
    assert found, "README.md has no ```python block"
    return found.group(1)


def test_readme_opens_with_a_python_example_that_runs(capsys) -> None:
    text = README.read_text(encoding="utf-8")
    code = first_python_block(text)
    assert text.index("```python") < text.index("\n## "), "the example opens the README"
    assert len(code.strip().splitlines()) <= 22
    namespace: dict = {"__name__": "readme"}
    exec(compile(code, str(README), "exec"), namespace)  # the README's own code, as shipped
    result, model = namespace["result"], namespace["model"]
    assert (namespace["clean"], namespace["robust"]) == (result.clean, result.robust)
    assert result.verdict in ("pass", "warn", "fail")
    assert result.worst_case <= result.robust <= result.clean
    # The clean accuracy is the model's own on the images benchmark() drew.
    from robustbench_lr.data import load
    from robustbench_lr.target import uniform_subset

    data = load("digits")
    idx = uniform_subset(len(data.y_test), result.n, 0)
    with torch.no_grad():
        correct = model(data.x_test[idx]).argmax(1) == data.y_test[idx]
    assert torch.equal(result.clean_flags, correct)
    assert "Benchmark on digits" in capsys.readouterr().out
