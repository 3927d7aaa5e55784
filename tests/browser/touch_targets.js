// Visible buttons, fields and stand-alone links smaller than `minimum` CSS pixels in either
// direction. Links inside running text are exempt (WCAG 2.5.8); visually hidden file, radio and
// checkbox inputs are exempt because their big labels are what a finger taps.
(minimum) => {
  const selector = [
    "button", "select",
    "input:not([type=hidden]):not(.file-input):not(.check-input):not(.choice-input)",
    "a.btn", "a.nav-link", "a.brand", "a.link-back", "a.link-arrow", "a.photo-link",
    "label.camera-btn", "label.choice-card", "label.check-label",
  ].join(", ");
  const small = [];
  for (const el of document.querySelectorAll(selector)) {
    const r = el.getBoundingClientRect();
    if (!r.width || !r.height || el.closest("[hidden], template, .skip-link")) continue;
    if (getComputedStyle(el).visibility === "hidden") continue;
    if (Math.round(r.height) < minimum || Math.round(r.width) < minimum) {
      const text = (el.textContent || el.value || "").trim().replace(/\s+/g, " ").slice(0, 30);
      small.push(`${el.tagName.toLowerCase()}.${el.className} "${text}" `
        + `${Math.round(r.width)}x${Math.round(r.height)}`);
    }
  }
  return small;
}
