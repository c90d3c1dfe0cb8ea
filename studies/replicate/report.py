"""The replication report: a finished Fig. 2 study beside the paper's panel (``demonlab replicate``).

``replication_report(trials, study, paper="fig2-wrn")`` takes the study's trials (the export's
columns) and what the study was (``StudyInfo``), and returns one typed ``ReplicationReport``: every
arm's cells beside the paper's heatmap with their difference, the paper's claim recomputed on both
sides with a verdict per baseline arm, and notes saying where the study departs from the paper
(workload, training set, budget, seeds). ``studies.replicate.render`` prints and draws it.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from pydantic import BaseModel

from ..spec import FULL_TRAIN_NOTE
from ..vocab import workload_entry, y_fail
from .compare import ArmCells, ClaimResult, arm_cells, claim_result, seed_cube
from .paper import Panel, PaperCells, panel, paper_cells

__all__ = ["ReplicationReport", "StudyInfo", "replication_report"]

REPORT_VERSION = 1


class StudyInfo(BaseModel):
    """What the report needs to know of the study beside its trials."""

    id: str
    name: str
    workload: str
    status: str
    epochs: int | None = None
    batch_size: int | None = None
    full_train: bool = False
    workload_params: dict[str, Any] = {}

    @classmethod
    def from_spec(cls, study_id: str, status: str, spec: dict[str, Any]) -> StudyInfo:
        """From a stored spec (a dict as submitted)."""
        return cls(
            id=study_id,
            name=str(spec.get("name", study_id)),
            workload=str(spec["workload"]),
            status=status,
            epochs=spec.get("epochs"),
            batch_size=spec.get("batch_size"),
            full_train=bool(spec.get("full_train", False)),
            workload_params=dict(spec.get("workload_params") or {}),
        )


class ReplicationReport(BaseModel):
    """A study beside one panel of the paper's Fig. 2."""

    report_version: int = REPORT_VERSION
    paper: str
    title: str
    source: str = "Chen, Wolfe, Li, Kyrillidis, arXiv:1910.04952 v4, Fig. 2 (cells read from the figure, ± 0.005)"
    study: StudyInfo
    seeds: list[int]
    lrs: list[float]
    momenta: list[float]
    colour_scale: tuple[float, float]
    notes: list[str]
    arms: list[ArmCells]
    claims: list[ClaimResult]


def replication_report(trials: pd.DataFrame, study: StudyInfo, *, paper: str) -> ReplicationReport:
    """Compare ``trials`` (columns arm, lr, beta_init, seed, status, test_metric) with panel ``paper``.

    Raises:
        ValueError: an unknown panel, a study whose metric is not an error rate, or one without the
        panel's Demon arm or any of its baselines.
    """
    chosen = panel(paper)
    metric = workload_entry(study.workload).metric_name
    if metric != "error":  # the paper's cells are test error rates, read in percent
        raise ValueError(
            f"study {study.id}'s workload {study.workload} scores {metric}, not an error rate: {paper} "
            "compares test error (%) with the paper's"
        )
    arms = set(trials["arm"].astype(str))
    if trials.empty:  # a search that has sampled nothing yet: its arms have no rows
        raise ValueError(f"study {study.id} has no trials yet: {paper} compares its results with the paper's")
    if chosen.demon_arm not in arms:
        raise ValueError(f"study {study.id} has no arm {chosen.demon_arm!r}: {paper} compares it with the paper's")
    baselines = [b for b in chosen.baselines if b in arms]
    if not baselines:
        raise ValueError(
            f"study {study.id} has no trials of {paper}'s baseline arms ({', '.join(chosen.baselines)}): "
            "none in its spec, or none run yet"
        )
    demon_paper, base_paper = paper_cells(chosen.demon_panel), paper_cells(chosen.baseline_panel)
    seeds = sorted(int(s) for s in trials["seed"].unique())
    fail = y_fail(study.workload, study.workload_params, "metric")

    def cube(arm: str) -> Any:
        return seed_cube(trials, arm, demon_paper.lrs, demon_paper.momenta, seeds, fail)

    cubes = {arm: cube(arm) for arm in [chosen.demon_arm, *baselines]}
    cells = [arm_cells(chosen.demon_arm, cubes[chosen.demon_arm], demon_paper)]
    cells += [arm_cells(b, cubes[b], base_paper) for b in baselines]
    claims = []
    if chosen.claim is not None:
        demon = (chosen.demon_arm, cubes[chosen.demon_arm], demon_paper)
        claims = [claim_result(chosen.claim, demon, (b, cubes[b], base_paper), seeds) for b in baselines]
    return ReplicationReport(
        paper=chosen.key,
        title=chosen.title,
        study=study,
        seeds=seeds,
        lrs=list(demon_paper.lrs),
        momenta=list(demon_paper.momenta),
        colour_scale=(demon_paper.colour_min, demon_paper.colour_max),
        notes=_notes(chosen, study, trials, seeds, demon_paper, fail),
        arms=cells,
        claims=claims,
    )


def _notes(
    chosen: Panel, study: StudyInfo, trials: pd.DataFrame, seeds: list[int], paper: PaperCells, fail: float
) -> list[str]:
    """Where the study departs from the paper, and how to read the comparison."""
    notes = []
    if study.workload != chosen.workload:
        notes.append(
            f"the study's workload {study.workload!r} is not the paper's {chosen.workload!r}: "
            "this compares the shapes of the grids, not a replication"
        )
    if study.status != "completed":
        notes.append(f"the study is {study.status}: cells without results are missing")
    notes.append(
        FULL_TRAIN_NOTE
        if study.full_train
        else "the study held out a validation split, so it trained on fewer images than the paper, which "
        "trained on the whole training set (a spec's full_train: true reproduces that)"
    )
    if (study.epochs, study.batch_size) != (chosen.epochs, chosen.batch_size):
        notes.append(
            f"trained {study.epochs} epochs at batch {study.batch_size or 'the workload default'}; "
            f"the paper {chosen.epochs} epochs at batch {chosen.batch_size}"
        )
    notes.append(f"{len(seeds)} seed(s) per cell, each cell's value the median over them (the paper: one run per cell)")
    notes.append(
        f"a diverged trial counts as chance-level error ({fail:.0%}), a failed one as missing; a missing trial "
        "is not under the threshold in a seed's count"
    )
    lrs, betas = set(trials["lr"].astype(float)), set(trials["beta_init"].astype(float))
    absent = [lr for lr in paper.lrs if not any(math.isclose(lr, v, rel_tol=1e-9) for v in lrs)]
    absent_betas = [b for b in paper.momenta if not any(math.isclose(b, v, rel_tol=1e-9) for v in betas)]
    if absent or absent_betas:
        notes.append(f"the study's grid lacks the paper's lr {absent} and beta_init {absent_betas}")
    notes.append(
        f"both heatmaps use the paper's colour bar, {paper.colour_min:.0%} to {paper.colour_max:.0%} error; the "
        "paper's values at its ends are clipped (the true error may lie beyond), so their differences are bounds"
    )
    if chosen.caveat:
        notes.append(chosen.caveat)
    return notes
