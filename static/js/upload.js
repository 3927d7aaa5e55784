// The upload page: preview of the chosen photo, "Find by name" box, and a submit that goes
// through the JSON API (upload -> poll the job -> show the result in place, no reload).
// Without JavaScript the same form posts to / and the server redirects to the photo page.

import { ApiError, uploadPhoto } from "./api.js";
import { followJob, setProgress } from "./jobs.js";
import { buildFailed, buildResult, buildUnverifiedNotice, enhanceResult, hasUnverifiedWeights } from "./result.js";

const MAX_PROMPT = 500;

function showFieldError(container, message) {
  if (!container) return;
  container.replaceChildren();
  if (message) {
    const tpl = document.getElementById("field-error-template");
    const p = tpl ? tpl.content.firstElementChild.cloneNode(true) : document.createElement("p");
    p.className = "field-error";
    (p.querySelector("span") ?? p).textContent = message;
    container.append(p);
  }
  container.hidden = !message;
  container.closest(".field")?.classList.toggle("field--invalid", Boolean(message));
}

export function initUpload(app) {
  const form = app.querySelector("[data-upload-form]");
  if (!form) return;
  const picker = form.querySelector("[data-picker]");
  const fileInputs = [...form.querySelectorAll('input[type="file"]')];
  const cameraInput = form.querySelector("#image-camera") ?? fileInputs[0];
  const preview = form.querySelector("[data-preview]");
  const previewImg = form.querySelector("[data-preview-img]");
  const previewCaption = form.querySelector("[data-preview-caption]");
  const cameraText = form.querySelector("[data-camera-text]");
  const libraryText = form.querySelector("[data-library-text]");
  const imageError = form.querySelector("#image-error");
  const promptInput = form.querySelector('input[name="prompt"]');
  const promptError = form.querySelector("#prompt-error");
  const modeInputs = [...form.querySelectorAll('input[name="mode"]')];
  const formError = form.querySelector("[data-form-error]");
  const submitBtn = form.querySelector('button[type="submit"]');
  const jobArea = app.querySelector("[data-job-area]");
  const card = jobArea.querySelector("[data-progress]");
  const resultSlot = jobArea.querySelector("[data-result-slot]");
  const againBtn = jobArea.querySelector("[data-again]");

  const texts = { camera: cameraText?.textContent, library: libraryText?.textContent };
  let chosen = null;
  let previewUrl = null;
  let busy = false;

  // --- choosing a photo ---
  function choose(file) {
    chosen = file;
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = file ? URL.createObjectURL(file) : null;
    picker.classList.toggle("has-photo", Boolean(file));
    picker.classList.remove("picker--invalid");
    showFieldError(imageError, "");
    preview.hidden = !file;
    if (file) {
      previewImg.hidden = false;
      previewImg.src = previewUrl;
      previewCaption.textContent = file.name ? `Ready: ${file.name}` : "Ready!";
      if (cameraText) cameraText.textContent = "Take again";
      if (libraryText) libraryText.textContent = "Choose another";
    } else {
      previewImg.removeAttribute("src");
      if (cameraText) cameraText.textContent = texts.camera;
      if (libraryText) libraryText.textContent = texts.library;
    }
  }

  // Some formats (HEIC on most browsers) cannot be previewed; they still upload fine.
  previewImg.addEventListener("error", () => {
    if (!chosen) return;
    previewImg.hidden = true;
    previewCaption.textContent = `Ready: ${chosen.name || "your photo"} (no preview for this kind of photo, but it will still work)`;
  });

  fileInputs.forEach((input) => {
    input.addEventListener("change", () => {
      const file = input.files?.[0];
      if (!file) return;
      fileInputs.forEach((other) => {
        if (other !== input) other.value = "";
      });
      choose(file);
    });
  });

  // Drag and drop a photo onto the picker (desktop and some tablets).
  ["dragenter", "dragover"].forEach((type) => picker.addEventListener(type, (e) => {
    if (![...(e.dataTransfer?.types ?? [])].includes("Files")) return;
    e.preventDefault();
    picker.classList.add("is-dragover");
  }));
  ["dragleave", "drop"].forEach((type) => picker.addEventListener(type, () => picker.classList.remove("is-dragover")));
  picker.addEventListener("drop", (e) => {
    const file = e.dataTransfer?.files?.[0];
    if (!file) return;
    e.preventDefault();
    if (!file.type.startsWith("image/") && !/\.(heic|heif)$/i.test(file.name)) {
      showFieldError(imageError, "That file is not a photo. Try a JPEG, PNG or HEIC photo.");
      return;
    }
    fileInputs.forEach((i) => { i.value = ""; });
    choose(file);
  });

  // --- mode: show the name box only for "Find by name" ---
  function currentMode() {
    return modeInputs.find((i) => i.checked)?.value ?? "everything";
  }
  function syncMode() {
    const mode = currentMode();
    form.classList.toggle("mode-everything", mode === "everything");
    form.classList.toggle("mode-grounded", mode === "grounded");
  }
  modeInputs.forEach((i) => i.addEventListener("change", () => {
    syncMode();
    if (i.checked && i.value === "grounded") promptInput?.focus();
  }));
  syncMode();
  promptInput?.addEventListener("input", () => showFieldError(promptError, ""));

  // --- submit through the API ---
  function validate() {
    let first = null;
    if (!chosen) {
      showFieldError(imageError, "Choose or take a photo first.");
      picker.classList.add("picker--invalid");
      first = cameraInput;
    }
    if (currentMode() === "grounded") {
      const prompt = promptInput.value.trim();
      if (!prompt) {
        showFieldError(promptError, "Type at least one name, like “cat, ball”.");
        first ??= promptInput;
      } else if (prompt.length > MAX_PROMPT) {
        showFieldError(promptError, `That is too long. Use at most ${MAX_PROMPT} letters.`);
        first ??= promptInput;
      }
    }
    first?.focus();
    return !first;
  }

  function showFormError(message) {
    formError.querySelector('[data-slot="form-error-text"]').textContent = message;
    formError.hidden = !message;
    if (message) formError.focus();
  }

  function setBusy(on) {
    busy = on;
    submitBtn.disabled = on;
    submitBtn.setAttribute("aria-busy", String(on));
  }

  function resetJobArea() {
    resultSlot.replaceChildren();
    jobArea.querySelectorAll("[data-unverified-notice], [data-failed]").forEach((el) => el.remove());
    card.hidden = false;
    card.classList.remove("is-done");
    card.querySelector('[data-slot="bar"]').removeAttribute("value");
    againBtn.hidden = true;
  }

  function finish() {
    card.hidden = true;
    againBtn.hidden = false;
    setBusy(false);
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (busy) return;
    showFormError("");
    if (!validate()) return;

    const data = new FormData(form);
    data.delete("image");
    data.set("image", chosen, chosen.name || "photo.jpg");
    data.set("mode", currentMode());
    data.set("prompt", currentMode() === "grounded" ? promptInput.value.trim() : "");

    setBusy(true);
    resetJobArea();
    const scan = card.querySelector('[data-slot="scan"]');
    const scanImg = card.querySelector('[data-slot="progress-img"]');
    scan.hidden = !previewUrl || previewImg.hidden;
    if (!scan.hidden) scanImg.src = previewUrl;
    setProgress(card, 0, "Sending your photo");
    form.hidden = true;
    jobArea.hidden = false;
    window.scrollTo({ top: 0, behavior: "smooth" });
    card.querySelector(".progress-heading").focus({ preventScroll: true });

    let ids;
    try {
      ids = await uploadPhoto(data, (f) => setProgress(card, f * 0.1, `Sending your photo (${Math.round(f * 100)}%)`));
    } catch (err) {
      jobArea.hidden = true;
      form.hidden = false;
      setBusy(false);
      showFormError(err instanceof ApiError ? err.message : "Something went wrong. Please try again.");
      return;
    }

    const pageUrl = `/photos/${encodeURIComponent(ids.photo_id)}`;
    setProgress(card, 0.1, "Photo sent! Waiting for a helper to be free");
    try {
      const { job, photo } = await followJob(card, ids.job_id, ids.photo_id, { start: 0.1 });
      if (photo) {
        if (hasUnverifiedWeights(photo.weights)) resultSlot.before(buildUnverifiedNotice());
        const section = buildResult(photo, { pageLink: true });
        resultSlot.replaceChildren(section);
        enhanceResult(section);
        finish();
        section.querySelector("#result-heading")?.focus({ preventScroll: true });
        section.scrollIntoView({ behavior: "smooth", block: "start" });
      } else {
        showFailure(job.error, pageUrl);
      }
    } catch (err) {
      showFailure(err instanceof ApiError ? err.message : "I lost track of this photo.", pageUrl);
    }
  });

  function showFailure(message, pageUrl) {
    const box = buildFailed(message, pageUrl);
    resultSlot.replaceChildren(box);
    finish();
    box.focus({ preventScroll: true });
    box.scrollIntoView({ behavior: "smooth", block: "start" });
  }

  againBtn.addEventListener("click", () => {
    resetJobArea();
    jobArea.hidden = true;
    form.reset();
    fileInputs.forEach((i) => { i.value = ""; });
    choose(null);
    syncMode();
    form.hidden = false;
    window.scrollTo({ top: 0, behavior: "smooth" });
    cameraInput.focus({ preventScroll: true });
  });
}
