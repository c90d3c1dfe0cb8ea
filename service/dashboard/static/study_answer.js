/* The study page's answer, its first screen: each pair's verdict (from the sensitivity report), a
 * forest plot of each pair's Δs with their intervals and a zero line, lr slices (median error against
 * lr, one line per arm, one panel per β_init) and each pair's difference map. */
"use strict";

const studyAnswer = (() => {
  const { el, num, pct, level, fixed } = demonlab;

  // Pair figures → (label, kind). kind: "share" (a fraction, shown in percentage points), "score"
  // (the metric's own units), "decades", "probability" (null ½). v4 names first, then v3's.
  const FIGURES = {
    success_share: ["share of the grid that reaches the target", "share"],
    success_lr_width: ["good lr range (decades)", "decades"],
    expected_best: ["best of k random cells", "score"],
    lr_sensitivity: ["lr sensitivity (loss from the best lr)", "score"],
    win_probability: ["P(best of k cells wins)", "probability"],
    improvement_matched: ["P(cell beats the same cell)", "probability"],
    improvement_any: ["P(cell beats any cell)", "probability"],
    peak: ["peak (best cell)", "score"],
  };

  /** The rows of one pair's forest plot: its primary figure, then the exploratory ones (the API
   * serves the current metrics version only: a stored report of an older one is recomputed). Every
   * Δ is positive when the first arm is better. */
  function pairRows(pair) {
    return [pair.primary, ...(pair.exploratory || [])].filter(Boolean).map((d) => ({
      figure: d.figure, k: d.k, primary: d.role === "primary", value: d.value, nullValue: d.null || 0,
      low: d.interval && d.interval.low, high: d.interval && d.interval.high,
      level: d.interval && d.interval.level, status: (d.interval && d.interval.status) || d.status,
      significant: d.significant,
    }));
  }

  function formatter(kind, fmt) {
    if (kind === "share" || kind === "probability") return (v) => (Number.isFinite(v) ? fixed(100 * v, 1) : "–");
    if (kind === "score") return (v) => (Number.isFinite(v) ? fmt(v) : "–");
    return (v) => num(v);
  }

  function rowFor(pair, r, fmt) {
    const [label, kind] = FIGURES[r.figure] || [String(r.figure).replace(/_/g, " "), "score"];
    const f = formatter(kind, fmt);
    const hasInterval = Number.isFinite(r.low) && Number.isFinite(r.high);
    const excludes = hasInterval && (r.low > r.nullValue || r.high < r.nullValue);
    // a probability is shown as itself (its null ½ is the plot's centre line), a Δ with its sign
    const probability = kind === "probability";
    const unit = probability ? "%" : kind === "share" ? " pts" : kind === "score" ? fmt.diffUnit.replace(" points", " pts") : "";
    const shown = (v) => (probability ? f(v) : f(v - r.nullValue));
    const sign = (v) => (!probability && v - r.nullValue > 0 ? "+" : "");
    const value = Number.isFinite(r.value) ? sign(r.value) + shown(r.value) + unit : "no estimate";
    const interval = hasInterval ? ` [${shown(r.low)}, ${shown(r.high)}]` + (r.level ? ` ${level(r.level)}` : "") : r.status && r.status !== "ok" ? ` · no interval (${String(r.status).replace(/_/g, " ")})` : "";
    return {
      group: `${pair.arm_a} vs ${pair.arm_b}`,
      label: (r.primary ? "★ " : "") + label + (r.k ? ` (k=${r.k})` : ""),
      value: Number.isFinite(r.value) ? r.value : NaN, low: r.low, high: r.high, nullValue: r.nullValue,
      primary: r.primary, strong: r.primary ? excludes : r.significant === undefined ? excludes : r.significant === true,
      note: value + interval, excludes, hasInterval,
    };
  }

  const OUTCOMES = {
    a_less_sensitive: "less sensitive", b_less_sensitive: "less sensitive", no_detectable_difference: "no detectable difference",
    inconclusive_too_few_seeds: "inconclusive", never_trained: "never trained", flatter_but_worse: "flatter, worse at its best",
  };

  /** The verdicts (headline) and the forest plot from the sensitivity report. */
  function drawVerdicts(report, fmt) {
    const pairs = (report.pairs || []).filter((p) => p && typeof p === "object");
    const box = document.getElementById("verdicts");
    if (!pairs.length) {
      box.replaceChildren(el("p", { class: "muted", text: "No pair to compare: a verdict needs a Demon arm and a baseline arm on one grid." }));
      document.getElementById("forest").replaceChildren();
      return;
    }
    const items = pairs.map((pair) => {
      const title = `${pair.arm_a} vs ${pair.arm_b}`;
      if (pair.error) return el("li", { class: "verdict" }, el("strong", { text: title + ": " }), "not comparable: " + pair.error);
      const v = pair.verdict;
      if (!v) {
        return el("li", { class: "verdict outcome-none" }, el("strong", { text: title + ": " }),
          "this report has no verdict (metrics version " + report.metrics_version + "); the forest plot shows every Δ.");
      }
      return el("li", { class: "verdict outcome-" + v.outcome, "data-outcome": v.outcome },
        el("span", { class: "badge", text: OUTCOMES[v.outcome] || v.outcome }), " ",
        el("strong", { text: title + ": " }), v.statement);
    });
    box.replaceChildren(el("ul", { class: "verdicts" }, ...items));
    const rows = pairs.filter((p) => !p.error).flatMap((p) => pairRows(p).map((r) => rowFor(p, r, fmt)));
    const one = pairs.length === 1 && !pairs[0].error ? pairs[0] : null;
    const forest = rows.some((r) => Number.isFinite(r.value)) ? charts.forest(rows, {
      width: 660,
      title: `Each pair's Δs and intervals (★ primary; filled: ${report.metrics_version >= 4 ? "excludes the null, Holm for exploratory" : "the interval excludes 0"})`,
      leftLabel: one ? `${one.arm_b} better` : "second arm better",
      rightLabel: one ? `${one.arm_a} better` : "first arm better",
    }) : el("p", { class: "muted", text: pairs.some((p) => p.verdict && p.verdict.outcome === "never_trained")
      ? "No Δ: an arm never trained, so no figure compares the arms (the verdict says which)."
      : "No Δ yet: no cell has a result in both arms of a pair." });
    const table = demonlab.table(["pair", "figure", "Δ and interval", "interval excludes 0"],
      rows.map((r) => [r.group, r.label, r.note, r.hasInterval ? (r.excludes ? "yes" : "no") : "no interval"]), "each pair's Δs");
    table.hidden = true;
    table.classList.add("forest-table");
    const toggle = el("button", { type: "button", "aria-pressed": "false", class: "small", text: "Show the Δs as a table" });
    toggle.addEventListener("click", () => {
      table.hidden = !table.hidden;
      toggle.setAttribute("aria-pressed", String(!table.hidden));
    });
    const families = [...new Set(pairs.map((p) => p.family).filter(Boolean))];
    const method = report.interval_method ? `Intervals: ${report.interval_method}.` : "";
    const explain = el("p", { class: "small muted" },
      `Δ > 0 means the first arm is better; shares in percentage points, probabilities in percent (centre line ½), scores in ${fmt.unit ? "percentage points of the metric" : "the metric's units"}. `,
      method, " ", ...families);
    if (forest.tagName === "P") document.getElementById("forest").replaceChildren(forest); // nothing to explain yet
    else document.getElementById("forest").replaceChildren(forest, explain, toggle, table);
  }

  /** One panel per β_init: each arm's median against lr (log), with its interval as a band; cells
   * where every seed diverged are marked × at the top rather than drawn at the failure score. */
  function drawSlices(d, fmt) {
    const box = document.getElementById("slices");
    if (!d.arms.length || !d.lrs.length) {
      box.replaceChildren();
      return;
    }
    // one row of panels when they fit (up to 4), else wrapped at the smallest readable width
    const across = Math.min(d.betas.length, 4), room = Math.max(box.clientWidth, 400);
    const panelW = Math.max(170, Math.min(260, Math.floor((room - 10 * (across - 1)) / across)));
    const panels = d.betas.map((beta, j) => {
      const series = d.arms.map((arm, k) => {
        const alive = (i) => arm.n[i][j] > 0 && arm.diverged[i][j] < arm.n[i][j];
        return {
          name: arm.arm, cls: "s" + (k % charts.SERIES),
          points: d.lrs.map((lr, i) => [lr, alive(i) && arm.values[i][j] !== null ? arm.values[i][j] : NaN]),
          band: d.lrs.map((lr, i) => [lr, alive(i) ? arm.interval_low[i][j] : NaN, alive(i) ? arm.interval_high[i][j] : NaN]),
          marks: d.lrs.filter((lr, i) => arm.n[i][j] > 0 && !alive(i)),
        };
      });
      const chart = charts.lines(series, {
        width: panelW, height: 170, legend: false, logX: true, title: `β_init ${num(beta, 4)}`,
        xLabel: "lr", yLabel: `${d.split} ${d.metric}${fmt.unit ? " (%)" : ""}`, fmtY: fmt, xDomain: d.lrs, className: "slice",
      });
      return chart;
    });
    const key = el("p", { class: "series-key small" }, "Median ", `${d.split} ${d.metric} against lr, one panel per β_init (band: the median's interval; × every seed diverged): `,
      ...d.arms.map((arm, k) => el("span", { class: "key s" + (k % charts.SERIES) + "-label", text: "━ " + arm.arm + " " })));
    box.replaceChildren(key, el("div", { class: "slices" }, ...panels));
  }

  /** Each pair's difference of medians per cell on one diverging scale (blue: the first arm lower). */
  function drawDifferences(d, fmt) {
    const box = document.getElementById("differences");
    const diffs = d.differences || { pairs: [] };
    if (!diffs.pairs.length) {
      box.replaceChildren();
      return;
    }
    if (diffs.max_abs === null) {
      box.replaceChildren(el("p", { class: "muted", text: "No difference map yet: no cell has a result in both arms." }));
      return;
    }
    const maps = diffs.pairs.map((p) => charts.grid(`${p.arm_a} − ${p.arm_b}: median ${d.split} ${d.metric}${fmt.diffUnit ? " (points)" : ""}`, d.lrs, d.betas, (i, j) => {
      const v = p.values[i][j];
      return {
        fill: p.colours[i][j], label: v === null ? "" : fmt.signed(v),
        aria: `${p.arm_a} minus ${p.arm_b} at lr ${num(d.lrs[i])}, β_init ${num(d.betas[j], 4)}: ${v === null ? "no result" : fmt.signed(v)}`,
      };
    }, { interactive: false, className: "difference", compact: true }));
    const first = diffs.pairs[0];
    const bar = charts.colourBar(diffs.legend, "difference", fmt.signed, [{ colour: d.missing_colour, label: "no result yet" }], "difference-gradient");
    box.replaceChildren(el("p", { class: "small muted", text: `Blue: ${first.arm_a} lower (better) than ${first.arm_b}; red: higher (worse).` }),
      el("div", { class: "maps-row" }, el("div", { class: "heatmaps" }, ...maps), bar));
  }

  return { drawVerdicts, drawSlices, drawDifferences, pairRows };
})();
