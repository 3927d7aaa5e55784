// Taps decoded on the device, as SAM's own web demo does: MobileSAM's prompt encoder and mask
// decoder (two ONNX graphs a worker exported from its checkpoint, GET /api/v1/decoder) run with
// onnxruntime-web (WebAssembly, served from static/vendor/ort/, no CDN) on the photo's image
// embedding (1x256x64x64 float16, the photo's embedding.f16, fetched once). Inputs and outputs
// as models/segment/onnx_decoder.py documents them: the projection graph runs once per photo,
// the decoder graph once per tap and returns SAM's low-res mask logits (the part of its 256x256
// grid under the photo), and LogitMask upsamples them only where a pixel is drawn or counted.
// When WebAssembly, the decoder or the embedding is missing, openDecoder resolves null and the
// page sends taps to the worker instead.

import { getJSON } from "./api.js";

const ORT_URL = "/static/vendor/ort/ort.wasm.min.mjs";
const ORT_DIR = "/static/vendor/ort/";
const LONG_SIDE = 1024; // MobileSAM's encoder input, long side (ResizeLongestSide)
const LOW_RES = 256; // side of SAM's low-res mask logits, covering the padded 1024x1024 input
const UPSCALE = LONG_SIDE / LOW_RES;
const GRAPH = 3; // the decoder graph's layout this page runs (GRAPH_VERSION in onnx_decoder.py)
const EMBEDDING_VALUES = 256 * 64 * 64;

let sessionPromise = null; // one pair of sessions per page, shared by every photo on it

/** float16 bits -> float32 value (IEEE 754 binary16: 1 sign, 5 exponent, 10 fraction bits). */
function halfToFloat(h) {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

let halfTable = null;

/** The embedding file's little-endian float16 bytes as a Float32Array (a 64k-entry table). */
export function float16ToFloat32(buffer) {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let i = 0; i < 65536; i += 1) halfTable[i] = halfToFloat(i);
  }
  const bits = new Uint16Array(buffer);
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i += 1) out[i] = halfTable[bits[i]];
  return out;
}

/** (h, w) of a photo resized to 1024 on its long side, rounded as SAM's get_preprocess_shape. */
export function workSize(height, width) {
  const scale = LONG_SIDE / Math.max(height, width);
  return [Math.floor(height * scale + 0.5), Math.floor(width * scale + 0.5)];
}

/**
 * WebAssembly threads for the decoder: half the cores, at most 4 (onnxruntime-web's own default),
 * when the page is cross-origin isolated (the app's COOP/COEP headers: threads share memory
 * through a SharedArrayBuffer), else 1.
 */
export function decoderThreads() {
  if (!self.crossOriginIsolated) return 1;
  return Math.min(4, Math.ceil((navigator.hardwareConcurrency || 1) / 2));
}

async function session(decoderUrl) {
  if (!sessionPromise) {
    sessionPromise = (async () => {
      if (typeof WebAssembly !== "object") return null;
      const info = await getJSON(decoderUrl);
      if (info.graph !== GRAPH) return null; // a decoder published for another page version
      const ort = await import(ORT_URL);
      ort.env.wasm.wasmPaths = ORT_DIR;
      ort.env.wasm.numThreads = decoderThreads();
      const options = { executionProviders: ["wasm"] };
      // One at a time: onnxruntime-web loads its WebAssembly module with the first session.
      const created = await ort.InferenceSession.create(info.url, options);
      const projections = await ort.InferenceSession.create(info.projections_url, options);
      return { ort, session: created, projections, info };
    })().catch(() => null);
  }
  return sessionPromise;
}

/**
 * Bilinear source rows (or columns) of SAM's upsampling of the 256x256 low-res logits to the
 * padded 1024x1024 encoder input (PyTorch's upsample_bilinear2d, align_corners=False, scale 1/4)
 * for `n` positions: position k (a work pixel's centre is k + 0.5, `at(k)` gives it) reads
 * low-res rows i0[k] and i1[k] with weights 1 - w[k] and w[k].
 */
function bilinearAxis(n, at = (k) => k + 0.5) {
  const i0 = new Int32Array(n);
  const i1 = new Int32Array(n);
  const w = new Float64Array(n);
  for (let k = 0; k < n; k += 1) {
    const src = Math.max(0, at(k) / UPSCALE - 0.5);
    const lo = Math.floor(src);
    i0[k] = lo;
    i1[k] = lo < LOW_RES - 1 ? lo + 1 : lo;
    w[k] = src - lo;
  }
  return { i0, i1, w };
}

/** [first, last] positions of `axis` whose two source rows include one of lo..hi, or null. */
function reach(axis, lo, hi) {
  let first = -1;
  let last = -1;
  for (let k = 0; k < axis.i0.length; k += 1) {
    if (axis.i1[k] < lo || axis.i0[k] > hi) continue;
    if (first < 0) first = k;
    last = k;
  }
  return first < 0 ? null : [first, last];
}

/**
 * A mask the decoder returned, kept as its low-res logits: the mask at the encoder-input size
 * (workH x workW, the photo resized to 1024 on its long side) is where their bilinear
 * upsampling is > 0, as PyTorch computes it on the server. Stands for the whole photo (h x w);
 * the same interface as rle.js's Mask (h, w, area, empty, contains, box, render). Pixels are
 * upsampled only inside the box of the positive logits (nothing outside it can be > 0), a row
 * at a time from two low-res rows interpolated along it (the separable form of the same
 * arithmetic); drawing samples the logits at the canvas's own pixels instead of making the
 * 1024-px mask, and a tap needs only `empty` (the first pixel found), not the whole count.
 */
export class LogitMask {
  /**
   * @param {Float32Array} logits  rows x cols, row-major: the top-left of SAM's 256x256 logits
   */
  constructor(logits, rows, cols, workH, workW, photoH, photoW) {
    this.logits = logits;
    this.rows = rows;
    this.cols = cols;
    this.workH = workH;
    this.workW = workW;
    this.h = photoH;
    this.w = photoW;
    let [r0, c0, r1, c1] = [rows, cols, -1, -1]; // the box of positive logits
    for (let r = 0; r < rows; r += 1) {
      for (let c = 0; c < cols; c += 1) {
        if (!(logits[r * cols + c] > 0)) continue;
        if (r < r0) r0 = r;
        if (r > r1) r1 = r;
        if (c < c0) c0 = c;
        if (c > c1) c1 = c;
      }
    }
    this.positive = r1 < 0 ? null : [r0, c0, r1, c1];
    this.scanned = null; // {count, box} of the work-size mask, once counted
  }

  /**
   * Calls visit(k, values, first) for each position k of `ya` whose upsampled row can hold a
   * positive logit, `values` (Float32Array) being that row's logits at positions first.. of
   * `xa` (the ones that can be positive), until visit returns true. Nothing is visited for an
   * empty mask.
   */
  eachRow(ya, xa, visit) {
    if (!this.positive) return;
    const [pr0, pc0, pr1, pc1] = this.positive;
    const rowSpan = reach(ya, pr0, pr1);
    const colSpan = reach(xa, pc0, pc1);
    if (!rowSpan || !colSpan) return;
    const [first, last] = colSpan;
    const span = last - first + 1;
    const { logits, cols } = this;
    const cache = new Array(this.rows); // low-res row i interpolated along xa
    const along = (i) => {
      if (!cache[i]) {
        const out = new Float32Array(span);
        const base = i * cols;
        for (let k = 0; k < span; k += 1) {
          const w = xa.w[first + k];
          out[k] = (1 - w) * logits[base + xa.i0[first + k]] + w * logits[base + xa.i1[first + k]];
        }
        cache[i] = out;
      }
      return cache[i];
    };
    const values = new Float32Array(span);
    for (let k = rowSpan[0]; k <= rowSpan[1]; k += 1) {
      const a = along(ya.i0[k]);
      const b = along(ya.i1[k]);
      const w = ya.w[k];
      for (let j = 0; j < span; j += 1) values[j] = (1 - w) * a[j] + w * b[j];
      if (visit(k, values, first) === true) return;
    }
  }

  /** {count, box}: pixels of the work-size mask and their box [x0, y0, x1, y1], or null. */
  scan() {
    if (this.scanned) return this.scanned;
    let count = 0;
    let [x0, y0, x1, y1] = [Infinity, Infinity, -1, -1];
    this.eachRow(bilinearAxis(this.workH), bilinearAxis(this.workW), (r, values, first) => {
      let lo = -1;
      let hi = -1;
      for (let j = 0; j < values.length; j += 1) {
        if (values[j] > 0) {
          count += 1;
          if (lo < 0) lo = j;
          hi = j;
        }
      }
      if (lo < 0) return;
      if (first + lo < x0) x0 = first + lo;
      if (first + hi > x1) x1 = first + hi;
      if (r < y0) y0 = r;
      y1 = r;
    });
    this.scanned = { count, box: x1 < 0 ? null : [x0, y0, x1, y1] };
    return this.scanned;
  }

  /** True when the work-size mask has no pixel: stops at the first one it finds. */
  get empty() {
    if (this.scanned) return this.scanned.count === 0;
    let found = false;
    this.eachRow(bilinearAxis(this.workH), bilinearAxis(this.workW), (r, values) => {
      for (let j = 0; !found && j < values.length; j += 1) found = values[j] > 0;
      return found; // true stops the rows
    });
    return !found;
  }

  /** Mask pixels in the photo (the work-size count scaled to photo pixels); 0 when empty. */
  get area() {
    const { count } = this.scan();
    return Math.round(count * (this.h / this.workH) * (this.w / this.workW));
  }

  /** The work-size mask (Uint8Array workH * workW, row-major, 1 inside), as PyTorch thresholds
   * SAM's upsampled logits. */
  get bits() {
    const { workW } = this;
    const bits = new Uint8Array(this.workH * workW);
    this.eachRow(bilinearAxis(this.workH), bilinearAxis(workW), (r, values, first) => {
      for (let j = 0; j < values.length; j += 1) bits[r * workW + first + j] = values[j] > 0 ? 1 : 0;
    });
    return bits;
  }

  contains(x, y) {
    const col = Math.floor((x * this.workW) / this.w);
    const row = Math.floor((y * this.workH) / this.h);
    if (col < 0 || row < 0 || col >= this.workW || row >= this.workH) return false;
    let inside = false;
    const ya = bilinearAxis(1, () => row + 0.5);
    const xa = bilinearAxis(1, () => col + 0.5);
    this.eachRow(ya, xa, (r, values) => { inside = values[0] > 0; });
    return inside;
  }

  /** Tight box [x0, y0, x1, y1] in photo pixels, or null for an empty mask. */
  box() {
    const { box } = this.scan();
    if (!box) return null;
    const [x0, y0, x1, y1] = box;
    const sx = this.w / this.workW;
    const sy = this.h / this.workH;
    return [x0 * sx, y0 * sy, Math.min(this.w, (x1 + 1) * sx), Math.min(this.h, (y1 + 1) * sy)];
  }

  /**
   * As rle.js Mask.render: a cw x ch canvas of `region` (photo pixels), white on the object.
   * Each canvas pixel takes the sign of the logits upsampled at its own centre.
   */
  render(cw, ch, region = [0, 0, this.w, this.h]) {
    const out = document.createElement("canvas");
    out.width = cw;
    out.height = ch;
    if (!this.positive) return out;
    const [x0, y0, x1, y1] = region;
    const sx = this.workW / this.w;
    const sy = this.workH / this.h;
    // Canvas pixel (u, v) centres, in work pixels.
    const xa = bilinearAxis(cw, (u) => (x0 + ((u + 0.5) * (x1 - x0)) / cw) * sx);
    const ya = bilinearAxis(ch, (v) => (y0 + ((v + 0.5) * (y1 - y0)) / ch) * sy);
    const g = out.getContext("2d");
    const image = g.createImageData(cw, ch);
    const pixels = new Uint32Array(image.data.buffer);
    this.eachRow(ya, xa, (v, values, first) => {
      const row = v * cw + first;
      for (let j = 0; j < values.length; j += 1) if (values[j] > 0) pixels[row + j] = 0xffffffff;
    });
    g.putImageData(image, 0, 0);
    return out;
  }
}

/** Decodes taps on one photo with the shared sessions, the photo's embedding and its
 * first-layer projections (the projection graph's outputs, made once by openDecoder). */
export class DeviceDecoder {
  constructor(runtime, embedding, projected, photoH, photoW) {
    this.ort = runtime.ort;
    this.session = runtime.session;
    this.weights = runtime.info.weights;
    this.embedding = embedding;
    this.projected = projected; // {image_keys, image_values, image_queries}: ort.Tensor
    this.photoH = photoH;
    this.photoW = photoW;
    [this.workH, this.workW] = workSize(photoH, photoW);
  }

  /**
   * The mask for taps `points` ([{x, y, label}], photo pixels; label 1 adds, 0 takes away).
   * Resolves {mask: LogitMask, score: predicted IoU, ms: decode time in milliseconds}.
   */
  async decode(points) {
    const { ort } = this;
    const start = performance.now();
    const sx = this.workW / this.photoW;
    const sy = this.workH / this.photoH;
    const n = points.length + 1; // + SAM's padding point (0, 0, label -1): no box prompt
    const coords = new Float32Array(n * 2);
    const labels = new Float32Array(n);
    points.forEach((p, i) => {
      coords[2 * i] = p.x * sx;
      coords[2 * i + 1] = p.y * sy;
      labels[i] = p.label;
    });
    labels[n - 1] = -1;
    const out = await this.session.run({
      image_embeddings: this.embedding,
      ...this.projected,
      point_coords: new ort.Tensor("float32", coords, [1, n, 2]),
      point_labels: new ort.Tensor("float32", labels, [1, n]),
      input_size: new ort.Tensor("float32", new Float32Array([this.workH, this.workW]), [2]),
    });
    const [, , rows, cols] = out.low_res_masks.dims;
    const mask = new LogitMask(out.low_res_masks.data, rows, cols, this.workH, this.workW, this.photoH, this.photoW);
    return { mask, score: out.iou_predictions.data[0], ms: performance.now() - start };
  }
}

/**
 * The on-device decoder for the photo of result `section` (data-decoder-url,
 * data-embedding-url; the photo's size from its <img>), or null when it cannot run here.
 */
export async function openDecoder(section, photoH, photoW) {
  const { decoderUrl, embeddingUrl } = section.dataset;
  if (!decoderUrl || !embeddingUrl || !photoH || !photoW) return null;
  try {
    const [runtime, response] = await Promise.all([
      session(decoderUrl),
      fetch(embeddingUrl, { credentials: "same-origin" }),
    ]);
    if (!runtime || !response.ok) return null;
    const values = float16ToFloat32(await response.arrayBuffer());
    if (values.length !== EMBEDDING_VALUES) return null;
    const embedding = new runtime.ort.Tensor("float32", values, [1, 256, 64, 64]);
    const projected = await runtime.projections.run({ image_embeddings: embedding });
    return new DeviceDecoder(runtime, embedding, projected, photoH, photoW);
  } catch {
    return null;
  }
}
