"""A pair's verdict from its primary figure, the Holm adjustment of the exploratory ones, and seed
planning (``docs/statistics.md``, "The verdict" and "How many seeds").

Decision rule, fixed before the data: the primary Δ's 95% interval excludes 0 → the arm it favours
is less sensitive (unless the primary is lr sensitivity, a gap to each arm's own best, and that arm
is worse at its best or reaches the target over less of the grid: "flatter_but_worse", since an arm
that trains less, or fails alike everywhere, is flatter, not more robust); it contains 0 → "no
detectable difference" when the study could have detected the difference of interest (its smallest
detectable difference, at the planning power, is at most that), else "inconclusive" with the seeds
that would do. Power and seeds follow the noncentral t
distribution of the paired t test with the study's own per-seed spread (``scipy.stats.nct``).
"""

from __future__ import annotations

import math

from scipy.stats import nct
from scipy.stats import t as student_t

from studies.metrics.models import LEVEL, Delta, Outcome, Verdict, VerdictSpec
from studies.units import FIGURE_KINDS, Units

MAX_SEEDS_PLANNED = 10_000

NOUNS: dict[str, str] = {
    "success_share": "share of the grid whose runs reach the target",
    "success_lr_width": "width of the lr range whose runs reach the target (decades)",
    "expected_best": "expected best score of k random configurations",
    "lr_sensitivity": "lr sensitivity (mean gap to the best lr; lower is more robust)",
}


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (None stays None and is not counted in the family)."""
    present = [(p, n) for n, p in enumerate(p_values) if p is not None]
    m = len(present)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, n) in enumerate(sorted(present)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[n] = running
    return adjusted


def power(sd: float, n: int, difference: float, level: float) -> float:
    """Power of the two-sided paired t test at ``level`` with n seeds against a true Δ = difference."""
    if n < 2:
        return 0.0
    if sd <= 0:
        return 1.0
    df = n - 1
    critical = float(student_t.ppf(0.5 + level / 2, df))
    shift = difference * math.sqrt(n) / sd
    return float(nct.sf(critical, df, shift) + nct.cdf(-critical, df, shift))


def smallest_detectable(se: float, n: int, level: float, wanted_power: float) -> float | None:
    """The Δ detected with ``wanted_power`` by this many seeds: (t₁₋α/₂ + t_power)·se (n − 1 df)."""
    if n < 2 or not math.isfinite(se):
        return None
    df = n - 1
    return float((student_t.ppf(0.5 + level / 2, df) + student_t.ppf(wanted_power, df)) * se)


def seeds_needed(sd: float, difference: float, level: float, wanted_power: float, at_least: int) -> int | None:
    """The fewest seeds (≥ ``at_least``) whose paired t test detects ``difference`` with
    ``wanted_power`` when the per-seed differences spread by ``sd``; None beyond 10,000."""
    if not math.isfinite(sd):
        return None
    n = max(at_least, 2)
    if power(sd, n, difference, level) >= wanted_power:
        return n
    high = n
    while power(sd, high, difference, level) < wanted_power:
        if high >= MAX_SEEDS_PLANNED:
            return None
        n, high = high, min(2 * high, MAX_SEEDS_PLANNED)
    while high - n > 1:  # power grows with n: bisect
        mid = (n + high) // 2
        n, high = (n, mid) if power(sd, mid, difference, level) >= wanted_power else (mid, high)
    return high


def verdict(
    arm_a: str,
    arm_b: str,
    primary: Delta,
    spec: VerdictSpec,
    never: list[str],
    se_plan: float,
    min_seeds: int,
    units: Units = Units(),
    best: Delta | None = None,
    share: Delta | None = None,
    *,
    empty: list[str] | None = None,
    seeds_total: int | None = None,
    separates_none: str | None = None,
) -> Verdict:
    """The pair's verdict. ``never``: the pair's arms that never trained; ``se_plan`` the primary
    Δ's standard error for planning (its per-seed spread over √seeds, never 0). ``units``: how the
    statement shows the numbers (``studies.units``: shares and error rates in percentage points).
    ``best``: the Δ of each arm's best (q(k) at k = every cell; None without a validation split) and
    ``share`` the Δ success share, which an lr sensitivity verdict checks (``flatter_but_worse``).
    ``empty``: the pair's arms without a single result (no verdict yet, whatever the other did);
    ``seeds_total``: the study's seeds, to say how many lack the figure; ``separates_none``: why the
    target tells no run from another (the primary then compares nothing, however many seeds)."""
    n, d = primary.n_seeds, spec.difference
    base = Verdict(
        outcome="inconclusive_too_few_seeds",
        statement="",
        never_trained=never,
        primary=spec.primary,
        k=spec.primary_k,
        difference_of_interest=d,
        power=spec.power,
        n_seeds=n,
    )
    if empty:
        have = "have" if len(empty) > 1 else "has"
        said = " and ".join(empty) + f" {have} no results yet (no trial completed or diverged): no verdict."
        return base.model_copy(update={"statement": said})
    if never:
        winner = next((arm for arm in (arm_a, arm_b) if arm not in never), None)
        said = " and ".join(never) + " never trained (no run beat the failure score)"
        said += f": {winner} is the one that trains." if winner else ": neither arm trains."
        return base.model_copy(update={"outcome": "never_trained", "statement": said, "winner": winner})
    if separates_none:
        said = (
            f"Inconclusive: the target separates no runs ({separates_none}), so Δ is 0 whatever the seeds; "
            "choose a target between the arms' scores (verdict.target, or the default rule)."
        )
        return base.model_copy(update={"statement": said, "delta": primary.value})
    level = primary.interval.level or LEVEL
    needed = seeds_needed(se_plan * math.sqrt(n) if n >= 2 else math.nan, d, level, spec.power, min_seeds)
    ok = primary.interval.status == "ok"
    mde = smallest_detectable(se_plan, n, level, spec.power) if ok else None
    numbers = {"delta": primary.value, "interval": primary.interval, "level": level, "seeds_needed": needed}
    numbers["smallest_detectable_difference"] = mde
    kind = FIGURE_KINDS[spec.primary]

    def size(x: float | None) -> str:  # a magnitude of the primary Δ ('10.0 pts', '0.5')
        return "?" if x is None else units.number(kind, x) + units.unit(kind)

    noun = NOUNS[spec.primary] + (f" (k={spec.primary_k})" if spec.primary_k else "")
    orient = f"> 0: {arm_a} better"
    power = f"{spec.power:.0%} power"
    if primary.status == "undefined":  # no seeds, cells or reruns would give it (the spec refuses it beforehand)
        across_lrs = spec.primary in ("lr_sensitivity", "success_lr_width")
        grid_lacks = "one learning rate" if across_lrs else "no validation split"
        said = f"No verdict: Δ {noun} is undefined in this study (it has {grid_lacks}); choose another primary figure."
        return base.model_copy(update={"statement": said})
    if not ok:
        why = "too few seeds for an interval" if primary.interval.status == "too_few_seeds" else "no interval"
        have = f"{n} seed{'s' if n != 1 else ''}"
        if seeds_total is not None and n < seeds_total:  # seeds without the figure: a cell missing, or none trained
            have = f"{n} of {seeds_total} seeds have the figure; the others lack a cell's result or trained nowhere"
        if n == 0 and seeds_total:  # more seeds of the same kind would not help
            plan = "no seed has the figure: rerun the trials without a result (or see why none trained)"
        elif needed:
            plan = f"about {needed} seeds would detect a Δ of {size(d)} with {power}"
        elif n >= 2 and math.isfinite(se_plan):  # a spread to plan with, and no count up to the cap does
            plan = f"more than {MAX_SEEDS_PLANNED:,} seeds would detect a Δ of {size(d)} with {power}"
        else:  # no spread yet (one seed): the fewest that give an interval, a floor, not a plan
            plan = f"at least {min_seeds} seeds would detect a Δ of {size(d)} with {power}"
        head = f"Δ {noun} = {units.delta(kind, primary.value)} ({orient})"
        said = f"Inconclusive ({why}: {have}): {head}; {plan}."
        return base.model_copy(update={"statement": said, **numbers})
    low, high = primary.interval.low or 0.0, primary.interval.high or 0.0
    head = f"Δ {noun} = {units.delta(kind, primary.value, low, high)} ({level:.0%} interval, {n} seeds; {orient})"
    if low > 0 or high < 0:
        better, worse = (arm_a, arm_b) if low > 0 else (arm_b, arm_a)
        against = [d for d in (best, share) if d is not None and _favours_the_other(d, a_flatter=low > 0)]
        if spec.primary == "lr_sensitivity" and against:
            words = {
                "expected_best": "is worse at its best",
                "success_share": "reaches the target over less of the grid",
            }
            shown = " and ".join(
                f"{words[d.figure]} (Δ {'best score' if d.figure == 'expected_best' else 'share'} = "
                f"{units.delta(FIGURE_KINDS[d.figure], d.value, d.interval.low or 0.0, d.interval.high or 0.0)})"
                for d in against
            )
            said = (
                f"{better} has the flatter lr landscape ({head}) but {shown} than {worse}, Δ > 0 meaning "
                f"{arm_a} better: an arm that trains less, or fails alike everywhere, is flatter, not more "
                "robust, so neither is called less sensitive."
            )
            return base.model_copy(
                update={"outcome": "flatter_but_worse", "statement": said, "flatter": better, **numbers}
            )
        outcome: Outcome = "a_less_sensitive" if low > 0 else "b_less_sensitive"
        said = f"{better} is less sensitive than {worse}: {head}."
        return base.model_copy(update={"outcome": outcome, "statement": said, "winner": better, **numbers})
    if mde is not None and mde <= d:
        said = f"No detectable difference: {head}; this study detects a Δ of {size(mde)} or more with {power}."
        return base.model_copy(update={"outcome": "no_detectable_difference", "statement": said, **numbers})
    plan = f"about {needed} seeds would" if needed else f"more than {MAX_SEEDS_PLANNED} seeds would"
    said = f"Inconclusive: {head}; it detects only a Δ of {size(mde)} or more with {power}"
    said += f", and {plan} detect {size(d)}."
    return base.model_copy(update={"statement": said, **numbers})


def _favours_the_other(delta: Delta, *, a_flatter: bool) -> bool:
    """Whether ``delta`` (Δ > 0: a better) favours the arm that is not the flatter one, its interval
    excluding 0."""
    if delta.interval.status != "ok" or delta.interval.low is None or delta.interval.high is None:
        return False
    return delta.interval.high < 0 if a_flatter else delta.interval.low > 0


def family_statement(primary: Delta, exploratory: list[Delta]) -> str:
    tested = sum(1 for d in exploratory if d.p_value is not None)
    return (
        f"The verdict rests on the primary figure alone ({primary.figure}"
        + (f", k={primary.k}" if primary.k else "")
        + f"), fixed before the data. The other {len(exploratory)} figures are exploratory: 'significant' "
        f"means below 0.05 after Holm's adjustment over the {tested} of them with an interval "
        "(family-wise error at most 5%)."
    )
