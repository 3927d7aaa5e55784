// A video's page: while its tracking job is queued or running, the progress card shows frames
// done / total and, as soon as the worker stores them, the first frames' masks; when the job
// ends the page reloads to show the result (or the reason it failed). A finished video's
// result is made interactive (video-learn.js).

import { ApiError, pollJob } from "./api.js";
import { setProgress, showPreview } from "./jobs.js";
import { buildFailed } from "./result.js";
import { replaceBadge } from "./ui.js";
import { initVideoLearning } from "./video-learn.js";

/** What the card says for a job: "Frame 12 of 50", else its stage or its status. */
export function videoStage(job) {
  if (job.status === "queued") return "Waiting for a helper to be free";
  if (job.frames_total) return `Frame ${job.frames_done ?? 0} of ${job.frames_total}`;
  if (job.status === "done") return "All done!";
  return job.stage || "Looking closely";
}

export async function initVideoPage(root) {
  root.querySelectorAll("[data-video-result]").forEach(initVideoLearning);
  const { jobId } = root.dataset;
  const card = root.querySelector("[data-video-progress]");
  if (!jobId || !card) return;
  const badge = document.querySelector(".photo-head [data-status-slot]");
  let lastStatus = null;
  try {
    const job = await pollJob(jobId, {
      interval: 1000,
      onUpdate(j) {
        setProgress(card, j.status === "queued" ? null : j.progress, videoStage(j));
        if (j.frames_total) {
          card.dataset.framesDone = String(j.frames_done ?? 0);
          card.dataset.framesTotal = String(j.frames_total);
        }
        if (j.preview_url) {
          showPreview(card, j.preview_url);
          card.querySelector('[data-slot="progress-img"]').alt = "The first frames of your video, with the things being followed coloured in";
          card.dataset.preview = "shown";
        }
        if (j.status !== lastStatus && badge) replaceBadge(badge, j.status);
        lastStatus = j.status;
      },
    });
    card.dataset.status = job.status;
    window.location.reload(); // the server renders the result, or the reason it failed
  } catch (err) {
    const box = buildFailed(err instanceof ApiError ? err.message : "I lost track of this video. Try reloading the page.", null);
    card.replaceWith(box);
    box.focus({ preventScroll: true });
  }
}
