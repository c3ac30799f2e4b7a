// How a job looks: its progress, its images with download / use as input / run again, and the
// Midjourney follow-up actions a finished job offers (POST /v2/images/midjourney/action).

import { api, idempotencyKey } from "./api.js";
import { formatBytes, h, statusChip } from "./ui.js";

export const ACTION_PATH = "/v2/images/midjourney/action";

/** The progress block of a job that is not finished. */
export function progressView(job) {
  const value = Math.max(0, Math.min(100, job.progress || 0));
  const label = job.status === "QUEUED" ? "Queued: waiting for a worker" : `Generating: ${value}%`;
  return h("div", { class: "stack" },
    h("div", { class: "row" }, statusChip(job.status), h("span", { class: "muted" }, label)),
    h("div", { class: "progress", role: "progressbar", "aria-label": "Job progress", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(value) },
      h("span", { style: `width: ${Math.max(value, 3)}%` })));
}

function extension(contentType) {
  return ({ "image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif" })[contentType] || "img";
}

/**
 * The images of a finished job. `hooks`: { onUseAsInput(url), onRunAgain(), onAction(body) };
 * a hook left out hides its button.
 */
export function resultView(job, hooks = {}) {
  if (job.status === "FAILED") {
    return h("div", { class: "form-error", role: "alert" }, `The job failed: ${job.error || "no reason given"}.`, " Its credits were refunded.");
  }
  if (job.status === "CANCELLED") {
    return h("p", { class: "muted" }, "The job was cancelled and its credits refunded.");
  }
  if (job.status !== "COMPLETED") return progressView(job);
  if (job.expired || !job.result) return h("p", { class: "muted" }, "This job's images have expired and were deleted.");

  const outputs = job.outputs || job.result.images.map((url) => ({ url }));
  const figures = outputs.map((output, index) => {
    const name = `${job.id}-${index + 1}.${extension(output.contentType)}`;
    const size = output.width ? `${output.width}×${output.height}` : "";
    return h("figure", { class: "result-figure" },
      h("img", { src: output.url, alt: `Image ${index + 1} of ${outputs.length} for “${(job.input && job.input.prompt) || job.model}”`, loading: "lazy" }),
      h("figcaption", {},
        h("span", { class: "muted small" }, [size, output.contentType ? output.contentType.replace("image/", "").toUpperCase() : "", formatBytes(output.byteSize)].filter((part) => part && part !== "—").join(" · ")),
        h("span", { class: "row" },
          h("a", { class: "button button-secondary button-small", href: output.url, download: name, "aria-label": `Download image ${index + 1}` }, "Download"),
          hooks.onUseAsInput ? h("button", { type: "button", class: "button button-secondary button-small", onclick: () => hooks.onUseAsInput(output.url), "aria-label": `Use image ${index + 1} as input` }, "Use as input") : null)));
  });
  return h("div", { class: "stack" },
    h("div", { class: `result-images${outputs.length === 1 ? " single" : ""}` }, figures),
    h("div", { class: "row" },
      hooks.onRunAgain ? h("button", { type: "button", class: "button", onclick: hooks.onRunAgain }, "Run again") : null,
      job.result.gridUrl ? h("a", { class: "button button-secondary", href: job.result.gridUrl, download: `${job.id}-grid.png` }, "Download the grid") : null),
    hooks.onAction ? midjourneyActions(job, hooks.onAction) : null);
}

/** The follow-ups a finished Midjourney job offers, as buttons that call `onAction(body)`. */
export function midjourneyActions(job, onAction) {
  if (job.model !== "midjourney" || job.status !== "COMPLETED") return null;
  const button = (label, body, aria) => h("button", { type: "button", class: "button button-secondary button-small", "aria-label": aria || label, onclick: () => onAction({ parentJobId: job.id, ...body }) }, label);
  if (job.result && job.result.gridUrl) {
    return h("section", { class: "actions-group", "aria-label": "Midjourney actions" },
      h("h3", {}, "Midjourney"),
      h("div", { class: "row" }, [1, 2, 3, 4].map((i) => button(`U${i}`, { action: "upsample", index: i }, `Upscale image ${i}`))),
      h("div", { class: "row", style: "margin-top:.4rem" }, [1, 2, 3, 4].map((i) => button(`V${i}`, { action: "variation", index: i }, `Vary image ${i}`))));
  }
  if (job.input && job.input.action === "upsample") {
    return h("section", { class: "actions-group", "aria-label": "Midjourney actions" },
      h("h3", {}, "Midjourney"),
      h("div", { class: "row" },
        button("Pan ←", { action: "pan", direction: "left" }, "Pan left"),
        button("Pan →", { action: "pan", direction: "right" }, "Pan right"),
        button("Pan ↑", { action: "pan", direction: "up" }, "Pan up"),
        button("Pan ↓", { action: "pan", direction: "down" }, "Pan down"),
        button("Zoom out 1.5×", { action: "outpaint", zoomRatio: 1.5 }),
        button("Zoom out 2×", { action: "outpaint", zoomRatio: 2 })));
  }
  return null;
}

/** Submit a Midjourney action; resolves with the new job id. */
export async function submitAction(body) {
  const accepted = await api(ACTION_PATH, { method: "POST", body, headers: { "Idempotency-Key": idempotencyKey() } });
  return accepted.jobId;
}
