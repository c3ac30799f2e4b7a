// The account: balance and credit ledger, API keys (create, shown once; deactivate, activate,
// revoke), and the webhook signing secret (show, rotate).

import { api, ApiError } from "./api.js";
import { clear, copy, field, h, showFieldErrors, toast } from "./ui.js";

export async function account(view, ctx) {
  const ledgerPanel = h("section", { class: "panel", "aria-labelledby": "ledger-title" });
  const keysPanel = h("section", { class: "panel", "aria-labelledby": "keys-title" });
  const secretPanel = h("section", { class: "panel", "aria-labelledby": "secret-title" });
  clear(view,
    h("div", { class: "page-head" }, h("h1", {}, "Account"), h("p", {}, ctx.me.team.name)),
    h("div", { class: "account-grid" }, h("div", { class: "stack" }, keysPanel, secretPanel), ledgerPanel));
  await Promise.all([ledger(ledgerPanel), keys(keysPanel, ctx), secret(secretPanel)]);
}

async function ledger(panel) {
  const rows = h("tbody");
  const more = h("button", { type: "button", class: "button button-secondary button-small", hidden: true }, "Older entries");
  let cursor = null;
  async function load() {
    const query = new URLSearchParams({ limit: "25" });
    if (cursor) query.set("cursor", String(cursor));
    const page = await api(`/v2/account/ledger?${query}`);
    if (!cursor) balance.textContent = page.balance.toLocaleString();
    for (const entry of page.entries) {
      rows.append(h("tr", {},
        h("td", {}, new Date(entry.createdAt).toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" })),
        h("td", {}, entry.kind, entry.jobId ? h("div", { class: "small" }, h("a", { href: `#/jobs/${entry.jobId}` }, "job")) : null, entry.note ? h("div", { class: "small muted" }, entry.note) : null),
        h("td", { class: `num ${entry.amount > 0 ? "amount-pos" : entry.amount < 0 ? "amount-neg" : ""}` }, entry.amount > 0 ? `+${entry.amount}` : String(entry.amount)),
        h("td", { class: "num" }, String(entry.balanceAfter))));
    }
    if (!rows.children.length) rows.append(h("tr", {}, h("td", { colspan: "4", class: "muted" }, "No credit movement yet.")));
    cursor = page.nextCursor;
    more.hidden = !cursor;
  }
  const balance = h("div", { class: "balance", id: "balance" }, "…");
  more.addEventListener("click", () => load().catch((error) => toast(error.message)));
  clear(panel,
    h("h2", { id: "ledger-title" }, "Credits"),
    h("p", { class: "muted small" }, "Balance"), balance,
    h("h3", { style: "margin-top:1rem" }, "Ledger"),
    h("div", { class: "table-wrap" }, h("table", {},
      h("caption", { class: "visually-hidden" }, "Credit ledger, newest first"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "When"), h("th", { scope: "col" }, "What"), h("th", { scope: "col", class: "num" }, "Amount"), h("th", { scope: "col", class: "num" }, "Balance"))),
      rows)),
    h("div", { class: "row", style: "margin-top:.6rem" }, more));
  await load();
}

async function keys(panel, ctx) {
  const list = h("tbody");
  const created = h("div", { "aria-live": "polite" });
  const name = h("input", { type: "text", id: "key-name", maxlength: 200, autocomplete: "off", placeholder: "e.g. staging server" });
  const kind = h("select", { id: "key-kind" },
    h("option", { value: "test", selected: ctx.isTest }, "Test (sandbox, never charged)"),
    h("option", { value: "live", selected: !ctx.isTest, disabled: ctx.isTest }, "Live"));
  const formError = h("div", { class: "form-error", role: "alert" });
  const form = h("form", { novalidate: true, "aria-label": "Create an API key" },
    h("div", { class: "row", style: "align-items:flex-start" },
      h("div", { style: "flex:1 1 12rem" }, field("key-name", "Name", name, { errorFor: "name" })),
      h("div", { style: "flex:1 1 10rem" }, field("key-kind", "Kind", kind, { errorFor: "kind" }))),
    ctx.isTest ? h("p", { class: "small muted" }, "Signed in with a test key, you can create and change test keys only.") : null,
    formError,
    h("button", { type: "submit", class: "button" }, "Create key"));

  const pathToField = (path) => (path === "name" ? { field: "name", label: "The name" } : path === "kind" ? { field: "kind", label: "The kind" } : null);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    formError.textContent = "";
    showFieldErrors(form, {}, pathToField);
    if (!name.value.trim()) {
      showFieldErrors(form, { name: ["is required"] }, pathToField);
      name.focus();
      return;
    }
    try {
      const key = await api("/v2/account/keys", { method: "POST", body: { name: name.value.trim(), kind: kind.value } });
      name.value = "";
      clear(created, h("div", { class: "new-key", role: "status" },
        h("strong", {}, `Key “${key.name}” created.`), " Copy it now: it is shown only this once.",
        h("code", { id: "new-key-value" }, key.key),
        h("div", { class: "row" },
          h("button", { type: "button", class: "button button-secondary button-small", onclick: () => copy(key.key, "Key copied") }, "Copy key"),
          h("button", { type: "button", class: "button button-quiet button-small", onclick: () => clear(created) }, "Done, hide it"))));
      await refresh();
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      const leftover = showFieldErrors(form, error.details, pathToField);
      formError.textContent = leftover.length ? leftover.join(" ") : (Object.keys(error.details).length ? "" : `${error.message}.`);
    }
  });

  async function change(key, verb) {
    const labels = { revoke: "Revoke", deactivate: "Deactivate", activate: "Activate" };
    if (verb === "revoke" && !window.confirm(`Revoke the key “${key.name}” (${key.prefix}…)? Requests with it will fail from now on. This cannot be undone.`)) return;
    try {
      await api(`/v2/account/keys/${encodeURIComponent(key.id)}/${verb}`, { method: "POST" });
      toast(`${labels[verb]}d “${key.name}”`);
      await refresh();
    } catch (error) {
      toast(error.message);
    }
  }

  async function refresh() {
    const answer = await api("/v2/account/keys");
    clear(list, answer.keys.map((key) => {
      const actions = [];
      if (key.current) {
        actions.push(h("span", { class: "small muted" }, "signed in with this key"));
      } else if (ctx.isTest && key.kind === "live" && key.status !== "revoked") {
        actions.push(h("span", { class: "small muted" }, "needs a live key to change"));
      } else if (key.status !== "revoked" && !(ctx.isTest && key.kind === "live")) {
        if (key.status === "active") actions.push(h("button", { type: "button", class: "button button-secondary button-small", onclick: () => change(key, "deactivate"), "aria-label": `Deactivate ${key.name}` }, "Deactivate"));
        else actions.push(h("button", { type: "button", class: "button button-secondary button-small", onclick: () => change(key, "activate"), "aria-label": `Activate ${key.name}` }, "Activate"));
        actions.push(h("button", { type: "button", class: "button button-danger button-small", onclick: () => change(key, "revoke"), "aria-label": `Revoke ${key.name}` }, "Revoke"));
      }
      return h("tr", { dataset: { keyId: key.id } },
        h("td", {}, h("div", {}, key.name), h("code", { class: "small muted" }, `${key.prefix}…`)),
        h("td", {}, key.kind === "test" ? h("span", { class: "badge badge-sandbox" }, "Test") : "Live"),
        h("td", {}, h("span", { class: `chip chip-${key.status}` }, key.status)),
        h("td", {}, h("div", { class: "row" }, actions)));
    }));
  }

  clear(panel,
    h("h2", { id: "keys-title" }, "API keys"),
    h("p", { class: "muted small" }, "A key is shown once, when it is made; only its prefix is kept visible. The key you are signed in with cannot be switched off here."),
    created,
    h("div", { class: "table-wrap" }, h("table", { class: "stacked" },
      h("caption", { class: "visually-hidden" }, "API keys"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "Kind"), h("th", { scope: "col" }, "Status"), h("th", { scope: "col" }, "Actions"))),
      list)),
    h("h3", { style: "margin-top:1rem" }, "New key"),
    form);
  await refresh();
}

async function secret(panel) {
  const value = h("code", { id: "webhook-secret" }, "••••••••••••••••••••••••");
  let secretValue = null;
  let shown = false;
  const show = h("button", { type: "button", class: "button button-secondary button-small", "aria-controls": "webhook-secret" }, "Show");
  const copyButton = h("button", { type: "button", class: "button button-secondary button-small" }, "Copy");
  const rotate = h("button", { type: "button", class: "button button-danger button-small" }, "Rotate");
  const previous = h("p", { class: "small muted" });
  async function load() {
    const answer = await api("/v2/account/webhook-secret");
    secretValue = answer.secret;
    previous.textContent = answer.previous ? "The previous secret still signs beside it until the next rotation." : "";
    value.textContent = shown ? secretValue : "••••••••••••••••••••••••";
  }
  show.addEventListener("click", () => {
    shown = !shown;
    value.textContent = shown ? secretValue : "••••••••••••••••••••••••";
    show.textContent = shown ? "Hide" : "Show";
  });
  copyButton.addEventListener("click", () => copy(secretValue, "Secret copied"));
  rotate.addEventListener("click", async () => {
    if (!window.confirm("Rotate the webhook signing secret? Receivers should accept the new one; the old one keeps signing beside it until the next rotation.")) return;
    try {
      await api("/v2/account/webhook-secret/rotate", { method: "POST" });
      shown = true;
      show.textContent = "Hide";
      await load();
      toast("The webhook secret was rotated");
    } catch (error) { toast(error.message); }
  });
  clear(panel,
    h("h2", { id: "secret-title" }, "Webhook signing secret"),
    h("p", { class: "muted small" }, "Signs the Standard Webhooks headers of every webhook this account receives."),
    h("div", { class: "secret-box" }, value, show, copyButton, rotate),
    previous);
  await load();
}
