/* A study's page: live progress over the study's event stream (no reload), heatmaps of every arm on
 * one colour scale with hover/focus details and click/Enter trial lists, figures in words, the search
 * scatter, and the cancel/delete actions (token from this tab's sessionStorage). */
"use strict";

(() => {
  const { api, el, num, pct, level, table } = demonlab;
  const root = document.getElementById("study");
  const id = root.dataset.study;
  const isSearch = root.dataset.search === "true";
  const base = "/api/v1/studies/" + encodeURIComponent(id);
  const $ = (name) => document.getElementById(name);
  let heatmapData = null;
  let showTables = false;
  const seedCache = new Map();

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
  }

  // Live refreshes are spaced by at least 4× what the last one took, so a big study's page does not
  // keep the server recomputing its grids while it runs.
  let refreshTimer = null, lastFigures = 0, lastLoadMs = 0;
  function scheduleRefresh() {
    if (refreshTimer) return;
    refreshTimer = setTimeout(() => {
      refreshTimer = null;
      if (isSearch) loadScatter();
      else loadHeatmaps();
      if (Date.now() - lastFigures > Math.max(5000, 8 * lastLoadMs)) {
        loadFigures();
        loadPlacement();
      }
    }, Math.max(1000, 4 * lastLoadMs));
  }

  function follow() {
    if (!window.EventSource) return;
    const source = new EventSource(base + "/events");
    source.addEventListener("open", () => { $("live").textContent = "live"; });
    source.addEventListener("progress", (e) => showProgress(JSON.parse(e.data)));
    source.addEventListener("status", (e) => showStatus(JSON.parse(e.data).status));
    source.addEventListener("trial", (e) => {
      const t = JSON.parse(e.data);
      seedCache.delete(cellKey(t.arm, t.lr, t.beta_init));
      scheduleRefresh();
    });
    source.addEventListener("end", () => {
      source.close();
      $("live").textContent = "finished";
      seedCache.clear();
      if (isSearch) loadScatter();
      else loadHeatmaps();
      loadFigures();
      loadPlacement();
    });
    source.addEventListener("error", () => {
      $("live").textContent = source.readyState === EventSource.CLOSED ? "" : "reconnecting…";
    });
  }

  // ---------------------------------------------------------------------------------- heatmaps

  const cellKey = (arm, lr, beta) => `${arm}|${lr}|${beta}`;

  async function loadHeatmaps() {
    const split = $("split").value;
    const started = Date.now();
    const result = await api("GET", `${base}/heatmaps?split=${encodeURIComponent(split)}`);
    lastLoadMs = Date.now() - started;
    if (!result.ok) {
      $("heatmaps").replaceChildren(el("p", { class: "muted", text: "No heatmap yet: " + (result.data && result.data.detail) }));
      return;
    }
    heatmapData = result.data;
    drawHeatmaps();
  }

  function cellInfo(arm, i, j) {
    const d = heatmapData;
    return {
      arm: arm.arm, lr: d.lrs[i], beta: d.betas[j], value: arm.values[i][j], n: arm.n[i][j],
      diverged: arm.diverged[i][j], missing: arm.missing[i][j], low: arm.interval_low[i][j], high: arm.interval_high[i][j],
      level: arm.interval_level[i][j],
    };
  }

  function drawHeatmaps() {
    const d = heatmapData;
    const box = $("heatmaps");
    box.replaceChildren();
    for (const arm of d.arms) {
      const column = el("div", { class: "arm-maps" });
      const map = charts.grid(`${arm.arm}: median ${d.split} ${d.metric}`, d.lrs, d.betas, (i, j) => {
        const c = cellInfo(arm, i, j);
        const all = c.n > 0 && c.diverged === c.n;
        return {
          fill: arm.colours[i][j],
          label: all ? "" : c.value === null ? "" : num(c.value),
          mark: all ? "×" : c.diverged > 0 ? "•" : "",
          aria: `${arm.arm}, lr ${num(c.lr)}, β_init ${num(c.beta, 4)}: median ${num(c.value)}, ${c.diverged} of ${c.n} seeds diverged`,
          data: { "data-arm": arm.arm, "data-i": i, "data-j": j, "data-value": c.value === null ? "" : c.value },
        };
      }, { interactive: true, className: "heatmap" });
      const rates = charts.grid(`${arm.arm}: divergence rate`, d.lrs, d.betas, (i, j) => {
        const rate = arm.divergence_rate[i][j];
        return {
          fill: arm.divergence_colours[i][j],
          label: rate === null ? "" : `${arm.diverged[i][j]}/${arm.n[i][j]}`,
          aria: `${arm.arm}, lr ${num(d.lrs[i])}, β_init ${num(d.betas[j], 4)}: ${rate === null ? "no result" : pct(rate) + " diverged"}`,
        };
      }, { interactive: false, className: "divergence" });
      column.append(map, rates);
      box.append(column);
    }
    box.querySelectorAll(".heatmap .cell").forEach((cell) => {
      cell.addEventListener("mouseenter", () => hover(cell));
      cell.addEventListener("focus", () => hover(cell));
      cell.addEventListener("mouseleave", hideTooltip);
      cell.addEventListener("blur", hideTooltip);
      cell.addEventListener("click", () => details(cell));
      cell.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); details(cell); }
      });
    });
    $("legend").replaceChildren(
      el("span", { class: "small muted", text: `median ${d.split} ${d.metric} (lower is better${d.scale.log ? ", log scale" : ""}) ` }),
      charts.legend(d.scale.legend, "colour scale")
    );
    drawTables();
  }

  // An order-statistic interval of the cell's median at the level it really has (1 − 2^(1−S) with
  // S seeds: 50% at 2, 75% at 3, ≥ 95% from 6); none with one seed or none.
  function intervalText(c) {
    if (!c.level || c.low === null || c.low === undefined || c.high === null || c.high === undefined) {
      return c.n > 0 ? "no interval: too few seeds (one seed)" : "no interval: no results";
    }
    return `[${num(c.low)}, ${num(c.high)}] at ${level(c.level)}`;
  }

  function drawTables() {
    const box = $("heatmap-tables");
    if (!box) return;
    box.hidden = !showTables;
    if (!showTables || !heatmapData) return;
    const d = heatmapData;
    box.replaceChildren(...d.arms.map((arm) => {
      const rows = [];
      d.lrs.forEach((lr, i) => d.betas.forEach((beta, j) => {
        const c = cellInfo(arm, i, j);
        rows.push([num(lr), num(beta, 4), num(c.value), intervalText(c), String(c.n), String(c.diverged), String(c.missing)]);
      }));
      return table(["lr", "β_init", "median", "interval of the median (its level)", "seeds", "diverged", "missing"], rows, arm.arm);
    }));
  }

  function armOf(cell) {
    return heatmapData.arms.find((a) => a.arm === cell.dataset.arm);
  }

  async function seeds(c) {
    const key = cellKey(c.arm, c.lr, c.beta);
    if (!seedCache.has(key)) {
      const q = `arm=${encodeURIComponent(c.arm)}&lr=${c.lr}&beta_init=${c.beta}&limit=1000`;
      seedCache.set(key, api("GET", `${base}/trials?${q}`).then((r) => (r.ok ? r.data.data : [])));
    }
    return seedCache.get(key);
  }

  async function hover(cell) {
    const c = cellInfo(armOf(cell), Number(cell.dataset.i), Number(cell.dataset.j));
    const tip = $("tooltip");
    const metricKey = heatmapData.split + "_metric";
    const seedList = el("ul", { class: "seeds" }, el("li", { class: "muted", text: "seeds: loading…" }));
    tip.replaceChildren(
      el("strong", { text: `${c.arm} · lr ${num(c.lr)} · β_init ${num(c.beta, 4)}` }),
      el("div", { class: "tip-median", text: `median ${num(c.value)} (${c.n} seed${c.n === 1 ? "" : "s"} with a result)` }),
      el("div", { class: "tip-interval", text: "interval of the median: " + intervalText(c) }),
      el("div", { class: "tip-diverged", text: `${c.diverged} of ${c.n} seeds diverged` + (c.missing ? `, ${c.missing} missing` : "") }),
      seedList
    );
    const box = cell.getBoundingClientRect();
    tip.hidden = false;
    tip.style.left = Math.round(window.scrollX + box.right + 8) + "px";
    tip.style.top = Math.round(window.scrollY + box.top) + "px";
    tip.dataset.cell = cellKey(c.arm, c.lr, c.beta);
    const trials = await seeds(c);
    if (tip.dataset.cell !== cellKey(c.arm, c.lr, c.beta)) return;
    seedList.replaceChildren(...trials.map((t) => el("li", {
      class: "seed seed-" + t.status,
      text: `seed ${t.seed}: ` + (t.status === "completed" ? num(t[metricKey], 4) : t.status),
    })));
    if (!trials.length) seedList.replaceChildren(el("li", { class: "muted", text: "no trials" }));
  }

  function hideTooltip() {
    if (!$("tooltip")) return;
    $("tooltip").hidden = true;
    $("tooltip").dataset.cell = "";
  }

  async function details(cell) {
    const c = cellInfo(armOf(cell), Number(cell.dataset.i), Number(cell.dataset.j));
    const box = $("cell-details");
    box.hidden = false;
    box.replaceChildren(el("h3", { text: `Trials of ${c.arm} at lr ${num(c.lr)}, β_init ${num(c.beta, 4)}` }), el("p", { class: "muted", text: "loading…" }));
    const q = `arm=${encodeURIComponent(c.arm)}&lr=${c.lr}&beta_init=${c.beta}&limit=1000&curves=true`;
    const r = await api("GET", `${base}/trials?${q}`);
    if (!r.ok) {
      box.lastChild.textContent = r.data.detail;
      return;
    }
    const trials = r.data.data;
    const rows = trials.map((t) => [String(t.seed), t.status, num(t.val_metric, 4), num(t.test_metric, 4), num(t.val_loss, 4), String(t.epochs_done), num(t.wall_seconds), t.node || "–", t.device || "–"]);
    const series = trials.map((t) => ({ name: "seed " + t.seed, points: (t.curve || []).map((e) => [e.epoch, e.val_metric]) }));
    const chart = charts.lines(series, "epoch", `validation ${heatmapData.metric}`, "Learning curves");
    const curveRows = trials.flatMap((t) => (t.curve || []).map((e) => [String(t.seed), String(e.epoch), num(e.train_loss, 4), num(e.val_loss, 4), num(e.val_metric, 4)]));
    const curveTable = table(["seed", "epoch", "train loss", "val loss", `val ${heatmapData.metric}`], curveRows, "learning curves");
    curveTable.hidden = true;
    const toggle = el("button", { type: "button", "aria-pressed": "false", text: "Show curves as table" });
    toggle.addEventListener("click", () => {
      curveTable.hidden = !curveTable.hidden;
      toggle.setAttribute("aria-pressed", String(!curveTable.hidden));
    });
    box.replaceChildren(
      box.firstChild,
      table(["seed", "status", `val ${heatmapData.metric}`, `test ${heatmapData.metric}`, "val loss", "epochs", "seconds", "node", "device"], rows),
      chart, toggle, curveTable
    );
  }

  // ------------------------------------------------------------------------ figures, search, actions

  async function loadFigures() {
    lastFigures = Date.now();
    const split = $("split").value;
    const response = await fetch(`/studies/${encodeURIComponent(id)}/figures?split=${encodeURIComponent(split)}`);
    // The fragment is rendered by the server's templates with autoescape: no user value is raw HTML.
    const html = await response.text();
    const doc = new DOMParser().parseFromString(html, "text/html");
    $("figures").replaceChildren(...doc.body.childNodes);
  }

  async function loadScatter() {
    const box = $("scatter");
    if (!box) return;
    const started = Date.now();
    const r = await api("GET", `${base}/points?split=${encodeURIComponent($("split").value)}`);
    lastLoadMs = Date.now() - started;
    if (!r.ok) {
      box.replaceChildren(el("p", { class: "muted", text: r.data.detail }));
      return;
    }
    const parts = [];
    const d = r.data;
    for (const arm of d.arms) {
      const points = arm.points.map((p) => Object.assign({}, p, {
        allDiverged: p.seeds > 0 && p.diverged === p.seeds,
        title: `lr ${num(p.lr)}, β_init ${num(p.beta_init, 4)}: median ${num(p.value, 4)} over ${p.seeds} seeds, ${p.diverged} diverged`,
      }));
      const importance = Object.entries(arm.importances || {}).map(([k, v]) => [k, pct(v)]);
      const rows = points.map((p) => [num(p.lr), num(p.beta_init, 4), num(p.value, 4), String(p.seeds), String(p.diverged)]);
      const twin = table(["lr", "β_init", `median ${d.split} ${d.metric}`, "seeds", "diverged"], rows, `${arm.arm}: sampled points`);
      twin.hidden = !showTables;
      twin.classList.add("points-table");
      parts.push(el("div", { class: "arm-maps" },
        charts.scatter(points, `${arm.arm}: ${points.length} sampled points (median over seeds)`),
        twin,
        importance.length ? table(["parameter", "importance"], importance, `parameter importances (${arm.importance_method || "Optuna"})`) : el("p", { class: "muted", text: arm.importance_note || "" })
      ));
    }
    box.replaceChildren(el("div", { class: "heatmaps" }, ...parts),
      el("div", { class: "legend" }, el("span", { class: "small muted", text: `median ${d.split} ${d.metric} (lower is better) ` }), charts.legend(d.legend, "colour scale")));
  }

  async function loadPlacement() {
    const r = await api("GET", `${base}/placement`);
    if (!r.ok) return;
    $("trial-time").textContent = `${num(r.data.wall_seconds)} s in all`;
    $("placement").replaceChildren(r.data.rows.length
      ? table(["node", "device", "trials", "seconds"], r.data.rows.map((p) => [p.node, p.device || "–", String(p.trials), num(p.wall_seconds)]))
      : el("p", { class: "muted", text: "No trial has run yet." }));
  }

  async function act(kind) {
    const message = $("action-message");
    const verb = kind === "cancel" ? "Cancel" : "Delete";
    if (!window.confirm(`${verb} study ${id}?`)) return;
    const r = kind === "cancel" ? await api("POST", `${base}/cancel`) : await api("DELETE", base);
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

  document.addEventListener("DOMContentLoaded", () => {
    $("split").addEventListener("change", () => {
      seedCache.clear();
      if (isSearch) loadScatter();
      else loadHeatmaps();
      loadFigures();
    });
    $("heatmap-table-toggle").addEventListener("click", (e) => {
      showTables = !showTables;
      e.target.setAttribute("aria-pressed", String(showTables));
      e.target.textContent = showTables ? "Hide table" : "Show as table";
      drawTables();
      document.querySelectorAll(".points-table").forEach((t) => { t.hidden = !showTables; });
    });
    $("cancel-button").addEventListener("click", () => act("cancel"));
    $("delete-button").addEventListener("click", () => act("delete"));
    document.addEventListener("keydown", (e) => { if (e.key === "Escape") hideTooltip(); });
    if (isSearch) loadScatter();
    else loadHeatmaps();
    loadFigures();
    loadPlacement();
    if (root.dataset.finished === "true") $("live").textContent = "";
    else follow();
  });
})();
