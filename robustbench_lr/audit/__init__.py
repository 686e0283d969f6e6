"""The robustness audit: a battery of attacks and gradient-masking checks per model.

Robustness without adversarial training, the paper's claim, is also the pattern gradient
masking produces (SPEC §5, last paragraph). So every robustness number gets a verdict: the
audit runs gradient attacks, attacks that need no gradients of the target (Square, transfer
from the N-LR model, random points of the ε-ball) and unbounded ones (DeepFool, an ε-sweep),
then applies the sanity checks of Carlini et al. 2019 ("On Evaluating Adversarial
Robustness", §5), Athalye et al. 2018 ("Obfuscated Gradients") and AutoAttack's flags.

The model's robust accuracy is the worst case per example over every attack at ε
(AutoAttack's aggregation, Croce & Hein 2020), reported beside each attack's own accuracy,
per threat (`AuditOptions.threat`, `threats.THREATS`: L∞ or L2). Entry points:
`audit_model` (a model and examples), `audit_target` and `run_audit` (a loaded target).
"""

from robustbench_lr.audit.checkpoint import audit_target, run_audit
from robustbench_lr.audit.checks import CHECKS
from robustbench_lr.audit.markdown import audit_filename
from robustbench_lr.audit.options import AuditOptions, audit_eps_by_dataset, default_eps
from robustbench_lr.audit.probes import probe_determinism, probe_gradients
from robustbench_lr.audit.runner import audit_model
from robustbench_lr.audit.threats import DEFAULT_EPS, THREATS, sweep_eps

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
