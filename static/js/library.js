// The library: photos still being analysed get their status badge updated live.

import { pollJob } from "./api.js";
import { replaceBadge } from "./ui.js";

export function initLibrary(list) {
  list.querySelectorAll("[data-pending-job]").forEach((card) => {
    const badgeSlot = card.querySelector("[data-status-slot]");
    let shown = card.className.match(/photo-card--(\w+)/)?.[1];
    pollJob(card.dataset.pendingJob, {
      interval: 2500,
      onUpdate(job) {
        if (job.status === shown) return;
        card.classList.remove(`photo-card--${shown}`);
        card.classList.add(`photo-card--${job.status}`);
        shown = job.status;
        replaceBadge(badgeSlot, job.status);
      },
    }).then(() => {
      delete card.dataset.pendingJob;
    }).catch(() => {
      /* leave the badge as it was; a reload shows the real state */
    });
  });
}
