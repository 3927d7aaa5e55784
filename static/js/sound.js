// Short happy and gentle sounds for the Find it! game, synthesised with the Web Audio API (no
// sound files, nothing from the network). Off when the grown-up switched game sounds off.

import { speechSettings } from "./speech.js";

let context = null;

function audio() {
  const Ctor = window.AudioContext || window.webkitAudioContext;
  if (!Ctor || !speechSettings().sounds) return null;
  try {
    context ??= new Ctor();
    if (context.state === "suspended") context.resume().catch(() => {});
    return context;
  } catch {
    return null;
  }
}

/** One note: `freq` Hz from `start` (AudioContext seconds) for `duration` s, soft attack and decay. */
function note(ac, freq, start, duration, { type = "sine", peak = 0.2 } = {}) {
  const osc = ac.createOscillator();
  const gain = ac.createGain();
  osc.type = type;
  osc.frequency.setValueAtTime(freq, start);
  gain.gain.setValueAtTime(0.0001, start);
  gain.gain.exponentialRampToValueAtTime(peak, start + 0.02);
  gain.gain.exponentialRampToValueAtTime(0.0001, start + duration);
  osc.connect(gain).connect(ac.destination);
  osc.start(start);
  osc.stop(start + duration + 0.05);
}

/** A rising C-major arpeggio (C5 E5 G5 C6): "you found it!". */
export function cheer() {
  const ac = audio();
  if (!ac) return;
  const t = ac.currentTime + 0.01;
  [523.25, 659.25, 783.99, 1046.5].forEach((f, i) => note(ac, f, t + i * 0.09, 0.3, { type: "triangle", peak: 0.18 }));
}

/** Two soft falling notes (G4, E4): "not quite", quietly. */
export function oops() {
  const ac = audio();
  if (!ac) return;
  const t = ac.currentTime + 0.01;
  note(ac, 392.0, t, 0.22, { peak: 0.07 });
  note(ac, 329.63, t + 0.16, 0.3, { peak: 0.06 });
}
