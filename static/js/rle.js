// Object masks in the browser, straight from objects.json: COCO run-length encoding (column-major
// runs, zeros first; pycocotools' compressed string form). A tap is tested against the runs
// without decoding the mask (a binary search), so even a 12-megapixel photo stays fast on a phone.

/** Run lengths of a COCO compressed RLE string (pycocotools maskApi.c rleFrString). */
export function decodeCounts(text) {
  const counts = [];
  let p = 0;
  while (p < text.length) {
    let x = 0;
    let k = 0;
    let more = 0;
    do {
      const c = text.charCodeAt(p) - 48;
      x += (c & 0x1f) * 2 ** (5 * k);
      more = c & 0x20;
      p += 1;
      k += 1;
      if (!more && c & 0x10) x -= 2 ** (5 * k); // sign bit: the value was negative
    } while (more);
    if (counts.length > 2) x += counts[counts.length - 2]; // stored as a difference
    counts.push(x);
  }
  return counts;
}

/** One object's mask: size (h, w) in photo pixels, runs, area, hit test and drawing. */
export class Mask {
  /** @param {{size: [number, number], counts: string | number[]}} rle */
  constructor(rle) {
    const [h, w] = rle.size;
    const counts = Array.isArray(rle.counts) ? rle.counts : decodeCounts(String(rle.counts));
    this.h = h;
    this.w = w;
    this.n = counts.length;
    this.starts = new Float64Array(this.n + 1); // where each run starts (column-major index)
    let at = 0;
    let area = 0;
    counts.forEach((c, i) => {
      this.starts[i] = at;
      at += c;
      if (i % 2 === 1) area += c;
    });
    this.starts[this.n] = at;
    this.area = area;
  }

  /** True when the mask has no pixel. */
  get empty() {
    return !(this.area > 0);
  }

  /** True if photo pixel (x, y) belongs to the object. */
  contains(x, y) {
    const col = Math.floor(x);
    const row = Math.floor(y);
    if (col < 0 || row < 0 || col >= this.w || row >= this.h || this.n < 2) return false;
    const idx = col * this.h + row;
    let lo = 0;
    let hi = this.n - 1;
    while (lo < hi) { // the last run starting at or before idx
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid] <= idx) lo = mid;
      else hi = mid - 1;
    }
    return lo % 2 === 1 && idx < this.starts[lo + 1];
  }

  /**
   * A canvas of `cw` x `ch` pixels showing the photo region `region` ([x0, y0, x1, y1] photo
   * pixels; the whole photo by default): opaque white on the object, transparent elsewhere.
   */
  render(cw, ch, region = [0, 0, this.w, this.h]) {
    const canvas = document.createElement("canvas");
    canvas.width = cw;
    canvas.height = ch;
    const ctx = canvas.getContext("2d");
    const image = ctx.createImageData(cw, ch);
    const data = image.data;
    const [rx0, ry0, rx1, ry1] = region.map(Math.round);
    const sx = cw / Math.max(1, rx1 - rx0);
    const sy = ch / Math.max(1, ry1 - ry0);
    const { h } = this;
    for (let i = 1; i < this.n; i += 2) {
      let p = this.starts[i];
      const end = this.starts[i + 1];
      while (p < end) { // one column's piece of the run at a time
        const col = Math.floor(p / h);
        const row0 = p - col * h;
        const row1 = Math.min(h, row0 + (end - p));
        p += row1 - row0;
        const top = Math.max(row0, ry0);
        const bottom = Math.min(row1, ry1);
        if (col < rx0 || col >= rx1 || top >= bottom) continue;
        const x0 = Math.min(cw - 1, Math.floor((col - rx0) * sx));
        const x1 = Math.min(cw, Math.max(x0 + 1, Math.ceil((col - rx0 + 1) * sx)));
        const y0 = Math.min(ch - 1, Math.floor((top - ry0) * sy));
        const y1 = Math.min(ch, Math.max(y0 + 1, Math.ceil((bottom - ry0) * sy)));
        for (let y = y0; y < y1; y += 1) {
          for (let x = x0; x < x1; x += 1) {
            const o = (y * cw + x) * 4;
            data[o] = 255;
            data[o + 1] = 255;
            data[o + 2] = 255;
            data[o + 3] = 255;
          }
        }
      }
    }
    ctx.putImageData(image, 0, 0);
    return canvas;
  }
}
