// The result view: builds it from the <template>s rendered by templates/_macros.html (so the
// markup matches the server-rendered page); learn.js makes it interactive (tap to hear, cut out,
// Find it!).

import { initLearning } from "./learn.js";
import { capitalize, isNamed, showNamed } from "./names.js";

export { capitalize, isNamed };

const COLOR_RE = /^#[0-9a-f]{6}$/i;

/** Add ?download=1 (or &download=1) so the server answers with an attachment. */
export function withDownload(url) {
  if (!url) return "#";
  return url + (url.includes("?") ? "&" : "?") + "download=1";
}

function cloneTemplate(id) {
  const tpl = document.getElementById(id);
  if (!tpl) throw new Error(`missing <template id="${id}">`);
  return tpl.content.firstElementChild.cloneNode(true);
}

function headingText(n) {
  if (n === 0) return "I couldn't find anything this time";
  return n === 1 ? "I found 1 thing!" : `I found ${n} things!`;
}

function subText(n, mode, prompt, named) {
  if (n === 0 && mode === "grounded") return `I looked for “${prompt ?? ""}”. Try other words, or choose What’s in my photo?.`;
  if (n === 0) return "Try a photo with the things closer to the camera, in good light.";
  if (mode === "grounded") return `I looked for “${prompt ?? ""}”.`;
  if (named === 0) return "Each thing has its own colour and number. I don’t know their names yet: do you?";
  if (named < n) return `Each thing has its own colour. I know the names of ${named} of them.`;
  return "Each thing has its own colour.";
}

function altText(objects, mode) {
  const n = objects.length;
  if (!n) return "Your photo";
  if (mode === "grounded") {
    const labels = [...new Set(objects.map((o) => o.label))];
    return `Your photo with these coloured in: ${labels.join(", ")}`;
  }
  return `Your photo with ${n} ${n === 1 ? "thing" : "things"} coloured in`;
}

/** True when any model in `weights` (dict from the API) is marked "unverified". */
export function hasUnverifiedWeights(weights) {
  if (!weights) return false;
  if (typeof weights === "string") return weights.includes("unverified");
  return Object.values(weights).includes("unverified");
}

/**
 * Build the result <section> for a photo JSON from GET /api/v1/photos/<id>.
 * @param {object} photo  {id, width, height, mode, prompt, objects[], overlay_url, original_url, json_url, page_url}
 * @param {{pageLink?: boolean}} [opts]  pageLink: keep the "Open this photo's page" link
 * @returns {HTMLElement}
 */
export function buildResult(photo, { pageLink = true } = {}) {
  const section = cloneTemplate("result-template");
  const slot = (name) => section.querySelector(`[data-slot="${name}"]`);
  const objects = Array.isArray(photo.objects) ? photo.objects : [];
  const mode = photo.mode === "grounded" ? "grounded" : "everything";
  const width = Number(photo.width) || 1;
  const height = Number(photo.height) || 1;
  section.dataset.photoId = String(photo.id ?? "");
  section.dataset.objectsUrl = photo.json_url ?? "";
  section.dataset.embeddingUrl = photo.embedding_url ?? "";
  section.dataset.mode = mode;
  section.classList.replace("result--grounded", `result--${mode}`);

  const img = slot("img");
  img.setAttribute("width", width);
  img.setAttribute("height", height);
  img.alt = altText(objects, mode);
  img.dataset.overlaySrc = photo.overlay_url ?? "";
  img.dataset.originalSrc = photo.original_url ?? "";
  img.src = photo.overlay_url ?? "";

  const boxes = slot("boxes");
  boxes.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const boxTpl = document.getElementById("box-template").content.querySelector("rect");
  objects.forEach((o, i) => {
    const rect = boxTpl.cloneNode(true);
    const [x0, y0, x1, y1] = Array.isArray(o.box) && o.box.length === 4 ? o.box.map(Number) : [0, 0, 0, 0];
    rect.dataset.boxIndex = String(i);
    rect.setAttribute("x", x0);
    rect.setAttribute("y", y0);
    rect.setAttribute("width", Math.max(0, x1 - x0));
    rect.setAttribute("height", Math.max(0, y1 - y0));
    boxes.append(rect);
  });

  const named = objects.filter((o) => isNamed(o)).length;
  slot("heading").textContent = headingText(objects.length);
  slot("sub").textContent = subText(objects.length, mode, photo.prompt, named);

  const list = slot("objects");
  list.className = `object-list object-list--${mode}`;
  objects.forEach((o, i) => {
    const item = cloneTemplate("object-template");
    const btn = item.querySelector(".object-btn");
    btn.dataset.objectIndex = String(i);
    btn.dataset.label = o.label ?? "";
    btn.dataset.colorName = o.color_name ?? "";
    btn.dataset.description = o.description ?? o.label ?? "";
    item.querySelector('[data-slot="swatch"]').setAttribute("fill", COLOR_RE.test(o.color) ? o.color : "#888888");
    const num = item.querySelector('[data-slot="num"]');
    if (mode === "grounded") num.remove();
    else num.lastChild.textContent = String(i + 1);
    const score = item.querySelector('[data-slot="score"]');
    if (mode === "grounded" && typeof o.score === "number") score.textContent = `${Math.round(o.score * 100)}% sure`;
    else score.remove();
    showNamed(btn, isNamed(o));
    list.append(item);
  });

  slot("dl-original").href = withDownload(photo.original_url);
  slot("dl-overlay").href = withDownload(photo.overlay_url);
  slot("dl-json").href = withDownload(photo.json_url);
  const link = slot("page-link");
  if (pageLink && link) {
    link.href = photo.page_url || `/photos/${encodeURIComponent(photo.id)}`;
  } else {
    link?.closest("p")?.remove();
  }
  return section;
}

/** Build the friendly failure box; `pageUrl` null removes the "See the photo" button. */
export function buildFailed(message, pageUrl) {
  const box = cloneTemplate("failed-template");
  box.setAttribute("role", "alert");
  box.querySelector('[data-slot="error"]').textContent = message || "Something went wrong while looking at the photo.";
  const link = box.querySelector('[data-slot="page-link"]');
  if (pageUrl) {
    link.href = pageUrl;
    link.hidden = false;
  } else {
    link?.closest("p")?.remove();
  }
  return box;
}

export function buildUnverifiedNotice() {
  return cloneTemplate("unverified-template");
}

/** Wire up a result <section> (server-rendered or built by buildResult). Idempotent. */
export function enhanceResult(section) {
  if (!section || section.dataset.enhanced) return;
  section.dataset.enhanced = "1";
  initLearning(section);
}
