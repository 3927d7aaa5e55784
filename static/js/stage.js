// The photo as a touch surface: taps in photo pixels, a spotlight on one object's mask (the rest
// dimmed, the object outlined in white and ink: a cue that does not rely on colour), tap markers,
// a celebration burst and the name bubble. Positions go through the CSSOM (element.style), which
// a Content Security Policy without 'unsafe-inline' allows.

const MAX_CANVAS = 1400; // longest canvas side in device pixels: sharp enough, cheap on phones
const DIM = "rgba(17, 14, 48, 0.6)";

/** A copy of the white `mask` canvas grown by `r` pixels (drawn at offsets on a circle), in `color`. */
function grow(mask, r, color) {
  const out = document.createElement("canvas");
  out.width = mask.width;
  out.height = mask.height;
  const ctx = out.getContext("2d");
  for (let i = 0; i < 16; i += 1) {
    const t = (i / 16) * 2 * Math.PI;
    ctx.drawImage(mask, Math.round(Math.cos(t) * r), Math.round(Math.sin(t) * r));
  }
  ctx.drawImage(mask, 0, 0);
  ctx.globalCompositeOperation = "source-in";
  ctx.fillStyle = color;
  ctx.fillRect(0, 0, out.width, out.height);
  return out;
}

export class Stage {
  /** @param {HTMLElement} section  the result <section> */
  constructor(section) {
    this.el = section.querySelector("[data-result-stage]");
    this.img = this.el.querySelector(".result-img");
    this.canvas = this.el.querySelector('[data-slot="spot"]');
    this.width = Number(this.img.getAttribute("width")) || 1; // the photo's size in pixels
    this.height = Number(this.img.getAttribute("height")) || 1;
    this.mask = null;
    this.rendered = null; // {mask, w, h, canvas}: the last mask drawn at canvas size
    this.bubble = document.createElement("span");
    this.bubble.className = "name-bubble";
    this.bubble.setAttribute("aria-hidden", "true");
    this.bubble.hidden = true;
    this.el.append(this.bubble);
    this.marker = null;
    if (this.canvas) this.canvas.hidden = true;
    if ("ResizeObserver" in window) new ResizeObserver(() => this.draw()).observe(this.el);
  }

  /** The photo pixel under a pointer event, or null when it is outside the photo. */
  toPhoto(event) {
    const r = this.img.getBoundingClientRect();
    if (!r.width || !r.height) return null;
    const x = ((event.clientX - r.left) / r.width) * this.width;
    const y = ((event.clientY - r.top) / r.height) * this.height;
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return null;
    return { x, y };
  }

  place(el, x, y) {
    el.style.left = `${(x / this.width) * 100}%`;
    el.style.top = `${(y / this.height) * 100}%`;
  }

  /** Light up one object (a rle.js Mask or a decoder.js LogitMask), or clear the spotlight
   * with null. */
  spotlight(mask) {
    this.mask = mask && !mask.empty ? mask : null;
    this.draw();
  }

  draw() {
    const { canvas } = this;
    if (!canvas) return;
    const rect = this.el.getBoundingClientRect();
    if (!this.mask || !rect.width || !rect.height) {
      canvas.hidden = true;
      return;
    }
    const dpr = Math.min(window.devicePixelRatio || 1, 2);
    const fit = Math.min(1, MAX_CANVAS / (Math.max(rect.width, rect.height) * dpr));
    const w = Math.max(1, Math.round(rect.width * dpr * fit));
    const h = Math.max(1, Math.round(rect.height * dpr * fit));
    if (!this.rendered || this.rendered.mask !== this.mask || this.rendered.w !== w || this.rendered.h !== h) {
      this.rendered = { mask: this.mask, w, h, canvas: this.mask.render(w, h) };
    }
    const shape = this.rendered.canvas;
    const line = Math.max(2, Math.round(3 * dpr * fit));
    const outer = grow(shape, line * 2, "#1e1b4b");
    const inner = grow(shape, line, "#ffffff");
    canvas.width = w;
    canvas.height = h;
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = DIM;
    ctx.fillRect(0, 0, w, h);
    ctx.globalCompositeOperation = "destination-out";
    ctx.drawImage(outer, 0, 0);
    ctx.globalCompositeOperation = "source-over";
    ctx.drawImage(outer, 0, 0);
    ctx.drawImage(inner, 0, 0);
    ctx.globalCompositeOperation = "destination-out";
    ctx.drawImage(shape, 0, 0);
    ctx.globalCompositeOperation = "source-over";
    canvas.hidden = false;
  }

  /** The name shown over the photo, just above `box` (xyxy photo pixels); null hides it. */
  showBubble(text, box) {
    if (!text || !box) {
      this.bubble.hidden = true;
      return;
    }
    const [x0, y0, x1] = box;
    this.bubble.textContent = text;
    this.bubble.hidden = false;
    this.place(this.bubble, (x0 + x1) / 2, y0);
    // Keep the whole bubble inside the photo (its centre is what left points at).
    const stageWidth = this.el.clientWidth;
    const half = this.bubble.offsetWidth / 2 + 6;
    const centre = ((x0 + x1) / 2 / this.width) * stageWidth;
    this.bubble.style.left = `${half * 2 > stageWidth ? stageWidth / 2 : Math.min(stageWidth - half, Math.max(half, centre))}px`;
    this.bubble.classList.toggle("is-below", y0 / this.height < 0.15);
    this.bubble.classList.remove("is-popping");
    void this.bubble.offsetWidth; // restart the pop animation
    this.bubble.classList.add("is-popping");
  }

  /** A marker where the finger landed: "busy" (pulses until cleared), "wrong" or "right". */
  mark(x, y, kind) {
    this.marker?.remove();
    const el = document.createElement("span");
    el.className = `tap-mark tap-mark--${kind}`;
    el.setAttribute("aria-hidden", "true");
    this.place(el, x, y);
    this.el.append(el);
    this.marker = el;
    if (kind !== "busy") el.addEventListener("animationend", () => el.remove(), { once: true });
    return el;
  }

  clearMark() {
    this.marker?.remove();
    this.marker = null;
  }

  /** Stars and confetti bursting out of (x, y): the game's "you found it!". */
  burst(x, y) {
    const el = document.createElement("span");
    el.className = "burst";
    el.setAttribute("aria-hidden", "true");
    for (let i = 0; i < 12; i += 1) el.append(document.createElement("span"));
    this.place(el, x, y);
    this.el.append(el);
    setTimeout(() => el.remove(), 1400);
  }

  /** Show the coloured picture or the plain photo. */
  usePlainPhoto(plain) {
    const src = plain ? this.img.dataset.originalSrc : this.img.dataset.overlaySrc;
    if (src && this.img.getAttribute("src") !== src) this.img.src = src;
  }
}
