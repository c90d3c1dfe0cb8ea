/* Small SVG charts drawn from server-computed data (colours come from the server's colour maps).
 * Every chart has a table twin on request (the pages build both from the same data). */
"use strict";

const charts = (() => {
  const { svg, num } = demonlab;
  const SERIES = 8; // series colours s0…s7 in app.css (each with its own dash pattern from s4 on)

  /** WCAG relative luminance of a #rrggbb colour. */
  function luminance(hex) {
    const channel = (k) => {
      const c = parseInt(hex.slice(1 + 2 * k, 3 + 2 * k), 16) / 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    };
    return 0.2126 * channel(0) + 0.7152 * channel(1) + 0.0722 * channel(2);
  }

  /** Black or white, whichever contrasts more with the cell: always ≥ 4.58:1 (WCAG AA needs 4.5). */
  function textColour(hex) {
    const l = luminance(hex);
    return (l + 0.05) / 0.05 >= 1.05 / (l + 0.05) ? "#000000" : "#ffffff";
  }

  function cellSize(rows, cols, compact) {
    const w = compact ? 300 : 420, h = compact ? 200 : 300;
    return {
      w: Math.max(22, Math.min(compact ? 48 : 64, Math.floor(w / Math.max(cols, 1)))),
      h: Math.max(16, Math.min(compact ? 30 : 40, Math.floor(h / Math.max(rows, 1)))),
    };
  }

  /**
   * One grid of cells: rows = lrs, columns = betas. `cell(i, j)` returns
   * {fill, label, mark, aria, data} or null (no cell). With `options.interactive` the cells are
   * buttons with one Tab stop for the whole map (roving tabindex: arrow keys, Home/End move inside;
   * the cell last focused keeps the stop). Returns the <svg>.
   */
  function grid(title, lrs, betas, cell, options) {
    const size = cellSize(lrs.length, betas.length, options.compact);
    const left = 64, top = 22, bottom = 40;
    const width = Math.max(left + size.w * betas.length + 8, 16 + 7.6 * title.length);
    const height = top + size.h * lrs.length + bottom;
    const root = svg("svg", {
      class: "grid " + (options.className || ""),
      width, height, viewBox: `0 0 ${width} ${height}`, role: "group", "aria-label": title,
    });
    root.append(svg("text", { x: 4, y: 14, class: "chart-title", text: title }));
    lrs.forEach((lr, i) => {
      root.append(svg("text", { x: left - 6, y: top + i * size.h + size.h / 2 + 4, class: "tick", "text-anchor": "end", text: num(lr) }));
    });
    betas.forEach((beta, j) => {
      root.append(svg("text", { x: left + j * size.w + size.w / 2, y: top + lrs.length * size.h + 14, class: "tick", "text-anchor": "middle", text: num(beta, 4) }));
    });
    root.append(svg("text", { x: 4, y: top + (lrs.length * size.h) / 2, class: "axis", text: "lr" }));
    root.append(svg("text", { x: left + (betas.length * size.w) / 2, y: height - 6, class: "axis", "text-anchor": "middle", text: "β_init" }));
    lrs.forEach((lr, i) => {
      betas.forEach((beta, j) => {
        const c = cell(i, j);
        if (!c) return;
        const x = left + j * size.w, y = top + i * size.h;
        const g = svg("g", Object.assign({ class: "cell", "aria-label": c.aria, "data-row": i, "data-col": j }, c.data || {}));
        if (options.interactive) {
          g.setAttribute("tabindex", "-1");
          g.setAttribute("role", "button");
        } else {
          g.setAttribute("role", "img");
        }
        g.append(svg("rect", { x, y, width: size.w - 1, height: size.h - 1, fill: c.fill }));
        const ink = textColour(c.fill);
        if (c.label && size.w >= 34) {
          g.append(svg("text", { x: x + size.w / 2, y: y + size.h / 2 + 4, "text-anchor": "middle", class: "cell-label", fill: ink, text: c.label }));
        }
        if (c.mark) {
          const big = c.mark === "×";
          g.append(svg("text", {
            x: big ? x + size.w / 2 : x + size.w - 7, y: big ? y + size.h / 2 + 5 : y + 9,
            "text-anchor": "middle", class: big ? "mark-all" : "mark-some", fill: ink, text: c.mark,
          }));
        }
        root.append(g);
      });
    });
    if (options.interactive) {
      root.setAttribute("tabindex", "-1"); // Chromium would make the map itself a Tab stop before its cells
      rove(root);
    }
    return root;
  }

  /** One Tab stop for the map's cells: the first cell (or `data-active`) has tabindex 0, the arrow
   * keys move focus and the stop between cells. */
  function rove(root) {
    const cells = [...root.querySelectorAll(".cell")];
    if (!cells.length) return;
    const at = (i, j) => root.querySelector(`.cell[data-row="${i}"][data-col="${j}"]`);
    const activate = (cell) => {
      cells.forEach((c) => c.setAttribute("tabindex", c === cell ? "0" : "-1"));
    };
    activate(cells[0]);
    root.addEventListener("focusin", (e) => {
      const cell = e.target.closest(".cell");
      if (cell) activate(cell);
    });
    root.addEventListener("keydown", (e) => {
      const cell = e.target.closest(".cell");
      if (!cell) return;
      const i = Number(cell.dataset.row), j = Number(cell.dataset.col);
      const rows = Math.max(...cells.map((c) => Number(c.dataset.row))), cols = Math.max(...cells.map((c) => Number(c.dataset.col)));
      const moves = {
        ArrowUp: [Math.max(0, i - 1), j], ArrowDown: [Math.min(rows, i + 1), j],
        ArrowLeft: [i, Math.max(0, j - 1)], ArrowRight: [i, Math.min(cols, j + 1)],
        Home: [i, 0], End: [i, cols],
      };
      if (!(e.key in moves)) return;
      e.preventDefault();
      const next = at(...moves[e.key]);
      if (next) next.focus();
    });
  }

  /** A vertical colour bar: the gradient of `stops` ([{value, colour}], low value at the bottom; top
   * says "worse" when `lowerIsBetter`), ticks in `fmt`, and extra swatches below ([{colour, label}]),
   * e.g. grey for "no result yet". */
  function colourBar(stops, label, fmt, swatches, id) {
    const barH = 150, width = 150, top = 26;
    const height = top + barH + 10 + 20 * (swatches || []).length + 4;
    const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label, class: "colour-bar" });
    root.append(svg("text", { x: 2, y: 12, class: "tick legend-title", text: label }));
    if (stops.length) {
      const gradient = svg("linearGradient", { id, x1: 0, y1: 1, x2: 0, y2: 0 });
      stops.forEach((s, k) => gradient.append(svg("stop", { offset: `${(100 * k) / Math.max(stops.length - 1, 1)}%`, "stop-color": s.colour })));
      root.append(svg("defs", {}, gradient));
      root.append(svg("rect", { x: 4, y: top, width: 16, height: barH, fill: `url(#${id})`, class: "bar-outline" }));
      const picks = [0, Math.floor((stops.length - 1) / 4), Math.floor((stops.length - 1) / 2), Math.floor((3 * (stops.length - 1)) / 4), stops.length - 1];
      [...new Set(picks)].forEach((k) => {
        const y = top + barH - (barH * k) / Math.max(stops.length - 1, 1);
        root.append(svg("line", { x1: 20, x2: 25, y1: y, y2: y, class: "axis-line" }));
        root.append(svg("text", { x: 28, y: y + 4, class: "tick", text: fmt(stops[k].value) }));
      });
    }
    (swatches || []).forEach((s, k) => {
      const y = top + barH + 10 + 20 * k;
      root.append(svg("rect", { x: 4, y, width: 16, height: 14, fill: s.colour, class: "bar-outline" }));
      root.append(svg("text", { x: 28, y: y + 11, class: "tick", text: s.label }));
    });
    return root;
  }

  /** A horizontal colour bar from [{value, colour}] stops (compare page). */
  function legend(stops, label) {
    const width = 290, height = 40, pad = 22;
    const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label });
    const step = (width - 2 * pad) / Math.max(stops.length - 1, 1);
    const every = Math.max(1, Math.round((stops.length - 1) / 4));
    stops.forEach((stop, k) => {
      if (k < stops.length - 1) root.append(svg("rect", { x: pad + k * step, y: 4, width: step + 1, height: 12, fill: stop.colour }));
      if (k % every === 0 || k === stops.length - 1) root.append(svg("text", { x: pad + k * step, y: 30, "text-anchor": "middle", class: "tick", text: num(stop.value) }));
    });
    return root;
  }

  function scale(domain, range, log) {
    const f = log ? Math.log10 : (v) => v;
    let [d0, d1] = domain.map(f);
    if (d1 === d0) { d0 -= 0.5; d1 += 0.5; }
    const s = (v) => range[0] + ((f(v) - d0) / (d1 - d0)) * (range[1] - range[0]);
    return s;
  }

  /** About `count` round tick values over [lo, hi] (1, 2, 5 × 10^k steps); decades on a log axis. */
  function ticks(lo, hi, count, log) {
    if (!(hi > lo)) return [lo];
    if (log) {
      const out = [];
      for (let e = Math.ceil(Math.log10(lo) - 1e-9); e <= Math.floor(Math.log10(hi) + 1e-9); e++) out.push(10 ** e);
      return out.length >= 2 ? out : [lo, hi];
    }
    const raw = (hi - lo) / Math.max(count, 1);
    const mag = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
    return out;
  }

  /**
   * Lines with optional bands: series = [{name, cls, points: [[x, y], ...], band: [[x, low, high], ...],
   * dashed}], on one plot. options: {width, height, title, xLabel, yLabel, logX, fmtY, fmtX, legend,
   * xTicks}. Non-finite y values are left out. Returns the <svg>.
   */
  function lines(series, options) {
    const o = Object.assign({ width: 440, height: 240, legend: true, fmtY: num, fmtX: num }, options);
    const right = o.legend ? 120 : 12, left = 52, top = 24, bottom = 36;
    const root = svg("svg", { width: o.width, height: o.height, viewBox: `0 0 ${o.width} ${o.height}`, role: "img", "aria-label": o.title, class: "chart " + (o.className || "") });
    root.append(svg("text", { x: 4, y: 14, class: "chart-title", text: o.title }));
    const finite = (p) => Number.isFinite(p[1]) && (!o.logX || p[0] > 0);
    const pts = series.flatMap((s) => s.points.filter(finite));
    const bandYs = series.flatMap((s) => (s.band || []).flatMap((b) => [b[1], b[2]])).filter(Number.isFinite);
    // Nothing to draw but × marks (every seed diverged wherever a cell ran): the axes and the marks.
    const marksOnly = !pts.length && o.xDomain && series.some((s) => (s.marks || []).length);
    if (!pts.length && !marksOnly) {
      root.append(svg("text", { x: left, y: 60, class: "tick", text: "no finite values yet" }));
      return root;
    }
    const xs = (o.xDomain || pts.map((p) => p[0]));
    const ys = marksOnly ? [0, 1] : pts.map((p) => p[1]).concat(bandYs, o.yInclude || []);
    const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
    const pad = (y1 - y0) * 0.06 || Math.abs(y0) * 0.1 || 1;
    const sx = scale([x0, x1], [left, o.width - right], o.logX);
    const sy = scale([y0 - pad, y1 + pad], [o.height - bottom, top], false);
    root.append(svg("rect", { x: left, y: top, width: o.width - right - left, height: o.height - bottom - top, class: "plot-area" }));
    if (marksOnly) root.append(svg("text", { x: left + 6, y: (top + o.height - bottom) / 2, class: "tick", text: "no run trained" }));
    if (!marksOnly) ticks(y0 - pad, y1 + pad, 4, false).forEach((v) => {
      root.append(svg("line", { x1: left, x2: o.width - right, y1: sy(v), y2: sy(v), class: "grid-line" }));
      root.append(svg("text", { x: left - 4, y: sy(v) + 4, "text-anchor": "end", class: "tick", text: o.fmtY(v) }));
    });
    (o.xTicks || ticks(x0, x1, 5, o.logX)).forEach((v) => {
      root.append(svg("text", { x: sx(v), y: o.height - bottom + 14, "text-anchor": "middle", class: "tick", text: o.fmtX(v) }));
    });
    root.append(svg("text", { x: (left + o.width - right) / 2, y: o.height - 4, "text-anchor": "middle", class: "axis", text: o.xLabel }));
    root.append(svg("text", { x: left, y: top - 2, class: "axis", text: o.yLabel }));
    series.forEach((s, k) => {
      const cls = s.cls || "s" + (k % SERIES);
      const band = (s.band || []).filter((b) => Number.isFinite(b[1]) && Number.isFinite(b[2]) && (!o.logX || b[0] > 0));
      if (band.length >= 2) {
        const upper = band.map((b) => `${sx(b[0])},${sy(b[2])}`), lower = band.slice().reverse().map((b) => `${sx(b[0])},${sy(b[1])}`);
        root.append(svg("polygon", { class: "band " + cls, points: upper.concat(lower).join(" ") }));
      }
      (s.marks || []).filter((x) => !o.logX || x > 0).forEach((x) => {
        root.append(svg("text", { x: sx(x), y: top + 11 + 9 * k, "text-anchor": "middle", class: "mark-diverged " + cls + "-label", text: "×" }));
      });
      const good = s.points.filter(finite);
      if (!good.length) return;
      root.append(svg("polyline", { class: "series " + cls + (s.dashed ? " dashed" : ""), points: good.map((p) => `${sx(p[0])},${sy(p[1])}`).join(" ") }));
      if (s.dots !== false) good.forEach((p) => root.append(svg("circle", { class: "series " + cls, cx: sx(p[0]), cy: sy(p[1]), r: 2.5 })));
      if (o.legend) root.append(svg("text", { x: o.width - right + 6, y: top + 10 + 14 * k, class: "tick " + cls + "-label", text: s.name }));
    });
    return root;
  }

  /**
   * A forest plot: rows = [{group, label, value, low, high, nullValue, strong, primary, note, fmt}].
   * Each row has its own scale, symmetric about its null (so every null lines up on one vertical
   * line: left of it the second arm is better, right of it the first), its interval as a bar and
   * its estimate as a dot (filled when the interval excludes the null), the numbers on the right.
   */
  function forest(rows, options) {
    const o = Object.assign({ width: 640, title: "" }, options);
    // the label column as wide as the longest label (≈ 6 px a character, 7 bold), so none runs into the plot
    const longest = Math.max(...rows.map((r) => String(r.label).length * (r.primary ? 7 : 6)));
    const rowH = 24, labelW = Math.min(300, Math.max(160, longest + 16)), numbersW = 230, top = 40, groupGap = 20;
    const groups = [...new Set(rows.map((r) => r.group))];
    const height = top + rowH * rows.length + groupGap * groups.length + 28;
    const plotL = labelW + 6, plotR = o.width - numbersW - 6, mid = (plotL + plotR) / 2;
    const root = svg("svg", { width: o.width, height, viewBox: `0 0 ${o.width} ${height}`, role: "img", "aria-label": o.title, class: "chart forest" });
    root.append(svg("text", { x: 4, y: 14, class: "chart-title", text: o.title }));
    root.append(svg("text", { x: mid - 6, y: 30, "text-anchor": "end", class: "tick", text: "← " + (o.leftLabel || "second arm better") }));
    root.append(svg("text", { x: mid + 6, y: 30, class: "tick", text: (o.rightLabel || "first arm better") + " →" }));
    let y = top;
    let previous = null;
    rows.forEach((r) => {
      if (r.group !== previous) {
        y += groupGap;
        root.append(svg("text", { x: 4, y: y - 6, class: "forest-group", text: r.group }));
        previous = r.group;
      }
      const centre = y + rowH / 2;
      root.append(svg("text", { x: 8, y: centre + 4, class: "tick" + (r.primary ? " primary-label" : ""), text: r.label }));
      root.append(svg("line", { x1: plotL, x2: plotR, y1: centre, y2: centre, class: "grid-line" }));
      const nul = r.nullValue || 0;
      const spread = [r.value, r.low, r.high].filter(Number.isFinite).map((v) => Math.abs(v - nul));
      const half = (Math.max(0, ...spread) || 1) * 1.15;
      const sx = (v) => mid + ((v - nul) / half) * ((plotR - plotL) / 2);
      if (Number.isFinite(r.low) && Number.isFinite(r.high)) {
        root.append(svg("line", { x1: sx(r.low), x2: sx(r.high), y1: centre, y2: centre, class: "interval" }));
        [r.low, r.high].forEach((v) => root.append(svg("line", { x1: sx(v), x2: sx(v), y1: centre - 5, y2: centre + 5, class: "interval" })));
      }
      if (Number.isFinite(r.value)) {
        root.append(svg("circle", { cx: sx(r.value), cy: centre, r: r.primary ? 5.5 : 4.5, class: r.strong ? "estimate strong" : "estimate" }));
      }
      root.append(svg("text", { x: plotR + 8, y: centre + 4, class: "tick", text: r.note }));
      y += rowH;
    });
    root.append(svg("line", { x1: mid, x2: mid, y1: top, y2: y + 4, class: "zero-line" }));
    root.append(svg("text", { x: mid, y: y + 18, "text-anchor": "middle", class: "tick", text: o.zeroLabel || "0: no difference" }));
    return root;
  }

  /** Scatter over (x, y) with server colours: points = [{x, y, colour, title, ring}]. */
  function scatter(points, options) {
    const o = Object.assign({ width: 460, height: 300, logX: true, xLabel: "lr (log)", yLabel: "β_init", fmtX: num, fmtY: (v) => num(v, 4) }, options);
    const left = 56, top = 24, bottom = 40, right = 12;
    const root = svg("svg", { width: o.width, height: o.height, viewBox: `0 0 ${o.width} ${o.height}`, role: "img", "aria-label": o.title, class: "chart " + (o.className || "") });
    root.append(svg("text", { x: 4, y: 14, class: "chart-title", text: o.title }));
    const usable = points.filter((p) => Number.isFinite(p.y) && (!o.logX || p.x > 0));
    if (!usable.length) return root;
    const xs = usable.map((p) => p.x), ys = usable.map((p) => p.y);
    const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
    const sx = scale([x0, x1], [left + 6, o.width - right - 6], o.logX);
    const sy = scale([y0, y1], [o.height - bottom - 6, top + 6], false);
    root.append(svg("rect", { x: left, y: top, width: o.width - left - right, height: o.height - top - bottom, class: "plot-area" }));
    ticks(x0, x1, 5, o.logX).forEach((v) => root.append(svg("text", { x: sx(v), y: o.height - bottom + 14, "text-anchor": "middle", class: "tick", text: o.fmtX(v) })));
    ticks(y0, y1, 4, false).forEach((v) => root.append(svg("text", { x: left - 4, y: sy(v) + 4, "text-anchor": "end", class: "tick", text: o.fmtY(v) })));
    root.append(svg("text", { x: (left + o.width) / 2, y: o.height - 6, "text-anchor": "middle", class: "axis", text: o.xLabel }));
    root.append(svg("text", { x: left, y: top - 2, class: "axis", text: o.yLabel }));
    usable.forEach((p) => {
      const cls = (p.cls ? p.cls + " " : "") + (p.ring ? "point diverged" : "point");
      root.append(svg("circle", { cx: sx(p.x), cy: sy(p.y), r: p.cls ? 4 : 5, fill: p.cls ? null : p.colour || "#4a6fa5", class: cls }, svg("title", { text: p.title })));
    });
    return root;
  }

  /** Horizontal bars with min–max whiskers: rows = [{label, mean, min, max}]. */
  function bars(rows, title, unit) {
    // the label column as wide as the longest label (≈ 6.5 px a character at the tick font), so no
    // label is cut at the chart's left edge; the bars keep 320 px
    const longest = Math.max(0, ...rows.map((r) => String(r.label).length));
    const rowH = 24, right = 60, top = 24, left = Math.min(420, Math.max(120, Math.ceil(6.5 * longest) + 12));
    const width = left + 320 + right;
    const height = top + rowH * rows.length + 30;
    const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title, class: "chart" });
    root.append(svg("text", { x: 4, y: 14, class: "chart-title", text: title }));
    const values = rows.flatMap((r) => [r.min, r.max, r.mean]).filter(Number.isFinite);
    if (!values.length) return root;
    const lo = Math.min(0, ...values), hi = Math.max(...values);
    const sx = scale([lo, hi === lo ? lo + 1 : hi], [left, width - right], false);
    rows.forEach((r, k) => {
      const y = top + k * rowH;
      root.append(svg("text", { x: left - 6, y: y + 15, "text-anchor": "end", class: "tick", text: r.label }));
      if (!Number.isFinite(r.mean)) return;
      root.append(svg("rect", { x: sx(lo), y: y + 4, width: Math.max(1, sx(r.mean) - sx(lo)), height: rowH - 10, class: "bar" }));
      if (Number.isFinite(r.min) && Number.isFinite(r.max)) {
        root.append(svg("line", { x1: sx(r.min), x2: sx(r.max), y1: y + rowH / 2 - 1, y2: y + rowH / 2 - 1, class: "whisker" }));
      }
      root.append(svg("text", { x: sx(r.mean) + 4, y: y + 15, class: "tick", text: num(r.mean) + (unit || "") }));
    });
    return root;
  }

  return { grid, colourBar, legend, lines, forest, scatter, bars, ticks, textColour, SERIES };
})();
