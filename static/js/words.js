// For grown-ups on the photo page: "words we learned" (tap to hear, add, remove) and the
// favourite star. Both are plain forms without JavaScript; here they use the JSON API instead.

import { ApiError, csrfToken, sendJSON } from "./api.js";
import { say } from "./speech.js";

function chip(photoId, word, template) {
  const li = template.content.firstElementChild.cloneNode(true);
  li.dataset.wordId = String(word.id);
  li.querySelector("[data-say]").dataset.say = word.word;
  li.querySelector('[data-slot="word"]').textContent = word.word;
  const form = li.querySelector("form");
  form.action = `/photos/${encodeURIComponent(photoId)}/words/${word.id}/delete`;
  form.querySelector('input[name="csrf_token"]').value = csrfToken();
  form.querySelector("button").setAttribute("aria-label", `Remove the word ${word.word}`);
  return li;
}

export function initWords(card) {
  const photoId = card.dataset.photoId;
  const list = card.querySelector('[data-slot="words"]');
  const empty = card.querySelector('[data-slot="words-empty"]');
  const form = card.querySelector("[data-word-add]");
  const input = form.querySelector('input[name="word"]');
  const error = card.querySelector('[data-slot="word-error"]');
  const template = card.querySelector("template[data-chip-template]");

  function render(words) {
    list.replaceChildren(...words.map((w) => chip(photoId, w, template)));
    empty.hidden = words.length > 0;
    card.dataset.count = String(words.length);
  }

  function showError(text) {
    error.textContent = text;
    error.hidden = !text;
    if (text) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }

  list.addEventListener("click", async (e) => {
    const sayBtn = e.target.closest("[data-say]");
    if (sayBtn) {
      say(sayBtn.dataset.say);
      return;
    }
    const remove = e.target.closest(".word-remove-btn");
    if (!remove) return;
    e.preventDefault();
    const li = remove.closest("[data-word-id]");
    try {
      await sendJSON("DELETE", `/api/v1/photos/${encodeURIComponent(photoId)}/words/${li.dataset.wordId}`);
      const next = li.nextElementSibling ?? li.previousElementSibling;
      li.remove();
      empty.hidden = list.children.length > 0;
      (next?.querySelector("[data-say]") ?? input).focus();
    } catch (err) {
      showError(err instanceof ApiError ? err.message : "That did not work. Please try again.");
    }
  });

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const word = input.value.trim();
    if (!word) {
      showError("Type a word first, like “teddy”.");
      input.focus();
      return;
    }
    try {
      const res = await sendJSON("POST", `/api/v1/photos/${encodeURIComponent(photoId)}/words`, { word });
      render(res.words);
      showError("");
      input.value = "";
      say(res.word.word);
    } catch (err) {
      showError(err instanceof ApiError ? err.message : "That did not work. Please try again.");
      input.focus();
    }
  });
  input.addEventListener("input", () => showError(""));

  // Words named in a cut-out or found in the game arrive here too.
  document.addEventListener("va:words", (e) => {
    if (String(e.detail?.photoId) === String(photoId) && Array.isArray(e.detail.words)) render(e.detail.words);
  });
}

export function initFavourite(form) {
  const photoId = form.dataset.photoId;
  const btn = form.querySelector("button");
  const text = form.querySelector('[data-slot="fav-text"]');
  const value = form.querySelector('[data-slot="fav-value"]');
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const favourite = btn.getAttribute("aria-pressed") !== "true";
    btn.disabled = true;
    try {
      const res = await sendJSON("PUT", `/api/v1/photos/${encodeURIComponent(photoId)}/favourite`, { favourite });
      btn.setAttribute("aria-pressed", String(res.favourite));
      btn.dataset.favourite = String(res.favourite);
      text.textContent = res.favourite ? "Favourite" : "Add to favourites";
      value.value = res.favourite ? "0" : "1";
      if (res.favourite) {
        btn.classList.remove("is-popping");
        void btn.offsetWidth;
        btn.classList.add("is-popping");
      }
    } catch {
      form.submit(); // let the server answer with a page
    } finally {
      btn.disabled = false;
    }
  });
}
