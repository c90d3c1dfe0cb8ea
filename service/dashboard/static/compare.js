/* Compare: each study's per-arm figures side by side (from /sensitivity), and the cross-study
 * /robustness aggregate as a chart with a table twin. */
"use strict";

(() => {
  const { api, el, num, pct, level, table } = demonlab;
  const root = document.getElementById("compare");
  const ids = (root.dataset.ids || "").split(",").filter(Boolean);
  const armFilter = root.dataset.arm;
  const workload = root.dataset.workload;

  // figure path → column title (kept in one place; a missing figure shows as –)
  // (metrics_version 4: docs/metrics.md). Every figure is printed with its 95% interval or the reason it has none.
  const why = (iv) => `no interval: ${String((iv && iv.status) || "undefined").replaceAll("_", " ")}`;
  const span = (lo, hi, iv, fmt) => (iv && iv.level && lo !== null && lo !== undefined && hi !== null && hi !== undefined
    ? `[${fmt(lo)}, ${fmt(hi)}] (${level(iv.level)})` : why(iv));
  const peakInterval = (iv) => span(iv && iv.raw_low, iv && iv.raw_high, iv, num);
  const est = (fmt) => (e) => (e && e.value !== null && e.value !== undefined
    ? `${fmt(e.value)} ${span(e.interval.low, e.interval.high, e.interval, fmt)}` : "–");
  const COLUMNS = [
    [["peak", "raw_score"], "peak (raw)", num],
    [["peak", "score_interval"], "peak interval", peakInterval],
    [["success", "raw_target"], "target (raw)", num],
    [["success", "share"], "success share [95%]", est(pct)],
    [["success", "lr_width"], "succeeding lr decades [95%]", est(num)],
    [["lr_sensitivity", "pooled"], "lr sensitivity [95%]", est(num)],
  ];
  const names = new Map([...document.querySelectorAll("tr.compared")].map((tr) => [tr.dataset.study, tr.dataset.name]));
  const label = (id) => `${names.get(id) || id} (${id})`;
  const pick = (obj, path) => path.reduce((o, k) => (o && typeof o === "object" ? o[k] : undefined), obj);

  async function perStudy() {
    const box = document.getElementById("per-study");
    if (!box) return;
    const rows = [];
    for (const id of ids) {
      const r = await api("GET", `/api/v1/studies/${encodeURIComponent(id)}/sensitivity`);
      if (!r.ok) {
        rows.push([label(id), "–", r.data.detail, ...COLUMNS.slice(1).map(() => "")]);
        continue;
      }
      for (const [arm, figures] of Object.entries(r.data.arms || {})) {
        if (armFilter && arm !== armFilter) continue;
        rows.push([label(id), arm, ...COLUMNS.map(([path, , fmt]) => fmt(pick(figures, path)))]);
      }
    }
    box.replaceChildren(table(["study", "arm", ...COLUMNS.map((c) => c[1])], rows, "per-arm figures of each study (test split, the study's target)"));
  }

  async function maps() {
    const box = document.getElementById("compare-maps");
    if (!box) return;
    const parts = [];
    for (const id of ids) {
      const r = await api("GET", `/api/v1/studies/${encodeURIComponent(id)}/heatmaps`);
      if (!r.ok) {
        parts.push(el("p", { class: "muted", text: `${label(id)}: ${r.data.detail}` }));
        continue;
      }
      const d = r.data;
      for (const arm of d.arms) {
        if (armFilter && arm.arm !== armFilter) continue;
        const title = `${names.get(id) || id}: ${arm.arm}`;
        parts.push(el("div", { class: "arm-maps" },
          charts.grid(title, d.lrs, d.betas, (i, j) => {
            const n = arm.n[i][j], dv = arm.diverged[i][j], v = arm.values[i][j];
            const all = n > 0 && dv === n;
            return {
              fill: arm.colours[i][j], label: all || v === null ? "" : num(v), mark: all ? "×" : dv > 0 ? "•" : "",
              aria: `${title}, lr ${num(d.lrs[i])}, β_init ${num(d.betas[j], 4)}: median ${num(v)}, ${dv} of ${n} diverged`,
            };
          }, { interactive: false, className: "heatmap compare-map" }),
          charts.legend(d.scale.legend, `${title} colour scale`)));
      }
    }
    box.replaceChildren(...parts);
  }

  // /robustness group fields (studies/metrics/models.py RobustnessGroup): each study's estimate with its interval
  const STATS = [
    ["success_share", "success share", pct],
    ["success_lr_width", "succeeding lr decades", num],
    ["raw_peak_score", "peak (raw)", num],
    ["lr_sensitivity", "lr sensitivity", num],
  ];

  async function robustness() {
    const box = document.getElementById("robustness");
    if (!workload) return;
    const q = `workload=${encodeURIComponent(workload)}` + (armFilter ? `&arm=${encodeURIComponent(armFilter)}` : "");
    const r = await api("GET", `/api/v1/robustness?${q}`);
    if (!r.ok) {
      box.replaceChildren(el("p", { class: "error", text: r.data.detail }));
      return;
    }
    const groups = r.data.groups || [];
    if (!groups.length) {
      box.replaceChildren(el("p", { class: "muted", text: `No completed study on ${workload} yet.` }));
      return;
    }
    const target = (k) => (k.target === "default" ? "default target" : `target ${num(k.target)}`);
    const label = (g) => `${g.key.arm} · ${g.key.epochs ?? "?"} epochs · ${target(g.key)} (${g.n_studies} stud${g.n_studies === 1 ? "y" : "ies"})`;
    const chartsBox = el("div", { class: "heatmaps" });
    for (const [field, title] of STATS) {
      const rows = groups.flatMap((g) => ((g[field] || {}).studies || []).map((s) => ({
        label: `${label(g)} ${s.study_id}`, mean: s.value, min: s.interval.low, max: s.interval.high,
      })));
      chartsBox.append(charts.bars(rows, `${title}: each study's estimate with its 95% interval`, ""));
    }
    const tableRows = [];
    for (const g of groups) {
      for (const [field, title, fmt] of STATS) {
        for (const s of (g[field] || {}).studies || []) {
          tableRows.push([label(g), title, String(s.study_id), fmt(s.value), span(s.interval.low, s.interval.high, s.interval, fmt)]);
        }
      }
    }
    const twin = table(["group", "figure", "study", "estimate", "95% interval"], tableRows, "robustness: each study's estimate");
    twin.hidden = true;
    const toggle = document.getElementById("robust-table-toggle");
    toggle.addEventListener("click", () => {
      twin.hidden = !twin.hidden;
      toggle.setAttribute("aria-pressed", String(!twin.hidden));
    });
    box.replaceChildren(chartsBox, twin);
  }

  document.addEventListener("DOMContentLoaded", () => {
    perStudy();
    maps();
    robustness();
  });
})();
