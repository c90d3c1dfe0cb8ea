/* demonlab dashboard: helpers shared by every page (no framework, no inline code: CSP 'self').
 * The API token is kept in this tab's sessionStorage only, sent as a bearer header, never in a URL. */
"use strict";

const demonlab = (() => {
  const TOKEN_KEY = "demonlab.token";

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  /** fetch JSON from the API; returns {ok, status, data} and never throws on HTTP errors. */
  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (token()) headers.Authorization = "Bearer " + token();
    const init = { method, headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      return { ok: false, status: 0, data: { detail: "cannot reach the service: " + err } };
    }
    let data = null;
    const text = await response.text();
    try {
      data = text ? JSON.parse(text) : null;
    } catch (err) {
      data = { detail: text };
    }
    return { ok: response.ok, status: response.status, data };
  }

  /** An element with attributes and children; strings become text nodes (never HTML). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  const SVG_NS = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function setAttrs(node, attrs) {
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "text") node.textContent = String(value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
  }

  function append(node, children) {
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  /** 3 significant digits, '–' for nothing. */
  function num(value, digits) {
    if (value === null || value === undefined || !Number.isFinite(Number(value))) return "–";
    return Number(Number(value).toPrecision(digits || 3)).toString();
  }

  function pct(value) {
    return value === null || value === undefined ? "–" : Math.round(100 * value) + "%";
  }

  /** An interval's level to 0.1 point (0.96875 → "96.9%", 0.875 → "87.5%"): never rounded up to a
   * level the interval does not have. */
  function level(value) {
    if (value === null || value === undefined) return "–";
    const shown = Number((100 * value).toFixed(1));
    return shown >= 100 && value < 1 ? "> 99.9%" : shown.toString() + "%"; // many seeds: never "100%"
  }

  /** ``x`` to ``digits`` decimals as Python's format() writes it (the CLI, the PNGs and the words
   * fragment): an exact tie rounds to the even digit (6.25 → "6.2", where toFixed gives "6.3"), and
   * a zero is never "-0.0". */
  function fixed(x, digits) {
    let text = x.toFixed(digits);
    const exact = Math.abs(x).toFixed(Math.min(100, digits + 60)); // the double's decimal expansion
    if (/^50*$/.test(exact.slice(exact.indexOf(".") + 1 + digits))) {
      const scale = 10 ** digits;
      const low = Math.floor(Math.abs(x) * scale); // exact: a tie has few binary digits
      text = ((Math.sign(x) * (low % 2 === 0 ? low : low + 1)) / scale).toFixed(digits);
    }
    return /^-0(\.0*)?$/.test(text) ? text.slice(1) : text;
  }

  /** Scores for people in the study's unit: percent (one decimal, as the PNG heatmaps) for an error
   * metric the server marks `percent`, else 3 significant digits. `signed` adds the sign of a Δ. */
  function scoreFormat(percent) {
    const f = (value) => {
      if (value === null || value === undefined || !Number.isFinite(Number(value))) return "–";
      if (!percent) return num(value);
      const p = 100 * Number(value);
      return Math.abs(p) < 99.95 ? fixed(p, 1) : fixed(p, 0);
    };
    f.unit = percent ? "%" : "";
    f.diffUnit = percent ? " points" : "";
    f.signed = (value) => (Number(value) > 0 ? "+" : "") + f(value);
    return f;
  }

  /** The page's state in its URL query (history.replaceState: a reload or a shared link keeps it);
   * null or "" removes a key. */
  function urlState(changes) {
    const query = new URLSearchParams(window.location.search);
    if (!changes) return query;
    for (const [key, value] of Object.entries(changes)) {
      if (value === null || value === undefined || value === "") query.delete(key);
      else query.set(key, String(value));
    }
    const text = query.toString();
    window.history.replaceState(null, "", window.location.pathname + (text ? "?" + text : "") + window.location.hash);
    return query;
  }

  /** A table from column names and rows of cells (text). */
  function table(columns, rows, caption) {
    return el(
      "table",
      { class: "data" },
      caption ? el("caption", { text: caption }) : null,
      el("thead", {}, el("tr", {}, columns.map((c) => el("th", { scope: "col", text: c })))),
      el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c) => el("td", {}, c)))))
    );
  }

  function wireTokenForm() {
    const form = document.getElementById("token-form");
    if (!form) return;
    const input = document.getElementById("token-input");
    const state = document.getElementById("token-state");
    const show = () => {
      state.textContent = token() ? "token set for this tab" : "";
    };
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (input.value.trim()) sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      input.value = "";
      show();
    });
    document.getElementById("token-forget").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      show();
    });
    show();
  }

  document.addEventListener("DOMContentLoaded", wireTokenForm);

  return { api, el, svg, num, pct, level, fixed, table, token, scoreFormat, urlState };
})();
