// Talking to the JSON API (docs/api.md): upload, job polling, photo details.
// Every state-changing call sends the CSRF token from <meta name="csrf-token"> as X-CSRFToken.

export const API_BASE = "/api/v1";

/** An API call that failed; `message` is readable by a grown-up, `status` is the HTTP status (0 = network). */
export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

const FRIENDLY = {
  0: "I can’t reach the server. Check the internet connection and try again.",
  400: "Something about that request was not right. Please try again.",
  401: "You have been logged out. Please log in again, then try once more.",
  403: "This account is not allowed to do that.",
  404: "That photo is not there any more.",
  413: "That file is too big. Try a smaller one.",
  415: "That file is not a photo I can read. Try a JPEG, PNG or HEIC photo.",
  429: "Lots of photos at once! Please wait a minute and try again.",
};

/** The server's own {"error": "..."} text when there is one, else a friendly default. */
export function messageFor(status, body) {
  if (body && typeof body.error === "string" && body.error.trim()) return body.error.trim();
  return FRIENDLY[status] ?? `Something went wrong (error ${status}). Please try again.`;
}

export function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.content ?? "";
}

function parseJSON(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** GET a JSON document; throws ApiError on HTTP errors, network errors and non-JSON answers. */
export async function getJSON(path, { signal } = {}) {
  let res;
  try {
    res = await fetch(path, {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
      cache: "no-store",
      signal,
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(FRIENDLY[0], 0);
  }
  const body = parseJSON(await res.text());
  if (!res.ok) throw new ApiError(messageFor(res.status, body), res.status);
  // A login redirect answers 200 with an HTML page: treat it as "logged out".
  if (body === null) throw new ApiError(FRIENDLY[401], 401);
  return body;
}

/**
 * POST the upload form to /api/v1/photos with XMLHttpRequest, because fetch() cannot report
 * upload progress. Resolves with {photo_id, job_id}; rejects with ApiError.
 * @param {FormData} formData  image, mode, prompt
 * @param {(fraction: number) => void} [onProgress]  0-1 of the bytes sent
 */
export function uploadPhoto(formData, onProgress) {
  return uploadForm("photos", formData, onProgress, "photo");
}

/**
 * POST a video and what to follow in it to /api/v1/videos (see uploadPhoto). Resolves with
 * {video_id, job_id}; rejects with ApiError.
 * @param {FormData} formData  video, mode, prompt, points (JSON), time_s
 * @param {(fraction: number) => void} [onProgress]
 */
export function uploadVideo(formData, onProgress) {
  return uploadForm("videos", formData, onProgress, "video");
}

function uploadForm(collection, formData, onProgress, what) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `${API_BASE}/${collection}`);
    xhr.setRequestHeader("X-CSRFToken", csrfToken());
    xhr.setRequestHeader("Accept", "application/json");
    xhr.timeout = 5 * 60 * 1000;
    if (onProgress) {
      xhr.upload.addEventListener("progress", (e) => {
        if (e.lengthComputable && e.total > 0) onProgress(e.loaded / e.total);
      });
    }
    xhr.addEventListener("load", () => {
      const body = parseJSON(xhr.responseText);
      if (xhr.status >= 200 && xhr.status < 300 && body && body.job_id != null) {
        resolve(body);
      } else if (xhr.status >= 200 && xhr.status < 300) {
        reject(new ApiError(FRIENDLY[401], 401)); // redirected to the login page
      } else {
        reject(new ApiError(messageFor(xhr.status, body), xhr.status));
      }
    });
    xhr.addEventListener("error", () => reject(new ApiError(FRIENDLY[0], 0)));
    xhr.addEventListener("timeout", () => reject(new ApiError(`Sending the ${what} took too long. Please try again.`, 0)));
    xhr.send(formData);
  });
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      reject(new DOMException("Aborted", "AbortError"));
    }, { once: true });
  });
}

/**
 * Poll GET /api/v1/jobs/<id> until the job is done or failed; resolves with the last job JSON.
 * Network blips and 5xx answers are retried with back-off; 401/403/404 end the polling.
 * @param {string} jobId
 * @param {{onUpdate?: (job: object) => void, interval?: number, signal?: AbortSignal}} [opts]
 */
export async function pollJob(jobId, { onUpdate, interval = 800, signal } = {}) {
  let failures = 0;
  for (;;) {
    try {
      const job = await getJSON(`${API_BASE}/jobs/${encodeURIComponent(jobId)}`, { signal });
      failures = 0;
      onUpdate?.(job);
      if (job.status === "done" || job.status === "failed") return job;
    } catch (err) {
      if (err.name === "AbortError") throw err;
      if (err instanceof ApiError && [401, 403, 404].includes(err.status)) throw err;
      failures += 1;
      if (failures >= 8) throw err;
    }
    const base = document.hidden ? interval * 4 : interval;
    await sleep(failures ? Math.min(base * 2 ** failures, 15000) : base, signal);
  }
}

export function getPhoto(photoId, opts) {
  return getJSON(`${API_BASE}/photos/${encodeURIComponent(photoId)}`, opts);
}

export function getVideo(videoId, opts) {
  return getJSON(`${API_BASE}/videos/${encodeURIComponent(videoId)}`, opts);
}

/**
 * Send a state-changing JSON request (POST/PUT/DELETE) with the CSRF token. Resolves with the
 * parsed body (null for 204); throws ApiError with the server's readable message.
 * @param {string} method
 * @param {string} path
 * @param {object} [body]
 */
export async function sendJSON(method, path, body) {
  let res;
  try {
    res = await fetch(path, {
      method,
      headers: {
        Accept: "application/json",
        "Content-Type": "application/json",
        "X-CSRFToken": csrfToken(),
      },
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(FRIENDLY[0], 0);
  }
  if (res.status === 204) return null;
  const parsed = parseJSON(await res.text());
  if (!res.ok) throw new ApiError(messageFor(res.status, parsed), res.status);
  if (parsed === null) throw new ApiError(FRIENDLY[401], 401);
  return parsed;
}
