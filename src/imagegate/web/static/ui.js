// Small DOM helpers shared by every page.

/** Build an element: h("button", {class: "button", onclick}, "Text", child…). */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      element.className = value;
    } else if (name === "style") {
      // Through the CSSOM: the page's Content-Security-Policy refuses style attributes.
      element.style.cssText = value;
    } else if (name === "dataset") {
      Object.assign(element.dataset, value);
    } else if (name in element && typeof value !== "string") {
      element[name] = value;
    } else {
      element.setAttribute(name, value === true ? "" : value);
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

let toastTimer;
/** A short message in the polite live region at the bottom of the page. */
export function toast(message) {
  const region = document.querySelector(".toast");
  region.textContent = message;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { region.textContent = ""; }, 4000);
}

export async function copy(text, what = "Copied") {
  try {
    await navigator.clipboard.writeText(text);
    toast(`${what} to the clipboard`);
  } catch {
    toast("Copying is not allowed here: select the text and copy it by hand");
  }
}

export function formatDate(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

export function formatBytes(bytes) {
  if (bytes === undefined || bytes === null) return "—";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(2)} MB`;
}

export function formatDuration(fromIso, toIso) {
  if (!fromIso || !toIso) return "—";
  const ms = new Date(toIso) - new Date(fromIso);
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

export function statusChip(status) {
  return h("span", { class: `chip chip-${status}` }, status.charAt(0) + status.slice(1).toLowerCase());
}

/** Turn a rule such as "must be ≤ 50" into a sentence naming the field. */
export function sentence(field, rule) {
  const name = field ? field.replace(/_/g, " ") : "This value";
  const text = rule.match(/^(must|is|unknown|should)/) ? `${name} ${rule}` : rule;
  return text.charAt(0).toUpperCase() + text.slice(1) + (/[.!?]$/.test(text) ? "" : ".");
}

/** A labelled field wrapper with an error slot that screen readers hear (aria-describedby). */
export function field(id, labelText, control, { hint, errorFor } = {}) {
  const error = h("div", { class: "field-error", id: `${id}-error`, role: "alert", dataset: { errorFor: errorFor || "" } });
  const hintNode = hint ? h("span", { class: "hint", id: `${id}-hint` }, hint) : null;
  const described = [hintNode ? `${id}-hint` : null, `${id}-error`].filter(Boolean).join(" ");
  for (const input of control.querySelectorAll ? [control, ...control.querySelectorAll("input, select, textarea")] : [control]) {
    if (input.matches && input.matches("input, select, textarea")) input.setAttribute("aria-describedby", described);
  }
  return h("div", { class: "field", dataset: { field: errorFor || id } },
    h("label", { for: id }, labelText, hintNode), control, error);
}

/**
 * Show an API 400's `details` next to the fields they name. `paths` maps a JSON path prefix to a
 * field element (`[data-field]`); the longest matching prefix wins. Returns the messages that no
 * field took (shown by the caller as a form-level error).
 */
export function showFieldErrors(root, details, pathToField) {
  for (const node of root.querySelectorAll(".field-error")) node.textContent = "";
  for (const node of root.querySelectorAll(".field.invalid")) node.classList.remove("invalid");
  for (const node of root.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
  const leftover = [];
  for (const [path, rules] of Object.entries(details || {})) {
    const target = pathToField(path);
    const fieldNode = target && root.querySelector(`.field[data-field="${CSS.escape(target.field)}"]`);
    if (!fieldNode) {
      leftover.push(...rules.map((rule) => sentence(path, rule)));
      continue;
    }
    fieldNode.classList.add("invalid");
    for (const input of fieldNode.querySelectorAll("input, select, textarea")) input.setAttribute("aria-invalid", "true");
    const slot = fieldNode.querySelector(".field-error");
    const text = rules.map((rule) => sentence(target.label, rule)).join(" ");
    slot.textContent = slot.textContent ? `${slot.textContent} ${text}` : text;
  }
  return leftover;
}
