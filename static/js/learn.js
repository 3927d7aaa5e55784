// Learning with a finished photo, three activities on one stage:
//   Tap & hear (default): tap a thing or a name; it lights up, its word is shown large and said.
//   Cut out: tap anything; it is segmented on the device (decoder.js) or by the worker (a point
//   job), refined with more taps, and the child names it.
//   Find it!: the game (game.js).
// Objects come from the list on the page; their masks from objects.json (COCO RLE, rle.js).
// A video's page (video-learn.js) passes its own mask loader (the paused frame's masks) and a
// "watch" activity in which taps are left to the video's own controls.

import { getJSON } from "./api.js";
import { CutOut, NameSheet, cutoutOf } from "./cutout.js";
import { openDecoder } from "./decoder.js";
import { FindIt } from "./game.js";
import { displayName } from "./names.js";
import { Mask } from "./rle.js";
import { say, sayName } from "./speech.js";
import { Stage } from "./stage.js";

const HINTS = {
  watch: "Pause the video, then tap a thing to hear its name.",
  hear: "Tap a thing in the photo to hear its name.",
  cut: "Tap anything in the photo to cut it out.",
  game: "Listen, find the thing, and tap it!",
};

/** The objects shown on the page, in objects.json order: label, named, colour, box, button. */
function readObjects(section) {
  return [...section.querySelectorAll(".object-btn")].map((btn) => {
    const index = Number(btn.dataset.objectIndex);
    const rect = section.querySelector(`.box-layer .box[data-box-index="${index}"]`);
    const [x, y, w, h] = rect ? ["x", "y", "width", "height"].map((a) => Number(rect.getAttribute(a))) : [0, 0, 0, 0];
    return {
      index,
      btn,
      rect,
      label: btn.dataset.label ?? "",
      named: btn.dataset.named === "true",
      colorName: btn.dataset.colorName || null,
      description: btn.dataset.description || btn.dataset.label || "",
      color: btn.querySelector('[data-slot="swatch"]')?.getAttribute("fill") ?? "#888888",
      box: rect ? [x, y, x + w, y + h] : null,
      mask: null,
    };
  });
}

/** Above the photo: the activity's hint, or the big word of the object just tapped. */
class SayCard {
  /** @param {((obj: object) => void) | null} onNameIt  "I know what it is!" (null: no such button) */
  constructor(section, onNameIt) {
    this.el = section.querySelector("[data-say-card]");
    this.hint = section.querySelector('[data-slot="activity-hint"]');
    this.hintText = section.querySelector('[data-slot="activity-text"]');
    this.word = this.el?.querySelector('[data-slot="say-word"]');
    this.note = this.el?.querySelector('[data-slot="say-note"]');
    this.swatch = this.el?.querySelector('[data-slot="say-swatch"]');
    this.nameIt = onNameIt ? this.el?.querySelector("[data-name-it]") : null;
    this.current = null;
    this.el?.querySelector("[data-say-again]")?.addEventListener("click", () => this.speak());
    this.nameIt?.addEventListener("click", () => this.current?.label != null && onNameIt(this.current));
    if (!onNameIt) this.el?.querySelector("[data-name-it]")?.remove();
  }

  show(obj) {
    if (!this.el) return;
    this.current = obj;
    this.el.classList.remove("is-message");
    this.word.textContent = displayName(obj.label, obj.named);
    this.note.hidden = obj.named;
    if (this.nameIt) this.nameIt.hidden = obj.named;
    this.swatch.hidden = false;
    this.swatch.style.backgroundColor = obj.color;
    this.reveal();
  }

  /** A short sentence instead of a word (e.g. nothing was under the finger). */
  message(text) {
    if (!this.el) return;
    this.current = { text };
    this.el.classList.add("is-message");
    this.word.textContent = text;
    this.note.hidden = true;
    if (this.nameIt) this.nameIt.hidden = true;
    this.swatch.hidden = true;
    this.reveal();
  }

  reveal() {
    this.el.hidden = false;
    if (this.hint) this.hint.hidden = true;
    this.el.classList.remove("is-popping");
    void this.el.offsetWidth;
    this.el.classList.add("is-popping");
  }

  speak() {
    if (!this.current) return;
    if (this.current.text) say(this.current.text);
    else sayName(this.current.description, this.current.named);
  }

  /** Back to the hint (optionally a new one). */
  hide(hint) {
    if (this.el) this.el.hidden = true;
    if (this.hint) this.hint.hidden = false;
    if (hint != null && this.hintText) this.hintText.textContent = hint;
    this.current = null;
  }
}

/** The photo's masks: objects.json fetched once (objects in list order); until then taps use
 * the boxes. Resolves true when every object has its mask. */
async function loadPhotoMasks(ctx) {
  const { section, objects } = ctx;
  if (!section.dataset.objectsUrl || !objects.length) return false;
  try {
    const doc = await getJSON(section.dataset.objectsUrl);
    (doc.objects ?? []).forEach((o, i) => {
      const obj = objects[i];
      if (!obj || !o?.mask) return;
      obj.mask = new Mask(o.mask);
    });
    return objects.every((o) => o.mask);
  } catch {
    return false; // boxes still work
  }
}

/**
 * Make a result <section> interactive.
 * @param {HTMLElement} section
 * @param {{loadMasks?: (ctx: object) => Promise<boolean>, initial?: string,
 *          onActivity?: (name: string, ctx: object) => void,
 *          plainFor?: (name: string, plainChosen: boolean) => boolean,
 *          hints?: object, canName?: boolean}} [options]
 *   loadMasks: fills each object's `mask` (default: the photo's objects.json); initial: the
 *   first activity ("hear"; a video starts in "watch"); onActivity: called when the activity
 *   changes, before a game starts; plainFor: whether an activity shows the plain picture
 *   (default: all but Tap & hear, or when chosen); hints: the activities' hints; canName:
 *   offer "I know what it is!" on unnamed things (default true).
 */
export function initLearning(section, options = {}) {
  const stage = new Stage(section);
  const objects = readObjects(section);
  const initial = options.initial ?? "hear";
  const plainFor = options.plainFor ?? ((name, chosen) => name !== "hear" || chosen);
  const base = { ...HINTS, ...options.hints };
  // Nothing found: cutting out still works on anything tapped.
  const hints = objects.length ? base : { ...base, hear: "I found nothing to name here. Choose Cut out, then tap anything!" };
  const photoId = section.dataset.photoId;
  const bar = section.querySelector("[data-activity-bar]");
  const toggle = section.querySelector("[data-toggle-original]");
  const ctx = {
    section, stage, objects, photoId, masksReady: false, activity: initial,
    setHint(text) {
      sayCard.hide(text);
    },
    /** Every object under photo pixel (x, y), smallest first (masks; boxes until they load). */
    hitsAt(x, y) {
      const inside = objects.filter((o) => (ctx.masksReady
        ? o.mask?.contains(x, y)
        : o.box && x >= o.box[0] && x <= o.box[2] && y >= o.box[1] && y <= o.box[3]));
      const size = (o) => (ctx.masksReady ? o.mask.area : (o.box[2] - o.box[0]) * (o.box[3] - o.box[1]));
      return inside.sort((a, b) => size(a) - size(b));
    },
    setActivity,
    device: null,
    /** The on-device decoder (opened once, when Cut out is first chosen), or null. */
    openDevice() {
      if (!ctx.device) {
        const img = section.querySelector(".result-img");
        ctx.device = openDecoder(section, Number(img?.getAttribute("height")), Number(img?.getAttribute("width")));
        ctx.device.then((d) => { section.dataset.decoder = d ? "device" : "server"; });
      }
      return ctx.device;
    },
  };

  // Masks: fetched once; until then taps use the boxes.
  ctx.masks = (async () => {
    ctx.masksReady = await (options.loadMasks ?? loadPhotoMasks)(ctx);
    const none = !objects.length || !section.dataset.objectsUrl;
    section.dataset.masks = none ? "none" : ctx.masksReady ? "ready" : "boxes";
    return ctx.masksReady;
  })();

  const sheet = new NameSheet(section, photoId);

  const sayCard = new SayCard(section, options.canName === false ? null : async (obj) => {
    const image = obj.mask ? await cutoutOf(stage.img.dataset.originalSrc, obj.mask, obj.box) : null;
    sheet.open({ image, label: obj.label, named: obj.named, nameNow: true });
  });
  const cut = new CutOut(ctx, sheet);
  const game = new FindIt(ctx);

  // --- Tap & hear ---
  function select(index, { reveal = false } = {}) {
    const obj = objects.find((o) => o.index === index);
    if (!obj) return;
    objects.forEach((o) => {
      o.btn.setAttribute("aria-pressed", String(o === obj));
      o.rect?.classList.toggle("is-active", o === obj && !ctx.masksReady);
    });
    stage.spotlight(ctx.masksReady ? obj.mask : null);
    stage.showBubble(displayName(obj.label, obj.named), obj.box);
    sayCard.show(obj);
    sayName(obj.description, obj.named);
    section.dataset.selected = String(index);
    if (reveal) {
      const r = stage.el.getBoundingClientRect();
      if (r.top < 0 || r.bottom > window.innerHeight) stage.el.scrollIntoView({ block: "nearest", behavior: "smooth" });
    }
  }

  function clearSelection() {
    objects.forEach((o) => {
      o.btn.setAttribute("aria-pressed", "false");
      o.rect?.classList.remove("is-active");
    });
    stage.spotlight(null);
    stage.showBubble(null);
    delete section.dataset.selected;
  }

  objects.forEach((o) => o.btn.addEventListener("click", () => {
    if (ctx.activity !== "hear") setActivity("hear");
    select(o.index, { reveal: true });
  }));

  function hearTap(pt) {
    const [hit] = ctx.hitsAt(pt.x, pt.y);
    if (hit) {
      select(hit.index);
      return;
    }
    clearSelection();
    stage.mark(pt.x, pt.y, "wrong");
    sayCard.message("Nothing here. Tap right on a thing!");
    say("Tap right on a thing!");
  }

  // --- switching activities ---
  function setActivity(name) {
    if (name === ctx.activity) return;
    if (ctx.activity === "game") game.stop();
    if (ctx.activity === "cut") cut.cancel();
    ctx.activity = name;
    section.dataset.activity = name;
    bar?.querySelectorAll("[data-activity]").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.activity === name)));
    clearSelection();
    stage.clearMark();
    sayCard.hide(hints[name]);
    const plainChosen = toggle?.getAttribute("aria-pressed") === "true";
    stage.usePlainPhoto(plainFor(name, plainChosen));
    if (toggle) toggle.closest(".result-tools").hidden = !["hear", "watch"].includes(name);
    options.onActivity?.(name, ctx);
    if (name === "cut") ctx.openDevice(); // the decoder loads while the child chooses what to tap
    if (name === "game") {
      bar?.scrollIntoView({ block: "start", behavior: "smooth" }); // the question and the photo
      game.start();
    }
  }

  bar?.querySelectorAll("[data-activity]").forEach((b) => b.addEventListener("click", () => setActivity(b.dataset.activity)));

  stage.el.classList.add("is-interactive");
  stage.el.addEventListener("click", (e) => {
    const pt = stage.toPhoto(e);
    if (!pt) return;
    if (ctx.activity === "hear") hearTap(pt);
    else if (ctx.activity === "cut") cut.tap(pt);
    else if (ctx.activity === "game") game.tap(pt);
    // "watch" (a video playing): taps belong to the video's own controls.
  });

  // Coloured picture or plain photo (Tap & hear only; the other activities use the plain photo).
  if (toggle && stage.img.dataset.originalSrc) {
    const coloredAlt = stage.img.alt;
    const plainText = toggle.querySelector("span").textContent;
    toggle.addEventListener("click", () => {
      const plain = toggle.getAttribute("aria-pressed") !== "true";
      toggle.setAttribute("aria-pressed", String(plain));
      stage.usePlainPhoto(plain);
      stage.img.alt = plain ? "Your photo, without colours" : coloredAlt;
      section.classList.toggle("is-plain", plain);
      toggle.querySelector("span").textContent = plain ? "Show the colours again" : plainText;
    });
  } else if (toggle) {
    toggle.parentElement.hidden = true;
  }

  if (!objects.length || initial !== "hear") ctx.setHint(hints[initial]);
  section.dataset.activity = initial;
  section.dataset.ready = "1";
  return ctx;
}
