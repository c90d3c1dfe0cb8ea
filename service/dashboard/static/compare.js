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
  // (metrics_version 3: README "Sensitivity figures"). The peak's interval is printed at its real level.
  const peakInterval = (iv) => (iv && iv.level && iv.raw_low !== null && iv.raw_low !== undefined
    ? `[${num(iv.raw_low)}, ${num(iv.raw_high)}] at ${level(iv.level)}` : "no interval: too few seeds");
  const epsText = (g) => (g && g.eps !== undefined ? (g.relative ? `${pct(g.eps)} of the peak` : num(g.eps)) : "–");
  const COLUMNS = [
    [["peak", "raw_score"], "peak (raw)", num],
    [["peak", "score_interval"], "peak interval (its level)", peakInterval],
    [["eps_good"], "ε", epsText],
    [["eps_good", "fraction"], "ε-good share", pct],
    [["eps_good_lr_width", "mean_decades"], "good lr decades", num],
    [["lr_sensitivity", "pooled"], "lr sensitivity", num],
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
    box.replaceChildren(table(["study", "arm", ...COLUMNS.map((c) => c[1])], rows, "per-arm figures of each study (test split, default ε)"));
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

  // /robustness group fields (studies/metrics/_report.py); ε is part of each group's key.
  const STATS = [
    ["eps_good_fraction", "ε-good share", true],
    ["eps_good_lr_width_mean_decades", "good lr decades", false],
    ["raw_peak_score", "peak (raw)", false],
    ["lr_sensitivity_pooled", "lr sensitivity", false],
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
    const groupEps = (k) => (k.eps === "seed_spread" ? "seed spread" : k.relative ? `${pct(k.eps)} of the peak` : num(k.eps));
    const label = (g) => `${g.key.arm} · ${g.key.epochs ?? "?"} epochs · ε ${groupEps(g.key)} (${g.n_studies} stud${g.n_studies === 1 ? "y" : "ies"})`;
    const chartsBox = el("div", { class: "heatmaps" });
    for (const [field, title, share] of STATS) {
      const rows = groups.map((g) => Object.assign({ label: label(g) }, g[field] || {}));
      chartsBox.append(charts.bars(rows.map((x) => ({ label: x.label, mean: x.mean, min: x.min, max: x.max })), `${title}: mean, min–max over studies (point estimates, no intervals)`, share ? "" : ""));
    }
    const tableRows = [];
    for (const g of groups) {
      for (const [field, title] of STATS) {
        const s = g[field] || {};
        tableRows.push([label(g), title, num(s.mean), num(s.min), num(s.max), String(s.count ?? 0)]);
      }
    }
    const twin = table(["group", "figure", "mean", "min", "max", "studies"], tableRows, "robustness aggregate");
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
