// Taps decoded on the device, as SAM's own web demo does: MobileSAM's prompt encoder and mask
// decoder (an ONNX file a worker exported from its checkpoint, GET /api/v1/decoder) run with
// onnxruntime-web (WebAssembly, served from static/vendor/ort/, no CDN) on the photo's image
// embedding (1x256x64x64 float16, the photo's embedding.f16, fetched once). Inputs as
// models/segment/onnx_decoder.py documents them; masks come back at the encoder-input size
// (the photo resized to 1024 on its long side). When WebAssembly, the decoder or the embedding
// is missing, openDecoder resolves null and the page sends taps to the worker instead.

import { getJSON } from "./api.js";

const ORT_URL = "/static/vendor/ort/ort.wasm.min.mjs";
const ORT_DIR = "/static/vendor/ort/";
const LONG_SIDE = 1024; // MobileSAM's encoder input, long side (ResizeLongestSide)
const EMBEDDING_VALUES = 256 * 64 * 64;

let sessionPromise = null; // one decoder session per page, shared by every photo on it

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

async function session(decoderUrl) {
  if (!sessionPromise) {
    sessionPromise = (async () => {
      if (typeof WebAssembly !== "object") return null;
      const info = await getJSON(decoderUrl);
      const ort = await import(ORT_URL);
      ort.env.wasm.wasmPaths = ORT_DIR;
      ort.env.wasm.numThreads = 1; // threads need cross-origin isolation, which the app does not set
      const created = await ort.InferenceSession.create(info.url, { executionProviders: ["wasm"] });
      return { ort, session: created, info };
    })().catch(() => null);
  }
  return sessionPromise;
}

/**
 * A mask the decoder returned: a bitmap at the encoder-input size (h' x w') standing for the
 * whole photo (h x w); the same interface as rle.js's Mask (h, w, area, contains, render).
 */
export class BitmapMask {
  constructor(bits, workH, workW, photoH, photoW) {
    this.bits = bits; // Uint8Array workH * workW, row-major, 1 inside
    this.workH = workH;
    this.workW = workW;
    this.h = photoH;
    this.w = photoW;
    let count = 0;
    for (let i = 0; i < bits.length; i += 1) count += bits[i];
    this.count = count;
    this.area = Math.round(count * (photoH / workH) * (photoW / workW)); // in photo pixels
    this.canvas = null;
  }

  contains(x, y) {
    const col = Math.floor((x * this.workW) / this.w);
    const row = Math.floor((y * this.workH) / this.h);
    if (col < 0 || row < 0 || col >= this.workW || row >= this.workH) return false;
    return this.bits[row * this.workW + col] === 1;
  }

  /** Tight box [x0, y0, x1, y1] in photo pixels, or null for an empty mask. */
  box() {
    let [x0, y0, x1, y1] = [Infinity, Infinity, -1, -1];
    for (let r = 0; r < this.workH; r += 1) {
      for (let c = 0; c < this.workW; c += 1) {
        if (!this.bits[r * this.workW + c]) continue;
        if (c < x0) x0 = c;
        if (c > x1) x1 = c;
        if (r < y0) y0 = r;
        if (r > y1) y1 = r;
      }
    }
    if (x1 < 0) return null;
    const sx = this.w / this.workW;
    const sy = this.h / this.workH;
    return [x0 * sx, y0 * sy, Math.min(this.w, (x1 + 1) * sx), Math.min(this.h, (y1 + 1) * sy)];
  }

  /** As rle.js Mask.render: a cw x ch canvas of `region` (photo pixels), white on the object. */
  render(cw, ch, region = [0, 0, this.w, this.h]) {
    if (!this.canvas) {
      const full = document.createElement("canvas");
      full.width = this.workW;
      full.height = this.workH;
      const g = full.getContext("2d");
      const image = g.createImageData(this.workW, this.workH);
      for (let i = 0; i < this.bits.length; i += 1) {
        if (!this.bits[i]) continue;
        const o = i * 4;
        image.data[o] = 255;
        image.data[o + 1] = 255;
        image.data[o + 2] = 255;
        image.data[o + 3] = 255;
      }
      g.putImageData(image, 0, 0);
      this.canvas = full;
    }
    const out = document.createElement("canvas");
    out.width = cw;
    out.height = ch;
    const g = out.getContext("2d");
    const sx = this.workW / this.w;
    const sy = this.workH / this.h;
    const [x0, y0, x1, y1] = region;
    g.drawImage(this.canvas, x0 * sx, y0 * sy, Math.max(1e-3, (x1 - x0) * sx), Math.max(1e-3, (y1 - y0) * sy), 0, 0, cw, ch);
    return out;
  }
}

/** Decodes taps on one photo with the shared session and the photo's embedding. */
export class DeviceDecoder {
  constructor(runtime, embedding, photoH, photoW) {
    this.ort = runtime.ort;
    this.session = runtime.session;
    this.weights = runtime.info.weights;
    this.embedding = embedding;
    this.photoH = photoH;
    this.photoW = photoW;
    [this.workH, this.workW] = workSize(photoH, photoW);
  }

  /**
   * The mask for taps `points` ([{x, y, label}], photo pixels; label 1 adds, 0 takes away).
   * Resolves {mask: BitmapMask, score: predicted IoU, ms: decode time in milliseconds}.
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
    const feeds = {
      image_embeddings: this.embedding,
      point_coords: new ort.Tensor("float32", coords, [1, n, 2]),
      point_labels: new ort.Tensor("float32", labels, [1, n]),
      mask_input: new ort.Tensor("float32", new Float32Array(256 * 256), [1, 1, 256, 256]),
      has_mask_input: new ort.Tensor("float32", new Float32Array([0]), [1]),
      orig_im_size: new ort.Tensor("float32", new Float32Array([this.workH, this.workW]), [2]),
    };
    const out = await this.session.run(feeds);
    const logits = out.masks.data;
    const bits = new Uint8Array(this.workH * this.workW);
    for (let i = 0; i < bits.length; i += 1) bits[i] = logits[i] > 0 ? 1 : 0;
    const mask = new BitmapMask(bits, this.workH, this.workW, this.photoH, this.photoW);
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
    return new DeviceDecoder(runtime, embedding, photoH, photoW);
  } catch {
    return null;
  }
}
