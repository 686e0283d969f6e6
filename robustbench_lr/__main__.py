"""`python -m robustbench_lr` is the same as the `robustbench-lr` console script."""

from robustbench_lr.cli import main

raise SystemExit(main())
