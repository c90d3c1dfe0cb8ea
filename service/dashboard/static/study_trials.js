/* The study's trial table: every trial, filtered (arm, status, lr, β_init) and sorted by the server
 * (click a column header; again for descending), 25 a page; filters, sort and page live in the URL. */
"use strict";

const studyTrials = (ctx) => {
  const { api, el, num, urlState } = demonlab;
  const PAGE = 25;
  const form = document.getElementById("trial-filters");
  const box = document.getElementById("trials");
  const FILTERS = ["arm", "status", "lr", "beta_init"];
  // [column title, sort key or null, cell text]
  const columns = () => {
    const m = ctx.trialMetric, percent = ctx.fmt.unit && ctx.metricName === ctx.trialMetric;
    const fv = percent ? (v) => ctx.fmt(v) + (Number.isFinite(v) ? "%" : "") : (v) => num(v, 4);
    return [
      ["arm", "arm", (t) => t.arm], ["lr", "lr", (t) => num(t.lr)], ["β_init", "beta_init", (t) => num(t.beta_init, 4)],
      ["seed", "seed", (t) => String(t.seed)], ["status", "status", (t) => t.status],
      [`val ${m}`, "val_metric", (t) => fv(t.val_metric)], [`test ${m}`, "test_metric", (t) => fv(t.test_metric)],
      ["val loss", "val_loss", (t) => num(t.val_loss, 4)], ["epochs", "epochs_done", (t) => String(t.epochs_done)],
      ["seconds", "wall_seconds", (t) => num(t.wall_seconds)],
    ];
  };

  function read() {
    const q = urlState();
    const state = { sort: q.get("sort") || "", page: Math.max(1, Number(q.get("tpage")) || 1) };
    FILTERS.forEach((f) => { state[f] = q.get("t_" + f) || ""; });
    return state;
  }

  function write(state) {
    const changes = { sort: state.sort, tpage: state.page > 1 ? state.page : null };
    FILTERS.forEach((f) => { changes["t_" + f] = state[f]; });
    urlState(changes);
  }

  async function load() {
    const state = read();
    FILTERS.forEach((f) => { form.elements[f].value = state[f]; });
    const query = new URLSearchParams({ limit: PAGE, offset: (state.page - 1) * PAGE });
    FILTERS.forEach((f) => { if (state[f]) query.set(f, state[f]); });
    if (state.sort) query.set("sort", state.sort);
    const r = await api("GET", `${ctx.base}/trials?${query}`);
    if (!r.ok) {
      box.replaceChildren(el("p", { class: "error", role: "alert", text: r.data.detail }));
      return;
    }
    const cols = columns();
    const header = cols.map(([title, key]) => {
      const active = state.sort.replace(/^-/, "") === key;
      const direction = active ? (state.sort.startsWith("-") ? "descending" : "ascending") : "none";
      const button = el("button", { type: "button", class: "sort", text: title + (active ? (direction === "ascending" ? " ▲" : " ▼") : "") });
      button.addEventListener("click", () => {
        write(Object.assign(state, { sort: state.sort === key ? "-" + key : key, page: 1 }));
        load();
      });
      return el("th", { scope: "col", "aria-sort": direction }, button);
    });
    const rows = r.data.data.map((t) => el("tr", {}, cols.map(([, , text]) => el("td", { text: text(t) }))));
    const pages = Math.max(1, Math.ceil(r.data.count / PAGE));
    const pager = el("nav", { class: "pager", "aria-label": "trial pages" },
      state.page > 1 ? el("button", { type: "button", text: "← previous", onclick: () => { write(Object.assign(state, { page: state.page - 1 })); load(); } }) : null,
      el("span", { class: "muted small", text: `${r.data.count} trial${r.data.count === 1 ? "" : "s"}` + (pages > 1 ? `, page ${state.page} of ${pages}` : "") }),
      state.page < pages ? el("button", { type: "button", text: "next →", onclick: () => { write(Object.assign(state, { page: state.page + 1 })); load(); } }) : null);
    box.replaceChildren(
      el("table", { class: "data trials-table" }, el("caption", { class: "sr", text: "trials of the study" }),
        el("thead", {}, el("tr", {}, header)), el("tbody", {}, rows)),
      pager);
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const state = read();
    FILTERS.forEach((f) => { state[f] = form.elements[f].value.trim(); });
    state.page = 1;
    write(state);
    load();
  });

  return { load };
};
