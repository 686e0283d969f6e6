"""The robustness audit: a battery of attacks and gradient-masking checks per model.

Robustness without adversarial training, the paper's claim, is also the pattern gradient
masking produces (SPEC §5, last paragraph). So every robustness number gets a verdict: the
audit runs gradient attacks (FGSM, IFSGM at 7/20/100 steps and with random restarts, APGD-CE,
APGD-DLR, APGD-T, FAB-T), attacks that need no gradients of the target (Square, transfer from
the N-LR model, random corners of the ε-ball) and unbounded ones (DeepFool, an IFSGM ε-sweep
to 0.5), then applies the sanity checks of Carlini et al. 2019 ("On Evaluating Adversarial
Robustness", §5), Athalye et al. 2018 ("Obfuscated Gradients") and AutoAttack's flags.

The model's robust accuracy is the worst case per example over every L-inf attack at ε
(AutoAttack's aggregation, Croce & Hein 2020), reported beside each attack's own accuracy.
The audit runs per threat (`AuditOptions.threat`): the same roles in the L2 ball (PGD-L2,
APGD / FAB / Square at norm L2, the authors' AutoAttack L2, noise on the ε-sphere) make the
L2 audit, whose rows are filed under `threat = "L2"`.

One module per idea:
- `options`: `AuditOptions`, the ε per dataset and threat;
- `threats`: `THREATS`, each threat's battery and the run that plays each part the checks read;
- `runs`: one attack setting (`Run`) and the ε-sweep (`sweep_eps`);
- `battery`: which attacks run (`battery`) and what they yielded (`Battery`);
- `probes`: input gradients, determinism and loss stability, measured without attacking;
- `verdict`: what a check measures (`Measured`, the examples it `Flagged`) and its grading;
- `checks`: the `CHECKS` table, each a claim, its failure meaning, source and measuring function;
- `indicators`: Pintor et al. 2022's per-example indicators of attack failure (silent success,
  incomplete optimization, unstable predictions) and the cross-attack consistency check;
- `optimality`: AttackBench's optimality of every attack setting (Cinà et al. 2024);
- `report`: `AuditReport`, the battery, the verdicts and the aggregate accuracies;
- `runner`: `run_battery` (the runs, their recorded paths, the probes) and `audit_model`, the
  battery then the checks on a model and examples;
- `rows` / `markdown`: the results-file rows and audit.md;
- `checkpoint`: `audit_target`, all of the above for a loaded `target.Target` (the faces load
  it: the `audit` command, `robustbench_lr.audit` / `benchmark`), and `run_audit`, the same as
  an experiment (the bench's audit jobs).
"""

from robustbench_lr.audit.battery import sweep_eps
from robustbench_lr.audit.checkpoint import audit_target, run_audit
from robustbench_lr.audit.checks import CHECKS
from robustbench_lr.audit.markdown import audit_filename
from robustbench_lr.audit.options import (
    DEFAULT_EPS,
    AuditOptions,
    audit_eps_by_dataset,
    default_eps,
)
from robustbench_lr.audit.probes import probe_determinism, probe_gradients
from robustbench_lr.audit.runner import audit_model
from robustbench_lr.audit.threats import THREATS

__all__ = [
    "audit_eps_by_dataset",
    "default_eps",
    "CHECKS",
    "DEFAULT_EPS",
    "THREATS",
    "AuditOptions",
    "audit_filename",
    "audit_model",
    "audit_target",
    "probe_determinism",
    "probe_gradients",
    "run_audit",
    "sweep_eps",
]
