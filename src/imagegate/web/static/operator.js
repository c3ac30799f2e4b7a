// The operator's view (keys of the first account only): provider health and the queue.

import { api } from "./api.js";
import { clear, formatDate, h } from "./ui.js";

export async function operator(view) {
  const status = await api("/v2/operator/status");
  const queue = status.queue;
  const providerRows = status.providers.map((p) => h("tr", {},
    h("td", {}, h("strong", {}, p.provider)),
    h("td", {}, h("span", { class: `chip ${p.status === "ok" ? "chip-COMPLETED" : p.status === "misconfigured" ? "chip-FAILED" : "chip-inactive"}` }, p.status)),
    h("td", { class: "num" }, String(p.failures)),
    h("td", {}, p.circuitOpenUntil ? formatDate(p.circuitOpenUntil) : "closed"),
    h("td", {}, p.cooldownUntil ? formatDate(p.cooldownUntil) : "—"),
    h("td", { class: "num" }, String(p.maxConcurrency)),
    h("td", { class: "num" }, p.ratePerMinute ? `${p.ratePerMinute}/min` : "no limit"),
    h("td", {}, p.error || "")));
  clear(view,
    h("div", { class: "page-head" }, h("h1", {}, "Operator"), h("p", {}, `As of ${formatDate(status.now)}`),
      h("button", { type: "button", class: "button button-secondary button-small", onclick: () => operator(view) }, "Refresh")),
    h("div", { class: "stat-grid" },
      stat("Queued", queue.queued),
      stat("Processing", queue.processing),
      stat("Oldest queued", queue.oldestQueuedAt ? formatDate(queue.oldestQueuedAt) : "none")),
    h("section", { class: "panel", style: "margin-top:1rem", "aria-labelledby": "providers-title" },
      h("h2", { id: "providers-title" }, "Providers"),
      status.providers.length
        ? h("div", { class: "table-wrap" }, h("table", {},
            h("thead", {}, h("tr", {}, ["Provider", "State", "Failures", "Circuit", "Cool-down", "Cap", "Rate", "Error"].map((t) => h("th", { scope: "col" }, t)))),
            h("tbody", {}, providerRows)))
        : h("p", { class: "muted" }, "No upstream provider is configured, and none has been called since the start.")));
}

function stat(label, value) {
  return h("div", { class: "stat" }, h("div", { class: "muted small" }, label), h("div", { class: "value" }, String(value)));
}
