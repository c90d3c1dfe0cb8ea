"""The trial is typed once (``service.trials.TrialFields``): the stored record and the public view
extend it, the SQL model has a column for each of its fields, and a stored trial's non-finite scores
survive in the record and become null in the view."""

from __future__ import annotations

import math

from sqlalchemy import Engine
from test_storage import record, result, trials_by_key

from service.db import Trial
from service.db.dal import TrialRecord
from service.presenters import trial_public
from service.schemas import TrialPublic
from service.trials import SCORE_NAMES, TrialFields
from studies.results import EpochRecord, TrialKey, TrialStatus


def test_the_record_and_the_view_extend_the_one_set_of_fields() -> None:
    fields = list(TrialFields.model_fields)
    for model in (TrialRecord, TrialPublic):
        assert issubclass(model, TrialFields)
        assert list(model.model_fields)[: len(fields)] == fields
    columns = set(Trial.__table__.columns.keys())
    assert set(fields) <= columns
    assert {f"{name}_kind" for name in SCORE_NAMES} <= columns  # scores keep NaN and ±inf
    assert set(SCORE_NAMES) <= set(fields)


def test_non_finite_scores_survive_in_the_record_and_are_null_in_the_view(engine: Engine, new_study: object) -> None:
    key = TrialKey("a", 0.1, 0.9, 0)
    study = new_study(trial_keys=[key])  # type: ignore[operator]
    blown = result(
        key,
        TrialStatus.DIVERGED,
        val_metric=math.nan,
        val_loss=math.inf,
        test_loss=-math.inf,
        epochs=(EpochRecord(0, 2.0, math.inf, math.nan),),
    )
    record(engine, study.id, blown)
    stored = trials_by_key(engine, study.id)[key]
    assert math.isnan(stored.val_metric or 0.0)
    assert (stored.val_loss, stored.test_loss, stored.test_metric) == (math.inf, -math.inf, 0.3)
    assert stored.attempts == 0
    view = trial_public(stored).model_dump(mode="json")
    assert {name: view[name] for name in SCORE_NAMES} == {
        "val_metric": None,
        "val_loss": None,
        "test_metric": 0.3,
        "test_loss": None,
        "best_val_metric": 0.2,
    }
    assert view["curve"] == [{"epoch": 0, "train_loss": 2.0, "val_loss": None, "val_metric": None}]
    assert (view["status"], view["node"], view["epochs_done"]) == ("diverged", "node-1", 2)
