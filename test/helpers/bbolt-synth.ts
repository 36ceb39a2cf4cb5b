/**
 * Test-only builder of synthetic bbolt files (page images made by hand), for the unit tests of
 * src/store/bbolt.ts and src/store/buildkit.ts. It writes the layout bbolt defines: meta pages 0
 * and 1, an empty freelist page 2, then the bucket pages. It is deliberately simple (no page reuse,
 * sequences only where a bucket asks) and is never used by layergc itself; it is the independent
 * oracle the unit tests of src/store/bbolt-write.ts compare with.
 */

export type Value = string | Buffer | Bucket;

export interface BucketOptions {
  /** store the bucket's page inline in its parent's value (bbolt root pgid 0) */
  inline?: boolean;
  /** split the bucket into leaf pages of at most this many entries under branch pages */
  perLeaf?: number;
  /** fan-out of branch pages when perLeaf is set (default 4) */
  perBranch?: number;
  /** the bucket's sequence (bbolt NextSequence), default 0 */
  sequence?: number;
}

export class Bucket {
  constructor(
    readonly entries: Record<string, Value> | Array<[string | Buffer, Value]>,
    readonly options: BucketOptions = {},
  ) {}
}

export function bucket(entries: Record<string, Value> | Array<[string | Buffer, Value]>, options: BucketOptions = {}): Bucket {
  return new Bucket(entries, options);
}

export interface SynthOptions {
  pageSize?: number;
  /** txid written in meta 0 and meta 1 (meta 0 describes `older` when given) */
  txids?: [number, number];
}

export interface SynthResult {
  file: Buffer;
  pageSize: number;
  /** root page of the root bucket referenced by meta 0 and meta 1 */
  roots: [number, number];
  /** high water mark */
  pageCount: number;
}

const LEAF = 0x02;
const BRANCH = 0x01;
const FREELIST = 0x10;
const META = 0x04;

function fnv1a64(buf: Buffer): bigint {
  let h = 0xcbf29ce484222325n;
  for (const b of buf) {
    h ^= BigInt(b);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h;
}

function sortedEntries(b: Bucket): Array<[Buffer, Value]> {
  const list: Array<[Buffer, Value]> = Array.isArray(b.entries)
    ? b.entries.map(([k, v]) => [typeof k === 'string' ? Buffer.from(k) : k, v])
    : Object.entries(b.entries).map(([k, v]) => [Buffer.from(k), v]);
  return list.sort((x, y) => Buffer.compare(x[0], y[0]));
}

interface Elem {
  flags: number;
  key: Buffer;
  value: Buffer;
}

function leafImage(id: number, elems: Elem[]): Buffer {
  const dataLen = elems.reduce((n, e) => n + e.key.length + e.value.length, 0);
  const buf = Buffer.alloc(16 + 16 * elems.length + dataLen);
  buf.writeBigUInt64LE(BigInt(id), 0);
  buf.writeUInt16LE(LEAF, 8);
  buf.writeUInt16LE(elems.length, 10);
  let off = 16 + 16 * elems.length;
  elems.forEach((e, i) => {
    const el = 16 + 16 * i;
    buf.writeUInt32LE(e.flags, el);
    buf.writeUInt32LE(off - el, el + 4);
    buf.writeUInt32LE(e.key.length, el + 8);
    buf.writeUInt32LE(e.value.length, el + 12);
    e.key.copy(buf, off);
    e.value.copy(buf, off + e.key.length);
    off += e.key.length + e.value.length;
  });
  return buf;
}

function branchImage(id: number, kids: Array<{ key: Buffer; pgid: number }>): Buffer {
  const dataLen = kids.reduce((n, k) => n + k.key.length, 0);
  const buf = Buffer.alloc(16 + 16 * kids.length + dataLen);
  buf.writeBigUInt64LE(BigInt(id), 0);
  buf.writeUInt16LE(BRANCH, 8);
  buf.writeUInt16LE(kids.length, 10);
  let off = 16 + 16 * kids.length;
  kids.forEach((k, i) => {
    const el = 16 + 16 * i;
    buf.writeUInt32LE(off - el, el);
    buf.writeUInt32LE(k.key.length, el + 4);
    buf.writeBigUInt64LE(BigInt(k.pgid), el + 8);
    k.key.copy(buf, off);
    off += k.key.length;
  });
  return buf;
}

class Writer {
  next = 3; // 0,1 meta; 2 freelist
  pages = new Map<number, Buffer>();
  constructor(readonly pageSize: number) {}

  /** place a page image (header id patched), spanning overflow pages as needed */
  place(image: (id: number) => Buffer): number {
    const id = this.next;
    const img = image(id);
    const span = Math.max(1, Math.ceil(img.length / this.pageSize));
    img.writeUInt32LE(span - 1, 12);
    const full = Buffer.alloc(span * this.pageSize);
    img.copy(full);
    this.pages.set(id, full);
    this.next += span;
    return id;
  }

  elems(b: Bucket): Elem[] {
    return sortedEntries(b).map(([key, v]) => {
      if (v instanceof Bucket) return { flags: 0x01, key, value: this.bucketValue(v) };
      return { flags: 0, key, value: typeof v === 'string' ? Buffer.from(v) : v };
    });
  }

  bucketValue(b: Bucket): Buffer {
    const header = Buffer.alloc(16);
    header.writeBigUInt64LE(BigInt(b.options.sequence ?? 0), 8);
    if (b.options.inline) {
      return Buffer.concat([header, leafImage(0, this.elems(b))]);
    }
    header.writeBigUInt64LE(BigInt(this.writeTree(b)), 0);
    return header;
  }

  writeTree(b: Bucket): number {
    const elems = this.elems(b);
    const perLeaf = b.options.perLeaf;
    if (!perLeaf || elems.length <= perLeaf) return this.place((id) => leafImage(id, elems));
    let level: Array<{ key: Buffer; pgid: number }> = [];
    for (let i = 0; i < elems.length; i += perLeaf) {
      const chunk = elems.slice(i, i + perLeaf);
      level.push({ key: chunk[0].key, pgid: this.place((id) => leafImage(id, chunk)) });
    }
    const fan = b.options.perBranch ?? 4;
    while (level.length > 1) {
      const up: Array<{ key: Buffer; pgid: number }> = [];
      for (let i = 0; i < level.length; i += fan) {
        const kids = level.slice(i, i + fan);
        up.push({ key: kids[0].key, pgid: this.place((id) => branchImage(id, kids)) });
      }
      level = up;
    }
    return level[0].pgid;
  }
}

/** Write the meta struct of page `which` with a valid checksum. */
export function writeMeta(file: Buffer, which: 0 | 1, m: { pageSize: number; root: number; freelist: number; pageCount: number; txid: number; sequence?: number }): void {
  const off = which * m.pageSize;
  file.fill(0, off, off + m.pageSize);
  file.writeBigUInt64LE(BigInt(which), off);
  file.writeUInt16LE(META, off + 8);
  const meta = off + 16;
  file.writeUInt32LE(0xed0cdaed, meta);
  file.writeUInt32LE(2, meta + 4);
  file.writeUInt32LE(m.pageSize, meta + 8);
  file.writeUInt32LE(0, meta + 12);
  file.writeBigUInt64LE(BigInt(m.root), meta + 16);
  file.writeBigUInt64LE(BigInt(m.sequence ?? 0), meta + 24);
  file.writeBigUInt64LE(BigInt(m.freelist), meta + 32);
  file.writeBigUInt64LE(BigInt(m.pageCount), meta + 40);
  file.writeBigUInt64LE(BigInt(m.txid), meta + 48);
  file.writeBigUInt64LE(fnv1a64(file.subarray(meta, meta + 56)), meta + 56);
}

/**
 * Build a bbolt file whose root bucket holds `root` (top-level values must be buckets in real bbolt,
 * but plain values are allowed here to test readers). With `older`, meta 0 points at that tree with
 * the lower txid, and meta 1 at `root`.
 */
export function synthBbolt(root: Bucket, opts: SynthOptions & { older?: Bucket } = {}): SynthResult {
  const pageSize = opts.pageSize ?? 4096;
  const w = new Writer(pageSize);
  const rootNew = w.writeTree(root);
  const rootOld = opts.older ? w.writeTree(opts.older) : rootNew;
  const pageCount = w.next;
  const file = Buffer.alloc(pageCount * pageSize);
  for (const [id, img] of w.pages) img.copy(file, id * pageSize);
  // empty freelist page
  file.writeBigUInt64LE(2n, 2 * pageSize);
  file.writeUInt16LE(FREELIST, 2 * pageSize + 8);
  const [t0, t1] = opts.txids ?? [1, 2];
  writeMeta(file, 0, { pageSize, root: rootOld, freelist: 2, pageCount, txid: t0, sequence: (opts.older ?? root).options.sequence });
  writeMeta(file, 1, { pageSize, root: rootNew, freelist: 2, pageCount, txid: t1, sequence: root.options.sequence });
  return { file, pageSize, roots: [rootOld, rootNew], pageCount };
}
