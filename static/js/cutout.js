// Cut out: the child taps anything on a finished photo. The mask is decoded on the device
// (decoder.js) when it can be, else by a "point" job (the worker segments the thing under the
// finger on the photo's cached image embedding); the sheet then shows the cut-out with "What is
// this?" and "I know what it is!" (the word is saved to the photo's "words we learned").

import { ApiError, getJSON, pollJob, sendJSON } from "./api.js";
import { displayName } from "./names.js";
import { Mask } from "./rle.js";
import { say, UNSURE_TEXT } from "./speech.js";

const CUTOUT_SIDE = 480; // longest side of a cut-out drawn in the browser, CSS pixels

/**
 * A cut-out drawn in the browser for an object the page already has: the plain photo inside the
 * object's box, transparent outside its mask. Resolves with a PNG data: URL (CSP allows data:
 * images), or null when the photo cannot be drawn.
 * @param {string} src  the plain photo's URL (same origin, so the canvas is not tainted)
 * @param {Mask} mask
 * @param {number[]} box  [x0, y0, x1, y1] photo pixels
 */
export async function cutoutOf(src, mask, box) {
  if (!src || !mask || !box) return null;
  try {
    const img = new Image();
    img.src = src;
    await img.decode();
    const [x0, y0, x1, y1] = [Math.floor(box[0]), Math.floor(box[1]), Math.ceil(box[2]) + 1, Math.ceil(box[3]) + 1];
    const bw = Math.max(1, Math.min(mask.w, x1) - x0);
    const bh = Math.max(1, Math.min(mask.h, y1) - y0);
    const s = Math.min(1, CUTOUT_SIDE / Math.max(bw, bh));
    const cw = Math.max(1, Math.round(bw * s));
    const ch = Math.max(1, Math.round(bh * s));
    const canvas = document.createElement("canvas");
    canvas.width = cw;
    canvas.height = ch;
    const g = canvas.getContext("2d");
    g.drawImage(img, x0, y0, bw, bh, 0, 0, cw, ch);
    g.globalCompositeOperation = "destination-in";
    g.drawImage(mask.render(cw, ch, [x0, y0, x0 + bw, y0 + bh]), 0, 0);
    return canvas.toDataURL("image/png");
  } catch {
    return null;
  }
}

/** Save a word to the photo's list; resolves with the API answer and tells the words card. */
export async function saveWord(photoId, word) {
  const res = await sendJSON("POST", `/api/v1/photos/${encodeURIComponent(photoId)}/words`, { word });
  document.dispatchEvent(new CustomEvent("va:words", { detail: { photoId: String(photoId), words: res.words } }));
  return res;
}

/** The sheet (a modal <dialog>) showing a cut-out: ask what it is, or name it. */
export class NameSheet {
  constructor(section, photoId) {
    this.photoId = photoId;
    this.dialog = section.querySelector("[data-cutout-dialog]");
    if (!this.dialog) return;
    const slot = (name) => this.dialog.querySelector(`[data-slot="${name}"]`);
    this.title = slot("cutout-title");
    this.img = slot("cutout-img");
    this.word = slot("cutout-word");
    this.note = slot("cutout-note");
    this.saved = slot("saved-note");
    this.error = slot("name-error");
    this.form = this.dialog.querySelector("[data-name-form]");
    this.input = this.form.querySelector("input");
    this.askBtn = this.dialog.querySelector("[data-ask]");
    this.actions = this.dialog.querySelector(".sheet-actions");
    this.askBtn.addEventListener("click", () => this.ask());
    this.dialog.querySelector("[data-name-open]").addEventListener("click", () => this.openForm());
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit();
    });
    // Tapping the dimmed backdrop closes the sheet, as on native phone sheets.
    this.dialog.addEventListener("click", (e) => {
      if (e.target === this.dialog) this.dialog.close();
    });
  }

  /**
   * Show a cut-out. `image`: URL of the PNG (or null); `label`/`named`: what the models said;
   * `nameNow`: go straight to the name box (the child already heard "I'm not sure").
   * @param {{image: string|null, label: string, named: boolean, nameNow?: boolean}} item
   */
  open(item) {
    if (!this.dialog) return;
    this.item = item;
    this.title.textContent = "You cut this out!";
    this.img.hidden = !item.image;
    if (item.image) this.img.src = item.image;
    this.word.hidden = true;
    this.note.hidden = true;
    this.form.hidden = true;
    this.saved.hidden = true;
    this.error.hidden = true;
    this.input.value = "";
    this.input.removeAttribute("aria-invalid");
    this.actions.hidden = false;
    if (!this.dialog.open) this.dialog.showModal();
    if (item.nameNow) {
      this.note.hidden = false;
      this.openForm();
    } else {
      this.askBtn.focus();
    }
  }

  /** "What is this?": the name when the models know it, else "I'm not sure" and the name box. */
  ask() {
    const { label, named } = this.item;
    this.word.textContent = displayName(label, named);
    this.word.hidden = false;
    this.word.classList.toggle("is-unsure", !named);
    if (named) {
      this.title.textContent = "This is…";
      say(label);
    } else {
      this.title.textContent = "Hmm…";
      this.note.hidden = false;
      say(UNSURE_TEXT);
      this.openForm();
    }
  }

  openForm() {
    this.form.hidden = false;
    this.input.focus();
  }

  async submit() {
    const word = this.input.value.trim();
    this.error.hidden = true;
    if (!word) {
      this.showError("Type its name first, like “teddy”.");
      return;
    }
    try {
      const res = await saveWord(this.photoId, word);
      this.title.textContent = "Thank you!";
      this.word.textContent = displayName(res.word.word, true);
      this.word.hidden = false;
      this.word.classList.remove("is-unsure");
      this.note.hidden = true;
      this.form.hidden = true;
      this.actions.hidden = true; // named: asking "what is this?" again would contradict the child
      this.saved.textContent = `“${res.word.word}” is now in Words we learned.`;
      this.saved.hidden = false;
      say(res.word.word);
      this.dialog.querySelector(".sheet-close button").focus();
    } catch (err) {
      this.showError(err instanceof ApiError ? err.message : "That did not work. Please try again.");
    }
  }

  showError(text) {
    this.error.textContent = text;
    this.error.hidden = false;
    this.input.setAttribute("aria-invalid", "true");
    this.input.focus();
  }
}

/**
 * The Cut out activity. With the on-device decoder (decoder.js) a tap shows its mask at once;
 * more taps add to it or take away from it, Undo takes the last one back, and "Cut it out!"
 * asks the worker for the thing's name (a point job at the first tap). Without it, each tap is
 * a point job: a pulsing marker while the worker segments.
 */
export class CutOut {
  constructor(ctx, sheet) {
    this.ctx = ctx;
    this.sheet = sheet;
    this.busy = false;
    this.abort = null;
    this.points = []; // device taps: {x, y, label} photo pixels, label 1 adds, 0 takes away
    this.mask = null;
    this.mode = "add";
    const bar = ctx.section.querySelector("[data-refine-bar]");
    this.bar = bar;
    if (!bar) return;
    this.undoBtn = bar.querySelector("[data-refine-undo]");
    bar.querySelectorAll("[data-refine]").forEach((b) => b.addEventListener("click", () => this.setMode(b.dataset.refine)));
    this.undoBtn.addEventListener("click", () => this.undo());
    bar.querySelector("[data-refine-done]").addEventListener("click", () => this.done());
  }

  setMode(mode) {
    this.mode = mode;
    this.bar?.querySelectorAll("[data-refine]").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.refine === mode)));
  }

  async tap(pt) {
    if (this.busy || !this.ctx.photoId) return;
    const start = performance.now();
    const device = await this.ctx.openDevice?.();
    if (device) await this.deviceTap(pt, device, start);
    else await this.serverTap(pt);
  }

  /** Decode the taps so far plus `pt` on the device and light up the mask. */
  async deviceTap(pt, device, start) {
    const label = this.points.length && this.mode === "remove" ? 0 : 1;
    this.points.push({ x: pt.x, y: pt.y, label });
    await this.redraw(device, start);
  }

  /**
   * Decode the taps on the device and light up their mask. Records on the section the time
   * from the tap (`start`, performance.now()) to the mask drawn (data-tap-ms) and the decoder's
   * share of it (data-decode-ms).
   */
  async redraw(device, start = performance.now()) {
    const { stage, section } = this.ctx;
    this.busy = true;
    try {
      if (!this.points.length) {
        this.reset("Tap anything in the photo to cut it out.");
        return;
      }
      const { mask, ms } = await device.decode(this.points);
      this.mask = mask;
      stage.clearMark();
      const last = this.points[this.points.length - 1];
      stage.spotlight(mask);
      section.dataset.tapMs = (performance.now() - start).toFixed(1);
      section.dataset.decodeMs = ms.toFixed(1);
      section.dataset.decodedBy = "device";
      section.dataset.taps = String(this.points.length);
      if (mask.empty) stage.mark(last.x, last.y, "wrong");
      section.dataset.cutState = "device";
      if (this.bar) this.bar.hidden = false;
      if (this.undoBtn) this.undoBtn.disabled = false;
      this.ctx.setHint(!mask.empty ? "Tap again to add more, or take some away. Then: Cut it out!" : "Nothing there yet. Tap right on a thing!");
    } catch {
      // The decoder failed on this device: the worker cuts it out instead.
      this.ctx.device = Promise.resolve(null);
      const last = this.points.pop();
      this.reset();
      if (last) await this.serverTap(last);
    } finally {
      this.busy = false;
    }
  }

  async undo() {
    if (this.busy) return;
    this.points.pop();
    const device = await this.ctx.openDevice?.();
    if (device) await this.redraw(device);
  }

  /** "Cut it out!": the device's cut-out in the sheet, named by the worker (a point job). */
  async done() {
    const first = this.points.find((p) => p.label === 1);
    if (this.busy || !first || !this.mask || this.mask.empty) return;
    const mask = this.mask;
    const image = await cutoutOf(this.ctx.stage.img.dataset.originalSrc, mask, mask.box());
    await this.serverTap(first, { image, mask });
  }

  /** One tap as a point job; `device`: the cut-out and mask already made on the device. */
  async serverTap(pt, device = null) {
    const { stage, photoId } = this.ctx;
    if (this.busy || !photoId) return;
    this.busy = true;
    this.abort = new AbortController();
    const { signal } = this.abort;
    if (!device) stage.spotlight(null);
    stage.mark(pt.x, pt.y, "busy");
    this.ctx.section.dataset.cutState = "busy";
    this.ctx.setHint(device ? "Finding its name…" : "Cutting it out…");
    try {
      const point = { x: Math.round(pt.x * 10) / 10, y: Math.round(pt.y * 10) / 10 };
      const queued = await sendJSON("POST", `/api/v1/photos/${encodeURIComponent(photoId)}/point`, point);
      const job = await pollJob(queued.job_id, { interval: 250, signal });
      if (job.status !== "done") throw new ApiError(job.error || "That did not work. Please tap again.", 0);
      const result = await getJSON(queued.result_url ?? `/api/v1/jobs/${queued.job_id}/result`, { signal });
      if (!device && (!result.object || !result.object.area)) {
        this.ctx.setHint("I couldn't cut anything out there. Tap right on a thing!");
        say("Tap right on a thing!");
        return;
      }
      stage.spotlight(device ? device.mask : new Mask(result.object.mask));
      this.ctx.setHint("Tap anything in the photo to cut it out.");
      this.ctx.section.dataset.cutState = "done";
      const object = result.object ?? { label: "", named: false };
      this.sheet.open({ image: device?.image ?? result.cutout_url, label: object.label, named: object.named });
      if (device) this.clearTaps();
    } catch (err) {
      if (err.name === "AbortError") return;
      this.ctx.setHint(err instanceof ApiError ? err.message : "That did not work. Please tap again.");
      this.ctx.section.dataset.cutState = "failed";
    } finally {
      stage.clearMark();
      this.busy = false;
      if (this.ctx.section.dataset.cutState === "busy") delete this.ctx.section.dataset.cutState;
    }
  }

  /** Forget the device taps (the mask stays lit until the next tap). */
  clearTaps() {
    this.points = [];
    this.mask = null;
    delete this.ctx.section.dataset.taps;
    this.setMode("add");
    if (this.bar) this.bar.hidden = true;
    if (this.undoBtn) this.undoBtn.disabled = true;
  }

  reset(hint) {
    this.clearTaps();
    this.ctx.stage.spotlight(null);
    this.ctx.stage.clearMark();
    delete this.ctx.section.dataset.cutState;
    if (hint) this.ctx.setHint(hint);
  }

  cancel() {
    this.abort?.abort();
    this.clearTaps();
  }
}
