/* Small SVG charts drawn from server-computed data (colours come from the server's colour maps).
 * Every chart has a table twin on request (the pages build both from the same data). */
"use strict";

const charts = (() => {
  const { svg, num } = demonlab;

  function textColour(hex) {
    const r = parseInt(hex.slice(1, 3), 16), g = parseInt(hex.slice(3, 5), 16), b = parseInt(hex.slice(5, 7), 16);
    return 0.299 * r + 0.587 * g + 0.114 * b > 128 ? "#000" : "#fff";
  }

  function cellSize(rows, cols) {
    return {
      w: Math.max(22, Math.min(64, Math.floor(420 / Math.max(cols, 1)))),
      h: Math.max(16, Math.min(40, Math.floor(300 / Math.max(rows, 1)))),
    };
  }

  /**
   * One grid of cells: rows = lrs, columns = betas. `cell(i, j)` returns
   * {fill, label, mark, aria, data} or null (no cell). Returns the <svg>.
   */
  function grid(title, lrs, betas, cell, options) {
    const size = cellSize(lrs.length, betas.length);
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
        const g = svg("g", Object.assign({ class: "cell", "aria-label": c.aria }, c.data || {}));
        if (options.interactive) {
          g.setAttribute("tabindex", "0");
          g.setAttribute("role", "button");
        }
        g.append(svg("rect", { x, y, width: size.w - 1, height: size.h - 1, fill: c.fill }));
        if (c.label && size.w >= 34) {
          g.append(svg("text", { x: x + size.w / 2, y: y + size.h / 2 + 4, "text-anchor": "middle", class: "cell-label", fill: textColour(c.fill), text: c.label }));
        }
        if (c.mark) {
          const big = c.mark === "×";
          g.append(svg("text", {
            x: big ? x + size.w / 2 : x + size.w - 7, y: big ? y + size.h / 2 + 5 : y + 9,
            "text-anchor": "middle", class: big ? "mark-all" : "mark-some", fill: textColour(c.fill), text: c.mark,
          }));
        }
        root.append(g);
      });
    });
    return root;
  }

  /** A colour bar from [{value, colour}] stops. */
  function legend(stops, label) {
    const width = 290, height = 40, pad = 22;
    const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label });
    const step = (width - 2 * pad) / Math.max(stops.length - 1, 1);
    stops.forEach((stop, k) => {
      if (k < stops.length - 1) root.append(svg("rect", { x: pad + k * step, y: 4, width: step + 1, height: 12, fill: stop.colour }));
      root.append(svg("text", { x: pad + k * step, y: 30, "text-anchor": "middle", class: "tick", text: num(stop.value) }));
    });
    return root;
  }

  function scale(domain, range, log) {
    const f = log ? Math.log10 : (v) => v;
    let [d0, d1] = domain.map(f);
    if (d1 === d0) { d0 -= 0.5; d1 += 0.5; }
    return (v) => range[0] + ((f(v) - d0) / (d1 - d0)) * (range[1] - range[0]);
  }

  /** Lines: series = [{name, points: [[x, y], ...]}], y lower is better. */
  function lines(series, xLabel, yLabel, title) {
    const width = 440, height = 240, left = 50, right = 110, top = 40, bottom = 34;
    const pts = series.flatMap((s) => s.points).filter((p) => Number.isFinite(p[1]));
    const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title, class: "chart" });
    root.append(svg("text", { x: left, y: 13, class: "chart-title", text: title }));
    if (!pts.length) {
      root.append(svg("text", { x: left, y: 60, class: "tick", text: "no finite values" }));
      return root;
    }
    const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
    const sx = scale([Math.min(...xs), Math.max(...xs)], [left, width - right], false);
    const sy = scale([Math.min(...ys), Math.max(...ys)], [height - bottom, top], false);
    root.append(svg("line", { x1: left, y1: height - bottom, x2: width - right, y2: height - bottom, class: "axis-line" }));
    root.append(svg("line", { x1: left, y1: top, x2: left, y2: height - bottom, class: "axis-line" }));
    [Math.min(...ys), Math.max(...ys)].forEach((v) => root.append(svg("text", { x: left - 4, y: sy(v) + 4, "text-anchor": "end", class: "tick", text: num(v) })));
    [Math.min(...xs), Math.max(...xs)].forEach((v) => root.append(svg("text", { x: sx(v), y: height - bottom + 14, "text-anchor": "middle", class: "tick", text: num(v) })));
    root.append(svg("text", { x: (left + width - right) / 2, y: height - 4, "text-anchor": "middle", class: "axis", text: xLabel }));
    root.append(svg("text", { x: 4, y: top - 10, class: "axis", text: yLabel }));
    series.forEach((s, k) => {
      const good = s.points.filter((p) => Number.isFinite(p[1]));
      if (!good.length) return;
      const cls = "series s" + (k % 6);
      root.append(svg("polyline", { class: cls, points: good.map((p) => `${sx(p[0])},${sy(p[1])}`).join(" ") }));
      good.forEach((p) => root.append(svg("circle", { class: cls, cx: sx(p[0]), cy: sy(p[1]), r: 2.5 })));
      root.append(svg("text", { x: width - right + 6, y: top + 12 + 14 * k, class: "tick " + cls + "-label", text: s.name }));
    });
    return root;
  }

  /** Scatter over (lr log, β_init) with server colours: points = [{lr, beta_init, colour, title}]. */
  function scatter(points, title) {
    const width = 460, height = 300, left = 56, top = 20, bottom = 40, right = 12;
    const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title, class: "chart" });
    root.append(svg("text", { x: left, y: 13, class: "chart-title", text: title }));
    if (!points.length) return root;
    const lrs = points.map((p) => p.lr), betas = points.map((p) => p.beta_init);
    const sx = scale([Math.min(...lrs), Math.max(...lrs)], [left + 6, width - right - 6], Math.min(...lrs) > 0);
    const sy = scale([Math.min(...betas), Math.max(...betas)], [height - bottom - 6, top + 6], false);
    root.append(svg("rect", { x: left, y: top, width: width - left - right, height: height - top - bottom, class: "plot-area" }));
    [Math.min(...lrs), Math.max(...lrs)].forEach((v) => root.append(svg("text", { x: sx(v), y: height - bottom + 14, "text-anchor": "middle", class: "tick", text: num(v) })));
    [Math.min(...betas), Math.max(...betas)].forEach((v) => root.append(svg("text", { x: left - 4, y: sy(v) + 4, "text-anchor": "end", class: "tick", text: num(v, 4) })));
    root.append(svg("text", { x: (left + width) / 2, y: height - 6, "text-anchor": "middle", class: "axis", text: "lr (log)" }));
    root.append(svg("text", { x: 4, y: top - 6, class: "axis", text: "β_init" }));
    points.forEach((p) => {
      root.append(svg("circle", { cx: sx(p.lr), cy: sy(p.beta_init), r: 5, fill: p.colour, class: p.allDiverged ? "point diverged" : "point" }, svg("title", { text: p.title })));
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

  return { grid, legend, lines, scatter, bars };
})();
