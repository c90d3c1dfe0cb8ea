/* The study page's heatmaps: every arm's median map on one colour scale with a colour bar (grey: no
 * result yet), divergence maps, a capped tooltip (median curve with its band, the first seeds, "+N
 * more"), a cell's trials and curves (click or Enter: the panel opens, scrolls into view and takes
 * focus) and the learning-curve overlay of chosen cells or arms (median ± band over seeds). */
"use strict";

const studyMaps = (ctx) => {
  const { api, el, num, level, table, urlState } = demonlab;
  const $ = (name) => document.getElementById(name);
  const seedCache = new Map();
  const TIP_SEEDS = 8; // seeds listed in the tooltip; the rest are counted
  let chosen = []; // curve overlay: [{arm, lr, beta}]

  const cellKey = (arm, lr, beta) => `${arm}|${lr}|${beta}`;
  const withUnit = (v) => ctx.fmt(v) + (Number.isFinite(v) ? ctx.fmt.unit : "");

  function cellInfo(arm, i, j) {
    const d = ctx.heatmaps;
    return {
      arm: arm.arm, i, j, lr: d.lrs[i], beta: d.betas[j], value: arm.values[i][j], n: arm.n[i][j],
      diverged: arm.diverged[i][j], missing: arm.missing[i][j], low: arm.interval_low[i][j], high: arm.interval_high[i][j],
      level: arm.interval_level[i][j],
    };
  }

  function draw() {
    const d = ctx.heatmaps;
    const box = $("heatmaps");
    box.replaceChildren();
    for (const arm of d.arms) {
      const column = el("div", { class: "arm-maps" });
      const map = charts.grid(`${arm.arm}: median ${d.split} ${d.metric}${ctx.fmt.unit ? " (%)" : ""}`, d.lrs, d.betas, (i, j) => {
        const c = cellInfo(arm, i, j);
        const all = c.n > 0 && c.diverged === c.n;
        return {
          fill: arm.colours[i][j],
          label: all ? "" : c.value === null ? "" : ctx.fmt(c.value),
          mark: all ? "×" : c.diverged > 0 ? "•" : "",
          aria: `${arm.arm}, lr ${num(c.lr)}, β_init ${num(c.beta, 4)}: ` + (c.n ? `median ${withUnit(c.value)}, ${c.diverged} of ${c.n} seeds diverged` : "no result yet"),
          data: { "data-arm": arm.arm, "data-i": i, "data-j": j, "data-value": c.value === null ? "" : c.value },
        };
      }, { interactive: true, className: "heatmap" });
      const rates = charts.grid(`${arm.arm}: divergence rate`, d.lrs, d.betas, (i, j) => {
        const rate = arm.divergence_rate[i][j];
        return {
          fill: arm.divergence_colours[i][j],
          label: rate === null ? "" : `${arm.diverged[i][j]}/${arm.n[i][j]}`,
          aria: `${arm.arm}, lr ${num(d.lrs[i])}, β_init ${num(d.betas[j], 4)}: ${rate === null ? "no result yet" : Math.round(100 * rate) + "% diverged"}`,
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
      cell.addEventListener("click", () => details(cell, true));
      cell.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); details(cell, true); }
      });
    });
    const grey = [{ colour: d.missing_colour, label: "no result yet" }];
    $("legend").replaceChildren(
      charts.colourBar(d.scale.legend, `median ${d.split} ${d.metric}${ctx.fmt.unit ? " (%)" : ""}${d.scale.log ? ", log" : ""}`, ctx.fmt, grey, "score-gradient"),
      el("p", { class: "small muted legend-note", text: "bright: lower (better)" }),
      charts.colourBar(d.rate_legend, "divergence rate (%)", (v) => Math.round(100 * v), grey, "rate-gradient"));
    drawTables();
  }

  // An order-statistic interval of the cell's median at the level it really has (1 − 2^(1−S) with
  // S seeds: 50% at 2, 75% at 3, ≥ 95% from 6); none with one seed or none.
  function intervalText(c) {
    if (!c.level || c.low === null || c.low === undefined || c.high === null || c.high === undefined) {
      return c.n > 0 ? "no interval: too few seeds (one seed)" : "no interval: no results";
    }
    return `[${ctx.fmt(c.low)}, ${ctx.fmt(c.high)}]${ctx.fmt.unit} at ${level(c.level)}`;
  }

  function drawTables() {
    const box = $("heatmap-tables");
    box.hidden = !ctx.showTables;
    if (!ctx.showTables || !ctx.heatmaps) return;
    const d = ctx.heatmaps;
    box.replaceChildren(...d.arms.map((arm) => {
      const rows = [];
      d.lrs.forEach((lr, i) => d.betas.forEach((beta, j) => {
        const c = cellInfo(arm, i, j);
        rows.push([num(lr), num(beta, 4), withUnit(c.value), intervalText(c), String(c.n), String(c.diverged), String(c.missing)]);
      }));
      return table(["lr", "β_init", "median", "interval of the median (its level)", "seeds", "diverged", "missing"], rows, arm.arm);
    }));
  }

  const armOf = (cell) => ctx.heatmaps.arms.find((a) => a.arm === cell.dataset.arm);

  /** The cell's trials with their curves (cached until a result of that cell arrives). */
  function trialsOf(arm, lr, beta) {
    const key = cellKey(arm, lr, beta);
    if (!seedCache.has(key)) {
      const q = `arm=${encodeURIComponent(arm)}&lr=${lr}&beta_init=${beta}&limit=1000&curves=true`;
      seedCache.set(key, api("GET", `${ctx.base}/trials?${q}`).then((r) => (r.ok ? r.data.data : [])));
    }
    return seedCache.get(key);
  }

  /** Median and min–max band over seeds, per epoch, of one curve field (finite values only). */
  function curveStats(trials, field) {
    const byEpoch = new Map();
    for (const t of trials) {
      for (const e of t.curve || []) {
        const v = e[field];
        if (v === null || v === undefined || !Number.isFinite(v)) continue;
        if (!byEpoch.has(e.epoch)) byEpoch.set(e.epoch, []);
        byEpoch.get(e.epoch).push(v);
      }
    }
    const epochs = [...byEpoch.keys()].sort((a, b) => a - b);
    const median = (xs) => {
      const s = xs.slice().sort((a, b) => a - b), m = Math.floor(s.length / 2);
      return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
    };
    return {
      points: epochs.map((e) => [e, median(byEpoch.get(e))]),
      band: epochs.map((e) => [e, Math.min(...byEpoch.get(e)), Math.max(...byEpoch.get(e))]),
    };
  }

  async function hover(cell) {
    const c = cellInfo(armOf(cell), Number(cell.dataset.i), Number(cell.dataset.j));
    const tip = $("tooltip");
    const metricKey = ctx.heatmaps.split + (ctx.heatmaps.metric === "loss" ? "_loss" : "_metric");
    const seedList = el("ul", { class: "seeds" }, el("li", { class: "muted", text: "seeds: loading…" }));
    const curve = el("div", { class: "tip-curve" });
    tip.replaceChildren(
      el("strong", { text: `${c.arm} · lr ${num(c.lr)} · β_init ${num(c.beta, 4)}` }),
      el("div", { class: "tip-median", text: `median ${withUnit(c.value)} (${c.n} seed${c.n === 1 ? "" : "s"} with a result)` }),
      el("div", { class: "tip-interval", text: "interval of the median: " + intervalText(c) }),
      el("div", { class: "tip-diverged", text: `${c.diverged} of ${c.n} seeds diverged` + (c.missing ? `, ${c.missing} missing` : "") }),
      curve, seedList
    );
    const box = cell.getBoundingClientRect();
    tip.hidden = false;
    const left = box.right + 8 + 330 > window.innerWidth ? box.left - 338 : box.right + 8;
    tip.style.left = Math.round(window.scrollX + Math.max(4, left)) + "px";
    tip.style.top = Math.round(window.scrollY + Math.max(4, Math.min(box.top, window.innerHeight - 380))) + "px";
    tip.dataset.cell = cellKey(c.arm, c.lr, c.beta);
    const trials = await trialsOf(c.arm, c.lr, c.beta);
    if (tip.dataset.cell !== cellKey(c.arm, c.lr, c.beta)) return;
    if (!trials.length) {
      seedList.replaceChildren(el("li", { class: "muted", text: "no trials" }));
      return;
    }
    const stats = curveStats(trials, "val_metric");
    if (stats.points.length > 1) {
      curve.replaceChildren(charts.lines([{ name: "median", cls: "s0", points: stats.points, band: stats.band, dots: false }], {
        width: 300, height: 120, legend: false, title: `val ${ctx.trialMetric}: median, band min–max over ${trials.length} seeds`,
        xLabel: "epoch", yLabel: "", fmtY: ctx.heatmaps.metric === ctx.trialMetric ? ctx.fmt : (v) => num(v, 4), className: "tip-chart",
      }));
    }
    const shown = trials.slice(0, TIP_SEEDS).map((t) => el("li", {
      class: "seed seed-" + t.status,
      text: `seed ${t.seed}: ` + (t.status === "completed" ? withUnit(t[metricKey]) : t.status),
    }));
    if (trials.length > TIP_SEEDS) shown.push(el("li", { class: "muted more", text: `+${trials.length - TIP_SEEDS} more (click the cell for every seed)` }));
    seedList.replaceChildren(...shown);
  }

  function hideTooltip() {
    if (!$("tooltip")) return;
    $("tooltip").hidden = true;
    $("tooltip").dataset.cell = "";
  }

  /** Open a cell's trials and curves; `focus`: scroll the panel into view and move focus to it. */
  async function details(cell, focus) {
    const c = cellInfo(armOf(cell), Number(cell.dataset.i), Number(cell.dataset.j));
    hideTooltip();
    urlState({ cell: `${c.arm},${c.lr},${c.beta}` });
    const box = $("cell-details");
    box.hidden = false;
    const heading = el("h3", { id: "cell-details-title", text: `Trials of ${c.arm} at lr ${num(c.lr)}, β_init ${num(c.beta, 4)}` });
    box.replaceChildren(heading, el("p", { class: "muted", text: "loading…" }));
    if (focus) {
      box.scrollIntoView({ block: "start" });
      box.focus({ preventScroll: true });
    }
    const trials = await trialsOf(c.arm, c.lr, c.beta);
    const m = ctx.trialMetric, own = ctx.heatmaps.metric === m ? withUnit : (v) => num(v, 4);
    const rows = trials.map((t) => [String(t.seed), t.status, own(t.val_metric), own(t.test_metric), num(t.val_loss, 4), String(t.epochs_done), num(t.wall_seconds), t.node || "–", t.device || "–"]);
    const add = el("button", { type: "button", text: "Add to the curve overlay", onclick: () => choose([{ arm: c.arm, lr: c.lr, beta: c.beta }]) });
    const every = el("button", { type: "button", text: "Overlay this cell in every arm", onclick: () => choose(ctx.heatmaps.arms.map((a) => ({ arm: a.arm, lr: c.lr, beta: c.beta }))) });
    const curveRows = trials.flatMap((t) => (t.curve || []).map((e) => [String(t.seed), String(e.epoch), num(e.train_loss, 4), num(e.val_loss, 4), own(e.val_metric)]));
    const curveTable = table(["seed", "epoch", "train loss", "val loss", `val ${m}`], curveRows, "learning curves, every seed");
    curveTable.hidden = true;
    const toggle = el("button", { type: "button", "aria-pressed": "false", text: "Show curves as table" });
    toggle.addEventListener("click", () => {
      curveTable.hidden = !curveTable.hidden;
      toggle.setAttribute("aria-pressed", String(!curveTable.hidden));
    });
    box.replaceChildren(heading,
      table(["seed", "status", `val ${m}`, `test ${m}`, "val loss", "epochs", "seconds", "node", "device"], rows),
      el("div", { class: "curve-charts" }, ...curveCharts([{ name: "this cell", trials }])),
      el("p", { class: "controls" }, add, every, toggle), curveTable);
  }

  /** Two charts over epochs: train and validation loss, and the validation metric; each series the
   * median over its seeds with a min–max band. */
  function curveCharts(groups) {
    const own = ctx.heatmaps.metric === ctx.trialMetric ? ctx.fmt : (v) => num(v, 4);
    const loss = groups.flatMap((g, k) => {
      const train = curveStats(g.trials, "train_loss"), val = curveStats(g.trials, "val_loss");
      const cls = "s" + (k % charts.SERIES);
      return [
        { name: `${g.name}: train`, cls, points: train.points, band: train.band, dots: false },
        { name: `${g.name}: val`, cls, points: val.points, band: val.band, dashed: true, dots: false },
      ];
    });
    const metric = groups.map((g, k) => {
      const s = curveStats(g.trials, "val_metric");
      return { name: g.name, cls: "s" + (k % charts.SERIES), points: s.points, band: s.band };
    });
    const wide = groups.length > 1 || groups[0].name.length > 12;
    return [
      charts.lines(loss, { width: wide ? 520 : 440, height: 240, title: "loss: train (solid), validation (dashed); median, band min–max over seeds", xLabel: "epoch", yLabel: "loss", className: "curve-chart" }),
      charts.lines(metric, { width: wide ? 520 : 440, height: 240, title: `validation ${ctx.trialMetric}${own === ctx.fmt ? (ctx.fmt.unit ? " (%)" : "") : ""}: median, band min–max over seeds`, xLabel: "epoch", yLabel: ctx.trialMetric, fmtY: own, className: "curve-chart" }),
    ];
  }

  function choose(cells) {
    for (const c of cells) {
      if (!chosen.some((x) => cellKey(x.arm, x.lr, x.beta) === cellKey(c.arm, c.lr, c.beta))) chosen.push(c);
    }
    chosen = chosen.slice(-charts.SERIES);
    drawOverlay(true);
  }

  async function drawOverlay(focus) {
    urlState({ curves: chosen.map((c) => `${c.arm},${c.lr},${c.beta}`).join(";") });
    const box = $("curves");
    box.hidden = chosen.length === 0;
    if (!chosen.length) return;
    const name = (c) => `${c.arm} lr ${num(c.lr)} β ${num(c.beta, 4)}`;
    $("curve-chips").replaceChildren(...chosen.map((c) => el("span", { class: "chip" }, name(c), " ",
      el("button", { type: "button", class: "small", "aria-label": "remove " + name(c), text: "×", onclick: () => {
        chosen = chosen.filter((x) => x !== c);
        drawOverlay(false);
      } }))));
    const groups = await Promise.all(chosen.map(async (c) => ({ name: name(c), trials: await trialsOf(c.arm, c.lr, c.beta) })));
    $("curve-charts").replaceChildren(...curveCharts(groups));
    if (focus) box.scrollIntoView({ block: "nearest" });
  }

  /** Restore the opened cell and the overlay from the URL (after the maps are drawn). */
  function restore() {
    const query = urlState();
    const cell = (query.get("cell") || "").split(",");
    if (cell.length === 3) {
      const d = ctx.heatmaps, i = d.lrs.indexOf(Number(cell[1])), j = d.betas.indexOf(Number(cell[2]));
      const node = document.querySelector(`svg.heatmap .cell[data-arm="${CSS.escape(cell[0])}"][data-i="${i}"][data-j="${j}"]`);
      if (node) details(node, false);
    }
    chosen = (query.get("curves") || "").split(";").filter(Boolean).map((x) => x.split(","))
      .filter((x) => x.length === 3).map(([arm, lr, beta]) => ({ arm, lr: Number(lr), beta: Number(beta) }));
    if (chosen.length) drawOverlay(false);
  }

  function forget(arm, lr, beta) {
    if (arm === undefined) seedCache.clear();
    else seedCache.delete(cellKey(arm, lr, beta));
  }

  return { draw, drawTables, hideTooltip, restore, forget };
};
