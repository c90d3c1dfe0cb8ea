"""A typed Python client for the demonlab HTTP API (httpx), covering every endpoint.

    >>> client = DemonlabClient("http://127.0.0.1:8000")          # doctest: +SKIP
    >>> created = client.submit(spec_dict)                         # doctest: +SKIP
    >>> client.wait(created.id).status                             # doctest: +SKIP
    'completed'

Errors come back as ``ApiError`` (``service.errors``) with the HTTP status, the message and the field
at fault; no answer at all (refused, timed out) is its subclass ``ServiceUnreachable``, never a raw
``httpx`` error.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from .errors import ApiError, ServiceUnreachable
from .schemas import GridPublic, StudiesPublic, StudyCreated, StudyPublic, TrialsPublic

FINISHED = ("completed", "completed_with_failures", "failed", "cancelled")


__all__ = ["FINISHED", "ApiError", "DemonlabClient", "ServiceUnreachable"]


class DemonlabClient:
    """One connection to a demonlab service (``base_url`` without ``/api/v1``)."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        token: str | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> DemonlabClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServiceUnreachable(str(self._http.base_url), exc) from exc
        if response.status_code >= 400:
            try:
                body = response.json()
                raise ApiError(response.status_code, str(body.get("detail")), body.get("field"))
            except ValueError:
                raise ApiError(response.status_code, response.text) from None
        return response

    @staticmethod
    def _params(**params: Any) -> dict[str, Any]:
        return {k: v for k, v in params.items() if v is not None}

    # studies
    def submit(self, spec: dict[str, Any], *, idempotency_key: str | None = None) -> StudyCreated:
        """Submit a spec; returns the id and URL (202)."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        response = self._request("POST", "/api/v1/studies", json=spec, headers=headers)
        return StudyCreated.model_validate(response.json())

    def list_studies(
        self,
        *,
        status: str | None = None,
        workload: str | None = None,
        name: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> StudiesPublic:
        """A page of studies."""
        params = self._params(status=status, workload=workload, name=name, offset=offset, limit=limit)
        return StudiesPublic.model_validate(self._request("GET", "/api/v1/studies", params=params).json())

    def get_study(self, study_id: str) -> StudyPublic:
        """One study's status and progress."""
        return StudyPublic.model_validate(self._request("GET", f"/api/v1/studies/{study_id}").json())

    def cancel(self, study_id: str) -> StudyPublic:
        """Cancel a study."""
        return StudyPublic.model_validate(self._request("POST", f"/api/v1/studies/{study_id}/cancel").json())

    def delete(self, study_id: str) -> None:
        """Delete a study (refused while it runs)."""
        self._request("DELETE", f"/api/v1/studies/{study_id}")

    def wait(
        self,
        study_id: str,
        *,
        poll_seconds: float = 1.0,
        timeout: float | None = None,
        on_progress: Callable[[StudyPublic], None] | None = None,
    ) -> StudyPublic:
        """Poll until the study is finished; ``on_progress`` sees every poll."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            study = self.get_study(study_id)
            if on_progress is not None:
                on_progress(study)
            if study.status in FINISHED:
                return study
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"study {study_id} still {study.status} after {timeout}s")
            time.sleep(poll_seconds)

    # results
    def trials(
        self,
        study_id: str,
        *,
        arm: str | None = None,
        status: str | None = None,
        lr: float | None = None,
        beta_init: float | None = None,
        offset: int = 0,
        limit: int = 100,
        curves: bool = False,
    ) -> TrialsPublic:
        """A page of a study's trials."""
        params = self._params(
            arm=arm, status=status, lr=lr, beta_init=beta_init, offset=offset, limit=limit, curves=curves
        )
        response = self._request("GET", f"/api/v1/studies/{study_id}/trials", params=params)
        return TrialsPublic.model_validate(response.json())

    def grid(
        self,
        study_id: str,
        *,
        arm: str | None = None,
        metric: str | None = None,
        split: str = "test",
        stat: str = "median",
    ) -> GridPublic:
        """One arm's lr × β_init grid."""
        params = self._params(arm=arm, metric=metric, split=split, stat=stat)
        return GridPublic.model_validate(self._request("GET", f"/api/v1/studies/{study_id}/grid", params=params).json())

    def sensitivity(
        self, study_id: str, *, eps: float | None = None, metric: str | None = None, split: str = "test"
    ) -> dict[str, Any]:
        """The sensitivity figures per arm and per pair."""
        params = self._params(eps=eps, metric=metric, split=split)
        body: dict[str, Any] = self._request("GET", f"/api/v1/studies/{study_id}/sensitivity", params=params).json()
        return body

    def heatmap(
        self,
        study_id: str,
        *,
        fmt: str = "png",
        metric: str | None = None,
        split: str = "test",
        arms: list[str] | None = None,
    ) -> bytes:
        """The heatmap image (PNG or SVG bytes)."""
        params = self._params(metric=metric, split=split, arms=",".join(arms) if arms else None)
        return self._request("GET", f"/api/v1/studies/{study_id}/heatmap.{fmt}", params=params).content

    def export(self, study_id: str, *, fmt: str = "csv") -> bytes:
        """Every trial as CSV or Parquet bytes."""
        return self._request("GET", f"/api/v1/studies/{study_id}/export.{fmt}").content

    def robustness(self, workload: str, *, arm: str | None = None, epochs: int | None = None) -> dict[str, Any]:
        """The cross-study robustness query."""
        params = self._params(workload=workload, arm=arm, epochs=epochs)
        body: dict[str, Any] = self._request("GET", "/api/v1/robustness", params=params).json()
        return body

    # health
    def healthz(self) -> dict[str, Any]:
        """Liveness."""
        body: dict[str, Any] = self._request("GET", "/healthz").json()
        return body

    def readyz(self) -> dict[str, Any]:
        """Readiness (raises ``ApiError`` 503 when not ready)."""
        body: dict[str, Any] = self._request("GET", "/readyz").json()
        return body
