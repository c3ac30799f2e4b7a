// The playground: pick a model, fill its params form, see the live price, generate, watch the
// job reach its images, and copy the exact request as code.

import { api, ApiError, idempotencyKey } from "./api.js";
import { paramsForm } from "./form.js";
import { ACTION_PATH, progressView, resultView, submitAction } from "./job.js";
import { watchJob } from "./progress.js";
import { snippets } from "./snippets.js";
import { clear, copy, field, h, showFieldErrors, toast } from "./ui.js";

const FAMILY_NAMES = {
  "midjourney": "Midjourney", "nano-banana": "Nano Banana", "flux": "FLUX", "seedream": "Seedream",
  "ideogram": "Ideogram", "stable-diffusion": "Stable Diffusion", "imagen": "Imagen", "dall-e": "DALL·E",
  "gpt-image": "GPT Image", "kling": "Kling", "qwen": "Qwen", "wan": "Wan", "grok": "Grok Imagine", "reve": "Reve",
};

const state = {
  models: null,
  details: new Map(),
  selected: null,
  prompt: "",
  lastRequest: null,
  job: null,
  pending: null,
  watch: null,
};

/** Submit `input` (a job's request body) again from the playground, e.g. from the gallery. */
export function runAgain(input) {
  state.pending = input;
  if (input.model) state.selected = input.model;
  if (input.prompt) state.prompt = input.prompt;
  window.location.hash = "#/playground";
}

function familyName(model) {
  const family = model.family || model.id.split("-")[0];
  return FAMILY_NAMES[family] || family.charAt(0).toUpperCase() + family.slice(1);
}

export async function playground(view, ctx) {
  if (!state.models) {
    const answer = await api("/v2/models?modality=image");
    state.models = answer.models;
  }
  const models = state.models;
  if (!state.selected || !models.some((m) => m.id === state.selected)) {
    const first = models.find((m) => m.available || ctx.isTest) || models[0];
    state.selected = (models.find((m) => m.id === "gpt-image-1.5" && (m.available || ctx.isTest)) || first).id;
  }

  // Model picker ------------------------------------------------------------------------------
  const search = h("input", { type: "search", id: "model-search", placeholder: "Search by name or feature", autocomplete: "off" });
  const list = h("div", { class: "model-list", role: "radiogroup", "aria-label": "Models" });
  const unavailable = models.filter((m) => !m.available).length;
  const note = !unavailable ? null : ctx.isTest
    ? `${unavailable === models.length ? "No model has" : `${unavailable} models have`} an upstream provider configured; with this test key they run on the sandbox (greyed, tagged “sandbox”).`
    : `${unavailable} greyed models have no upstream provider configured; a test key runs them on the sandbox.`;
  const picker = h("section", { class: "panel model-picker", "aria-labelledby": "models-title" },
    h("h2", { id: "models-title" }, "Models"),
    note ? h("p", { class: "small muted" }, note) : null,
    h("label", { for: "model-search", class: "visually-hidden" }, "Search models"),
    search, list);

  function renderList() {
    const query = search.value.trim().toLowerCase();
    const groups = new Map();
    for (const model of models) {
      const text = `${model.id} ${model.label} ${model.description} ${familyName(model)}`.toLowerCase();
      if (query && !text.includes(query)) continue;
      const family = familyName(model);
      if (!groups.has(family)) groups.set(family, []);
      groups.get(family).push(model);
    }
    clear(list);
    if (!groups.size) list.append(h("p", { class: "muted" }, `No model matches “${search.value}”.`));
    for (const [family, members] of groups) {
      list.append(h("fieldset", { class: "model-family" }, h("legend", {}, family), members.map((model) => {
        const usable = model.available || ctx.isTest;
        const radio = h("input", { type: "radio", name: "model", value: model.id, checked: model.id === state.selected, disabled: !usable,
          onchange: () => {
            // Mark the choice in place: rebuilding the list would lose the keyboard focus.
            state.selected = model.id;
            for (const option of list.querySelectorAll(".model-option")) option.classList.toggle("selected", option.contains(radio));
            renderForm();
          } });
        const price = model.costMin === model.costMax ? `${model.costMin} credits` : `${model.costMin}–${model.costMax} credits`;
        const reason = "No upstream provider is configured for this model";
        return h("label", { class: `model-option${model.id === state.selected ? " selected" : ""}${model.available ? "" : " unavailable"}`, title: model.available ? model.description : reason },
          radio,
          h("span", { class: "name" }, model.label, model.available || !ctx.isTest ? null : h("span", { class: "tag" }, "sandbox")),
          h("span", { class: "meta" }, `${model.id} · ${price}`),
          model.available || ctx.isTest ? null : h("span", { class: "reason" }, `Unavailable: ${reason.charAt(0).toLowerCase()}${reason.slice(1)}.`));
      })));
    }
    const chosen = list.querySelector(".model-option.selected");
    if (chosen && !query) list.scrollTop = Math.max(0, chosen.offsetTop - list.offsetTop - 48);
  }
  search.addEventListener("input", renderList);

  // Form --------------------------------------------------------------------------------------
  const formPanel = h("section", { class: "panel", "aria-labelledby": "form-title" });
  const resultPanel = h("section", { class: "panel result-pane", "aria-labelledby": "result-title" });
  let current = null; // { model, form, paramsForm }
  let priceTimer = null;

  async function renderForm() {
    const id = state.selected;
    clear(formPanel, h("p", { class: "muted" }, "Loading the model…"));
    let detail = state.details.get(id);
    if (!detail) {
      detail = await api(`/v2/models/${encodeURIComponent(id)}`);
      state.details.set(id, detail);
    }
    if (state.selected !== id) return;
    const prompt = h("textarea", { id: "prompt", name: "prompt", required: true, maxlength: detail.promptMaxLength, rows: 4,
      placeholder: "A lighthouse at dusk, volumetric light, 35 mm" });
    prompt.value = state.prompt;
    prompt.addEventListener("input", () => { state.prompt = prompt.value; });
    const price = h("div", { class: "price-line", "aria-live": "polite" },
      h("span", {}, "Price", h("span", { class: "hint", id: "price-note" })), h("strong", { id: "price" }, "…"));
    const formError = h("div", { class: "form-error", role: "alert" });
    const submit = h("button", { type: "submit", class: "button button-wide" }, "Generate");
    const params = paramsForm(detail, { onChange: () => schedulePrice() });
    const form = h("form", { novalidate: true, "aria-label": `Generate with ${detail.label}` },
      field("prompt", "Prompt", prompt, { hint: `up to ${detail.promptMaxLength} characters`, errorFor: "prompt" }),
      h("h3", {}, "Params"),
      params.element,
      price, formError, submit);
    form.addEventListener("submit", (event) => { event.preventDefault(); generate(); });
    clear(formPanel,
      h("h2", { id: "form-title" }, detail.label),
      h("p", { class: "muted small" }, detail.description),
      form);
    current = { detail, form, params, prompt, price, formError, submit };
    schedulePrice(0);
  }

  function pathToField(path) {
    if (path === "prompt") return { field: "prompt", label: "The prompt" };
    const key = current.detail.paramsKey;
    if (path.startsWith(`${key}.`)) {
      const name = path.slice(key.length + 1).split(".")[0];
      const prop = (current.detail.paramsSchema.properties || {})[name];
      return prop ? { field: name, label: prop.title || name } : null;
    }
    return null;
  }

  function showErrors(error) {
    const leftover = error.details && Object.keys(error.details).length
      ? showFieldErrors(current.form, error.details, pathToField)
      : [error.message.endsWith(".") ? error.message : `${error.message}.`];
    current.formError.textContent = leftover.join(" ");
  }

  function schedulePrice(delay = 250) {
    clearTimeout(priceTimer);
    priceTimer = setTimeout(updatePrice, delay);
  }

  async function updatePrice() {
    if (!current) return;
    const { detail, params, price } = current;
    const node = price.querySelector("strong");
    try {
      const answer = await api(`/v2/models/${encodeURIComponent(detail.id)}/price`, { method: "POST", body: params.values() });
      showFieldErrors(current.form, {}, pathToField);
      current.formError.textContent = "";
      const credits = (n) => `${n} credit${n === 1 ? "" : "s"}`;
      node.textContent = credits(ctx.isTest ? 0 : answer.credits);
      price.querySelector("#price-note").textContent = ctx.isTest
        ? `sandbox: free (a live key pays ${answer.credits})`
        : `${answer.outputs} image${answer.outputs === 1 ? "" : "s"}`;
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      node.textContent = "—";
      if (error.status === 400) showErrors(error);
    }
  }

  async function generate() {
    const { detail, params, prompt, submit } = current;
    const body = { model: detail.id, prompt: prompt.value.trim() };
    const values = params.values();
    if (Object.keys(values).length) body[detail.paramsKey] = values;
    current.formError.textContent = "";
    showFieldErrors(current.form, {}, pathToField);
    if (!body.prompt) {
      showErrors(new ApiError(400, { error: "Validation failed", details: { prompt: ["is required"] } }));
      prompt.focus();
      return;
    }
    submit.disabled = true;
    try {
      await send({ path: "/v2/images/generate", body, paramsKey: detail.paramsKey });
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (error.status === 402) {
        current.formError.textContent = `Not enough credits: this job needs ${error.body.creditsRequired}, the account has ${error.body.creditsAvailable}.`;
      } else {
        showErrors(error);
      }
      const invalid = current.form.querySelector("[aria-invalid]");
      if (invalid) invalid.focus();
    } finally {
      submit.disabled = false;
    }
  }

  /** POST a request (generate or action), then follow the job in the result pane. */
  async function send(request) {
    const accepted = await api(request.path, { method: "POST", body: request.body, headers: { "Idempotency-Key": idempotencyKey() } });
    state.lastRequest = request;
    state.job = { id: accepted.jobId, status: accepted.status, progress: 0, model: request.body.model || "midjourney" };
    follow(accepted.jobId);
  }

  function follow(jobId) {
    if (state.watch) state.watch.abort();
    const controller = new AbortController();
    state.watch = controller;
    renderResult();
    watchJob(jobId, (job) => { if (state.job && state.job.id === job.id) { state.job = job; renderResult(); } }, { signal: controller.signal })
      .then(() => ctx.refreshCredits())
      .catch((error) => { if (error.name !== "AbortError") toast(error.message); });
  }

  function renderResult() {
    const job = state.job;
    const heading = h("h2", { id: "result-title" }, "Result");
    if (!job) {
      clear(resultPanel, heading, h("div", { class: "empty" }, "Your images appear here. Pick a model, write a prompt and press Generate."));
      return;
    }
    const hooks = {
      onUseAsInput: (url) => {
        if (current && current.params.setImage(url)) {
          toast("Added as an input image");
          current.form.querySelector("input[type=url]")?.focus();
        } else {
          toast(`${current ? current.detail.label : "This model"} takes no input image: pick a model with image input`);
        }
      },
      onRunAgain: state.lastRequest ? () => send(state.lastRequest).catch((error) => toast(error.message)) : null,
      onAction: (body) => sendAction(body),
    };
    const body = job.status === "QUEUED" || job.status === "PROCESSING" ? progressView(job) : resultView(job, hooks);
    clear(resultPanel, heading,
      h("p", { class: "muted small" }, "Job ", h("a", { href: `#/jobs/${job.id}` }, h("code", {}, job.id))),
      body,
      state.lastRequest ? snippetBlock(state.lastRequest) : null);
  }

  async function sendAction(body) {
    try {
      const jobId = await submitAction(body);
      state.lastRequest = { path: ACTION_PATH, body };
      state.job = { id: jobId, status: "QUEUED", progress: 0, model: "midjourney" };
      follow(jobId);
    } catch (error) {
      toast(error.message);
    }
  }

  // Page --------------------------------------------------------------------------------------
  clear(view,
    h("div", { class: "page-head" }, h("h1", {}, "Playground"),
      h("p", {}, ctx.isTest ? "Test key: every model runs on the sandbox renderer and nothing is charged." : "Live key: jobs run upstream and are charged.")),
    h("div", { class: "playground" }, picker, formPanel, resultPanel));
  renderList();
  await renderForm();
  if (state.pending) {
    const input = state.pending;
    state.pending = null;
    const path = input.action ? ACTION_PATH : "/v2/images/generate";
    const { ...body } = input;
    const detail = state.details.get(input.model);
    await send({ path, body, paramsKey: detail ? detail.paramsKey : undefined }).catch((error) => toast(error.message));
  } else if (state.job) {
    renderResult();
    if (state.job.status === "QUEUED" || state.job.status === "PROCESSING") follow(state.job.id);
  } else {
    renderResult();
  }
}

function snippetBlock(request) {
  const code = snippets(request);
  const tabs = [["curl", "curl"], ["python", "Python SDK"], ["openai", "OpenAI SDK"]];
  const pre = h("pre", { class: "code", id: "snippet-code", tabindex: "0", "aria-label": "Request as code" });
  let selected = "curl";
  const buttons = tabs.map(([key, label]) => h("button", { type: "button", role: "tab", class: "button button-secondary button-small",
    "aria-selected": String(key === selected), "aria-controls": "snippet-code", onclick: () => select(key) }, label));
  function select(key) {
    selected = key;
    pre.textContent = code[key];
    buttons.forEach((button, index) => button.setAttribute("aria-selected", String(tabs[index][0] === key)));
  }
  select(selected);
  return h("details", { class: "snippets" },
    h("summary", {}, "Copy this request as code"),
    h("div", { class: "tabs", role: "tablist", "aria-label": "Language" }, buttons),
    pre,
    h("button", { type: "button", class: "button button-secondary button-small", onclick: () => copy(code[selected], "Request copied") }, "Copy"));
}
