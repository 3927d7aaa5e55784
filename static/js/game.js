// Find it!: "Can you find the dog?" once for each named thing in the photo, and "Can you find
// something red?" for up to two colours of its things (the server's colour words). A tap inside the
// right mask celebrates (a burst, a happy sound, words); a wrong tap gently says what was tapped.
// After three misses (or "Show me") the thing is shown and the game moves on. The round ends
// with a score, and the words found go to the photo's "words we learned".

import { saveWord } from "./cutout.js";
import { displayName } from "./names.js";
import { cheer, oops } from "./sound.js";
import { say } from "./speech.js";

const MAX_TRIES = 3;
const NEXT_AFTER_FOUND = 1700; // ms: time to enjoy the celebration
const NEXT_AFTER_SHOWN = 2400;
const MAX_COLOR_QUESTIONS = 2;

/** A shuffled copy of `list` (Fisher-Yates). */
export function shuffle(list) {
  const out = [...list];
  for (let i = out.length - 1; i > 0; i -= 1) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

export class FindIt {
  constructor(ctx) {
    this.ctx = ctx;
    const { section } = ctx;
    this.section = section;
    this.bar = section.querySelector("[data-game-bar]");
    this.over = section.querySelector("[data-game-over]");
    this.slot = (name) => section.querySelector(`[data-slot="${name}"]`);
    this.running = false;
    this.timer = null;
    section.querySelector("[data-game-repeat]")?.addEventListener("click", () => this.target && say(this.question()));
    section.querySelector("[data-game-help]")?.addEventListener("click", () => this.reveal());
    section.querySelector("[data-game-stop]")?.addEventListener("click", () => ctx.setActivity("hear"));
    section.querySelector("[data-game-again]")?.addEventListener("click", () => this.start());
    section.querySelector("[data-game-done]")?.addEventListener("click", () => ctx.setActivity("hear"));
  }

  /** What is asked for: "the dog", or "something red". */
  wanted() {
    return this.kind === "color" ? `something ${this.target}` : `the ${this.target}`;
  }

  question() {
    return `Can you find ${this.wanted()}?`;
  }

  /** Whether tapping `o` answers the current question. */
  matches(o) {
    return this.kind === "color" ? o.colorName === this.target : o.named && o.label === this.target;
  }

  /** The things to find: each named label once, then up to two colours (of any thing, named
   * or not), each if it has a mask (or box) to tap. */
  targets() {
    const labels = new Set();
    const colors = new Set();
    for (const o of this.ctx.objects) {
      const tappable = this.ctx.masksReady ? o.mask && o.mask.area > 0 : o.box;
      if (!tappable) continue;
      if (o.named) labels.add(o.label);
      if (o.colorName) colors.add(o.colorName);
    }
    return [
      ...[...labels].map((value) => ({ kind: "label", value })),
      ...shuffle([...colors]).slice(0, MAX_COLOR_QUESTIONS).map((value) => ({ kind: "color", value })),
    ];
  }

  async start() {
    clearTimeout(this.timer);
    this.over.hidden = true;
    this.running = true;
    this.section.dataset.game = "loading";
    await this.ctx.masks;
    if (!this.running) return; // stopped while the masks loaded
    const targets = this.targets();
    if (!targets.length) {
      this.running = false;
      this.section.dataset.game = "none";
      this.ctx.setHint("I don’t know the names of the things in this photo yet, so there is nothing to find. Try Cut out, or Find by name!");
      say("I don't know the names of these things yet.");
      return;
    }
    this.list = shuffle(targets);
    this.step = 0;
    this.score = 0;
    this.found = [];
    this.slot("game-total").textContent = String(this.list.length);
    this.bar.hidden = false;
    this.section.dataset.game = "playing";
    this.ask();
  }

  ask() {
    this.tries = 0;
    this.locked = false;
    ({ kind: this.kind, value: this.target } = this.list[this.step]);
    this.section.dataset.target = this.target;
    this.section.dataset.targetKind = this.kind;
    this.slot("game-prefix").textContent = this.kind === "color" ? "Can you find something" : "Can you find the";
    this.slot("game-target").textContent = this.target;
    this.slot("game-step").textContent = String(this.step + 1);
    this.slot("game-score").textContent = String(this.score);
    this.feedback("Tap it in the photo!", "hint");
    this.bar.classList.remove("is-right");
    this.ctx.stage.spotlight(null);
    this.ctx.stage.showBubble(null);
    say(this.question());
  }

  feedback(text, kind) {
    const el = this.slot("game-feedback");
    el.textContent = text;
    el.dataset.kind = kind;
  }

  tap(pt) {
    if (!this.running || this.locked || !this.target) return;
    const { stage } = this.ctx;
    const hits = this.ctx.hitsAt(pt.x, pt.y);
    const right = hits.find((o) => this.matches(o));
    if (right) {
      this.celebrate(right, pt);
      return;
    }
    this.tries += 1;
    const [what] = hits;
    let text = "Not there. Try again!";
    if (what?.named) text = `That's the ${what.label}. Can you find ${this.wanted()}?`;
    else if (what) text = `That's something else. Can you find ${this.wanted()}?`;
    stage.mark(pt.x, pt.y, "wrong");
    stage.showBubble(what ? displayName(what.label, what.named) : null, what?.box);
    oops();
    this.feedback(text, "wrong");
    say(text);
    if (this.tries >= MAX_TRIES) this.reveal();
  }

  celebrate(obj, pt) {
    const { stage } = this.ctx;
    this.locked = true;
    this.score += 1;
    this.found.push(this.target);
    this.slot("game-score").textContent = String(this.score);
    stage.spotlight(obj.mask);
    stage.showBubble(this.kind === "color" ? this.target : displayName(obj.label, true), obj.box);
    stage.mark(pt.x, pt.y, "right");
    stage.burst(pt.x, pt.y);
    this.bar.classList.remove("is-right");
    void this.bar.offsetWidth;
    this.bar.classList.add("is-right");
    cheer();
    const text = this.kind === "color" ? `Yes! That's ${obj.named ? obj.description : `something ${this.target}`}!`
      : `Yes! That's the ${this.target}!`;
    this.feedback(text, "right");
    say(text);
    this.timer = setTimeout(() => this.next(), NEXT_AFTER_FOUND);
  }

  /** "Show me" (or three misses): light up the thing, no star, then the next question. */
  reveal() {
    if (!this.running || this.locked || !this.target) return;
    this.locked = true;
    const obj = this.ctx.objects.find((o) => this.matches(o) && (o.mask?.area || o.box));
    this.ctx.stage.spotlight(obj?.mask ?? null);
    this.ctx.stage.showBubble(obj ? (this.kind === "color" ? this.target : displayName(obj.label, true)) : null, obj?.box);
    const text = `Here is ${this.wanted()}!`;
    this.feedback(text, "shown");
    say(text);
    this.timer = setTimeout(() => this.next(), NEXT_AFTER_SHOWN);
  }

  next() {
    this.step += 1;
    if (this.step >= this.list.length) this.end();
    else this.ask();
  }

  async end() {
    const total = this.list.length;
    this.running = false;
    this.target = null;
    delete this.section.dataset.target;
    delete this.section.dataset.targetKind;
    this.section.dataset.game = "over";
    this.bar.hidden = true;
    this.ctx.stage.spotlight(null);
    this.ctx.stage.showBubble(null);
    this.slot("game-over-title").textContent = `You found ${this.score} of ${total}!`;
    const stars = this.slot("game-stars");
    const star = this.section.querySelector("template[data-star-template]");
    stars.replaceChildren(...this.list.map((_, i) => {
      const icon = star.content.firstElementChild.cloneNode(true);
      icon.classList.toggle("is-lit", i < this.score);
      return icon;
    }));
    const words = this.slot("game-over-words");
    words.textContent = this.found.length ? `You found: ${this.found.join(", ")}.` : "Let’s play again!";
    this.over.hidden = false;
    this.over.focus({ preventScroll: true });
    this.over.scrollIntoView({ block: "nearest", behavior: "smooth" });
    say(this.score === total ? `Well done! You found all ${total}!` : `Well done! You found ${this.score} of ${total}!`);
    if (!this.found.length || !this.ctx.photoId) return;
    try { // the words found are learned words
      for (const word of this.found) await saveWord(this.ctx.photoId, word);
      words.textContent = `You found: ${this.found.join(", ")}. They are in Words we learned.`;
    } catch {
      /* the score still stands */
    }
  }

  stop() {
    clearTimeout(this.timer);
    this.running = false;
    this.target = null;
    this.bar.hidden = true;
    this.over.hidden = true;
    delete this.section.dataset.game;
    delete this.section.dataset.target;
    delete this.section.dataset.targetKind;
  }
}
