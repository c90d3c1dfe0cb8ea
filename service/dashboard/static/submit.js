/* Submit: parse the YAML/JSON text on the server (with each field's line), submit it, and show the
 * API's 422 errors beside the field they name (its line in the text); on success open the study. */
"use strict";

(() => {
  const { api, el } = demonlab;
  const $ = (name) => document.getElementById(name);
  let lines = {};

  function lineOf(field) {
    // "arms.0.name" → the deepest known prefix's line
    const parts = String(field || "").split(".");
    for (let n = parts.length; n > 0; n--) {
      const key = parts.slice(0, n).join(".");
      if (key in lines) return lines[key];
    }
    return null;
  }

  function selectLine(line) {
    const area = $("spec-text");
    const rows = area.value.split("\n");
    const start = rows.slice(0, line - 1).reduce((sum, row) => sum + row.length + 1, 0);
    area.focus();
    area.setSelectionRange(start, start + (rows[line - 1] || "").length);
  }

  function showErrors(errors) {
    annotate(errors);
    const list = $("spec-errors");
    $("spec-text").classList.toggle("invalid", errors.length > 0);
    $("spec-text").setAttribute("aria-invalid", String(errors.length > 0));
    list.replaceChildren(...errors.map((e) => {
      const line = e.line || lineOf(e.field);
      const item = el("li", { "data-field": e.field || "" },
        el("span", { class: "field", text: e.field || "spec" }),
        line ? el("span", { class: "muted", text: ` (line ${line})` }) : null,
        ": ", el("span", { class: "reason", text: e.reason || "" }));
      if (line) {
        item.append(" ", el("button", { type: "button", class: "small", text: "go to line", onclick: () => selectLine(line) }));
      }
      return item;
    }));
  }

  /** The spec's text, line by line, each error written beside the line of the field it names. */
  function annotate(errors) {
    const box = $("spec-annotated");
    const byLine = new Map();
    for (const e of errors) {
      const line = e.line || lineOf(e.field);
      if (!line) continue;
      if (!byLine.has(line)) byLine.set(line, []);
      byLine.get(line).push(e);
    }
    box.hidden = byLine.size === 0;
    if (!byLine.size) return box.replaceChildren();
    const rows = $("spec-text").value.split("\n").map((text, k) => {
      const here = byLine.get(k + 1) || [];
      return el("div", { class: here.length ? "line has-error" : "line" },
        el("span", { class: "ln", text: String(k + 1) }),
        el("code", { text: text || " " }),
        ...here.map((e) => el("span", { class: "inline-error", "data-field": e.field || "", text: `← ${e.field || "spec"}: ${e.reason || ""}` })));
    });
    box.replaceChildren(el("p", { class: "small muted", text: "The spec with each problem beside its field:" }), ...rows);
  }

  async function submit(event) {
    event.preventDefault();
    const state = $("submit-state");
    state.textContent = "checking…";
    showErrors([]);
    const parsed = await api("POST", "/api/v1/specs/parse", { text: $("spec-text").value });
    if (!parsed.ok) {
      state.textContent = "";
      showErrors([{ field: parsed.data.field || "spec", reason: parsed.data.detail, line: parsed.data.line }]);
      return;
    }
    lines = parsed.data.lines || {};
    state.textContent = "submitting…";
    const created = await api("POST", "/api/v1/studies", parsed.data.spec);
    if (created.ok) {
      state.textContent = "submitted";
      window.location.assign("/studies/" + encodeURIComponent(created.data.id));
      return;
    }
    state.textContent = "";
    const d = created.data || {};
    let errors = d.errors && d.errors.length ? d.errors : [{ field: d.field || "spec", reason: d.detail }];
    if (created.status === 401) errors = [{ field: "token", reason: d.detail + " (set an API token in the header)" }];
    showErrors(errors);
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("submit-form").addEventListener("submit", submit);
    $("spec-file").addEventListener("change", async (event) => {
      const file = event.target.files[0];
      if (file) $("spec-text").value = await file.text();
    });
  });
})();
