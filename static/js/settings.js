// The grown-ups' settings page: the device's voices in the voice list, the speed shown as a
// number, and "Try it" speaking with the values chosen (before they are saved).

import { canSpeak, say, voices } from "./speech.js";

export function initSettings(form) {
  const select = form.querySelector("[data-voice-select]");
  const rate = form.querySelector("[data-rate-input]");
  const output = form.querySelector("[data-rate-output]");
  const status = form.querySelector("[data-voice-status]");
  const saved = select.dataset.saved ?? "";
  const lang = (document.documentElement.lang || "en").slice(0, 2).toLowerCase();

  function fillVoices() {
    const list = voices();
    if (!list.length) return;
    const chosen = select.value || saved;
    const mine = list.filter((v) => v.lang?.toLowerCase().startsWith(lang));
    const others = list.filter((v) => !mine.includes(v));
    const options = [...mine, ...others].map((v) => {
      const o = document.createElement("option");
      o.value = v.name;
      o.textContent = `${v.name} (${v.lang})`;
      return o;
    });
    select.replaceChildren(select.options[0], ...options);
    if (chosen && !list.some((v) => v.name === chosen)) {
      const o = document.createElement("option");
      o.value = chosen;
      o.textContent = `${chosen} (not on this device)`;
      select.append(o);
    }
    select.value = chosen;
  }

  fillVoices();
  if (canSpeak()) {
    window.speechSynthesis.addEventListener?.("voiceschanged", fillVoices);
  } else if (status) {
    status.textContent = "This browser cannot read words out loud.";
  }

  const showRate = () => {
    output.textContent = Number(rate.value).toFixed(2);
  };
  rate.addEventListener("input", showRate);
  showRate();

  form.querySelector("[data-try-voice]")?.addEventListener("click", () => {
    const ok = say("This is a dog.", { voice: select.value, rate: Number(rate.value) });
    if (status) status.textContent = ok ? "" : "This browser cannot read words out loud.";
  });
}
