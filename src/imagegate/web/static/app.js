// The console's entry point: sign-in, the header, and a hash router over the pages
// (#/playground, #/gallery, #/jobs/{id}, #/account, #/operator).

import { account } from "./account.js";
import { api, ApiError, session, setUnauthorizedHandler } from "./api.js";
import { gallery, jobDetail } from "./gallery.js";
import { operator } from "./operator.js";
import { playground } from "./playground.js";
import { clear, field, h } from "./ui.js";

const view = document.getElementById("view");
const nav = document.querySelector(".nav");
const whoami = document.querySelector(".whoami");
const ctx = { me: null, isTest: false, isOperator: false, refreshCredits };

async function refreshCredits() {
  try {
    const me = await api("/v2/me");
    ctx.me = me;
    whoami.querySelector(".credits").textContent = `${me.team.credits.toLocaleString()} credits`;
  } catch { /* the header keeps the last figure */ }
}

function signedOut(message) {
  session.clear();
  Object.assign(ctx, { me: null, isTest: false, isOperator: false });
  nav.hidden = true;
  whoami.hidden = true;
  document.body.classList.remove("sandbox");
  const input = h("input", { type: "password", id: "api-key", name: "api-key", autocomplete: "off", spellcheck: "false", required: true, placeholder: "ig_live_… or ig_test_…" });
  const submit = h("button", { type: "submit", class: "button button-wide" }, "Sign in");
  const form = h("form", { novalidate: true, "aria-labelledby": "signin-title" },
    field("api-key", "API key", input, { hint: "Kept in this browser tab only, until you sign out or close it.", errorFor: "api-key" }),
    submit);
  const error = form.querySelector(".field-error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    error.textContent = "";
    form.querySelector(".field").classList.remove("invalid");
    if (!key) {
      error.textContent = "Enter an API key.";
      input.focus();
      return;
    }
    submit.disabled = true;
    try {
      const me = await api("/v2/me", { key });
      session.set(key);
      input.value = "";
      await signedIn(me);
    } catch (failure) {
      const reason = failure instanceof ApiError && failure.status === 401
        ? "That key was not accepted: it is unknown or revoked."
        : failure instanceof ApiError && failure.status === 403
          ? "That key is deactivated; activate it again or use another key."
          : failure.message;
      error.textContent = reason;
      form.querySelector(".field").classList.add("invalid");
      input.setAttribute("aria-invalid", "true");
      input.focus();
    } finally {
      submit.disabled = false;
    }
  });
  clear(view, h("section", { class: "panel signin" },
    h("h1", { id: "signin-title" }, "Sign in to imagegate"),
    h("p", { class: "muted" }, "Use an API key of your account. A test key runs every model on the sandbox and is never charged."),
    message ? h("div", { class: "form-error", role: "alert" }, message) : null,
    form,
    h("p", { class: "small muted", style: "margin-top:1rem" }, "The API reference is at ", h("a", { href: "/docs" }, "/docs"), ".")));
  input.focus();
}

async function signedIn(me) {
  ctx.me = me;
  ctx.isTest = me.apiKey.kind === "test";
  document.body.classList.toggle("sandbox", ctx.isTest);
  whoami.querySelector(".badge-sandbox").hidden = !ctx.isTest;
  whoami.querySelector(".credits").textContent = `${me.team.credits.toLocaleString()} credits`;
  nav.hidden = false;
  whoami.hidden = false;
  try {
    await api("/v2/operator/status");
    ctx.isOperator = true;
  } catch {
    ctx.isOperator = false;
  }
  nav.querySelector('[data-route="operator"]').hidden = !ctx.isOperator;
  if (!window.location.hash || window.location.hash === "#" || window.location.hash === "#/playground") {
    // Setting the hash fires hashchange, which routes; setting it to the value it has does not.
    if (window.location.hash !== "#/playground") { window.location.hash = "#/playground"; return; }
  }
  await route();
}

async function route() {
  if (!ctx.me) return;
  const path = window.location.hash.replace(/^#\/?/, "") || "playground";
  const [page, id] = path.split("/");
  for (const link of nav.querySelectorAll("a")) {
    const current = link.dataset.route === page || (page === "jobs" && link.dataset.route === "gallery");
    if (current) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
  const titles = { playground: "Playground", gallery: "Gallery", jobs: "Job", account: "Account", operator: "Operator" };
  document.title = `${titles[page] || "Not found"} · imagegate console`;
  // Each visit renders into its own container: a page still loading when the user moves on
  // finishes into a detached element instead of over the next page.
  const container = h("div", { class: "page" }, h("p", { class: "muted" }, "Loading…"));
  clear(view, container);
  try {
    if (page === "playground") await playground(container, ctx);
    else if (page === "gallery") await gallery(container, ctx);
    else if (page === "jobs" && id) await jobDetail(container, decodeURIComponent(id));
    else if (page === "account") await account(container, ctx);
    else if (page === "operator" && ctx.isOperator) await operator(container, ctx);
    else clear(container, h("div", { class: "panel" }, h("h1", {}, "Not found"), h("p", {}, "There is no such page. ", h("a", { href: "#/playground" }, "Go to the playground"), ".")));
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return;
    clear(container, h("div", { class: "panel" }, h("h1", {}, "Something went wrong"), h("p", { class: "form-error", role: "alert" }, error.message)));
  }
  // Focus moves to the new page for screen readers, unless the user already moved it into the
  // page while it was still loading (a keyboard user in the model list keeps their place).
  if (container.isConnected && !container.contains(document.activeElement)) view.focus({ preventScroll: true });
}

setUnauthorizedHandler(() => signedOut("Your key is no longer accepted (revoked or deactivated). Sign in again."));
whoami.querySelector('[data-action="sign-out"]').addEventListener("click", () => {
  signedOut();
  window.location.hash = "";
});
window.addEventListener("hashchange", route);

(async () => {
  if (!session.key) { signedOut(); return; }
  try {
    await signedIn(await api("/v2/me", { key: session.key }));
  } catch {
    signedOut("Your saved key is no longer accepted. Sign in again.");
  }
})();
