// GNU sparse entries: tar-split records their expanded content, so a layer holding one cannot be
// rebuilt to its DiffID; the passes watch the raw headers for them.

const TAR_BLOCK = 512;
const SPARSE_PAX = Buffer.from(' GNU.sparse.', 'latin1');
const SNIFF_CAP = 1 << 20;

function octal(b: Buffer, off: number, len: number): number {
  if (b[off] & 0x80) {
    // base-256 (GNU): big-endian, top bit is the marker
    let v = b[off] & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + b[off + i];
    return v;
  }
  const s = b
    .toString('latin1', off, off + len)
    .replace(/\0.*$/s, '')
    .trim();
  return s === '' ? 0 : parseInt(s, 8);
}

function headerChecksumOk(b: Buffer, off: number): boolean {
  const want = octal(b, off + 148, 8);
  let sum = 0;
  for (let i = 0; i < TAR_BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : b[off + i];
  return sum === want;
}

/**
 * Watches the raw header bytes that precede each file entry for a GNU sparse file (typeflag 'S', or PAX
 * GNU.sparse.* records). tar-split records such a file's expanded content, which is not what the archive
 * held, so a layer with one cannot be rebuilt to its DiffID.
 */
export class SparseSniffer {
  private chunks: Buffer[] = [];
  private length = 0;
  private overflow = false;
  private hit = false;

  segment(payload: Buffer): void {
    if (this.overflow) {
      if (payload.includes(SPARSE_PAX)) this.hit = true;
      return;
    }
    this.chunks.push(payload);
    this.length += payload.length;
    if (this.length > SNIFF_CAP) {
      if (this.chunks.some((c) => c.includes(SPARSE_PAX))) this.hit = true;
      this.chunks = [];
      this.length = 0;
      this.overflow = true;
    }
  }

  /** Called at each file entry: was the header just before it a sparse one? */
  entry(): boolean {
    let sparse = this.hit;
    if (!this.overflow && this.length > 0) {
      const seg = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
      sparse = sparse || isSparseHeader(seg);
    }
    this.chunks = [];
    this.length = 0;
    this.overflow = false;
    this.hit = false;
    return sparse;
  }
}

function isSparseHeader(seg: Buffer): boolean {
  // The segment is the previous entry's padding (< 512 bytes) followed by whole header blocks. Most entries
  // are one plain header, settled by its typeflag alone; checksums are only worth it on the rare kinds.
  let off = seg.length % TAR_BLOCK;
  while (off + TAR_BLOCK <= seg.length) {
    const flag = seg[off + 156];
    if (flag === 0 || (flag >= 0x30 && flag <= 0x37)) return false; // '\0', '0'-'7': a plain header
    if (!headerChecksumOk(seg, off)) return seg.includes(SPARSE_PAX);
    if (flag === 0x53 /* S */) return true;
    const size = octal(seg, off + 124, 12);
    const dataEnd = off + TAR_BLOCK + Math.ceil(size / TAR_BLOCK) * TAR_BLOCK;
    if (flag === 0x78 /* x */ && seg.subarray(off + TAR_BLOCK, Math.min(dataEnd, seg.length)).includes(SPARSE_PAX)) return true;
    if (flag !== 0x78 && flag !== 0x67 /* g */ && flag !== 0x4c /* L */ && flag !== 0x4b /* K */) return false;
    off = dataEnd;
  }
  return false;
}
