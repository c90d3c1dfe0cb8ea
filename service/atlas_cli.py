"""``demonlab atlas``: submit an atlas, follow it live, print the answer, write the report and figures.

Without ``--url`` it starts the service in this process (as ``make run`` does: SQLite under the
data dir, the scheduler, local drivers), so the atlas's studies are stored studies like any other:
interrupt it and run the same command again, and it resumes without re-running what finished;
raise ``--seeds`` or add workloads, and it reuses what exists (``service.atlas``). The service it
starts does not mirror results into Optuna's storage (``DEMONLAB_OPTUNA_MIRROR=true`` to keep it).
With ``--url`` it is a client of that service. The wall time it prints runs from the submission to the report on disk.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from studies.atlas.models import AtlasResult

POLL_SECONDS = 2.0
BUDGET_SECONDS = {"cpu": 15 * 60}  # the budget for the whole suite on 2 cores


def run_atlas(
    *,
    suite: str,
    seeds: int,
    workloads: list[str] | None,
    out: Path | None,
    url: str | None,
    token: str | None,
    port: int | None = None,
    stream: TextIO | None = None,
) -> int:
    """Submit, follow, summarise, write; return the exit code (0 when every cell finished)."""
    stream = stream or sys.stdout
    if url is not None:
        return _run(url, token, suite, seeds, workloads, out, stream)
    from .console import safe_url
    from .demo import pick_port, start_server
    from .settings import clear_settings_cache, get_settings

    # Its drivers inherit the environment: no Optuna mirror unless asked for (it costs minutes per
    # large packed study, whose results all arrive at once).
    os.environ.setdefault("DEMONLAB_OPTUNA_MIRROR", "false")
    clear_settings_cache()
    settings = get_settings()
    sock, note = pick_port(port, settings.port)
    if note:
        print(f"demonlab: {note}", file=stream, flush=True)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    print(
        f"demonlab: starting the service at {base} (database {safe_url(settings.database_url)})",
        file=stream,
        flush=True,
    )
    server, thread = start_server(sock)
    try:
        return _run(base, token, suite, seeds, workloads, out or settings.data_dir / "atlas", stream)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _run(
    base: str, token: str | None, suite: str, seeds: int, workloads: list[str] | None, out: Path | None, stream: TextIO
) -> int:
    from studies.metrics import MIN_INTERVAL_SEEDS

    from .client import DemonlabClient

    started = time.monotonic()
    with DemonlabClient(base, token=token, timeout=600.0) as client:
        created = client.create_atlas(suite, seeds=seeds, workloads=workloads)
        key = created.key
        print(
            f"atlas {key}: {created.progress['studies']} studies, {created.progress['trials_total']} trials "
            f"({created.progress['trials_done']} already done); live at {base}/atlases/{key}",
            file=stream,
            flush=True,
        )
        if seeds < MIN_INTERVAL_SEEDS:
            print(
                f"note: below {MIN_INTERVAL_SEEDS} seeds no study gives an interval, so no verdict concludes and "
                "nothing is pooled; use --seeds 8 or more for an answer",
                file=stream,
                flush=True,
            )
        result = _follow(client, key, started, stream)
        print(file=stream)
        print(answer_table(result), file=stream)
        if out is not None:
            _write(client, result, out / key, stream)
    wall = time.monotonic() - started
    print(
        f"\natlas {key} {result.status}: {wall:.0f} s from submission to report{_budget(suite, wall, created)}"
        + (f"; its studies ran {result.wall_seconds:.0f} s" if result.wall_seconds is not None else ""),
        file=stream,
    )
    print(f"reproduce: {result.command}", file=stream)
    return 0 if result.status == "done" else 1


def _budget(suite: str, wall: float, created: AtlasResult) -> str:
    """Whether the run met the suite's budget; only a run that trained everything can say so."""
    budget = BUDGET_SECONDS.get(suite)
    if budget is None:
        return ""
    done, total = created.progress["trials_done"], created.progress["trials_total"]
    if done:
        return f" (resumed with {done} of {total} trials done: the {budget} s budget applies to a run from nothing)"
    return f" (budget {budget} s: {'met' if wall <= budget else 'NOT met'})"


def _follow(client: Any, key: str, started: float, stream: TextIO) -> AtlasResult:
    """Poll the atlas until no study is queued or running; one progress line per change."""
    last = None
    while True:
        result: AtlasResult = client.atlas(key)
        p = result.progress
        line = (
            f"[{time.monotonic() - started:5.0f} s] studies {p['studies_done']}/{p['studies']} done, "
            f"trials {p['trials_done']}/{p['trials_total']}"
        )
        if line.split("] ")[1] != last:
            print(line, file=stream, flush=True)
            last = line.split("] ")[1]
        if result.status in ("done", "failed", "missing"):
            return result
        time.sleep(POLL_SECONDS)


def answer_table(result: AtlasResult) -> str:
    """Per comparison: the verdict counts, the pooled Δ with its interval, and where the claim fails."""
    lines = []
    figure = next((c.figure for c in result.comparisons if c.figure), "the primary figure")
    lines.append(f"Δ = {figure} of Demon minus the baseline's (> 0: Demon less sensitive)")
    header = f"{'comparison':<26} {'pooled Δ':>9} {'interval':>21} {'k':>2} {'τ':>6}  verdicts"
    lines.append(header)
    lines.append("-" * len(header))
    for c in result.comparisons:
        pooled = c.pooled
        estimate = "—" if pooled.estimate is None else f"{pooled.estimate:+.3f}"
        span = "—" if pooled.low is None or pooled.high is None else f"[{pooled.low:+.3f}, {pooled.high:+.3f}]"
        tau = "—" if pooled.tau is None else f"{pooled.tau:.3f}"
        lines.append(
            f"{c.demon + ' vs ' + c.baseline:<26} {estimate:>9} {span:>21} {pooled.k:>2} {tau:>6}  {c.headline}"
        )
    if result.claim_fails:
        lines.append(f"Demon more sensitive: {'; '.join(result.claim_fails)}")
    level = next((c.pooled.level for c in result.comparisons), 0.95)
    lines.append(f"intervals: {100 * level:.0f}%, {result.pooling}")
    return "\n".join(lines)


def _write(client: Any, result: AtlasResult, folder: Path, stream: TextIO) -> None:
    """The report and every figure as PNG and SVG under ``folder`` (the report links them)."""
    from studies.atlas.report import figure_names

    figures = folder / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    for name in figure_names(result):
        for fmt in ("png", "svg"):
            (figures / f"{name}.{fmt}").write_bytes(client.atlas_figure(result.key, name, fmt=fmt))
    report = folder / "report.html"
    report.write_text(client.atlas_report(result.key))
    (folder / "atlas.json").write_text(result.model_dump_json(indent=2))
    print(f"report: {report} (one file, opens offline); figures: {figures}/ (PNG and SVG)", file=stream)
