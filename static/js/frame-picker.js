// Choosing what to follow in a video before it is sent: the chosen file plays in a <video>
// (a blob: URL, nothing leaves the device yet); the child or grown-up moves to a moment with
// the slider (or plays and pauses) and taps each thing to follow. The taps are point prompts in
// pixels of the frame as displayed, with the moment's time: the server picks the frame shown
// at that time.

const MAX_TAPS = 8; // the server's MAX_POINTS

/** "0:07" for 7.2 s. */
export function clock(seconds) {
  const total = Math.max(0, Math.floor(seconds || 0));
  return `${Math.floor(total / 60)}:${String(total % 60).padStart(2, "0")}`;
}

export class FramePicker {
  /**
   * @param {HTMLElement} root  the [data-frame-picker] element
   * @param {{onChange?: () => void, onUnplayable?: () => void}} [hooks]  onChange: the taps
   *   changed; onUnplayable: this browser cannot show the file (taps are then impossible)
   */
  constructor(root, { onChange, onUnplayable } = {}) {
    this.root = root;
    this.video = root.querySelector("[data-preview-video]");
    this.layer = root.querySelector("[data-tap-layer]");
    this.range = root.querySelector("[data-frame-time]");
    this.clockEl = root.querySelector("[data-frame-clock]");
    this.playBtn = root.querySelector("[data-frame-play]");
    this.hint = root.querySelector('[data-slot="frame-hint-text"]');
    this.actions = root.querySelector("[data-tap-actions]");
    this.onChange = onChange;
    this.onUnplayable = onUnplayable;
    this.taps = []; // {x, y, el}: frame pixels, and the marker
    this.tapping = false;
    this.playable = false;

    this.video.addEventListener("loadedmetadata", () => {
      this.playable = true;
      this.range.max = String(this.video.duration || 0);
      this.root.classList.add("is-ready");
      this.update();
    });
    this.video.addEventListener("error", () => {
      if (!this.video.getAttribute("src")) return;
      this.playable = false;
      this.root.classList.remove("is-ready");
      this.onUnplayable?.();
    });
    this.video.addEventListener("timeupdate", () => this.update());
    this.video.addEventListener("play", () => this.update());
    this.video.addEventListener("pause", () => this.update());
    this.video.addEventListener("ended", () => this.update());
    this.playBtn.addEventListener("click", () => {
      if (this.video.paused) {
        this.clear("Pause on a moment, then tap each thing to follow.");
        this.video.play().catch(() => {});
      } else {
        this.video.pause();
      }
    });
    this.range.addEventListener("input", () => {
      this.video.pause();
      if (this.taps.length) this.clear("The taps are on one moment: tap again on this one.");
      this.video.currentTime = Number(this.range.value);
    });
    this.layer.addEventListener("click", (e) => this.tap(e));
    root.querySelector("[data-tap-undo]")?.addEventListener("click", () => this.undo());
    root.querySelector("[data-tap-clear]")?.addEventListener("click", () => this.clear());
  }

  /** Show `url` (a blob: URL of the chosen file), paused on its first frame. */
  load(url) {
    this.clear();
    this.playable = false;
    this.root.classList.remove("is-ready");
    this.video.src = url;
    this.video.load();
  }

  /** Forget the file. */
  unload() {
    this.clear();
    this.video.pause();
    this.video.removeAttribute("src");
    this.video.load();
    this.playable = false;
  }

  /** Taps count only in "Tap what to follow". */
  setTapping(on) {
    this.tapping = on;
    this.root.classList.toggle("is-tapping", on);
    this.layer.hidden = !on;
    this.update();
  }

  update() {
    const { video } = this;
    this.range.value = String(video.currentTime || 0);
    this.range.setAttribute("aria-valuetext", `${clock(video.currentTime)} of ${clock(video.duration)}`);
    this.clockEl.textContent = clock(video.currentTime);
    const playing = !video.paused && !video.ended;
    this.playBtn.setAttribute("aria-label", playing ? "Pause the video" : "Play the video");
    this.playBtn.dataset.playing = String(playing);
    this.actions.hidden = !this.taps.length;
  }

  /** A tap on the paused frame: a point prompt in the frame's pixels. */
  tap(event) {
    if (!this.tapping || !this.playable) return;
    if (!this.video.paused) {
      this.video.pause();
      this.say("Paused. Now tap each thing to follow.");
      return;
    }
    if (this.taps.length >= MAX_TAPS) {
      this.say(`That is ${MAX_TAPS} things: the most I can follow.`);
      return;
    }
    const r = this.layer.getBoundingClientRect();
    const w = this.video.videoWidth;
    const h = this.video.videoHeight;
    if (!r.width || !r.height || !w || !h) return;
    const fx = (event.clientX - r.left) / r.width;
    const fy = (event.clientY - r.top) / r.height;
    if (fx < 0 || fy < 0 || fx >= 1 || fy >= 1) return;
    const el = document.createElement("span");
    el.className = "tap-dot";
    el.textContent = String(this.taps.length + 1);
    el.style.left = `${fx * 100}%`;
    el.style.top = `${fy * 100}%`;
    this.layer.append(el);
    this.taps.push({ x: fx * w, y: fy * h, el });
    const n = this.taps.length;
    this.say(n === 1 ? "1 thing to follow. Tap more, or send the video." : `${n} things to follow.`);
    this.update();
    this.onChange?.();
  }

  undo() {
    this.taps.pop()?.el.remove();
    this.say(this.taps.length ? `${this.taps.length} things to follow.` : "Tap each thing to follow.");
    this.update();
    this.onChange?.();
  }

  clear(message) {
    this.taps.forEach((t) => t.el.remove());
    this.taps = [];
    if (message) this.say(message);
    this.update();
    this.onChange?.();
  }

  say(text) {
    if (this.hint) this.hint.textContent = text;
  }

  /** What is sent: the moment (seconds) and the taps ([x, y] frame pixels). */
  prompt() {
    return {
      time_s: this.video.currentTime || 0,
      points: this.taps.map((t) => [Math.round(t.x * 10) / 10, Math.round(t.y * 10) / 10]),
    };
  }
}
