// The upload page: preview of the chosen photo, "Find by name" box, and a submit that goes
// through the JSON API (upload -> poll the job -> show the result in place, no reload).
// A chosen video plays in the page, where what to follow is tapped on a paused moment
// (frame-picker.js); it is sent to /api/v1/videos and its own page follows the tracking.
// Without JavaScript the same form posts to / and the server redirects to the photo page.

import { ApiError, uploadPhoto, uploadVideo } from "./api.js";
import { FramePicker } from "./frame-picker.js";
import { followJob, setProgress } from "./jobs.js";
import { buildFailed, buildResult, buildUnverifiedNotice, enhanceResult, hasUnverifiedWeights } from "./result.js";

const MAX_PROMPT = 500;
const VIDEO_NAME = /\.(mp4|m4v|mov|webm|mkv|3gp)$/i;

/** A video by its declared type, or by its name when the browser declares none. */
export function isVideoFile(file) {
  return Boolean(file) && (file.type.startsWith("video/") || (!file.type && VIDEO_NAME.test(file.name)));
}

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
  const modeInputs = [...form.querySelectorAll('input[name="mode"]')];  // with the video-only "point"
  const formError = form.querySelector("[data-form-error]");
  const pointsChoice = form.querySelector("[data-points-choice]");
  const pointsInput = pointsChoice?.querySelector("input");
  const frameRoot = form.querySelector("[data-frame-picker]");
  const frames = frameRoot ? new FramePicker(frameRoot, {
    onChange: () => showFieldError(imageError, ""),
    onUnplayable: () => {
      // This browser cannot show the file (HEVC on many Android phones): it can still be sent,
      // with the things to follow found on its first frame.
      frameRoot.hidden = true;
      previewCaption.textContent = `Ready: ${chosen?.name || "your video"} (this browser cannot show it, so I will look at its first moment)`;
      setVideoModes(true, { canTap: false });
    },
  }) : null;
  const submitBtn = form.querySelector('button[type="submit"]');
  const jobArea = app.querySelector("[data-job-area]");
  const card = jobArea.querySelector("[data-progress]");
  const resultSlot = jobArea.querySelector("[data-result-slot]");
  const againBtn = jobArea.querySelector("[data-again]");

  const texts = { camera: cameraText?.textContent, library: libraryText?.textContent };
  let chosen = null;
  let video = false;
  let previewUrl = null;
  let busy = false;

  // --- a video: its own choices of what to follow ---
  const submitText = submitBtn.querySelector("span");
  const photoSubmit = submitText?.textContent;
  function setVideoModes(on, { canTap = true } = {}) {
    form.classList.toggle("is-video", on);
    if (submitText) submitText.textContent = on ? "Follow them!" : photoSubmit;
    form.querySelectorAll("[data-video-text]").forEach((el) => {
      el.textContent = on ? el.dataset.videoText : el.dataset.photoText;
    });
    if (pointsChoice) {
      pointsChoice.hidden = !(on && canTap);
      pointsInput.disabled = !(on && canTap);
      if (on && canTap) pointsInput.checked = true;
      else if (pointsInput.checked) {
        pointsInput.checked = false;
        modeInputs.find((i) => i.value === "everything").checked = true;
      }
    }
    syncMode();
  }

  // --- choosing a photo or a video ---
  function choose(file) {
    chosen = file;
    video = isVideoFile(file);
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = file ? URL.createObjectURL(file) : null;
    picker.classList.toggle("has-photo", Boolean(file));
    picker.classList.remove("picker--invalid");
    showFieldError(imageError, "");
    preview.hidden = !file;
    previewImg.hidden = video || !file;
    if (frameRoot) frameRoot.hidden = !video;
    if (video) frames.load(previewUrl);
    else frames?.unload();
    setVideoModes(video);
    if (file && video) {
      previewCaption.textContent = file.name ? `Ready: ${file.name}` : "Ready!";
      if (cameraText) cameraText.textContent = "Take a photo";
      if (libraryText) libraryText.textContent = "Choose a photo";
    } else if (file) {
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
    if (!chosen || video) return;
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
    if (!file.type.startsWith("image/") && !/\.(heic|heif)$/i.test(file.name) && !isVideoFile(file)) {
      showFieldError(imageError, "That file is not a photo or a video. Try a JPEG, PNG or HEIC photo, or an MP4, MOV or WebM video.");
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
    form.classList.toggle("mode-point", mode === "point");
    frames?.setTapping(video && mode === "point");
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
      showFieldError(imageError, "Choose or take a photo or a video first.");
      picker.classList.add("picker--invalid");
      first = cameraInput;
    } else if (video && currentMode() === "point" && !frames.taps.length) {
      showFieldError(imageError, "Pause the video, then tap at least one thing to follow.");
      first = frameRoot.querySelector("[data-frame-play]");
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

    if (video) {
      await sendVideo();
      return;
    }
    const data = new FormData(form);
    data.delete("image");
    data.delete("video");
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

  /** A video goes to /api/v1/videos with what to follow; its page then follows the job. */
  async function sendVideo() {
    const mode = currentMode();
    const data = new FormData();
    data.set("video", chosen, chosen.name || "video.mp4");
    data.set("mode", mode);
    if (mode === "grounded") data.set("prompt", promptInput.value.trim());
    if (frames?.playable) {
      const { time_s: time, points } = frames.prompt();
      data.set("time_s", time.toFixed(3));
      if (mode === "point") data.set("points", JSON.stringify(points));
    }
    setBusy(true);
    resetJobArea();
    const scan = card.querySelector('[data-slot="scan"]');
    scan.hidden = true;
    card.querySelector(".progress-heading").textContent = "Sending your video…";
    setProgress(card, 0, "Sending your video");
    form.hidden = true;
    jobArea.hidden = false;
    window.scrollTo({ top: 0, behavior: "smooth" });
    card.querySelector(".progress-heading").focus({ preventScroll: true });
    try {
      const ids = await uploadVideo(data, (f) => setProgress(card, f, `Sending your video (${Math.round(f * 100)}%)`));
      setProgress(card, 1, "Video sent! Opening its page");
      frames.unload();
      window.location.assign(`/videos/${encodeURIComponent(ids.video_id)}`);
    } catch (err) {
      jobArea.hidden = true;
      form.hidden = false;
      setBusy(false);
      card.querySelector(".progress-heading").textContent = "Looking at your photo…";
      showFormError(err instanceof ApiError ? err.message : "Something went wrong. Please try again.");
    }
  }

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
