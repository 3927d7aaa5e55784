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

/** "All photos" / "Favourites": hide the cards that are not favourites. */
export function initLibraryFilter(bar) {
  const cards = [...document.querySelectorAll(".photo-card")];
  bar.querySelectorAll("[data-filter]").forEach((btn) => btn.addEventListener("click", () => {
    const favouritesOnly = btn.dataset.filter === "favourites";
    bar.querySelectorAll("[data-filter]").forEach((b) => b.setAttribute("aria-pressed", String(b === btn)));
    cards.forEach((card) => {
      card.hidden = favouritesOnly && !card.classList.contains("is-favourite");
    });
  }));
}
