/* A study's page: live progress over the study's event stream (no reload); the answer (verdicts,
 * forest plot, lr slices, difference maps; study_answer.js), the heatmaps (study_maps.js), the trial
 * table (study_trials.js), the search study's points, the figures in words, and the cancel/delete
 * actions (token from this tab's sessionStorage). The page loads progressively: the maps first, then
 * the sensitivity report, with a hint while it is computed; `data-ready` marks both drawn. The split,
 * the opened cell, the curve overlay and the trial table's filters live in the URL. */
"use strict";

(() => {
  const { api, el, num, pct, urlState, scoreFormat } = demonlab;
  const root = document.getElementById("study");
  const $ = (name) => document.getElementById(name);
  const finished = (root.dataset.finished || "").split(" ");
  const ctx = {
    id: root.dataset.study,
    base: "/api/v1/studies/" + encodeURIComponent(root.dataset.study),
    isSearch: root.dataset.search === "true",
    metricName: root.dataset.metric, // the spec's metric (the maps, the verdict)
    trialMetric: root.dataset.workloadMetric, // what a trial's val_metric / test_metric hold
    fmt: scoreFormat(false),
    heatmaps: null,
    showTables: false,
  };
  const maps = ctx.isSearch ? null : studyMaps(ctx);
  const trials = studyTrials(ctx);
  const split = () => $("split").value;

  // ------------------------------------------------------------------ progress (server-sent events)

  function showProgress(study) {
    const p = study.progress;
    $("progress").max = Math.max(p.total, 1);
    $("progress").value = p.done;
    $("done").textContent = p.done;
    $("total").textContent = p.total;
    $("diverged").textContent = p.diverged;
    $("failed").textContent = p.failed;
    showStatus(study.status);
    const time = (iso) => (iso ? iso.replace("T", " ").slice(0, 19) + " UTC" : "–");
    $("started").textContent = time(study.started_at);
    $("finished").textContent = time(study.finished_at);
    if (study.error) {
      $("study-error").textContent = study.error;
      $("study-error").hidden = false;
    }
  }

  function showStatus(status) {
    const badge = $("status");
    badge.textContent = status;
    badge.className = "status status-" + status;
    root.dataset.status = status;
    const done = finished.includes(status);
    $("cancel-button").disabled = done;
    if (done) $("cancel-button").title = "the study has finished";
    else $("cancel-button").removeAttribute("title");
  }

  // Live refreshes are spaced by at least 4× what the last one took, so a big study's page does not
  // keep the server recomputing its grids while it runs.
  let refreshTimer = null, lastReport = 0, lastLoadMs = 0;
  function scheduleRefresh() {
    if (refreshTimer) return;
    refreshTimer = setTimeout(() => {
      refreshTimer = null;
      loadMaps();
      if (Date.now() - lastReport > Math.max(5000, 8 * lastLoadMs)) {
        loadReport();
        loadPlacement();
        trials.load();
      }
    }, Math.max(1000, 4 * lastLoadMs));
  }

  function follow() {
    if (!window.EventSource) return;
    const source = new EventSource(ctx.base + "/events");
    source.addEventListener("open", () => { $("live").textContent = "live"; });
    source.addEventListener("progress", (e) => showProgress(JSON.parse(e.data)));
    source.addEventListener("status", (e) => showStatus(JSON.parse(e.data).status));
    source.addEventListener("trial", (e) => {
      const t = JSON.parse(e.data);
      if (maps) maps.forget(t.arm, t.lr, t.beta_init);
      scheduleRefresh();
    });
    source.addEventListener("end", () => {
      source.close();
      $("live").textContent = "finished";
      if (maps) maps.forget();
      loadAll();
    });
    source.addEventListener("error", () => {
      $("live").textContent = source.readyState === EventSource.CLOSED ? "" : "reconnecting…";
    });
  }

  // ------------------------------------------------------------------------- loading, progressively

  const pending = new Set();
  let hintTimer = null, hintStart = 0;
  function busy(what, on) {
    if (on) pending.add(what);
    else pending.delete(what);
    if (pending.size && !hintTimer) {
      hintStart = Date.now();
      hintTimer = setInterval(hint, 500);
    }
    hint();
  }

  function hint() {
    const box = $("ready-state");
    if (!pending.size) {
      clearInterval(hintTimer);
      hintTimer = null;
      box.textContent = "";
      root.dataset.ready = "true";
      return;
    }
    root.dataset.ready = "false";
    const seconds = Math.floor((Date.now() - hintStart) / 1000);
    box.textContent = [...pending].join(", ") + "…" + (seconds >= 1 ? ` ${seconds} s` : "");
  }

  async function loadMaps() {
    if (ctx.isSearch) return loadSearch();
    busy("loading the maps", true);
    const started = Date.now();
    const result = await api("GET", `${ctx.base}/heatmaps?split=${encodeURIComponent(split())}`);
    lastLoadMs = Date.now() - started;
    busy("loading the maps", false);
    if (!result.ok) {
      const text = "No heatmap yet: " + (result.data && result.data.detail);
      $("heatmaps").replaceChildren(el("p", { class: "muted", text }));
      $("slices").replaceChildren(el("p", { class: "muted", text }));
      return;
    }
    const first = ctx.heatmaps === null;
    ctx.heatmaps = result.data;
    ctx.fmt = scoreFormat(result.data.percent);
    studyAnswer.drawSlices(ctx.heatmaps, ctx.fmt);
    studyAnswer.drawDifferences(ctx.heatmaps, ctx.fmt);
    maps.draw();
    if (first) {
      maps.restore();
      trials.load();
    }
  }

  async function loadReport() {
    if (ctx.isSearch) return;
    lastReport = Date.now();
    busy("computing the verdict (every figure per seed, with t intervals over seeds)", true);
    const r = await api("GET", `${ctx.base}/sensitivity?split=${encodeURIComponent(split())}`);
    busy("computing the verdict (every figure per seed, with t intervals over seeds)", false);
    if (!r.ok) {
      $("verdicts").replaceChildren(el("p", { class: "muted", text: "No verdict yet: " + (r.data && r.data.detail) }));
      $("forest").replaceChildren();
      return;
    }
    if (!ctx.heatmaps) ctx.fmt = scoreFormat(false);
    studyAnswer.drawVerdicts(r.data, ctx.fmt);
    if ($("figures-details").open) loadFigures();
  }

  async function loadFigures() {
    const response = await fetch(`/studies/${encodeURIComponent(ctx.id)}/figures?split=${encodeURIComponent(split())}`);
    // The fragment is rendered by the server's templates with autoescape: no user value is raw HTML.
    const html = await response.text();
    const doc = new DOMParser().parseFromString(html, "text/html");
    $("figures").replaceChildren(...doc.body.childNodes);
  }

  // --------------------------------------------------------------------------------- search study

  async function loadSearch() {
    busy("loading the sampled points", true);
    const started = Date.now();
    const r = await api("GET", `${ctx.base}/points?split=${encodeURIComponent(split())}`);
    lastLoadMs = Date.now() - started;
    busy("loading the sampled points", false);
    const box = $("scatter");
    // The trial table loads once the unit is known (the grid page loads it after its maps, alike).
    const firstTrials = () => { if (!ctx.trialsLoaded) { ctx.trialsLoaded = true; trials.load(); } };
    if (!r.ok) {
      box.replaceChildren(el("p", { class: "muted", text: r.data.detail }));
      firstTrials();
      return;
    }
    const d = r.data;
    const fmt = scoreFormat(d.percent);
    ctx.fmt = fmt; // the trial table's unit too: an error rate in percent, as on a grid study's page
    firstTrials();
    const fv = (v) => fmt(v) + (Number.isFinite(v) ? fmt.unit : "");
    const name = `median ${d.split} ${d.metric}`, label = name + (fmt.unit ? " (%)" : "");
    const parts = d.arms.map((arm) => {
      const points = arm.points.map((p) => ({
        x: p.lr, y: p.beta_init, colour: p.colour, ring: p.seeds > 0 && p.diverged === p.seeds,
        title: `lr ${num(p.lr)}, β_init ${num(p.beta_init, 4)}: median ${d.split} ${d.metric} ${fv(p.value)} over ${p.seeds} seeds, ${p.diverged} diverged`,
      }));
      const importance = Object.entries(arm.importances || {}).map(([k, v]) => [k, pct(v)]);
      const rows = arm.points.map((p) => [num(p.lr), num(p.beta_init, 4), fmt(p.value), String(p.seeds), String(p.diverged)]);
      const twin = demonlab.table(["lr", "β_init", label, "seeds", "diverged"], rows, `${arm.arm}: sampled points`);
      twin.hidden = !ctx.showTables;
      twin.classList.add("points-table");
      return el("div", { class: "arm-maps" },
        charts.scatter(points, { title: `${arm.arm}: ${points.length} sampled points, coloured by ${label}`, className: "search-points" }),
        twin,
        importance.length
          ? demonlab.table(["parameter", "importance"], importance, `parameter importances for ${name} (${arm.importance_method || "Optuna"})`)
          : el("p", { class: "muted", text: arm.importance_note || "" }));
    });
    const slices = ["lr", "beta_init"].map((param) => charts.scatter(
      d.arms.flatMap((arm, k) => arm.points.filter((p) => p.value !== null).map((p) => ({
        x: p[param], y: p.value, cls: "s" + (k % charts.SERIES),
        title: `${arm.arm}: ${param} ${num(p[param], 4)} → ${fv(p.value)}`,
      }))),
      { title: `slice: ${label} against ${param === "lr" ? "lr" : "β_init"}, every arm`, logX: param === "lr", xLabel: param === "lr" ? "lr (log)" : "β_init", yLabel: label, fmtY: fmt, fmtX: param === "lr" ? num : (v) => num(v, 4), className: "search-slice" }));
    const key = el("p", { class: "series-key small" }, "Slices: ", ...d.arms.map((arm, k) => el("span", { class: "key s" + (k % charts.SERIES) + "-label", text: "● " + arm.arm + " " })));
    box.replaceChildren(
      el("div", { class: "heatmaps" }, ...parts),
      el("div", { class: "legend" }, el("span", { class: "small muted", text: `${label} (lower is better; red ring: every seed diverged) ` }),
        charts.legend(d.legend.map((s) => Object.assign({}, s, { value: d.percent ? 100 * s.value : s.value })), "colour scale")),
      key, el("div", { class: "heatmaps" }, ...slices));
  }

  // ------------------------------------------------------------------------------------- the rest

  async function loadPlacement() {
    const r = await api("GET", `${ctx.base}/placement`);
    if (!r.ok) return;
    $("trial-time").textContent = `${num(r.data.wall_seconds)} s in all`;
    $("placement").replaceChildren(r.data.rows.length
      ? demonlab.table(["node", "device", "trials", "seconds"], r.data.rows.map((p) => [p.node, p.device || "–", String(p.trials), num(p.wall_seconds)]))
      : el("p", { class: "muted", text: "No trial has run yet." }));
  }

  async function act(kind) {
    const message = $("action-message");
    const verb = kind === "cancel" ? "Cancel" : "Delete";
    if (!window.confirm(`${verb} study ${ctx.id}?`)) return;
    const r = kind === "cancel" ? await api("POST", `${ctx.base}/cancel`) : await api("DELETE", ctx.base);
    if (r.ok) {
      message.className = "ok";
      message.textContent = kind === "cancel" ? "cancelled" : "deleted";
      if (kind === "delete") window.location.assign("/");
      return;
    }
    message.className = "error";
    message.textContent = `${verb} refused (${r.status}): ${r.data && r.data.detail}`;
    if (r.status === 401) {
      message.textContent += " — enter an API token above";
      $("token-input").focus();
    }
  }

  async function loadAll(first) {
    await loadMaps(); // the maps first: the report's trials frame is then already read
    loadReport();
    loadPlacement();
    if (!first) trials.load(); // the first load is after the maps (study_maps restores the URL's state)
  }

  document.addEventListener("DOMContentLoaded", () => {
    const wanted = urlState().get("split");
    if (wanted === "val" || wanted === "test") $("split").value = wanted;
    $("split").addEventListener("change", () => {
      urlState({ split: split() === "test" ? null : split() });
      if (maps) maps.forget();
      loadAll();
    });
    const toggle = $("heatmap-table-toggle");
    if (toggle) {
      toggle.addEventListener("click", () => {
        ctx.showTables = !ctx.showTables;
        toggle.setAttribute("aria-pressed", String(ctx.showTables));
        toggle.textContent = ctx.showTables ? "Hide tables" : "Show as table";
        if (maps) maps.drawTables();
        document.querySelectorAll(".points-table").forEach((t) => { t.hidden = !ctx.showTables; });
      });
    }
    if ($("figures-details")) $("figures-details").addEventListener("toggle", () => { if ($("figures-details").open) loadFigures(); });
    $("cancel-button").addEventListener("click", () => act("cancel"));
    $("delete-button").addEventListener("click", () => act("delete"));
    document.addEventListener("keydown", (e) => { if (e.key === "Escape" && maps) maps.hideTooltip(); });
    loadAll(true);
    if (finished.includes(root.dataset.status)) $("live").textContent = "";
    else follow();
  });
})();
