// A params form generated from a model's params JSON Schema (GET /v2/models/{id}):
// enums as selects, bounded numbers as a slider beside a number box, booleans as switches,
// image URLs (format "uri") as a URL box with an upload button and a thumbnail.
// Only values the user set (or that differ from the schema default) are sent.

import { api } from "./api.js";
import { field, h, toast } from "./ui.js";

/** The schema of one property, with `anyOf: [X, null]` unwrapped. */
function unwrap(schema) {
  if (schema.anyOf) {
    const real = schema.anyOf.filter((option) => option.type !== "null");
    if (real.length === 1) return { ...real[0], title: schema.title, default: schema.default, description: schema.description };
  }
  return schema;
}

function isImageUrl(schema) { return schema.type === "string" && schema.format === "uri"; }
function isImageList(schema) { return schema.type === "array" && schema.items && isImageUrl(schema.items); }

function title(name, schema) {
  return schema.title || name.replace(/_/g, " ");
}

/**
 * Build the form. Returns { element, values(), imageFields, setImage(url) }.
 * `onChange` is called (debounced by the caller) whenever a value changes.
 */
export function paramsForm(model, { onChange }) {
  const schema = model.paramsSchema || { properties: {} };
  const properties = schema.properties || {};
  const readers = [];
  const imageTargets = [];
  const element = h("div", { class: "params" });

  for (const [name, raw] of Object.entries(properties)) {
    const prop = unwrap(raw);
    const id = `param-${name}`;
    const label = title(name, prop);
    let control;
    let read;

    if (prop.enum) {
      const hasDefault = prop.default !== undefined;
      control = h("select", { id, name, onchange: onChange },
        hasDefault ? null : h("option", { value: "" }, "Model default"),
        prop.enum.map((option) => h("option", { value: String(option), selected: option === prop.default }, String(option))));
      read = () => {
        if (control.value === "") return undefined;
        const value = prop.enum.find((option) => String(option) === control.value);
        return value === prop.default ? undefined : value;
      };
    } else if ((prop.type === "integer" || prop.type === "number") && prop.minimum !== undefined && prop.maximum !== undefined) {
      const step = prop.type === "integer" ? 1 : (prop.maximum - prop.minimum <= 2 ? 0.01 : 0.1);
      const start = prop.default ?? prop.minimum;
      const number = h("input", { type: "number", id, name, min: prop.minimum, max: prop.maximum, step,
        value: prop.default ?? "", placeholder: prop.default === undefined ? "default" : "", inputmode: prop.type === "integer" ? "numeric" : "decimal" });
      const slider = h("input", { type: "range", min: prop.minimum, max: prop.maximum, step, value: start,
        "aria-label": `${label} slider`, tabindex: "-1" });
      slider.addEventListener("input", () => { number.value = slider.value; onChange(); });
      number.addEventListener("input", () => { if (number.value !== "") slider.value = number.value; onChange(); });
      control = h("div", { class: "range-row" }, slider, number);
      read = () => {
        if (number.value === "") return undefined;
        const value = Number(number.value);
        return value === prop.default ? undefined : value;
      };
    } else if (prop.type === "integer" || prop.type === "number") {
      control = h("input", { type: "number", id, name, min: prop.minimum, max: prop.maximum,
        step: prop.type === "integer" ? 1 : "any", value: prop.default ?? "", placeholder: "default", oninput: onChange });
      read = () => (control.value === "" || Number(control.value) === prop.default ? undefined : Number(control.value));
    } else if (prop.type === "boolean") {
      const box = h("input", { type: "checkbox", role: "switch", id, name, checked: prop.default === true, onchange: onChange });
      control = h("div", {}, h("span", { class: "switch" }, box, h("span", { class: "muted small", "aria-hidden": "true" }, "On")));
      read = () => {
        if (prop.default !== undefined) return box.checked === prop.default ? undefined : box.checked;
        return box.checked ? true : undefined;
      };
    } else if (isImageUrl(prop)) {
      const slot = imageSlot(id, name, onChange);
      imageTargets.push(slot);
      control = slot.element;
      read = () => slot.value() || undefined;
    } else if (isImageList(prop)) {
      const list = imageList(id, name, prop.maxItems || 8, onChange);
      imageTargets.push(list);
      control = list.element;
      read = () => { const values = list.values(); return values.length ? values : undefined; };
    } else {
      const example = (prop.examples && prop.examples[0]) || "";
      control = h("input", { type: "text", id, name, maxlength: prop.maxLength, value: prop.default ?? "",
        placeholder: example ? `e.g. ${example}` : "default", oninput: onChange });
      read = () => (control.value.trim() === "" || control.value === prop.default ? undefined : control.value.trim());
    }

    const hint = describe(prop);
    element.append(field(id, label, control, { hint, errorFor: name }));
    readers.push([name, read]);
  }

  if (!readers.length) element.append(h("p", { class: "muted" }, "This model has no params."));

  return {
    element,
    values() {
      const params = {};
      for (const [name, read] of readers) {
        const value = read();
        if (value !== undefined) params[name] = value;
      }
      return params;
    },
    acceptsImages: imageTargets.length > 0,
    setImage(url) {
      if (!imageTargets.length) return false;
      imageTargets[0].add(url);
      onChange();
      return true;
    },
  };
}

function describe(prop) {
  const parts = [];
  if (prop.minimum !== undefined && prop.maximum !== undefined) parts.push(`${prop.minimum}–${prop.maximum}`);
  if (prop.default !== undefined && !prop.enum) parts.push(`default ${prop.default}`);
  if (prop.maxItems) parts.push(`up to ${prop.maxItems} images`);
  if (prop.format === "uri" || (prop.items && prop.items.format === "uri")) parts.push("a URL, or upload a file");
  return parts.join(" · ") || null;
}

/** One image input: URL box, upload button (POST /v2/uploads) and thumbnail. */
function imageSlot(id, name, onChange, { removable = false, onRemove } = {}) {
  const thumb = h("img", { class: "thumb", alt: "", hidden: true });
  const placeholder = h("div", { class: "thumb", "aria-hidden": "true" });
  const url = h("input", { type: "url", id, name, placeholder: "https://… or upload", autocomplete: "off" });
  const file = h("input", { type: "file", accept: "image/png,image/jpeg,image/webp,image/gif", class: "visually-hidden", id: `${id}-file`, tabindex: "-1" });
  const showThumb = () => {
    const value = url.value.trim();
    thumb.hidden = !value;
    placeholder.hidden = Boolean(value);
    if (value) thumb.src = value;
  };
  url.addEventListener("input", () => { showThumb(); onChange(); });
  thumb.addEventListener("error", () => { thumb.hidden = true; placeholder.hidden = false; });
  const uploadButton = h("button", { type: "button", class: "button button-secondary button-small", onclick: () => file.click() }, "Upload…");
  uploadButton.setAttribute("aria-label", `Upload an image file for ${name.replace(/_/g, " ")}`);
  file.addEventListener("change", async () => {
    const chosen = file.files && file.files[0];
    if (!chosen) return;
    uploadButton.disabled = true;
    uploadButton.textContent = "Uploading…";
    try {
      const form = new FormData();
      form.append("file", chosen, chosen.name);
      const uploaded = await api("/v2/uploads", { method: "POST", form });
      url.value = uploaded.url;
      showThumb();
      onChange();
      toast(`Uploaded ${chosen.name}`);
    } catch (error) {
      const slot = url.closest(".field")?.querySelector(".field-error");
      const reason = error.details && error.details.file ? `The file ${error.details.file[0]}.` : error.message;
      if (slot) slot.textContent = `The upload failed: ${reason}`;
    } finally {
      uploadButton.disabled = false;
      uploadButton.textContent = "Upload…";
      file.value = "";
    }
  });
  const controls = h("div", { class: "controls" }, url, uploadButton, file,
    removable ? h("button", { type: "button", class: "button button-quiet button-small", onclick: onRemove, "aria-label": "Remove this image" }, "Remove") : null);
  const element = h("div", { class: "image-input" }, h("div", {}, thumb, placeholder), controls);
  return {
    element,
    value: () => url.value.trim(),
    add(value) { url.value = value; showThumb(); },
  };
}

function imageList(id, name, max, onChange) {
  const slots = [];
  const container = h("div", { class: "image-list" });
  const addButton = h("button", { type: "button", class: "button button-secondary button-small", onclick: () => { addSlot(); } }, "Add another image");
  function addSlot(value) {
    if (slots.length >= max) return null;
    const index = slots.length;
    const slot = imageSlot(index === 0 ? id : `${id}-${index}`, name, onChange, {
      removable: index > 0,
      onRemove: () => { container.removeChild(slot.element); slots.splice(slots.indexOf(slot), 1); addButton.hidden = slots.length >= max; onChange(); },
    });
    slots.push(slot);
    container.append(slot.element);
    if (value) slot.add(value);
    addButton.hidden = slots.length >= max;
    return slot;
  }
  addSlot();
  return {
    element: h("div", {}, container, addButton),
    values: () => slots.map((slot) => slot.value()).filter(Boolean),
    add(value) {
      const empty = slots.find((slot) => !slot.value());
      if (empty) empty.add(value); else addSlot(value);
    },
  };
}
