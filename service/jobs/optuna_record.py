"""Every finished trial of every study, also in the Optuna storage the service keeps, so
``optuna-dashboard <storage>`` shows grid studies too (search studies' samplers already write theirs).

One Optuna study per arm: ``<study id>:<arm>`` for a grid study; for a search study that name is the
sampler's own study (one trial per sampled point, its objective over seeds), so the per-seed trials go
to ``<study id>:<arm>:seeds`` and the sampler never sees them. Each result is one Optuna trial:
``lr`` (log-uniform) and ``beta_init`` (uniform) as parameters over the spec's ranges, the validation
metric as its value (minimised; a diverged trial counts at the workload's failure score, as in every
sensitivity figure), and as user attributes the seed, both splits' metric and loss, whether it
diverged, epochs, wall seconds, node, device, and the demonlab study id.

Recording is best effort: the service's own database is the record; a failure here is logged and
never fails the study. A trial is written once (its key is a user attribute, checked per arm).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from studies.results import TrialResult
from studies.vocab import TrialStatus, impute_score

log = logging.getLogger("demonlab.optuna")


def optuna_study_name(study_id: str, arm: str, *, search: bool) -> str:
    """The Optuna study that holds a demonlab study's per-seed trials of ``arm``."""
    return f"{study_id}:{arm}:seeds" if search else f"{study_id}:{arm}"


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


class OptunaRecorder:
    """Writes a study's results into Optuna's RDB storage at ``storage_url``, one trial per result."""

    def __init__(self, storage_url: str, study_id: str, spec: Any, y_fail: float) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study_id = study_id
        self.search = spec.search.mode == "optuna"
        self.y_fail = y_fail
        self.storage = optuna.storages.RDBStorage(url=storage_url, engine_kwargs={"pool_pre_ping": True})
        if self.search:
            lr = (spec.search.lr.min, spec.search.lr.max)
            beta = (spec.search.beta_init.min, spec.search.beta_init.max)
        else:
            lr = (min(spec.lr_values), max(spec.lr_values))
            beta = (min(spec.beta_init), max(spec.beta_init))
        self.distributions: dict[str, optuna.distributions.BaseDistribution] = {
            "lr": optuna.distributions.FloatDistribution(lr[0], lr[1], log=True),
            "beta_init": optuna.distributions.FloatDistribution(beta[0], beta[1]),
        }
        self.metric = spec.metric_name
        self._studies: dict[str, Any] = {}
        self._recorded: dict[str, set[str]] = {}

    def _study(self, arm: str) -> Any:
        import optuna

        if arm not in self._studies:
            study = optuna.create_study(
                study_name=optuna_study_name(self.study_id, arm, search=self.search),
                storage=self.storage,
                direction="minimize",
                load_if_exists=True,
            )
            study.set_user_attr("demonlab_study_id", self.study_id)
            study.set_user_attr("arm", arm)
            study.set_user_attr("value", f"validation {self.metric} (lower is better; diverged = {self.y_fail:g})")
            self._recorded[arm] = {
                str(t.user_attrs.get("trial_key"))
                for t in study.get_trials(deepcopy=False)
                if "trial_key" in t.user_attrs
            }
            self._studies[arm] = study
        return self._studies[arm]

    def record(self, result: TrialResult) -> None:
        """Add one result (completed or diverged; others are not results yet) as an Optuna trial."""
        import optuna

        if result.status not in (TrialStatus.COMPLETED, TrialStatus.DIVERGED):
            return
        key = result.key
        study = self._study(key.arm)
        token = key.token()
        if token in self._recorded[key.arm]:
            return
        diverged = result.status is TrialStatus.DIVERGED
        value = impute_score(result.val_metric, result.status, self.y_fail)
        if value is None:  # completed without a finite validation score: nothing to plot
            return
        attrs = {
            "demonlab_study_id": self.study_id,
            "trial_key": token,
            "arm": key.arm,
            "seed": key.seed,
            "diverged": diverged,
            "val_metric": _finite(result.val_metric),
            "test_metric": _finite(result.test_metric),
            "val_loss": _finite(result.val_loss),
            "test_loss": _finite(result.test_loss),
            "epochs_done": result.epochs_done,
            "wall_seconds": result.wall_seconds,
            "node": result.node,
            "device": result.device,
        }
        trial = optuna.trial.create_trial(
            params={"lr": key.lr, "beta_init": key.beta_init},
            distributions=self.distributions,
            value=value,
            user_attrs=attrs,
        )
        study.add_trial(trial)
        self._recorded[key.arm].add(token)

    def safe_record(self, result: TrialResult) -> None:
        """``record`` that logs and swallows any failure (the service's database is the record)."""
        try:
            self.record(result)
        except Exception:
            log.warning("study %s: could not record %s in Optuna's storage", self.study_id, result.key, exc_info=True)
