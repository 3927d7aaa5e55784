// The result view: builds it from the <template>s rendered by templates/_macros.html (so the
// markup matches the server-rendered page) and makes it interactive: tap a name or a spot on the
// photo to outline the object and hear its name; switch between coloured and plain photo.

const COLOR_RE = /^#[0-9a-f]{6}$/i;

/** "cat" -> "Cat"; the same as Jinja's |capitalize for the lower-case labels the models emit. */
export function capitalize(text) {
  const s = String(text ?? "");
  return s ? s[0].toUpperCase() + s.slice(1).toLowerCase() : s;
}

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

function subText(n, mode, prompt) {
  if (n === 0 && mode === "grounded") return `I looked for “${prompt ?? ""}”. Try other words, or choose Find everything.`;
  if (n === 0) return "Try a photo with the things closer to the camera, in good light.";
  if (mode === "grounded") return `I looked for “${prompt ?? ""}”.`;
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

  slot("heading").textContent = headingText(objects.length);
  slot("sub").textContent = subText(objects.length, mode, photo.prompt);
  slot("hint").hidden = objects.length === 0;

  const list = slot("objects");
  list.className = `object-list object-list--${mode}`;
  objects.forEach((o, i) => {
    const item = cloneTemplate("object-template");
    const btn = item.querySelector(".object-btn");
    btn.dataset.objectIndex = String(i);
    btn.dataset.label = o.label ?? "";
    item.querySelector('[data-slot="swatch"]').setAttribute("fill", COLOR_RE.test(o.color) ? o.color : "#888888");
    item.querySelector('[data-slot="label"]').textContent = capitalize(o.label);
    const score = item.querySelector('[data-slot="score"]');
    if (mode === "grounded" && typeof o.score === "number") {
      score.textContent = `${Math.round(o.score * 100)}% sure`;
    } else {
      score.remove();
    }
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

function speak(text) {
  if (!text || !("speechSynthesis" in window) || typeof SpeechSynthesisUtterance === "undefined") return;
  try {
    window.speechSynthesis.cancel();
    const u = new SpeechSynthesisUtterance(text);
    u.lang = document.documentElement.lang || "en";
    u.rate = 0.85;
    u.pitch = 1.1;
    window.speechSynthesis.speak(u);
  } catch {
    /* speech is a bonus; never break the page for it */
  }
}

/** Wire up a result <section> (server-rendered or built by buildResult). Idempotent. */
export function enhanceResult(section) {
  if (!section || section.dataset.enhanced) return;
  section.dataset.enhanced = "1";
  const buttons = [...section.querySelectorAll(".object-btn")];
  const rects = [...section.querySelectorAll(".box-layer .box")];
  const stage = section.querySelector("[data-result-stage]");
  const img = section.querySelector(".result-img");

  // The picked object's name, shown over the photo just above its box. Positioned through the
  // CSSOM (element.style), which a Content Security Policy without 'unsafe-inline' allows.
  let bubble = null;
  if (stage && img) {
    bubble = document.createElement("span");
    bubble.className = "name-bubble";
    bubble.setAttribute("aria-hidden", "true");
    bubble.hidden = true;
    stage.append(bubble);
  }

  function showBubble(rect, name) {
    if (!bubble || !rect) return;
    const W = Number(img.getAttribute("width")) || 1;
    const H = Number(img.getAttribute("height")) || 1;
    const x = Number(rect.getAttribute("x")) + Number(rect.getAttribute("width")) / 2;
    const y = Number(rect.getAttribute("y"));
    bubble.textContent = name;
    bubble.style.left = `${Math.min(85, Math.max(15, (x / W) * 100))}%`;
    bubble.style.top = `${(y / H) * 100}%`;
    bubble.classList.toggle("is-below", y / H < 0.15);
    bubble.hidden = false;
    bubble.classList.remove("is-popping");
    void bubble.offsetWidth; // restart the pop animation
    bubble.classList.add("is-popping");
  }

  function select(index, { say = true, reveal = false } = {}) {
    buttons.forEach((b) => b.setAttribute("aria-pressed", String(Number(b.dataset.objectIndex) === index)));
    rects.forEach((r) => r.classList.toggle("is-active", Number(r.dataset.boxIndex) === index));
    const btn = buttons.find((b) => Number(b.dataset.objectIndex) === index);
    if (!btn) return;
    showBubble(rects.find((r) => Number(r.dataset.boxIndex) === index), btn.querySelector(".object-name")?.textContent ?? "");
    // Picked from the list while the photo is scrolled away: bring the photo back into view.
    if (reveal && stage) {
      const r = stage.getBoundingClientRect();
      if (r.top < 0 || r.bottom > window.innerHeight) stage.scrollIntoView({ block: "nearest", behavior: "smooth" });
    }
    if (say) speak(btn.dataset.label);
  }

  buttons.forEach((btn) => {
    btn.addEventListener("click", () => select(Number(btn.dataset.objectIndex), { reveal: true }));
  });

  // Tap the photo: pick the smallest box under the finger (boxes are xyxy in photo pixels).
  if (stage && img && rects.length) {
    stage.classList.add("is-interactive");
    stage.addEventListener("click", (e) => {
      const r = img.getBoundingClientRect();
      if (!r.width || !r.height) return;
      // The width/height attributes are the photo's size in pixels (img.width is the rendered size).
      const x = ((e.clientX - r.left) / r.width) * Number(img.getAttribute("width"));
      const y = ((e.clientY - r.top) / r.height) * Number(img.getAttribute("height"));
      let best = -1;
      let bestArea = Infinity;
      rects.forEach((rect) => {
        const bx = Number(rect.getAttribute("x"));
        const by = Number(rect.getAttribute("y"));
        const bw = Number(rect.getAttribute("width"));
        const bh = Number(rect.getAttribute("height"));
        if (x >= bx && x <= bx + bw && y >= by && y <= by + bh && bw * bh < bestArea) {
          best = Number(rect.dataset.boxIndex);
          bestArea = bw * bh;
        }
      });
      if (best >= 0) select(best);
    });
  }

  const toggle = section.querySelector("[data-toggle-original]");
  if (toggle && img && img.dataset.originalSrc) {
    const coloredAlt = img.alt;
    toggle.addEventListener("click", () => {
      const plain = toggle.getAttribute("aria-pressed") !== "true";
      toggle.setAttribute("aria-pressed", String(plain));
      img.src = plain ? img.dataset.originalSrc : img.dataset.overlaySrc;
      img.alt = plain ? "Your photo, without colours" : coloredAlt;
      section.classList.toggle("is-plain", plain);
      toggle.querySelector("span").textContent = plain ? "Show the colours again" : "Show the plain photo";
    });
  } else if (toggle) {
    toggle.parentElement.hidden = true;
  }
}
