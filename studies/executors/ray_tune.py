"""Run trials on Ray with Ray Tune: a grid executor and an Optuna search executor.

Grid: a ``Tuner`` over the list of trial units (``tune.grid_search`` over short unit indices, the
units passed with ``tune.with_parameters``), ``reuse_actors=True``, resources per trial with
``tune.with_resources``, retries with ``FailureConfig``. A unit is one trial, or a pack of several
run one after another in one Ray task when per-trial overhead matters (``trials_per_task``).

Search: ``OptunaSearch`` with an explicit sampler and seed, one Optuna study per arm named
``<study_id>:<arm>`` (each arm gets its own trial budget and sampler state; one shared study would
let the sampler starve the worse arm), optional storage URL so a relaunch resumes the sampler.

Every finished trial reaches the sink from a Tune callback in the driver, the moment Tune sees it.
Trials that error after their retries are turned into ``failed`` results: surfaced, never swallowed.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..results import TrialKey
from ..runner import run_trial
from ..training import TrialPlan
from ..vocab.samplers import make_sampler
from ._tune_hooks import HOOKS, RESULTS_FIELD, CancelStopper, DriverHooks, SinkCallback, register
from .base import Context, RunSummary, Sink, Work, objective_value, pack
from .ray_session import check_feasible, ensure_ray


def _grid_trainable(
    config: dict[str, Any],
    plan: TrialPlan,
    units: list[list[str]],
) -> None:
    """Run one unit of trials, one after another, and report all their results. (A packed study on
    Ray runs its packs as Ray tasks or pool actors: ``ray_packs.RayPackExecutor``.)"""
    from ray import tune

    keys = [TrialKey.from_token(token) for token in units[config["unit"]]]
    results = [run_trial(plan, key) for key in keys]
    tune.report({RESULTS_FIELD: json.dumps([r.to_dict() for r in results])})


def _search_trainable(
    config: dict[str, Any],
    plan: TrialPlan,
    arm: str,
    seeds: list[int],
    metric_kind: str,
    split: str,
    y_fail: float,
) -> None:
    """Run the sampled (lr, β_init) on every seed; report the mean imputed objective to Optuna."""
    from ray import tune

    keys = [TrialKey(arm, float(config["lr"]), float(config["beta_init"]), seed) for seed in seeds]
    results = [run_trial(plan, key) for key in keys]
    values = [objective_value(r, metric_kind, split, y_fail) for r in results]
    tune.report(
        {
            "objective": sum(values) / len(values),
            RESULTS_FIELD: json.dumps([r.to_dict() for r in results]),
        }
    )


def _storage_path(data_dir: str | Path | None) -> str:
    base = Path(data_dir) if data_dir else Path(tempfile.gettempdir())
    path = base.resolve() / "tune"
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def _resources(cpu: float, gpu: float, custom: dict[str, float] | None) -> dict[str, float]:
    resources = {"cpu": cpu, "gpu": gpu}
    resources.update(custom or {})
    return resources


class RayTuneExecutor:
    """Run a grid of trials with Ray Tune, on the cluster at ``ray_address`` (None: a local Ray of
    ``num_cpus`` started under ``storage_dir``), ``trials_per_task`` keys one after another in a
    Tune trial (a packed study runs on ``ray_packs.RayPackExecutor``)."""

    name = "ray"

    def __init__(
        self,
        *,
        cpu: float = 1.0,
        gpu: float = 0.0,
        custom_resources: dict[str, float] | None = None,
        max_failures: int = 2,
        trials_per_task: int = 1,
        storage_dir: str | Path | None = None,
        experiment_name: str = "study",
        max_concurrent_trials: int | None = None,
        ray_address: str | None = None,
        num_cpus: int | None = None,
    ) -> None:
        self.resources = _resources(cpu, gpu, custom_resources)
        self.max_failures = max_failures
        self.trials_per_task = trials_per_task
        self.storage_dir = storage_dir
        self.experiment_name = experiment_name
        self.max_concurrent_trials = max_concurrent_trials
        self.ray_address = ray_address
        self.num_cpus = num_cpus

    @classmethod
    def for_study(cls, spec: Any, context: Context) -> RayTuneExecutor:
        """The executor of a per-trial grid study: the spec's resources, retries and trials per task."""
        return cls(
            cpu=spec.resources.cpu,
            gpu=spec.resources.gpu,
            custom_resources=spec.resources.custom,
            max_failures=spec.max_failures,
            trials_per_task=spec.trials_per_task,
            storage_dir=context.data_dir,
            experiment_name=context.study_id,
            ray_address=context.ray_address,
            num_cpus=context.num_cpus,
        )

    def run(self, work: Work, sink: Sink) -> RunSummary:
        """Run every key as a Tune trial (or units of keys); results reach ``sink`` as they finish."""
        from ray import tune

        summary = RunSummary()
        if not work.keys:
            return summary
        ensure_ray(address=self.ray_address, data_dir=self.storage_dir or ".work", num_cpus=self.num_cpus)
        check_feasible(self.resources)
        units = self._units(work)
        tokens = [[key.token() for key in unit] for unit in units]
        unit_keys = {str(i): unit for i, unit in enumerate(units)}
        token = register(DriverHooks(sink, summary, work.should_stop, unit_keys, work.on_start))
        trainable = tune.with_resources(
            tune.with_parameters(_grid_trainable, plan=work.plan, units=tokens),
            self.resources,
        )
        tuner = tune.Tuner(
            trainable,
            param_space={"unit": tune.grid_search(list(range(len(units))))},
            tune_config=tune.TuneConfig(reuse_actors=True, max_concurrent_trials=self.max_concurrent_trials),
            run_config=self._run_config(token),
        )
        try:
            grid = tuner.fit()
        finally:
            HOOKS.pop(token, None)
        summary.errors.extend(str(e).splitlines()[0] for e in grid.errors if str(e))
        return summary

    def _units(self, work: Work) -> list[list[TrialKey]]:
        """The Tune trials: runs of ``trials_per_task`` keys run one after another in one task."""
        return pack(work.keys, self.trials_per_task)

    def _run_config(self, token: str) -> Any:
        from ray import tune

        return tune.RunConfig(
            name=self.experiment_name,
            storage_path=_storage_path(self.storage_dir),
            failure_config=tune.FailureConfig(max_failures=self.max_failures),
            callbacks=[SinkCallback(token)],
            stop=CancelStopper(token),
            verbose=0,
        )


def optuna_storage(url: str | None) -> Any:
    """An Optuna RDB storage for ``url`` (the service's database), or None for in-memory."""
    if not url:
        return None
    import optuna

    from ..optuna_storage import open_rdb_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    return open_rdb_storage(url, engine_kwargs={"pool_pre_ping": True})


def _finished_and_clear(study_name: str, storage: Any) -> tuple[int, int]:
    """(finished, all) trials of a stored Optuna study; running ones left by a dead driver → failed."""
    import optuna

    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        return 0, 0
    done = 0
    trials = study.get_trials(deepcopy=False)
    for trial in trials:
        if trial.state == optuna.trial.TrialState.RUNNING:
            storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        elif trial.state == optuna.trial.TrialState.COMPLETE:
            done += 1
    return done, len(trials)


class OptunaExecutor:
    """Search (lr, β_init) per arm with Ray Tune's ``OptunaSearch``: ``n_trials`` points per arm,
    each run on every seed, Optuna told the mean imputed objective on validation (a search always
    chooses on validation, whatever split the study's figures report)."""

    name = "optuna"

    def __init__(
        self,
        *,
        sampler: str,
        n_trials: int,
        lr_range: tuple[float, float],
        beta_range: tuple[float, float],
        arms: Sequence[str],
        seeds: Sequence[int],
        metric_kind: str = "metric",
        y_fail: float = 1.0,
        seed: int = 0,
        cpu: float = 1.0,
        gpu: float = 0.0,
        custom_resources: dict[str, float] | None = None,
        max_failures: int = 2,
        storage_url: str | None = None,
        study_id: str = "study",
        storage_dir: str | Path | None = None,
        ray_address: str | None = None,
        num_cpus: int | None = None,
    ) -> None:
        self.sampler = sampler
        self.n_trials = n_trials
        self.lr_range = lr_range
        self.beta_range = beta_range
        self.arms, self.seeds = list(arms), list(seeds)
        self.metric_kind, self.y_fail = metric_kind, y_fail
        self.seed = seed
        self.resources = _resources(cpu, gpu, custom_resources)
        self.max_failures = max_failures
        self.storage_url = storage_url
        self.study_id = study_id
        self.storage_dir = storage_dir
        self.ray_address = ray_address
        self.num_cpus = num_cpus

    @classmethod
    def for_study(cls, spec: Any, context: Context) -> OptunaExecutor:
        """The executor of a search study: its sampler, budget, ranges, arms, seeds and y_fail."""
        search = spec.search
        return cls(
            sampler=search.sampler,
            n_trials=search.n_trials,
            lr_range=(search.lr.min, search.lr.max),
            beta_range=(search.beta_init.min, search.beta_init.max),
            arms=[arm.name for arm in spec.arms],
            seeds=spec.seed_values,
            metric_kind=spec.metric_kind,
            y_fail=spec.y_fail(),
            seed=search.seed,
            cpu=spec.resources.cpu,
            gpu=spec.resources.gpu,
            custom_resources=spec.resources.custom,
            max_failures=spec.max_failures,
            storage_url=context.optuna_storage_url,
            study_id=context.study_id,
            storage_dir=context.data_dir,
            ray_address=context.ray_address,
            num_cpus=context.num_cpus,
        )

    def study_name(self, arm: str) -> str:
        """The Optuna study of one arm."""
        return f"{self.study_id}:{arm}"

    def run(self, work: Work, sink: Sink) -> RunSummary:
        """For each arm, ``n_trials`` sampled points (fewer if a stored study already has some);
        ``work.keys`` is not used (the sampler proposes the trials)."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        ensure_ray(address=self.ray_address, data_dir=self.storage_dir or ".work", num_cpus=self.num_cpus)
        check_feasible(self.resources)
        summary = RunSummary()
        storage = optuna_storage(self.storage_url)
        for arm in self.arms:
            if work.should_stop():
                summary.cancelled = True
                break
            token = register(DriverHooks(sink, summary, work.should_stop, None, work.on_start, self._keys_of(arm)))
            try:
                self._run_arm(work, arm, token, storage)
            finally:
                HOOKS.pop(token, None)
        return summary

    def _keys_of(self, arm: str) -> Any:
        """The trials of one proposed point (a Tune trial's config): the point on every seed."""
        return lambda config: [TrialKey(arm, float(config["lr"]), float(config["beta_init"]), s) for s in self.seeds]

    def _run_arm(self, work: Work, arm: str, token: str, storage: Any) -> None:
        from ray import tune
        from ray.tune.search.optuna import OptunaSearch

        name = self.study_name(arm)
        done, existing = _finished_and_clear(name, storage) if storage else (0, 0)
        remaining = self.n_trials - done
        if remaining <= 0:
            return
        # The sampler's random state is not stored: a resumed study reseeded with the same seed
        # would propose its first points again. Offsetting by the stored trials keeps it fresh
        # and still deterministic.
        search = OptunaSearch(
            metric="objective",
            mode="min",
            sampler=make_sampler(self.sampler, self.seed + existing),
            study_name=name,
            storage=storage,
        )
        trainable = tune.with_resources(
            tune.with_parameters(
                _search_trainable,
                plan=work.plan,
                arm=arm,
                seeds=self.seeds,
                metric_kind=self.metric_kind,
                split="val",
                y_fail=self.y_fail,
            ),
            self.resources,
        )
        tuner = tune.Tuner(
            trainable,
            param_space={"lr": tune.loguniform(*self.lr_range), "beta_init": tune.uniform(*self.beta_range)},
            tune_config=tune.TuneConfig(search_alg=search, num_samples=remaining, reuse_actors=True),
            run_config=tune.RunConfig(
                name=f"{self.study_id}-{arm}-{os.getpid()}",
                storage_path=_storage_path(self.storage_dir),
                failure_config=tune.FailureConfig(max_failures=self.max_failures),
                callbacks=[SinkCallback(token)],
                stop=CancelStopper(token),
                verbose=0,
            ),
        )
        grid = tuner.fit()
        HOOKS[token].summary.errors.extend(str(e).splitlines()[0] for e in grid.errors if str(e))
