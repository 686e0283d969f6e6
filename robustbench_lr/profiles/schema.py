"""The profile schema: every table and key a profile may hold, each declared once with its type,
default, bound and meaning.

Every table forbids other keys (`rules.Table`; the package docstring says why). The experiment
grids (`AttackGrid`, ...) are also what a parsed `Profile` holds. A key whose default is another
module's (a training key: `TrainConfig`'s; a minrho flag or an audit budget: its command's) is
None here, meaning "left out"; the audit budget keys take their types and meanings from
`AuditOptions`' declaration, as the `audit` command's flags do.
"""

import functools
from dataclasses import field, fields
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, PlainValidator, StrictFloat, StrictInt, StrictStr

from robustbench_lr import external
from robustbench_lr.analysis import ANALYSES
from robustbench_lr.attacks import ATTACKS
from robustbench_lr.attacks.search import SEARCHES, SearchSettings
from robustbench_lr.audit.options import BUDGET, DEFAULT_EPS, AuditOptions
from robustbench_lr.config import TrainConfig
from robustbench_lr.corruptions import CORRUPTIONS
from robustbench_lr.experiments.attack import Sweep
from robustbench_lr.methods import METHODS
from robustbench_lr.models import ARCHS
from robustbench_lr.profiles.protocols import BLACKBOX_PROTOCOLS
from robustbench_lr.profiles.rules import (
    Dataset,
    FileName,
    SelectorValue,
    Table,
    TextOrNumber,
    dynamic_table,
    fail,
    given,
    items,
    name_of,
    table,
    within,
)
from robustbench_lr.registry import UnknownNameError
from robustbench_lr.settings import (
    Boolean,
    Budget,
    Count,
    Positive,
    Probability,
    Seed,
    Severity,
    Text,
    adapter,
    doc,
    error,
    kind_of,
    rule,
)
from robustbench_lr.shifts import SHIFTS
from robustbench_lr.tables import TABLES
from robustbench_lr.target import DEFAULT_N

Arch = name_of("architecture", ARCHS)
Method = name_of("method", METHODS)
Analysis = name_of("analysis", ANALYSES)
TableName = name_of("table", TABLES)
MinrhoAttack = name_of("minrho attack", SEARCHES)
Corruption = name_of("corruption", CORRUPTIONS)
Shift = name_of("distribution shift", SHIFTS)
Threat = name_of("threat model", external.THREATS)
Protocol = name_of("black-box protocol", BLACKBOX_PROTOCOLS)


def _given_in(kind: type) -> PlainValidator:
    """A table of `kind`, as the keys the profile set (the others keep their command's default)."""
    return PlainValidator(lambda value: given(adapter(kind).validate_python(value), value))


# ---- [method_options.<method>]: each method declares its own options (methods/base.py) -------


def _option(option: Any) -> Any:
    """A method option as written (for `Method.resolve`), checked by the method's own parser."""

    def check(value: Any) -> Any:
        try:
            option.type(value)
        except UnknownNameError as err:
            raise error("unknown_name", text=str(err)) from None
        except (ValueError, TypeError, OverflowError) as err:
            raise error("invalid", text=str(err) or f"not a value {option.flag} takes") from None
        return value

    takes = rule(f"a string or a number that {option.flag} takes")
    return Annotated[StrictStr | StrictInt | StrictFloat, AfterValidator(check), takes]


@functools.cache
def _options_table(method: str) -> type:
    kinds = {o.name: _option(o) for o in METHODS[method].options}
    return dynamic_table(f"{method} options", kinds, "option")


def _method_options(value: Any) -> dict[str, dict[str, Any]]:
    """{method: {option: value as written}}: the table's keys are method names."""
    if not isinstance(value, dict):
        raise error("not_allowed", allowed="a table")
    parsed = {}
    for method, options in value.items():
        if method not in METHODS:
            valid = METHODS.names()
            raise fail("unknown_key", options, (method,), noun="method", valid=valid, names=True)
        with within(method):
            checked = adapter(_options_table(method)).validate_python(options)
        parsed[method] = given(checked, options)
    return parsed


MethodOptions = Annotated[dict[str, dict[str, Any]], PlainValidator(_method_options)]

# ---- [attacks] -------------------------------------------------------------------------------


# The knobs of `experiments.minrho.Search` a profile may set, typed and described as
# `SearchSettings` declares them (the `minrho` flags); the bench sets the attacks, the subset
# and the per-sample curves itself.
SEARCH_KEYS = ("alpha", "max_steps", "tol", "eps_max", "rate")
MinrhoOptions = dynamic_table(
    "MinrhoOptions",
    {
        **{name: kind_of(SearchSettings, name) for name in SEARCH_KEYS},
        "backend": name_of("deepfool backend", ATTACKS.get("deepfool").backends),
        "batch_size": Count,
    },
    "minrho option",
)


# Which models a stage runs on: TrainConfig field -> the values `selects` compares its text with.
_SELECTED = [f.name for f in fields(TrainConfig) if f.name != "method_options"]
_NAMED = {"dataset": Dataset, "arch": Arch, "method": Method}
Selector = dynamic_table(
    "Selector", {k: items(_NAMED.get(k, SelectorValue)) for k in _SELECTED}, "model field"
)


@table
class AttackGrid(Table):
    """Which attacks the bench runs on every model (SPEC §3)."""

    ifsgm_eps: doc(items(Budget), "the I-FGSM budgets") = (8 / 255,)
    ifsgm_steps: doc(items(Count), "the I-FGSM step counts") = (7, 20)
    blackbox: doc(Boolean, "also attack every model with transferred examples") = True
    # The paper: "the N-LR model of the same architecture"; which seed of it, the protocol says.
    blackbox_source: doc(Method, "whose model of the same dataset, arch, width crafts them") = "nlr"
    blackbox_protocol: doc(Protocol, "which seed of it (`BLACKBOX_PROTOCOLS`)") = "independent"
    noise_p: doc(items(Probability), "the random-noise attack's p") = (0.4, 0.6, 0.8, 1.0)
    noise_draws: doc(Count, "noise draws per image") = Sweep.draws
    minrho: doc(items(MinrhoAttack, nonempty=False, unique=True), "min-ρ searches") = ()
    minrho_n: doc(Count, "images per min-ρ search") = 200
    minrho_options: doc(dict[str, Any], "`minrho` flags", _given_in(MinrhoOptions)) = field(
        default_factory=dict
    )
    # The paper's Tables 3 and 10 are ResNet18 only; the searches are the bench's costliest stage.
    minrho_only: doc(
        dict[str, tuple[str, ...]], "which models get them (empty: all)", _given_in(Selector)
    ) = field(default_factory=dict)
    curves: doc(Boolean, "the instantaneous/cumulative curves (Fig. 11)") = False
    curve_eps: doc(Budget, "the curves' budget") = 8 / 255
    square_queries: doc(Count, "the Square attack's queries") = AuditOptions.queries


# ---- the other tracks ------------------------------------------------------------------------


@table
class CorruptionGrid(Table):
    """The common-corruptions track (`experiments.corruption`)."""

    enabled: Boolean = False
    source: doc(
        name_of("corruption source", ("generate", "files")),
        "`generate` corrupts each model's test subset; `files` reads CIFAR-10-C / -100-C",
    ) = "generate"
    n: doc(Count | None, "images (None: the profile's n)") = None
    seed: Seed = 0
    corruptions: doc(items(Corruption, unique=True), "empty: all 15") = ()
    severities: doc(items(Severity, unique=True), "empty: all 5") = ()
    datasets: doc(items(Dataset, unique=True), "whose models (empty: every model)") = ()


@table
class L2Grid(Table):
    """The L2 track (`attacks.l2`): each model at its dataset's L2 ε (`data.l2_eps`)."""

    enabled: Boolean = False
    # Off by default: it costs about as much as the L∞ audit.
    audit: doc(Boolean, "also the gradient-masking audit in the L2 ball") = False
    n: doc(Count | None, "images (None: the profile's n)") = None
    pgd_steps: doc(Count, "`pgd-l2` steps") = 20
    steps: doc(Count, "the L2 AutoAttack's APGD/FAB iterations") = 100
    targets: doc(Count, "the L2 AutoAttack's targets") = 9
    queries: doc(Count, "the L2 AutoAttack's Square queries") = 5000
    datasets: doc(items(Dataset, unique=True), "whose models (empty: every model)") = ()


@table
class ShiftGrid(Table):
    """Natural distribution shifts (`shifts.py`), read under --data-root: the models of each
    shift's own dataset and of `datasets`."""

    enabled: Boolean = False
    shifts: items(Shift, unique=True) = ("cifar10.1",)
    n: doc(Count | None, "images (None: the profile's n)") = None
    datasets: items(Dataset, unique=True) = ()


@table
class _AuditRun(Table):
    enabled: Boolean = False
    n: doc(Count, "images audited") = AuditOptions.n
    eps: doc(Budget, "the audit's budget") = DEFAULT_EPS


# The [audit] keys that are `AuditOptions` budget fields, as `Profile.audit_options`: each typed
# and described as declared there. The Square queries are `[attacks] square_queries`.
AUDIT_OPTIONS = tuple(name for name in BUDGET if name != "queries")
Audit = dynamic_table(
    "Audit", {name: kind_of(AuditOptions, name) for name in AUDIT_OPTIONS}, "key", _AuditRun
)
Audit.__doc__ = """The gradient-masking audit: whether, on how many images, at which budget,
and the battery's budget (`AUDIT_OPTIONS`, the `robustbench-lr audit` flags); the subset seed and
batch size are the bench's."""


def _analysis_options(value: Any) -> dict[str, str]:
    """Handed to every analysis, each reading its own (`Analysis.options`): a key must be one
    some analysis reads. `source` and `stop_on` are the bench's, set per model."""
    if not isinstance(value, dict):
        raise error("not_allowed", allowed="a table")
    bench_set = ("source", "stop_on")
    parsers = {k: p for kind in ANALYSES for k, p in ANALYSES[kind].options.items()}
    valid = sorted(set(parsers) - set(bench_set))
    parsed = {}
    for key, item in value.items():
        if key in bench_set:
            bench = "allowed here: the bench sets it per model"
            raise fail("not_allowed", item, (key,), allowed=bench)
        with within(key):
            parsed[key] = adapter(TextOrNumber).validate_python(item)
        if key not in valid:
            raise fail(
                "unknown_key", item, (key,), noun="analysis option", valid=valid, names=False
            )
        try:  # the analyses reading a key read it alike
            parsers[key](parsed[key])
        except ValueError as err:
            raise fail("not_allowed", item, (key,), allowed=str(err)) from None
    return parsed


@table
class Analyses(Table):
    kinds: doc(items(Analysis, nonempty=False, unique=True), "the analyses to run") = ()
    # Table 6's N-LR protocol (D.5): the black-box source's model is attacked until this
    # method's model of the same dataset, arch, width and seed is fooled.
    matched_partner: doc(Method, "Table 6's partner method") = "1lr"
    options: doc(
        dict[str, str],
        "`--option KEY=VALUE` pairs handed to every analysis",
        PlainValidator(_analysis_options),
    ) = field(default_factory=dict)


# ---- [[models]] ------------------------------------------------------------------------------


@table
class Training(Table):
    """The training keys; a [[models]] group takes those it leaves out from the top level."""

    dataset: Dataset | None = None
    epochs: Count | None = None
    lr: Positive | None = None
    train_limit: Count | None = None
    test_limit: Count | None = None


@table
class Group(Training):
    """A [[models]] group: one model per method and seed."""

    allowed: ClassVar[str] = "a table ([[models]])"
    arch: Arch
    methods: items(Method, unique=True)
    seeds: doc(items(Seed, unique=True) | None, "None: TrainConfig's") = None
    width: Positive | None = None
    method_options: doc(MethodOptions, "over the top level's") = field(default_factory=dict)


def _external(check: str, allowed: str) -> Any:
    """A string `external.<check>` accepts: what its command-line flag is checked with."""
    checked = AfterValidator(lambda value: getattr(external, check)(value))
    return Annotated[StrictStr, checked, rule(allowed)]


Name = _external("check_name", "a name of 1-64 letters, digits, '.', '_' or '-'")


@table
class OwnModel(Table):
    allowed: ClassVar[str] = 'a table such as { factory = "mypkg.models:build", weights = "w.pt" }'
    # Imported when the model is loaded, not here.
    factory: _external("check_factory", '"MODULE:FACTORY" (e.g. "mypkg.models:build")')
    weights: doc(Text, "read beside the profile when relative") = ""


@table
class ZooModel(Table):
    allowed: ClassVar[str] = 'a table such as { name = "Wong2020Fast", model_dir = "models" }'
    name: Text
    threat: Threat = "Linf"
    model_dir: doc(Text | None, "None: `external.DEFAULT_MODEL_DIR`") = None
    download: Boolean = False


@table
class External(Table):
    """A [[models]] entry naming a model the bench does not train: your factory and weights."""

    allowed: ClassVar[str] = Group.allowed
    external: OwnModel
    name: doc(Name, "its name in result rows (empty: the factory's)") = ""
    dataset: doc(Dataset | None, "None: the profile's") = None
    tap: doc(Text, "the submodule analyses read") = ""


@table
class Zoo(Table):
    """A [[models]] entry naming a RobustBench zoo model."""

    allowed: ClassVar[str] = Group.allowed
    robustbench: ZooModel
    name: Name = ""
    dataset: Dataset | None = None
    tap: Text = ""


def _entry(value: Any) -> Group | External | Zoo:
    kinds = [k for k in ("external", "robustbench") if isinstance(value, dict) and k in value]
    if len(kinds) > 1:
        raise error("rejected", text="an entry is external or robustbench, not both")
    kind = {"external": External, "robustbench": Zoo}[kinds[0]] if kinds else Group
    return adapter(kind).validate_python(value)


@table
class _Heading(Table):
    name: doc(FileName, "names the report folder, reports/<name>")
    description: Text = ""


@table
class ProfileFile(Training, _Heading):
    """A profile file's top level (`_Heading` last among the bases: its keys are listed first
    where an error lists the valid ones)."""

    n: doc(Count, "test images each experiment runs on") = DEFAULT_N
    models: items(Annotated[Any, PlainValidator(_entry), rule(Group.allowed)])
    method_options: MethodOptions = field(default_factory=dict)
    attacks: AttackGrid = field(default_factory=AttackGrid)
    analyses: Analyses = field(default_factory=Analyses)
    audit: Audit = field(default_factory=Audit)
    tables: items(TableName, nonempty=False, unique=True) = ()
    corruptions: CorruptionGrid = field(default_factory=CorruptionGrid)
    l2: L2Grid = field(default_factory=L2Grid)
    shifts: ShiftGrid = field(default_factory=ShiftGrid)
    # Retrain every model under a perturbed code path (`perturbed.py`): its numerics spread.
    numerics_spread: Boolean = False
