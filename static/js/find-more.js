// "Look for something else" on the photo page: new words on a photo already seen. POST
// /api/v1/photos/<id>/find queues a "words" job on the photo's cached data; when it is done
// its result (the objects found) and overlay (JPEG) are shown in the card.

import { API_BASE, ApiError, getJSON, pollJob, sendJSON } from "./api.js";
import { capitalize } from "./names.js";
import { say } from "./speech.js";

/** What the card says about the things found for `prompt` (a list of labels). */
export function foundText(prompt, labels) {
  const unique = [...new Set(labels.map((l) => capitalize(l)))];
  if (!unique.length) return `I could not find ${prompt} in this photo.`;
  const n = labels.length;
  return `I found ${n} ${n === 1 ? "thing" : "things"}: ${unique.join(", ")}.`;
}

export function initFindMore(card) {
  const photoId = card.dataset.photoId;
  const form = card.querySelector("[data-find-form]");
  const input = form.querySelector('input[name="prompt"]');
  const submit = card.querySelector('[data-slot="find-submit"]');
  const error = card.querySelector('[data-slot="find-error"]');
  const status = card.querySelector('[data-slot="find-status"]');
  const figure = card.querySelector('[data-slot="find-figure"]');
  const img = card.querySelector('[data-slot="find-img"]');
  const caption = card.querySelector('[data-slot="find-caption"]');

  function showError(text) {
    error.textContent = text;
    error.hidden = !text;
    if (text) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }

  function showStatus(text) {
    status.textContent = text;
    status.hidden = !text;
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const prompt = input.value.trim();
    showError("");
    if (!prompt) {
      showError("Type what to look for, like “cat, ball”.");
      input.focus();
      return;
    }
    submit.disabled = true;
    card.setAttribute("aria-busy", "true");
    showStatus(`Looking for ${prompt}…`);
    try {
      const queued = await sendJSON("POST", `${API_BASE}/photos/${encodeURIComponent(photoId)}/find`, { prompt });
      const job = await pollJob(queued.job_id);
      if (job.status !== "done") throw new ApiError(job.error || "That did not work. Please try again.", 422);
      const result = await getJSON(queued.result_url);
      const labels = (result.objects ?? []).map((o) => o.label);
      const text = foundText(result.prompt ?? prompt, labels);
      img.src = result.overlay_url;
      img.alt = labels.length ? `Your photo with these coloured in: ${[...new Set(labels)].join(", ")}` : "Your photo";
      caption.textContent = text;
      figure.hidden = false;
      showStatus("");
      say(text);
    } catch (err) {
      showStatus("");
      showError(err instanceof ApiError ? err.message : "That did not work. Please try again.");
    } finally {
      submit.disabled = false;
      card.removeAttribute("aria-busy");
    }
  });
}
