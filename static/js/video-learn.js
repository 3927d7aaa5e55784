// Learning with a finished video: it plays with every followed thing coloured and named
// ("Watch"); Tap & hear and Find it! pause it and work on the frame shown, with that frame's
// masks from the result JSON (COCO RLE per frame, rle.js) through learn.js and game.js. A
// thing that is not in the frame (it left the picture) cannot be tapped or asked for.

import { getJSON } from "./api.js";
import { clock } from "./frame-picker.js";
import { initLearning } from "./learn.js";
import { Mask } from "./rle.js";

const HINTS = {
  watch: "Pause the video, then tap a thing to hear its name.",
  hear: "Tap a thing in the picture to hear its name.",
  game: "Listen, find the thing, and tap it!",
};

/** The MIME type a browser is asked about for a stored clip of `codec` (FFmpeg's name). */
const CLIP_TYPES = {
  h264: 'video/mp4; codecs="avc1.42E01E"',
  hevc: 'video/mp4; codecs="hvc1.1.6.L93.B0"',
  av1: 'video/mp4; codecs="av01.0.05M.08"',
  vp8: 'video/webm; codecs="vp8"',
  vp9: 'video/webm; codecs="vp9"',
};

/** The index of the last entry of `frames` (sorted by time_s) shown at `t` seconds. */
export function frameAt(frames, t) {
  let lo = 0;
  let hi = frames.length - 1;
  if (hi < 0) return -1;
  const eps = 1e-3; // currentTime after a seek lands on the frame's own timestamp, give or take
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (frames[mid].time_s <= t + eps) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

function once(target, type) {
  return new Promise((resolve) => target.addEventListener(type, resolve, { once: true }));
}

/** Make a video's result <section> interactive. */
export function initVideoLearning(section) {
  const video = section.querySelector('video[data-slot="video"]');
  const note = section.querySelector('[data-slot="frame-note"]');
  const width = Number(video.getAttribute("width")) || 1;
  const height = Number(video.getAttribute("height")) || 1;
  const empty = new Mask({ size: [height, width], counts: [width * height] });
  let doc = null; // the result JSON
  let shownFrame = -1;
  let ctx = null;

  /** Give every object the mask and box it has on the frame shown now (none: absent). */
  function applyFrame() {
    if (!doc || !ctx) return;
    const frames = doc.frames ?? [];
    const i = frameAt(frames, video.currentTime);
    const frame = frames[i];
    const here = new Map((frame?.objects ?? []).filter((o) => !o.absent && o.mask).map((o) => [o.object_id, o]));
    ctx.objects.forEach((obj) => {
      const entry = here.get(obj.objectId);
      obj.mask = entry ? new Mask(entry.mask) : empty;
      obj.box = entry?.box ?? null;
      if (obj.rect) {
        const [x0, y0, x1, y1] = obj.box ?? [0, 0, 0, 0];
        obj.rect.setAttribute("x", x0);
        obj.rect.setAttribute("y", y0);
        obj.rect.setAttribute("width", Math.max(0, x1 - x0));
        obj.rect.setAttribute("height", Math.max(0, y1 - y0));
      }
    });
    shownFrame = frame ? frame.frame_index : -1;
    section.dataset.frame = String(shownFrame);
    const present = here.size;
    if (note) {
      note.textContent = frame
        ? `Paused at ${clock(video.currentTime)} (frame ${shownFrame + 1}): ${present} of ${ctx.objects.length} ${ctx.objects.length === 1 ? "thing" : "things"} in the picture.`
        : "";
    }
  }

  async function loadMasks(c) {
    ctx = c;
    c.objects.forEach((obj, i) => { obj.objectId = null; obj.index = i; });
    if (!section.dataset.objectsUrl || !c.objects.length) return false;
    try {
      doc = await getJSON(section.dataset.objectsUrl);
    } catch {
      return false;
    }
    (doc.objects ?? []).forEach((o, i) => {
      if (c.objects[i]) c.objects[i].objectId = o.object_id;
    });
    if (c.activity !== "watch") applyFrame();
    else c.objects.forEach((obj) => { obj.mask = empty; });
    return true;
  }

  // The plain clip (for Find it!, whose answers the coloured video would show) only where the
  // browser plays its codec; otherwise the coloured video stays.
  const overlaySrc = video.dataset.overlaySrc;
  const plainSrc = video.dataset.originalSrc;
  const plainType = CLIP_TYPES[video.dataset.codec];
  const canPlayPlain = Boolean(plainSrc && plainType && video.canPlayType(plainType));
  let switching = Promise.resolve();

  function useSource(url) {
    switching = switching.then(async () => {
      if (!url || video.getAttribute("src") === url) return;
      const t = video.currentTime;
      video.src = url;
      await once(video, "loadedmetadata");
      video.currentTime = t;
      await once(video, "seeked");
    });
    return switching;
  }

  function pauseOnFrame() {
    video.pause();
    video.controls = false;
    section.classList.add("is-paused-frame");
  }

  if (!canPlayPlain) section.querySelector("[data-toggle-original]")?.closest(".result-tools")?.remove();
  const learning = initLearning(section, {
    initial: "watch",
    hints: HINTS,
    canName: false, // a frame of a video cannot be cut out to name it
    loadMasks,
    plainFor: (name, chosen) => chosen || (name === "game" && canPlayPlain),
    onActivity(name) {
      if (name === "watch") {
        video.controls = true;
        section.classList.remove("is-paused-frame");
        if (note) note.textContent = "";
        return;
      }
      pauseOnFrame();
      applyFrame();
    },
  });
  learning.stage.usePlainPhoto = (plain) => useSource(plain && canPlayPlain ? plainSrc : overlaySrc);

  // Playing again goes back to watching; moving to another frame while paused shows its masks.
  video.addEventListener("play", () => {
    if (learning.activity !== "watch") learning.setActivity("watch");
  });
  video.addEventListener("seeked", () => {
    if (learning.activity !== "watch") applyFrame();
  });
  return learning;
}
