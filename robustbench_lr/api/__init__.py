"""The Python API: `benchmark`, `attack`, `audit`, `train`, `load`, `analyze`, `shift` on models.

Thin over the functions the commands call (so the API and the CLI agree number for number):
- `benchmark`: clean and AutoAttack accuracy, then the audit (`BenchmarkResult`, `result.py`);
- `experiments`: `attack`, `audit`, `analyze`, `shift`;
- `training`: `train` (a checkpoint folder and its meta.json) and `load` (its network);
- `model`: a user's network as the suite's model under test, lent and handed back unchanged;
- `validate`: every argument check, each failure one `errors.InvalidArgument`;
- `exports`: the names `import robustbench_lr` offers, imported on first use.

Nothing is imported here: `import robustbench_lr` (the CLI's first line) stays cheap.
"""
