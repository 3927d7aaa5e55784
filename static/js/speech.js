// Reading names aloud with the browser's own speech synthesis (on the device, no network), in
// the voice and at the rate the grown-up chose on /settings (<meta name="speech-voice">,
// <meta name="speech-rate">, <meta name="sound-effects">, written by templates/base.html).

/** What is said for an object the app cannot name: never a guess said with confidence. */
export const UNSURE_TEXT = "I'm not sure what this is. Do you know?";

const DEFAULT_RATE = 0.9;

function meta(name) {
  return document.querySelector(`meta[name="${name}"]`)?.content ?? "";
}

/** {voice: name or "", rate: 0.5-1.5, sounds: boolean} for this account. */
export function speechSettings() {
  const rate = Number.parseFloat(meta("speech-rate"));
  return {
    voice: meta("speech-voice"),
    rate: Number.isFinite(rate) ? Math.min(1.5, Math.max(0.5, rate)) : DEFAULT_RATE,
    sounds: meta("sound-effects") !== "off",
  };
}

export function canSpeak() {
  return "speechSynthesis" in window && typeof window.SpeechSynthesisUtterance === "function";
}

/** The installed voices (may be empty until the browser has loaded them: "voiceschanged"). */
export function voices() {
  try {
    return canSpeak() ? [...window.speechSynthesis.getVoices()] : [];
  } catch {
    return [];
  }
}

// Ask for the voice list early: Chrome loads it lazily.
voices();

/**
 * Say `text` now, interrupting anything still being said. `overrides` replaces the account's
 * settings (the settings page's "Try it" uses the values not saved yet). Returns false when
 * this browser cannot speak; speech is a bonus and never breaks the page.
 * @param {string} text
 * @param {{voice?: string, rate?: number}} [overrides]
 */
export function say(text, overrides = {}) {
  if (!text || !canSpeak()) return false;
  const settings = { ...speechSettings(), ...overrides };
  try {
    window.speechSynthesis.cancel();
    const utterance = new window.SpeechSynthesisUtterance(text);
    const voice = settings.voice ? voices().find((v) => v.name === settings.voice || v.voiceURI === settings.voice) : null;
    if (voice) {
      utterance.voice = voice;
      utterance.lang = voice.lang;
    } else {
      utterance.lang = document.documentElement.lang || "en";
    }
    utterance.rate = settings.rate;
    utterance.pitch = 1.1;
    window.speechSynthesis.speak(utterance);
    return true;
  } catch {
    return false;
  }
}

/** Say what a tapped object is ("a yellow duck": its description from the server), or that
 * we are not sure, for an object the models could not name. */
export function sayName(description, named) {
  return say(named ? description : UNSURE_TEXT);
}
