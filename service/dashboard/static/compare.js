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
  // the peak's own status first: an arm with no results (or never trained) has no peak, and its
  // interval's default status ("undefined") read as a bug on the page
  const peakInterval = (peak) => {
    if (peak && peak.status && peak.status !== "ok") return why({ status: peak.status });
    const iv = peak && peak.score_interval;
    return span(iv && iv.raw_low, iv && iv.raw_high, iv, num);
  };
  const est = (fmt) => (e) => (e && e.value !== null && e.value !== undefined
    ? `${fmt(e.value)} ${span(e.interval.low, e.interval.high, e.interval, fmt)}` : "–");
  const COLUMNS = [
    [["peak", "raw_score"], "peak (raw)", num],
    [["peak"], "peak interval", peakInterval],
    [["success", "raw_target"], "target (raw)", num],
    [["success", "share"], "success share [95%]", est(pct)],
    [["success", "lr_width"], "succeeding lr decades [95%]", est(num)],
    [["lr_sensitivity", "pooled"], "lr sensitivity (raw) [95%]", est(num)],  // score units, as the peak: studies may differ in metric
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

  /** Every compared map on one colour scale per metric (the server recolours them), and each later
   * study's difference from the first for the arms they share on one grid. */
  async function maps() {
    const box = document.getElementById("compare-maps");
    if (!box) return;
    const q = new URLSearchParams({ studies: ids.join(",") });
    if (armFilter) q.set("arm", armFilter);
    const r = await api("GET", `/api/v1/compare/heatmaps?${q}`);
    if (!r.ok) {
      box.replaceChildren(el("p", { class: "error", role: "alert", text: r.data.detail }));
      document.getElementById("compare-differences").replaceChildren();
      return;
    }
    const d = r.data;
    const grids = new Map(d.studies.map((s) => [s.study_id, s]));
    const fmtOf = (m) => demonlab.scoreFormat(m.percent);
    box.replaceChildren(...d.maps.map((m) => {
      const g = grids.get(m.study_id), fmt = fmtOf(m);
      const title = `${names.get(m.study_id) || m.study_id}: ${m.arm}`;
      return el("div", { class: "arm-maps" }, charts.grid(title, g.lrs, g.betas, (i, j) => {
        const n = m.n[i][j], dv = m.diverged[i][j], v = m.values[i][j];
        const all = n > 0 && dv === n;
        return {
          fill: m.colours[i][j], label: all || v === null ? "" : fmt(v), mark: all ? "×" : dv > 0 ? "•" : "",
          aria: `${title}, lr ${num(g.lrs[i])}, β_init ${num(g.betas[j], 4)}: ` + (n ? `median ${fmt(v)}${fmt.unit}, ${dv} of ${n} diverged` : "no result yet"),
        };
      }, { interactive: false, className: "heatmap compare-map" }));
    }));
    const anyPercent = d.maps.find((m) => m.percent);
    document.getElementById("compare-legend").replaceChildren(...Object.entries(d.scales).map(([metric, scale]) =>
      charts.colourBar(scale.legend, `median ${d.split} ${metric}${anyPercent ? " (%)" : ""}`, demonlab.scoreFormat(Boolean(anyPercent)),
        [{ colour: "#d9d9d9", label: "no result yet" }], "compare-gradient-" + metric)));
    const diffBox = document.getElementById("compare-differences");
    const diffs = d.differences;
    if (!diffs.pairs.length) {
      diffBox.replaceChildren(el("p", { class: "muted", text: ids.length < 2 ? "Compare two or more studies for a difference map." : "No arm of a later study shares the first study's grid." }),
        ...diffs.notes.map((n) => el("p", { class: "muted small", text: n })));
      return;
    }
    const fmt = demonlab.scoreFormat(Boolean(anyPercent));
    const diffMaps = diffs.pairs.map((p) => {
      const g = grids.get(p.study_a);
      const title = `${p.arm}: ${names.get(p.study_a) || p.study_a} − ${names.get(p.study_b) || p.study_b}${fmt.unit ? " (points)" : ""}`;
      return charts.grid(title, g.lrs, g.betas, (i, j) => ({
        fill: p.colours[i][j], label: p.values[i][j] === null ? "" : fmt.signed(p.values[i][j]),
        aria: `${title}, lr ${num(g.lrs[i])}, β_init ${num(g.betas[j], 4)}: ${p.values[i][j] === null ? "no result" : fmt.signed(p.values[i][j])}`,
      }), { interactive: false, className: "difference compare-difference", compact: true });
    });
    diffBox.replaceChildren(
      el("p", { class: "small muted", text: "Blue: the later study's median is lower (better) than the first study's; red: higher (worse)." }),
      el("div", { class: "maps-row" }, el("div", { class: "heatmaps" }, ...diffMaps),
        charts.colourBar(diffs.legend, "difference", fmt.signed, [{ colour: "#d9d9d9", label: "no result" }], "compare-difference-gradient")),
      ...diffs.notes.map((n) => el("p", { class: "muted small", text: n })));
  }

  // /robustness group fields (studies/metrics/models.py RobustnessGroup): each study's estimate with
  // its interval. [field, title, format, which way is better]
  const STATS = [
    ["success_share", "success share", pct, "higher is better"],
    ["success_lr_width", "succeeding lr decades", num, "higher is better"],
    ["raw_peak_score", "peak (raw)", num, "lower is better"],
    ["lr_sensitivity", "lr sensitivity", num, "lower is better"],
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
    // what tells groups apart beyond arm, epochs and target (the key: service/analysis.py _comparable)
    const setting = (k) => {
      const parts = [`${(k.lrs || []).length}×${(k.betas || []).length} grid`];
      for (const [name, value] of Object.entries({ ...(k.workload_params || {}), ...(k.arm_params || {}) })) {
        parts.push(`${name}=${Array.isArray(value) ? value.join("/") : value}`);
      }
      if (k.batch_size) parts.push(`batch ${k.batch_size}`);
      if (k.weight_decay) parts.push(`weight decay ${num(k.weight_decay)}`);
      if (k.full_train) parts.push("full train");
      return parts.join(", ");
    };
    const label = (g) => `${g.key.arm} · ${g.key.epochs ?? "?"} epochs · ${setting(g.key)} · ${target(g.key)} (${g.n_studies} stud${g.n_studies === 1 ? "y" : "ies"})`;
    const chartsBox = el("div", { class: "heatmaps" });
    for (const [field, title, , better] of STATS) {
      const rows = groups.flatMap((g) => ((g[field] || {}).studies || []).map((s) => ({
        label: `${label(g)} ${s.study_id}`, mean: s.value, min: s.interval.low, max: s.interval.high,
      })));
      chartsBox.append(charts.bars(rows, `${title} (${better}): each study's estimate with its 95% interval`, ""));
    }
    const tableRows = [];
    for (const g of groups) {
      for (const [field, title, fmt, better] of STATS) {
        for (const s of (g[field] || {}).studies || []) {
          tableRows.push([label(g), `${title} (${better})`, String(s.study_id), fmt(s.value), span(s.interval.low, s.interval.high, s.interval, fmt)]);
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
