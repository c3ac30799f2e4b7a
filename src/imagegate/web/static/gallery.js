// The gallery: the account's jobs as an image grid with filters and cursor pagination, and one
// job's detail (prompt, params, timings, cost, route, outputs, webhooks, cancel).

import { api, ApiError } from "./api.js";
import { progressView, resultView, submitAction } from "./job.js";
import { runAgain } from "./playground.js";
import { isTerminal, watchJob } from "./progress.js";
import { clear, field, formatBytes, formatDate, formatDuration, h, statusChip, toast } from "./ui.js";

const STATUSES = ["QUEUED", "PROCESSING", "COMPLETED", "FAILED", "CANCELLED"];
const filters = { status: "", model: "", from: "", to: "" };

export async function gallery(view) {
  const status = h("select", { id: "filter-status" }, h("option", { value: "" }, "Any status"), STATUSES.map((s) => h("option", { value: s, selected: filters.status === s }, s.charAt(0) + s.slice(1).toLowerCase())));
  const model = h("select", { id: "filter-model" }, h("option", { value: "" }, "Any model"));
  const from = h("input", { type: "date", id: "filter-from", value: filters.from });
  const to = h("input", { type: "date", id: "filter-to", value: filters.to });
  const apply = h("button", { type: "submit", class: "button" }, "Apply");
  const form = h("form", { class: "filters panel", "aria-label": "Filter jobs" },
    field("filter-status", "Status", status), field("filter-model", "Model", model),
    field("filter-from", "From", from), field("filter-to", "To", to), apply);
  const grid = h("div", { class: "grid", "aria-live": "polite" });
  const more = h("button", { type: "button", class: "button button-secondary", hidden: true }, "Load more");
  const summary = h("p", { class: "muted small", role: "status" });
  clear(view,
    h("div", { class: "page-head" }, h("h1", {}, "Gallery"), h("p", {}, "Every job of this account, newest first.")),
    form, summary, grid, h("div", { class: "row", style: "justify-content:center;margin-top:1rem" }, more));

  let cursor = null;
  let shown = 0;
  let modelsLoaded = false;

  // The API filters by status and model; dates are applied here, on pages that are newest first,
  // so paging stops as soon as a page reaches past the "From" day.
  const fromMs = () => (filters.from ? new Date(`${filters.from}T00:00:00`).getTime() : null);
  const toMs = () => (filters.to ? new Date(`${filters.to}T23:59:59.999`).getTime() : null);

  async function load(reset) {
    if (reset) { cursor = null; shown = 0; clear(grid); }
    more.disabled = true;
    let pages = 0;
    let added = 0;
    let reachedEnd = false;
    while (pages < 10 && added === 0) {
      const query = new URLSearchParams({ limit: "24" });
      if (filters.status) query.set("status", filters.status);
      if (filters.model) query.set("model", filters.model);
      if (cursor) query.set("cursor", cursor);
      if (!modelsLoaded) query.set("include_models", "true");
      const page = await api(`/v2/jobs?${query}`);
      pages += 1;
      if (page.models && !modelsLoaded) {
        modelsLoaded = true;
        for (const id of page.models) model.append(h("option", { value: id, selected: filters.model === id }, id));
      }
      for (const job of page.jobs) {
        const created = new Date(job.createdAt).getTime();
        if (toMs() !== null && created > toMs()) continue;
        if (fromMs() !== null && created < fromMs()) { reachedEnd = true; break; }
        grid.append(card(job));
        added += 1;
      }
      cursor = page.nextCursor;
      if (!page.hasMore || reachedEnd) { reachedEnd = true; break; }
    }
    shown += added;
    more.hidden = reachedEnd || !cursor;
    more.disabled = false;
    summary.textContent = shown ? `${shown} job${shown === 1 ? "" : "s"} shown${more.hidden ? "" : "; more are older"}.` : "";
    if (!shown) grid.append(h("div", { class: "empty", style: "grid-column:1/-1" }, filters.status || filters.model || filters.from || filters.to ? "No job matches these filters." : "No jobs yet. Generate one in the playground."));
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    Object.assign(filters, { status: status.value, model: model.value, from: from.value, to: to.value });
    load(true).catch((error) => toast(error.message));
  });
  more.addEventListener("click", () => load(false).catch((error) => toast(error.message)));
  await load(true);
}

function card(job) {
  const image = job.result && job.result.images && job.result.images[0];
  const cover = image
    ? h("img", { src: image, alt: "", loading: "lazy" })
    : h("span", {}, job.status === "COMPLETED" ? "Expired" : job.status.charAt(0) + job.status.slice(1).toLowerCase());
  return h("a", { class: "card", href: `#/jobs/${job.id}`, "aria-label": `${job.model} job, ${job.status.toLowerCase()}, ${formatDate(job.createdAt)}` },
    h("div", { class: "cover" }, cover),
    h("div", { class: "body" },
      h("div", { class: "title" }, job.model),
      h("div", { class: "meta" }, statusChip(job.status), h("span", {}, new Date(job.createdAt).toLocaleDateString()))));
}

// Job detail -----------------------------------------------------------------------------------

let detailWatch = null;

export async function jobDetail(view, jobId) {
  if (detailWatch) detailWatch.abort();
  let job;
  try {
    job = await api(`/v2/jobs/${encodeURIComponent(jobId)}`);
  } catch (error) {
    if (error instanceof ApiError && (error.status === 404 || error.status === 400)) {
      clear(view, h("div", { class: "panel" }, h("h1", {}, "Job not found"), h("p", {}, "No job with that id belongs to this account."), h("a", { href: "#/gallery" }, "Back to the gallery")));
      return;
    }
    throw error;
  }
  const main = h("section", { class: "panel", "aria-labelledby": "job-title" });
  const side = h("div", { class: "stack" });
  clear(view,
    h("p", {}, h("a", { href: "#/gallery" }, "← Gallery")),
    h("div", { class: "detail" }, main, side));

  function render() {
    const cancel = isTerminal(job) ? null : h("button", { type: "button", class: "button button-danger", onclick: cancelJob }, "Cancel job");
    clear(main,
      h("div", { class: "row", style: "justify-content:space-between" },
        h("h1", { id: "job-title" }, job.model), h("div", { class: "row" }, statusChip(job.status), job.sandbox ? h("span", { class: "badge badge-sandbox" }, "Sandbox") : null)),
      h("p", { class: "prompt-text" }, (job.input && job.input.prompt) || ""),
      isTerminal(job) ? resultView(job, {
        onRunAgain: job.input ? () => runAgain(job.input) : null,
        onAction: async (body) => {
          try { const id = await submitAction(body); window.location.hash = `#/jobs/${id}`; } catch (error) { toast(error.message); }
        },
      }) : progressView(job),
      h("div", { class: "row", style: "margin-top:1rem" }, cancel));
    clear(side, facts(job), outputsTable(job), paramsBlock(job), webhooksPanel(job));
  }

  async function cancelJob(event) {
    event.target.disabled = true;
    try {
      job = await api(`/v2/jobs/${encodeURIComponent(job.id)}/cancel`, { method: "POST" });
      toast("The job was cancelled and refunded");
      render();
    } catch (error) {
      toast(error.message);
      event.target.disabled = false;
    }
  }

  render();
  if (!isTerminal(job)) {
    detailWatch = new AbortController();
    watchJob(job.id, (next) => { if (!isTerminal(job)) { job = { ...job, ...next }; render(); } }, { signal: detailWatch.signal })
      .then(async () => { job = await api(`/v2/jobs/${encodeURIComponent(job.id)}`); render(); })
      .catch((error) => { if (error.name !== "AbortError") toast(error.message); });
  }
}

function facts(job) {
  const route = job.sandbox ? "sandbox renderer (test key)" : job.servedBy ? `${job.servedBy.provider} · ${job.servedBy.model}` : "—";
  return h("section", { class: "panel", "aria-labelledby": "facts-title" },
    h("h2", { id: "facts-title" }, "Details"),
    h("dl", { class: "facts" },
      h("dt", {}, "Job id"), h("dd", {}, h("code", {}, job.id)),
      h("dt", {}, "Created"), h("dd", {}, formatDate(job.createdAt)),
      h("dt", {}, "Finished"), h("dd", {}, formatDate(job.completedAt)),
      h("dt", {}, "Took"), h("dd", {}, formatDuration(job.createdAt, job.completedAt)),
      h("dt", {}, "Cost"), h("dd", {}, `${job.creditCost} credit${job.creditCost === 1 ? "" : "s"}`),
      h("dt", {}, "Route"), h("dd", {}, route),
      h("dt", {}, "Expires"), h("dd", {}, formatDate(job.expiresAt)),
      job.error ? [h("dt", {}, "Error"), h("dd", {}, job.error)] : null));
}

function outputsTable(job) {
  if (!job.outputs || !job.outputs.length) return null;
  return h("section", { class: "panel", "aria-labelledby": "outputs-title" },
    h("h2", { id: "outputs-title" }, "Outputs"),
    h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "#"), h("th", { scope: "col" }, "Size"), h("th", { scope: "col" }, "Type"), h("th", { scope: "col", class: "num" }, "Bytes"))),
      h("tbody", {}, job.outputs.map((output, index) => h("tr", {},
        h("td", {}, h("a", { href: output.url, target: "_blank", rel: "noopener" }, String(index + 1))),
        h("td", {}, output.width ? `${output.width}×${output.height}` : "—"),
        h("td", {}, output.contentType || "—"),
        h("td", { class: "num" }, formatBytes(output.byteSize))))))));
}

function paramsBlock(job) {
  if (!job.input) return null;
  return h("section", { class: "panel", "aria-labelledby": "params-title" },
    h("h2", { id: "params-title" }, "Request"),
    h("pre", { class: "code", tabindex: "0" }, JSON.stringify(job.input, null, 2)));
}

function webhooksPanel(job) {
  const panel = h("section", { class: "panel", "aria-labelledby": "webhooks-title" }, h("h2", { id: "webhooks-title" }, "Webhooks"), h("p", { class: "muted" }, "Loading…"));
  api(`/v2/jobs/${encodeURIComponent(job.id)}/webhooks`).then((log) => {
    const title = h("h2", { id: "webhooks-title" }, "Webhooks");
    if (!log.webhookUrl) {
      clear(panel, title, h("p", { class: "muted" }, "This job was submitted without a webhookUrl."));
      return;
    }
    const redeliver = h("button", { type: "button", class: "button button-secondary button-small", onclick: async () => {
      redeliver.disabled = true;
      try { await api(`/v2/jobs/${encodeURIComponent(job.id)}/webhooks/redeliver`, { method: "POST" }); toast("The webhook was queued again"); } catch (error) { toast(error.message); }
      redeliver.disabled = false;
    } }, "Redeliver");
    clear(panel, title,
      h("p", { class: "small" }, h("code", {}, log.webhookUrl), " · ", log.webhookStatus || "none"),
      log.deliveries.length ? h("div", { class: "table-wrap" }, h("table", {},
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Event"), h("th", { scope: "col" }, "Status"), h("th", { scope: "col" }, "Attempts"))),
        h("tbody", {}, log.deliveries.map((delivery) => h("tr", {},
          h("td", {}, delivery.event),
          h("td", {}, delivery.status, delivery.nextAttemptAt ? h("div", { class: "small muted" }, `next ${formatDate(delivery.nextAttemptAt)}`) : null),
          h("td", {}, delivery.attempts.length ? h("ol", { class: "attempts" }, delivery.attempts.map((attempt) => h("li", { class: "small" },
            h("span", {}, `${new Date(attempt.attemptedAt).toLocaleTimeString()} · ${attempt.statusCode ? `HTTP ${attempt.statusCode}` : "no answer"} · ${attempt.latencyMs} ms`),
            attempt.error ? h("span", { class: "attempt-error", title: attempt.error }, attempt.error) : null))) : "none yet")))))) : h("p", { class: "muted" }, "No delivery yet."),
      isTerminal(job) ? h("div", { class: "row", style: "margin-top:.6rem" }, redeliver) : null);
  }).catch((error) => clear(panel, h("h2", { id: "webhooks-title" }, "Webhooks"), h("p", { class: "form-error" }, error.message)));
  return panel;
}
