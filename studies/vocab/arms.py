"""The arm registry: every arm a study can sweep, declared once, without torch.

An arm is an optimizer recipe: a kind (SGD with momentum or Adam), Demon or not, a schedule of the
learning rate or of the momentum, the parameters it accepts (defaults and valid ranges), when
Nesterov momentum applies, which packed kernel (``demon.packed``) runs it and the paper's name for
it. Everything that depends on an arm reads it here: spec validation (``check_arm``), the per-trial
builder (``studies.arms.build_arm``), the packed schedules and kernels (``studies.packed``), the
default Demon-versus-baseline pairs of the report and the docs. Adding an arm is one ``register``
call (``docs/arms.md``).

A study may run one arm several times with different parameters (e.g. Demon with and without a
delay): each run is a *labelled* arm, ``<registered name>@<tag>`` (``demon_sgdm@delay0.25``), which
``arm()`` resolves to the registered arm. The label is the arm's name everywhere in the study (trial
keys, grids, pairs, the API); its parameters come from the spec.

For every arm β_init is the (initial) momentum or β1, so grids of different arms line up cell by cell.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from .names import unknown_name

__all__ = [
    "ARMS",
    "SCHEDULES",
    "TAG_PATTERN",
    "Arm",
    "Param",
    "Schedule",
    "arm",
    "arm_names",
    "check_arm",
    "label_pattern",
    "register",
]

TAG_PATTERN = r"[A-Za-z0-9_.=+-]{1,40}"
"""What may follow ``@`` in a labelled arm (``demon_sgdm@delay0.25``)."""

Kind = Literal["sgdm", "adam"]
Kernel = Literal["sgd", "demon_sgd", "adam", "demon_adam"]


@dataclass(frozen=True)
class Param:
    """One arm parameter: its default and its valid values.

    Numbers lie in ``[low, high]`` (each end open unless ``*_inclusive``), ``whole`` ones are
    integers; ``kind="flag"`` takes true/false; ``kind="fractions"`` a non-empty list of fractions of
    training in (0, 1). ``problem(value)`` says why a value is not valid, or None. A ``kernel_flag``
    is passed under its own name to the arm's packed kernel (``Arm.kernel_options``).
    """

    name: str
    default: Any
    doc: str
    kind: Literal["number", "flag", "fractions"] = "number"
    low: float = -math.inf
    high: float = math.inf
    low_inclusive: bool = True
    high_inclusive: bool = True
    whole: bool = False
    kernel_flag: bool = False

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not valid for this parameter, or None."""
        if self.kind == "flag":
            return None if isinstance(value, bool) else "must be true or false"
        if self.kind == "fractions":
            ok = isinstance(value, list) and value and all(_number(m) and 0 < m < 1 for m in value)
            return None if ok else "must be a non-empty list of fractions of training in (0, 1)"
        if not _number(value):
            return "must be a finite number"
        if self.whole and value != int(value):
            return "must be a whole number"
        above = value >= self.low if self.low_inclusive else value > self.low
        below = value <= self.high if self.high_inclusive else value < self.high
        return None if above and below else f"must lie in {self.interval}"

    @property
    def interval(self) -> str:
        """The valid range as text: ``(0, 1]``, ``[0, inf)``, ``true or false``."""
        if self.kind == "flag":
            return "true or false"
        if self.kind == "fractions":
            return "list of fractions in (0, 1)"
        low, high = ("[" if self.low_inclusive else "("), ("]" if self.high_inclusive else ")")
        return f"{low}{self.low:g}, {self.high:g}{high}"


def _shown(value: Any, limit: int = 60) -> str:
    """``value`` as an error shows it: its repr, cut to ``limit`` characters (a 400-digit int is not read)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _number(value: Any) -> bool:
    """A finite int or float (an int too large for a float is not: 10**400 is no parameter)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


@dataclass(frozen=True)
class Schedule:
    """What moves during training besides the gradient step.

    ``moves_lr``: η_t depends on the trial's lr (an LR schedule); ``moves_beta``: β_t depends on its
    β_init (Demon, the momentum schedules, OneCycle's momentum cycle); ``per_epoch``: stepped after
    each epoch on the validation loss (plateau) rather than after each iteration.
    """

    name: str
    doc: str
    params: tuple[Param, ...] = ()
    moves_lr: bool = True
    moves_beta: bool = False
    per_epoch: bool = False

    def with_defaults(self, **defaults: Any) -> Schedule:
        """This schedule with other defaults for some of its parameters (each checked against its
        range): an arm that is a known schedule with its own settings, e.g. other milestones."""
        by_name = {p.name: p for p in self.params}
        unknown = sorted(set(defaults) - set(by_name))
        if unknown:
            raise ValueError(f"schedule {self.name!r} has no parameter(s) {unknown}")
        for name, value in defaults.items():
            problem = by_name[name].problem(value)
            if problem:
                raise ValueError(f"schedule {self.name!r}: default {name!r} {problem} (got {value!r})")
        params = tuple(replace(p, default=defaults.get(p.name, p.default)) for p in self.params)
        return replace(self, params=params)


NESTEROV = Param("nesterov", False, "Nesterov momentum (SGD kinds only; torch's SGD needs β_init > 0)", kind="flag")


@dataclass(frozen=True)
class Arm:
    """One arm: ``kind`` (sgdm, adam), ``demon`` or a torch optimizer, its ``schedule``, the packed
    ``kernel`` that runs it and its name in the paper (``paper_name``)."""

    name: str
    kind: Kind
    schedule: Schedule
    paper_name: str
    demon: bool = False
    extra: tuple[Param, ...] = ()  # parameters of this arm beyond its kind's and its schedule's
    params: tuple[Param, ...] = field(init=False)

    def __post_init__(self) -> None:
        own = (NESTEROV,) if self.kind == "sgdm" else ()
        object.__setattr__(self, "params", own + self.schedule.params + self.extra)

    @property
    def kernel(self) -> Kernel:
        """Which ``demon.packed`` kernel runs this arm's members."""
        if self.kind == "sgdm":
            return "demon_sgd" if self.demon else "sgd"
        return "demon_adam" if self.demon else "adam"

    def defaults(self) -> dict[str, Any]:
        """Every parameter's default."""
        return {p.name: p.default for p in self.params}

    def settings(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The defaults overridden by ``params`` (checked)."""
        self.check(params)
        return {**self.defaults(), **params}

    def nesterov(self, params: Mapping[str, Any], beta_init: float) -> bool:
        """Whether a trial at ``beta_init`` takes Nesterov steps: asked for, an SGD kind, and (torch's
        SGD refuses Nesterov without momentum) β_init > 0 unless Demon runs it."""
        wanted = bool(params.get("nesterov", False)) and self.kind == "sgdm"
        return wanted and (self.demon or beta_init > 0)

    def kernel_options(self, params: Mapping[str, Any], beta_init: float) -> dict[str, bool]:
        """The keyword flags of this arm's packed kernel for a trial at ``beta_init``: ``nesterov``
        for SGD kinds, and every parameter declared as a ``kernel_flag``."""
        settings = self.settings(params)
        options = {"nesterov": self.nesterov(params, beta_init)} if self.kind == "sgdm" else {}
        options.update({p.name: bool(settings[p.name]) for p in self.params if p.kernel_flag})
        return options

    def check(self, params: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` for an unknown parameter or a value out of its range, naming both."""
        by_name = {p.name: p for p in self.params}
        unknown = sorted(set(params) - set(by_name))
        if unknown:
            choices = ", ".join(sorted(by_name)) or "none"
            raise ValueError(f"arm {self.name!r}: unknown parameter(s) {unknown}; valid parameters: {choices}")
        for name, value in params.items():
            problem = by_name[name].problem(value)
            if problem:
                raise ValueError(f"arm {self.name!r}: parameter {name!r} {problem} (got {_shown(value)})")


_FRACTION: dict[str, Any] = {"low": 0.0, "high": 1.0}
_OPEN_FRACTION: dict[str, Any] = {**_FRACTION, "low_inclusive": False, "high_inclusive": False}
_POSITIVE: dict[str, Any] = {"low": 0.0, "low_inclusive": False, "high_inclusive": False}
SCHEDULES: dict[str, Schedule] = {
    s.name: s
    for s in (
        Schedule("none", "a constant learning rate"),
        Schedule(
            "step",
            "learning rate × gamma at each milestone (fractions of training)",
            (
                Param("milestones", [0.5, 0.75], "when to decay, as fractions of training", kind="fractions"),
                Param("gamma", 0.1, "the factor at each milestone", low_inclusive=False, **_FRACTION),
            ),
        ),
        Schedule(
            "cosine",
            "cosine annealing from lr to eta_min",
            (Param("eta_min", 0.0, "the final learning rate", low=0.0, high_inclusive=False),),
        ),
        Schedule(
            "linear",
            "a line from lr to end_factor · lr",
            (Param("end_factor", 0.0, "the final fraction of lr", **_FRACTION),),
        ),
        Schedule(
            "exp",
            "exponential decay to final_factor · lr",
            (Param("final_factor", 0.01, "the final fraction of lr", low_inclusive=False, **_FRACTION),),
        ),
        Schedule(
            "onecycle",
            "lr 0.1η → η → 0.1η with momentum β_init → β_init − span → β_init (the paper's OneCycle)",
            (
                Param("pct_start", 0.3, "fraction of training spent rising", **_OPEN_FRACTION),
                Param("div_factor", 10.0, "initial lr = lr / div_factor", **_POSITIVE),
                Param("final_div_factor", 1.0, "final lr = initial lr / final_div_factor", **_POSITIVE),
                Param("momentum_span", 0.1, "how far momentum dips below β_init", **_FRACTION),
            ),
            moves_beta=True,
        ),
        Schedule(
            "plateau",
            "lr × factor when the validation loss stops improving for patience epochs",
            (
                Param("factor", 0.1, "the decay factor", **_OPEN_FRACTION),
                Param("patience", 2, "epochs without improvement before decaying", low=0, high=10_000, whole=True),
            ),
            per_epoch=True,
        ),
        Schedule("cosmom", "momentum β_init · ½(1 + cos πt/T): cosine decay to 0", moves_lr=False, moves_beta=True),
        Schedule("linmom", "momentum β_init · (1 − t/T): linear decay to 0", moves_lr=False, moves_beta=True),
        Schedule(
            "demon",
            "Demon's momentum decay (constant lr); docs/demon.md gives the variants' equations",
            (
                Param(
                    "delay",
                    0.0,
                    "fraction of training at β_init before the decay starts (t₀ = round(delay · T), at most T − 1)",
                    low=0.0,
                    high=1.0,
                    high_inclusive=False,
                ),
                Param(
                    "beta_min",
                    0.0,
                    "the floor β decays to, reached at T (at most every β_init of the study)",
                    low=0.0,
                    high=1.0,
                    high_inclusive=False,
                ),
                Param(
                    "decoupled_weight_decay",
                    False,
                    "weight decay as θ ← θ(1 − ηλ) before the step instead of L2 (not in the paper)",
                    kind="flag",
                    kernel_flag=True,
                ),
            ),
            moves_lr=False,
            moves_beta=True,
        ),
    )
}

FIRST_MOMENT_CORRECTION = Param(
    "first_moment_correction",
    False,
    "divide Demon Adam's first moment by 1 − β_t^k (not in the paper's Algorithm 2)",
    kind="flag",
    kernel_flag=True,
)

_PAPER_SCHEDULE = {
    "none": "",
    "step": " + LR step",
    "cosine": " + cosine LR",
    "linear": " + linear LR",
    "exp": " + exponential LR",
    "onecycle": " + OneCycle",
    "plateau": " + LR decay on plateau",
    "cosmom": " + cosine momentum",
    "linmom": " + linear momentum",
}

ARMS: dict[str, Arm] = {}
"""Every arm by name, in the order specs, the API and the docs list them."""


def register(new: Arm) -> Arm:
    """Add ``new`` to the registry (``ValueError`` if its name is taken) and return it."""
    if new.name in ARMS:
        raise ValueError(f"arm {new.name!r} is already registered")
    ARMS[new.name] = new
    return new


def _register_paper_arms() -> None:
    register(Arm("demon_sgdm", "sgdm", SCHEDULES["demon"], "Demon SGDM", demon=True))
    register(Arm("demon_adam", "adam", SCHEDULES["demon"], "Demon Adam", demon=True, extra=(FIRST_MOMENT_CORRECTION,)))
    kinds: tuple[tuple[Kind, str], ...] = (("sgdm", "SGDM"), ("adam", "Adam"))
    for kind, title in kinds:
        for name in ("none", "step", "cosine", "linear", "exp", "onecycle", "plateau"):
            register(Arm(f"{kind}_{name}", kind, SCHEDULES[name], title + _PAPER_SCHEDULE[name]))
    for name in ("cosmom", "linmom"):
        register(Arm(f"sgdm_{name}", "sgdm", SCHEDULES[name], "SGDM" + _PAPER_SCHEDULE[name]))


_register_paper_arms()


def arm_names() -> list[str]:
    """Every valid arm name, in registry order."""
    return list(ARMS)


def arm(name: str) -> Arm:
    """The arm called ``name`` (or labelled ``name@tag``); ``ValueError`` listing the valid names."""
    base, separator, tag = name.partition("@")
    if separator and not re.fullmatch(TAG_PATTERN, tag):
        raise ValueError(
            f"invalid arm label {name!r}: after '@' give 1-40 letters, digits or _ . = + - (e.g. demon_sgdm@delay0.25)"
        )
    try:
        return ARMS[base]
    except KeyError:
        raise ValueError(unknown_name("arm", name, list(ARMS)) + " (or one of them @tag)") from None


def label_pattern(names: tuple[str, ...]) -> str:
    """A regular expression matching a labelled arm of one of ``names``: ``^(a|b)@tag$``."""
    return f"^({'|'.join(re.escape(n) for n in names)})@{TAG_PATTERN}$"


def check_arm(name: str, params: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` for an unknown arm or parameter, listing the valid choices."""
    arm(name).check(params)
