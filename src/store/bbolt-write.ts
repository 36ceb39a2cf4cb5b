/**
 * Writer of a whole bbolt database file from a tree in memory: what `bbolt compact` produces (every
 * bucket, nested bucket, key, value and bucket sequence of the source, packed into fresh pages, no
 * free pages). The format is the one src/store/bbolt.ts reads (bbolt's internal/common page, meta and
 * bucket layout):
 *
 * - page 0 and 1: meta pages (`{ magic, version 2, pageSize, flags 0, root {pgid, sequence},
 *   freelist pgid, high water mark, txid, checksum FNV-1a 64 of the 56 bytes before it }`); both
 *   point at the same tree, meta page i with a txid whose parity is i, as bbolt's own init writes them;
 * - page 2: the freelist, empty;
 * - then the buckets' pages, children before parents (a bucket's value needs its root page id).
 *
 * A bucket with no nested bucket whose single leaf page is at most a quarter page is stored inline in
 * its parent's value (bbolt's inlineable rule). Leaf pages are filled up to the page size (bbolt
 * compact's FillPercent 1.0); an element too big for a page gets a page of its own with overflow
 * pages. Branch pages key each child by its first key. Integers are little-endian, as the reader's.
 */
import {
  BRANCH_PAGE,
  BUCKET_HEADER_SIZE,
  BUCKET_LEAF_FLAG,
  ELEMENT_SIZE,
  FREELIST_PAGE,
  LEAF_PAGE,
  MAGIC,
  META_CHECKSUMMED,
  META_PAGE,
  PAGE_HEADER_SIZE,
  VERSION,
  fnv1a64,
  type BboltTree,
} from './bbolt.js';

const MAX_COUNT = 0xffff; // a page's element count is a u16

export interface WriteBboltOptions {
  pageSize: number;
  /** the txid of meta page 1; meta page 0 gets the one before it */
  txid: bigint;
}

interface Elem {
  flags: number;
  key: Buffer;
  value: Buffer;
}

const leafSize = (elems: Elem[]) => elems.reduce((n, e) => n + ELEMENT_SIZE + e.key.length + e.value.length, PAGE_HEADER_SIZE);

/** A leaf page image (header id left for the caller), exactly as long as its content. */
function leafImage(elems: Elem[]): Buffer {
  const buf = Buffer.alloc(leafSize(elems));
  buf.writeUInt16LE(LEAF_PAGE, 8);
  buf.writeUInt16LE(elems.length, 10);
  let off = PAGE_HEADER_SIZE + ELEMENT_SIZE * elems.length;
  elems.forEach((e, i) => {
    const el = PAGE_HEADER_SIZE + ELEMENT_SIZE * i;
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

function branchImage(kids: { key: Buffer; pgid: number }[]): Buffer {
  const buf = Buffer.alloc(kids.reduce((n, k) => n + ELEMENT_SIZE + k.key.length, PAGE_HEADER_SIZE));
  buf.writeUInt16LE(BRANCH_PAGE, 8);
  buf.writeUInt16LE(kids.length, 10);
  let off = PAGE_HEADER_SIZE + ELEMENT_SIZE * kids.length;
  kids.forEach((k, i) => {
    const el = PAGE_HEADER_SIZE + ELEMENT_SIZE * i;
    buf.writeUInt32LE(off - el, el);
    buf.writeUInt32LE(k.key.length, el + 4);
    buf.writeBigUInt64LE(BigInt(k.pgid), el + 8);
    k.key.copy(buf, off);
    off += k.key.length;
  });
  return buf;
}

/** Split elements of `size(e)` bytes into runs that fill a page; a run never ends up with fewer than `min` elements unless all are. */
function pack<T>(items: T[], size: (t: T) => number, pageSize: number, min: number): T[][] {
  const runs: T[][] = [];
  let run: T[] = [];
  let used = PAGE_HEADER_SIZE;
  for (const it of items) {
    const s = size(it);
    if (run.length >= min && used + s > pageSize) {
      runs.push(run);
      run = [];
      used = PAGE_HEADER_SIZE;
    }
    run.push(it);
    used += s;
  }
  if (run.length) runs.push(run);
  // the last run too short: it joins the one before (that page then overflows, which bbolt reads as well)
  if (runs.length > 1 && runs[runs.length - 1].length < min) {
    const last = runs.pop()!;
    runs[runs.length - 1].push(...last);
  }
  return runs;
}

class PageWriter {
  private next = 3; // 0, 1: meta; 2: freelist
  readonly pages: { id: number; image: Buffer }[] = [];
  constructor(readonly pageSize: number) {}

  get highWater(): number {
    return this.next;
  }

  /** Place a page image at the next free id, spanning overflow pages as needed. */
  place(image: Buffer): number {
    const count = image.readUInt16LE(10);
    if (count >= MAX_COUNT) throw new Error(`a page of ${count} elements: more than a bbolt page can count`);
    const id = this.next;
    const span = Math.max(1, Math.ceil(image.length / this.pageSize));
    image.writeBigUInt64LE(BigInt(id), 0);
    image.writeUInt32LE(span - 1, 12);
    this.pages.push({ id, image });
    this.next += span;
    return id;
  }

  /** The value a parent stores for the bucket `b`: its header, and its page inline when bbolt would inline it. */
  bucketValue(b: BboltTree): Buffer {
    const elems = this.elems(b);
    const header = Buffer.alloc(BUCKET_HEADER_SIZE);
    header.writeBigUInt64LE(b.sequence, 8);
    const inlineable = elems.every((e) => (e.flags & BUCKET_LEAF_FLAG) === 0) && leafSize(elems) <= this.pageSize / 4;
    if (inlineable) return Buffer.concat([header, leafImage(elems)]);
    header.writeBigUInt64LE(BigInt(this.tree(elems)), 0);
    return header;
  }

  elems(b: BboltTree): Elem[] {
    for (let i = 1; i < b.entries.length; i++) {
      if (Buffer.compare(b.entries[i - 1].key, b.entries[i].key) >= 0) throw new Error('bucket entries are not in strictly ascending key order');
    }
    return b.entries.map((e) => ('bucket' in e ? { flags: BUCKET_LEAF_FLAG, key: e.key, value: this.bucketValue(e.bucket) } : { flags: 0, key: e.key, value: e.value }));
  }

  /** Lay out a bucket's elements as leaf pages under branch pages; returns the root page id. */
  tree(elems: Elem[]): number {
    const leaves = pack(elems, (e) => ELEMENT_SIZE + e.key.length + e.value.length, this.pageSize, 1);
    if (leaves.length === 0) return this.place(leafImage([]));
    let level = leaves.map((run) => ({ key: run[0].key, pgid: this.place(leafImage(run)) }));
    while (level.length > 1) {
      level = pack(level, (k) => ELEMENT_SIZE + k.key.length, this.pageSize, 2).map((kids) => ({ key: kids[0].key, pgid: this.place(branchImage(kids)) }));
    }
    return level[0].pgid;
  }
}

function writeMeta(file: Buffer, which: 0 | 1, m: { pageSize: number; root: number; sequence: bigint; pageCount: number; txid: bigint }): void {
  const off = which * m.pageSize;
  file.writeBigUInt64LE(BigInt(which), off);
  file.writeUInt16LE(META_PAGE, off + 8);
  const meta = off + PAGE_HEADER_SIZE;
  file.writeUInt32LE(MAGIC, meta);
  file.writeUInt32LE(VERSION, meta + 4);
  file.writeUInt32LE(m.pageSize, meta + 8);
  file.writeUInt32LE(0, meta + 12);
  file.writeBigUInt64LE(BigInt(m.root), meta + 16);
  file.writeBigUInt64LE(m.sequence, meta + 24);
  file.writeBigUInt64LE(2n, meta + 32); // freelist page
  file.writeBigUInt64LE(BigInt(m.pageCount), meta + 40);
  file.writeBigUInt64LE(m.txid, meta + 48);
  file.writeBigUInt64LE(fnv1a64(file.subarray(meta, meta + META_CHECKSUMMED)), meta + META_CHECKSUMMED);
}

/** The bytes of a bbolt database holding `root` (the root bucket: its entries are the top-level buckets). */
export function writeBbolt(root: BboltTree, opts: WriteBboltOptions): Buffer {
  const { pageSize } = opts;
  if (pageSize < 1024 || (pageSize & (pageSize - 1)) !== 0) throw new Error(`page size ${pageSize} is not a power of two of at least 1024`);
  if (root.entries.some((e) => !('bucket' in e))) throw new Error('the root bucket holds only buckets in bbolt');
  const w = new PageWriter(pageSize);
  const rootPgid = w.tree(w.elems(root));
  const pageCount = w.highWater;
  const file = Buffer.alloc(pageCount * pageSize);
  for (const p of w.pages) p.image.copy(file, p.id * pageSize);
  file.writeBigUInt64LE(2n, 2 * pageSize);
  file.writeUInt16LE(FREELIST_PAGE, 2 * pageSize + 8);
  // meta page i carries a txid of parity i (bbolt writes meta page txid % 2)
  const txid1 = opts.txid % 2n === 1n ? opts.txid : opts.txid + 1n;
  writeMeta(file, 0, { pageSize, root: rootPgid, sequence: root.sequence, pageCount, txid: txid1 - 1n });
  writeMeta(file, 1, { pageSize, root: rootPgid, sequence: root.sequence, pageCount, txid: txid1 });
  return file;
}
