// Following one analysis job: fills the progress card (stage text, bar) while polling, then
// fetches the finished photo. Shared by the upload page and the photo page.

import { getPhoto, pollJob } from "./api.js";

const QUEUED_TEXT = "Waiting for a helper to be free";
const RUNNING_TEXT = "Looking closely";

/**
 * Update a progress card.
 * @param {HTMLElement} card  the [data-progress] element
 * @param {number|null} fraction  0-1, or null for "not known yet" (an indeterminate bar)
 * @param {string} [stage]  words for what is happening now; only changes are announced
 */
export function setProgress(card, fraction, stage) {
  const bar = card.querySelector('[data-slot="bar"]');
  const pct = card.querySelector('[data-slot="pct"]');
  const stageEl = card.querySelector('[data-slot="stage"]');
  if (fraction == null || Number.isNaN(fraction)) {
    bar.removeAttribute("value");
    bar.textContent = "";
    pct.textContent = "Starting";
  } else {
    const value = Math.round(Math.min(1, Math.max(0, fraction)) * 100);
    // Never move backwards: the bar shows upload and analysis as one journey.
    const shown = Math.max(value, bar.hasAttribute("value") ? Number(bar.value) : 0);
    bar.value = shown;
    bar.textContent = `${shown}%`;
    pct.textContent = `${shown}% done`;
  }
  if (stage && stageEl.textContent !== stage) stageEl.textContent = stage;
}

/**
 * Show the worker's first picture of a running job (everything mode: the objects coloured in
 * before their names are found) in the card's photo slot; once per URL.
 * @param {HTMLElement} card  the [data-progress] element
 * @param {string} url  the job's preview_url
 */
export function showPreview(card, url) {
  const img = card.querySelector('[data-slot="progress-img"]');
  if (!img || img.dataset.preview === url) return;
  img.dataset.preview = url;
  img.src = url;
  img.alt = "Your photo with each thing we found coloured in; their names are coming";
  const scan = card.querySelector('[data-slot="scan"]');
  if (scan) scan.hidden = false;
}

function stageFor(job) {
  if (job.status === "queued") return job.stage || QUEUED_TEXT;
  if (job.status === "running") return job.stage || RUNNING_TEXT;
  if (job.status === "done") return "All done!";
  return job.stage || "";
}

/**
 * Poll a job into a progress card. `start` is where the bar begins (0.1 after an upload) so the
 * analysis fills the rest. `onStatus(status)` is called on every poll. Resolves with
 * {job, photo}: photo is the API photo JSON when done, null when the job failed.
 */
export async function followJob(card, jobId, photoId, { start = 0, signal, onStatus } = {}) {
  const span = 1 - start;
  const job = await pollJob(jobId, {
    signal,
    onUpdate(j) {
      const p = typeof j.progress === "number" ? j.progress : 0;
      const fraction = j.status === "queued" && !p ? (start || null) : start + span * p;
      setProgress(card, fraction, stageFor(j));
      if (j.preview_url) showPreview(card, j.preview_url);
      onStatus?.(j.status);
    },
  });
  if (job.status !== "done") return { job, photo: null };
  setProgress(card, 1, "All done!");
  const photo = await getPhoto(job.photo_id ?? photoId, { signal });
  return { job, photo };
}
