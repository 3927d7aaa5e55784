// Object names: which ones may be said with confidence, and how they are written.

export const UNSURE_LABEL = "something?";
const NUMBERED_RE = /^object \d+$/i;

/** "cat" -> "Cat"; the same as Jinja's |capitalize for the lower-case labels the models emit. */
export function capitalize(text) {
  const s = String(text ?? "");
  return s ? s[0].toUpperCase() + s.slice(1).toLowerCase() : s;
}

/**
 * True when an object's name may be said with confidence (the same rule as app/words.py
 * is_named): the `named` flag from objects.json when present; otherwise "object N",
 * "something?" and empty labels are unnamed and the phrases of Find by name are named.
 */
export function isNamed(label, named) {
  if (typeof named === "boolean") return named;
  const text = String(label ?? "").trim().toLowerCase();
  return Boolean(text) && text !== UNSURE_LABEL && !NUMBERED_RE.test(text);
}

/** The word shown for an object: its name, or "Something?" when it is not known. */
export function displayName(label, named) {
  return named ? capitalize(label) : "Something?";
}

/** Show an object button as named (its word) or unnamed ("Something?" + "Do you know?"). */
export function showNamed(btn, named) {
  btn.dataset.named = String(named);
  btn.classList.toggle("object-btn--unsure", !named);
  const label = btn.querySelector('[data-slot="label"]');
  if (label) label.textContent = named ? capitalize(btn.dataset.label) : "Something?";
  const unsure = btn.querySelector('[data-slot="unsure"]');
  if (unsure) unsure.hidden = named;
}
