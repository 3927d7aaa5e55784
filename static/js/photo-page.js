// The photo page while its job is still queued or running: poll, then show the result in place.
// (Without JavaScript a <noscript> meta refresh reloads the page instead.)

import { ApiError } from "./api.js";
import { followJob } from "./jobs.js";
import { buildFailed, buildResult, buildUnverifiedNotice, enhanceResult, hasUnverifiedWeights } from "./result.js";
import { replaceBadge } from "./ui.js";

export async function initPhotoPage(root) {
  root.querySelectorAll("[data-result]").forEach(enhanceResult);
  const { jobId, photoId } = root.dataset;
  const card = root.querySelector("[data-progress]");
  const slot = root.querySelector("[data-result-slot]");
  if (!jobId || !card || !slot) return;

  const badge = document.querySelector(".photo-head [data-status-slot]");
  let lastStatus = null;

  try {
    const { job, photo } = await followJob(card, jobId, photoId, {
      onStatus(status) {
        if (status !== lastStatus && badge) replaceBadge(badge, status);
        lastStatus = status;
      },
    });
    lastStatus = job.status;
    if (photo) {
      if (hasUnverifiedWeights(photo.weights) && !document.querySelector("[data-unverified-notice]")) {
        root.before(buildUnverifiedNotice());
      }
      const section = buildResult(photo, { pageLink: false });
      card.replaceWith(section);
      enhanceResult(section);
      document.querySelector("[data-words]")?.removeAttribute("hidden");
      document.querySelector("[data-find-more]")?.removeAttribute("hidden");
      section.querySelector("#result-heading")?.focus({ preventScroll: true });
    } else {
      card.classList.add("is-done");
      card.querySelector(".progress-body").hidden = true;
      const box = buildFailed(job.error, null);
      card.before(box);
      box.focus({ preventScroll: true });
    }
  } catch (err) {
    lastStatus = "failed";
    const box = buildFailed(err instanceof ApiError ? err.message : "I lost track of this photo. Try reloading the page.", null);
    card.replaceWith(box);
    box.focus({ preventScroll: true });
  }
  if (badge && lastStatus) replaceBadge(badge, lastStatus);
  root.querySelector(".nojs-note")?.remove();
}
