// Follow a job until it finishes. Two sources with one interface: the server-sent events
// endpoint (GET /v2/jobs/{id}/events) when the gateway has it, else polling GET /v2/jobs/{id}
// with back-off. `watchJob` tries events once; a 404 or a non-event-stream answer switches the
// whole session to polling, so a gateway without the endpoint costs one request.

import { api, session } from "./api.js";

const TERMINAL = new Set(["COMPLETED", "FAILED", "CANCELLED"]);
let eventsSupported = null; // null: not tried yet

export function isTerminal(job) { return TERMINAL.has(job.status); }

/**
 * Call `onUpdate(job)` on every change until the job is terminal; resolves with the final job.
 * `signal` (an AbortSignal) stops watching.
 */
export async function watchJob(jobId, onUpdate, { signal } = {}) {
  if (eventsSupported !== false) {
    const result = await fromEvents(jobId, onUpdate, signal);
    if (result) return result;
  }
  return fromPolling(jobId, onUpdate, signal);
}

async function fromEvents(jobId, onUpdate, signal) {
  let response;
  try {
    response = await fetch(`/v2/jobs/${encodeURIComponent(jobId)}/events`, {
      headers: { Accept: "text/event-stream", "X-API-Key": session.key },
      signal,
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    return null;
  }
  const type = response.headers.get("content-type") || "";
  if (!response.ok || !type.startsWith("text/event-stream") || !response.body) {
    if (response.status === 404 || response.status === 405 || !type.startsWith("text/event-stream")) eventsSupported = false;
    return null;
  }
  eventsSupported = true;
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let last = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((line) => line.startsWith("data:")).map((line) => line.slice(5).trim()).join("\n");
      if (!data) continue;
      try { last = JSON.parse(data); } catch { continue; }
      if (last && last.id) {
        onUpdate(last);
        if (isTerminal(last)) { reader.cancel(); return last; }
      }
    }
  }
  // The stream ended early: read the job's state once more by polling.
  return last && isTerminal(last) ? last : null;
}

async function fromPolling(jobId, onUpdate, signal) {
  let delay = 400;
  let previous = "";
  for (;;) {
    if (signal && signal.aborted) throw new DOMException("Stopped", "AbortError");
    const job = await api(`/v2/jobs/${encodeURIComponent(jobId)}`, { signal });
    const fingerprint = `${job.status}:${job.progress}`;
    if (fingerprint !== previous) {
      previous = fingerprint;
      delay = 400; // something moved: look again soon
      onUpdate(job);
    } else {
      delay = Math.min(delay * 1.5, 4000);
    }
    if (isTerminal(job)) return job;
    await sleep(delay, signal);
  }
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    if (signal) signal.addEventListener("abort", () => { clearTimeout(timer); reject(new DOMException("Stopped", "AbortError")); }, { once: true });
  });
}
