// Object names: which ones may be said with confidence, and how they are written.

/** How an object that is not named with confidence is shown: the server's label
 * (models/result.py UNSURE_LABEL, capitalised), given on <html data-unsure-label>. */
export const UNSURE_TEXT_LABEL = document.documentElement.dataset.unsureLabel;

/** "cat" -> "Cat"; the same as Jinja's |capitalize for the lower-case labels the models emit. */
export function capitalize(text) {
  const s = String(text ?? "");
  return s ? s[0].toUpperCase() + s.slice(1).toLowerCase() : s;
}

/** True when an object's name may be said with confidence: its `named` flag, which the
 * server sends with every object (photos, taps, objects.json). */
export function isNamed(obj) {
  return obj?.named === true;
}

/** The word shown for an object: its name, or "Something?" when it is not known. */
export function displayName(label, named) {
  return named ? capitalize(label) : UNSURE_TEXT_LABEL;
}

/** Show an object button as named (its word) or unnamed ("Something?" + "Do you know?"). */
export function showNamed(btn, named) {
  btn.dataset.named = String(named);
  btn.classList.toggle("object-btn--unsure", !named);
  const label = btn.querySelector('[data-slot="label"]');
  if (label) label.textContent = named ? capitalize(btn.dataset.label) : UNSURE_TEXT_LABEL;
  const unsure = btn.querySelector('[data-slot="unsure"]');
  if (unsure) unsure.hidden = named;
}
