"""``make run``: the whole loop on the embedded default (SQLite, local Ray).

Start the service (API + scheduler) in this process, submit the digits example over HTTP, follow
its progress, print the sensitivity summary and where the heatmaps are, and keep serving until
Ctrl-C so the API, its docs and the heatmaps can be opened in a browser.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

EXAMPLE = Path(__file__).resolve().parent.parent / "studies" / "examples" / "digits.yaml"


def _free_port(preferred: int) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])


def _start_server(port: int) -> tuple[Any, threading.Thread]:
    import uvicorn

    from .app import create_app
    from .settings import get_settings

    app = create_app(get_settings(), run_scheduler=True)
    from .cli import SHUTDOWN_GRACE_S

    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=SHUTDOWN_GRACE_S
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API server did not start (see the log above)")
        time.sleep(0.1)
    return server, thread


def run_demo(*, port: int | None = None, spec_path: str | None = None) -> int:
    """Serve, submit, follow, summarise, keep serving."""
    from .cli import _follow, _read_spec
    from .client import DemonlabClient
    from .settings import get_settings

    settings = get_settings()
    port = _free_port(port or settings.port)
    base = f"http://127.0.0.1:{port}"
    print(f"dashboard: {base}/  (open it in a browser to follow the study live)", flush=True)
    print(f"demonlab: starting the service at {base} (database {settings.database_url})", flush=True)
    server, thread = _start_server(port)
    client = DemonlabClient(base)
    spec = _read_spec(spec_path or str(EXAMPLE))
    created = client.submit(spec)
    print(
        f"submitted {spec['name']!r} as study {created.id}: {created.trials_total} trials ({base}{created.url})",
        flush=True,
    )
    print(f"  live in the dashboard: {base}/studies/{created.id}", flush=True)
    study = _follow(client, created.id)
    print(f"study {study.id}: {study.status}" + (f" — {study.error}" if study.error else ""))
    if study.status == "completed":
        _summarise(client, study.id, settings.data_dir, base)
    print(f"\nserving the dashboard at {base}/ (API docs at {base}/docs) until Ctrl-C", flush=True)
    try:
        while thread.is_alive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("stopping")
    finally:
        server.should_exit = True
        thread.join(timeout=15)
    return 0


def _summarise(client: Any, study_id: str, data_dir: Path, base: str) -> None:
    from studies.report import summary_table

    report = client.sensitivity(study_id)
    print()
    print(summary_table(report))
    for pair in report.get("pairs", []):
        print(_pair_line(pair))
    out = data_dir / "demo"
    out.mkdir(parents=True, exist_ok=True)
    png, svg = out / f"{study_id}-heatmap.png", out / f"{study_id}-heatmap.svg"
    png.write_bytes(client.heatmap(study_id, fmt="png"))
    svg.write_bytes(client.heatmap(study_id, fmt="svg"))
    print(f"\nheatmaps: {png} and {svg}")
    print(f"  also at {base}/api/v1/studies/{study_id}/heatmap.png")
    print(f"sensitivity: {base}/api/v1/studies/{study_id}/sensitivity")
    print(f"grid:        {base}/api/v1/studies/{study_id}/grid?arm=demon_sgdm")
    print(f"trials:      {base}/api/v1/studies/{study_id}/export.csv")


def _pair_line(pair: dict[str, Any]) -> str:
    """One line per pair: P(a better than b) over cell scores, and Δ of the ε-good fraction."""
    a, b = pair.get("arm_a"), pair.get("arm_b")
    if "error" in pair:
        return f"{a} vs {b}: {pair['error']}"
    poi = pair.get("probability_of_improvement", {})
    delta: dict[str, Any] = next((d for d in pair.get("deltas", []) if d.get("metric") == "good_fraction"), {})
    return (
        f"{a} vs {b}: P({a} cell beats {b} cell) = {_num(poi.get('distributions'))}, "
        f"matched cells {_num(poi.get('matched'))}; "
        f"ΔF_eps = {_num(delta.get('estimate'))} [{_num(delta.get('ci_low'))}, {_num(delta.get('ci_high'))}], "
        f"P(Δ>0) = {_num(delta.get('p_positive'))}"
    )


def _num(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, (int, float)) else "-"
