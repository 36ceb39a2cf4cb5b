/**
 * Read-only reader for the bbolt (go.etcd.io/bbolt, formerly boltdb/bolt) file format.
 *
 * Written from the format as bbolt defines it (internal/common/{page,meta,bucket}.go, db.go):
 *
 * - The file is an array of pages of `pageSize` bytes. Every page starts with a 16-byte header
 *   `{ id u64, flags u16, count u16, overflow u32 }`; a page that needs more room spans
 *   `overflow + 1` consecutive pages.
 * - Pages 0 and 1 are meta pages. The meta struct follows the header:
 *   `{ magic u32, version u32, pageSize u32, flags u32, root {pgid u64, sequence u64},
 *      freelist u64, pgid(high water mark) u64, txid u64, checksum u64 }`.
 *   The checksum is FNV-1a 64 over the 56 bytes before it. The valid meta with the highest txid wins.
 * - Branch pages hold `count` elements `{ pos u32, ksize u32, pgid u64 }`; leaf pages hold
 *   `{ flags u32, pos u32, ksize u32, vsize u32 }`. `pos` is relative to the element itself.
 * - A leaf element with flag 0x01 is a nested bucket; its value is `{ root u64, sequence u64 }`,
 *   and when root is 0 the bucket's single leaf page follows inline in the value.
 *
 * All integers are little-endian (bbolt writes native order; every platform Docker ships on is LE).
 * Nothing here writes to the file. Every offset and length is bounds-checked; corruption raises
 * `BboltError`. Page cycles are detected and tree depth and bucket nesting are bounded, so a corrupt
 * file can never make a walk loop forever.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { fileType, READ_FLAGS } from '../fsx/read.js';

export class BboltError extends Error {
  /** errno-style code when the failure came from the filesystem (ENOENT, EACCES, ...). */
  readonly code?: string;
  constructor(message: string, options?: { cause?: unknown; code?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'BboltError';
    if (options?.code !== undefined) this.code = options.code;
  }
}

export interface BboltEntry {
  key: Buffer;
  /** null means the key is a nested bucket (open it with `bucket(key)`). */
  value: Buffer | null;
}

export interface BboltBucket {
  /** true when the bucket's page is stored inline in its parent's value (bbolt root pgid 0). */
  readonly inline: boolean;
  /** the bucket's sequence (bbolt NextSequence/SetSequence), kept in its header beside the root page id */
  readonly sequence: bigint;
  /** page id of the bucket's root page; null for an inline bucket. */
  readonly rootPage: number | null;
  entries(): AsyncIterable<BboltEntry>;
  /** The nested bucket stored under `name`, or null if absent or if `name` holds a plain value. */
  bucket(name: Buffer | string): Promise<BboltBucket | null>;
  /** The plain value stored under `key`, or null if absent or if `key` is a nested bucket. */
  get(key: Buffer | string): Promise<Buffer | null>;
}

export interface BboltMeta {
  pageSize: number;
  /** txid of the meta page in use. */
  txid: number;
  /** which meta page is in use (0 or 1). */
  metaPage: 0 | 1;
  /** high water mark: number of pages in use. */
  pageCount: number;
  rootPgid: number;
  /** the root bucket's sequence */
  rootSequence: bigint;
  /** true when the other meta page failed validation (the file survived a torn write or damage). */
  otherMetaInvalid: boolean;
}

export interface BboltDb {
  readonly path: string;
  readonly meta: BboltMeta;
  close(): Promise<void>;
  root(): Promise<BboltBucket>;
}

export interface OpenBboltOptions {
  /** upper bound of bytes kept in the page cache (default 4 MiB). */
  cacheBytes?: number;
}

// ---- format constants -------------------------------------------------------------------------

// exported for the writer beside it (bbolt-write.ts): one statement of the format
export const MAGIC = 0xed0cdaed;
export const VERSION = 2;
export const PAGE_HEADER_SIZE = 16;
const META_SIZE = 64; // struct size incl. checksum
export const META_CHECKSUMMED = 56; // offsetof(Meta.checksum)
export const ELEMENT_SIZE = 16; // both branch and leaf elements are 16 bytes
export const BUCKET_HEADER_SIZE = 16;

export const BRANCH_PAGE = 0x01;
export const LEAF_PAGE = 0x02;
export const META_PAGE = 0x04;
export const FREELIST_PAGE = 0x10;
export const BUCKET_LEAF_FLAG = 0x01;

const MIN_PAGE_SIZE = 512;
const MAX_PAGE_SIZE = 1 << 24; // bbolt itself probes 1 KiB .. 16 MiB for the second meta page
/** A B+tree of 2^53 pages with a fanout of 2 is 53 levels deep: anything deeper is a loop. */
const MAX_TREE_DEPTH = 64;
/** Nesting of buckets inside buckets. */
const MAX_BUCKET_NESTING = 128;

/** Open, use and always close a database. */
export async function withDb<T>(path: string, fn: (db: BboltDb) => Promise<T>): Promise<T> {
  const db = await openBbolt(path);
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

// ---- helpers -----------------------------------------------------------------------------------

const FNV64_OFFSET = 0xcbf29ce484222325n;
const FNV64_PRIME = 0x100000001b3n;
const MASK64 = 0xffffffffffffffffn;

export function fnv1a64(buf: Buffer): bigint {
  let h = FNV64_OFFSET;
  for (const b of buf) {
    h ^= BigInt(b);
    h = (h * FNV64_PRIME) & MASK64;
  }
  return h;
}

function u64(buf: Buffer, off: number): bigint {
  return buf.readBigUInt64LE(off);
}

function toKey(k: Buffer | string): Buffer {
  return typeof k === 'string' ? Buffer.from(k, 'utf8') : k;
}

function showKey(k: Buffer): string {
  const printable = k.length <= 80 && /^[\x20-\x7e]*$/.test(k.toString('latin1'));
  return printable ? JSON.stringify(k.toString('latin1')) : `0x${k.subarray(0, 40).toString('hex')}${k.length > 40 ? '…' : ''}`;
}

interface ParsedMeta {
  valid: boolean;
  why?: string;
  pageSize: number;
  flags: number;
  rootPgid: bigint;
  rootSequence: bigint;
  freelist: bigint;
  pgid: bigint;
  txid: bigint;
}

/** Parse a meta struct located at `buf[off..off+64)` (i.e. right after a page header). */
function parseMeta(buf: Buffer, off: number): ParsedMeta {
  const bad = (why: string): ParsedMeta => ({
    valid: false,
    why,
    pageSize: 0,
    flags: 0,
    rootPgid: 0n,
    rootSequence: 0n,
    freelist: 0n,
    pgid: 0n,
    txid: 0n,
  });
  if (off + META_SIZE > buf.length) return bad('meta page is cut short');
  const magic = buf.readUInt32LE(off);
  if (magic !== MAGIC) return bad(`bad magic 0x${magic.toString(16).padStart(8, '0')}`);
  const version = buf.readUInt32LE(off + 4);
  if (version !== VERSION) return bad(`unsupported version ${version}`);
  const checksum = u64(buf, off + META_CHECKSUMMED);
  const sum = fnv1a64(buf.subarray(off, off + META_CHECKSUMMED));
  if (checksum !== sum) return bad('checksum mismatch');
  return {
    valid: true,
    pageSize: buf.readUInt32LE(off + 8),
    flags: buf.readUInt32LE(off + 12),
    rootPgid: u64(buf, off + 16),
    rootSequence: u64(buf, off + 24),
    freelist: u64(buf, off + 32),
    pgid: u64(buf, off + 40),
    txid: u64(buf, off + 48),
  };
}

// ---- page access -------------------------------------------------------------------------------

/** A decoded B+tree node: a branch or leaf page (possibly an inline page inside a bucket value). */
interface Node {
  leaf: boolean;
  /** where it came from, for messages */
  where: string;
  keys: Buffer[];
  /** leaf only */
  flags: number[];
  /** leaf only */
  values: Buffer[];
  /** branch only */
  children: number[];
}

function describePage(pgid: number | null): string {
  return pgid === null ? 'inline page' : `page ${pgid}`;
}

/**
 * Decode branch/leaf elements of a page image. `buf` spans the whole page (all overflow pages
 * included, or the inline page bytes), starting at the page header.
 */
function decodeNode(buf: Buffer, pgid: number | null, pageCount: number): Node {
  const where = describePage(pgid);
  if (buf.length < PAGE_HEADER_SIZE) throw new BboltError(`${where}: shorter than a page header`);
  const flags = buf.readUInt16LE(8);
  const count = buf.readUInt16LE(10);
  const leaf = flags === LEAF_PAGE;
  if (!leaf && flags !== BRANCH_PAGE) {
    const kind = flags === META_PAGE ? ' (a meta page)' : flags === FREELIST_PAGE ? ' (a freelist page)' : '';
    throw new BboltError(`${where}: expected a branch or leaf page, found flags 0x${flags.toString(16)}${kind}`);
  }
  if (PAGE_HEADER_SIZE + count * ELEMENT_SIZE > buf.length) {
    throw new BboltError(`${where}: ${count} elements do not fit in ${buf.length} bytes`);
  }
  if (!leaf && count === 0) throw new BboltError(`${where}: branch page with no elements`);
  const node: Node = { leaf, where, keys: [], flags: [], values: [], children: [] };
  for (let i = 0; i < count; i++) {
    const e = PAGE_HEADER_SIZE + i * ELEMENT_SIZE;
    if (leaf) {
      const eflags = buf.readUInt32LE(e);
      const pos = buf.readUInt32LE(e + 4);
      const ksize = buf.readUInt32LE(e + 8);
      const vsize = buf.readUInt32LE(e + 12);
      const kstart = e + pos;
      const vend = kstart + ksize + vsize; // JS numbers: no u32 overflow
      if (pos < ELEMENT_SIZE || vend > buf.length) {
        throw new BboltError(`${where}: leaf element ${i} (pos ${pos}, key ${ksize} B, value ${vsize} B) lies outside the page (${buf.length} B)`);
      }
      node.flags.push(eflags);
      node.keys.push(buf.subarray(kstart, kstart + ksize));
      node.values.push(buf.subarray(kstart + ksize, vend));
    } else {
      const pos = buf.readUInt32LE(e);
      const ksize = buf.readUInt32LE(e + 4);
      const child = u64(buf, e + 8);
      const kstart = e + pos;
      if (pos < ELEMENT_SIZE || kstart + ksize > buf.length) {
        throw new BboltError(`${where}: branch element ${i} (pos ${pos}, key ${ksize} B) lies outside the page`);
      }
      if (child < 2n || child >= BigInt(pageCount)) {
        throw new BboltError(`${where}: branch element ${i} points to page ${child}, outside the data pages 2..${pageCount - 1}`);
      }
      node.keys.push(buf.subarray(kstart, kstart + ksize));
      node.children.push(Number(child));
    }
  }
  return node;
}

/** A bucket root: either a page id, or an inline leaf page stored in the bucket's value. */
type BucketRoot = { pgid: number } | { inline: Buffer };

class DbImpl implements BboltDb {
  readonly path: string;
  readonly meta: BboltMeta;
  private fh: FileHandle | null;
  private readonly fileSize: number;
  private readonly cache = new Map<number, { node: Node; bytes: number }>();
  private cacheBytes = 0;
  private readonly cacheLimit: number;

  constructor(path: string, fh: FileHandle, fileSize: number, meta: BboltMeta, cacheLimit: number) {
    this.path = path;
    this.fh = fh;
    this.fileSize = fileSize;
    this.meta = meta;
    this.cacheLimit = cacheLimit;
  }

  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = null;
    this.cache.clear();
    this.cacheBytes = 0;
    if (fh) await fh.close();
  }

  async root(): Promise<BboltBucket> {
    return new BucketImpl(this, { pgid: this.meta.rootPgid }, this.meta.rootSequence, 0, 'root bucket');
  }

  /** Prefix an error's message with the file path (once). Non-BboltErrors pass through. */
  tag(err: unknown): unknown {
    if (err instanceof BboltError && !err.message.startsWith(`${this.path}: `)) {
      return new BboltError(`${this.path}: ${err.message}`, { cause: err.cause, code: err.code });
    }
    return err;
  }

  /** Read exactly `len` bytes at `pos`, or fail with a truncation error. */
  async readExact(pos: number, len: number, what: string): Promise<Buffer> {
    const fh = this.fh;
    if (!fh) throw new BboltError('database is closed');
    if (pos + len > this.fileSize) {
      throw new BboltError(`${what} lies at bytes ${pos}..${pos + len} but the file has only ${this.fileSize} bytes (truncated?)`);
    }
    const buf = Buffer.alloc(len);
    let got = 0;
    while (got < len) {
      let n: number;
      try {
        ({ bytesRead: n } = await fh.read(buf, got, len - got, pos + got));
      } catch (err) {
        throw new BboltError(`read failed: ${(err as Error).message}`, {
          cause: err,
          code: (err as NodeJS.ErrnoException).code,
        });
      }
      if (n === 0) throw new BboltError(`${what}: unexpected end of file at byte ${pos + got} (truncated?)`);
      got += n;
    }
    return buf;
  }

  /** Load and decode a branch/leaf page (with its overflow pages). */
  async node(pgid: number): Promise<Node> {
    const hit = this.cache.get(pgid);
    if (hit) {
      // LRU: move to the back
      this.cache.delete(pgid);
      this.cache.set(pgid, hit);
      return hit.node;
    }
    const { pageSize, pageCount } = this.meta;
    if (!Number.isSafeInteger(pgid) || pgid < 2 || pgid >= pageCount) {
      throw new BboltError(`page ${pgid} is outside the data pages 2..${pageCount - 1}`);
    }
    const first = await this.readExact(pgid * pageSize, pageSize, `page ${pgid}`);
    const id = u64(first, 0);
    if (id !== BigInt(pgid)) throw new BboltError(`page ${pgid} identifies itself as page ${id}`);
    const overflow = first.readUInt32LE(12);
    if (pgid + overflow >= pageCount) {
      throw new BboltError(`page ${pgid} claims ${overflow} overflow pages, beyond the high water mark ${pageCount}`);
    }
    let buf = first;
    if (overflow > 0) {
      const rest = await this.readExact((pgid + 1) * pageSize, overflow * pageSize, `overflow of page ${pgid}`);
      buf = Buffer.concat([first, rest]);
    }
    const node = decodeNode(buf, pgid, pageCount);
    if (buf.length <= this.cacheLimit) {
      this.cache.set(pgid, { node, bytes: buf.length });
      this.cacheBytes += buf.length;
      for (const [k, v] of this.cache) {
        if (this.cacheBytes <= this.cacheLimit) break;
        this.cache.delete(k);
        this.cacheBytes -= v.bytes;
      }
    }
    return node;
  }

  /** The root node of a bucket. */
  async rootNode(root: BucketRoot): Promise<Node> {
    if ('inline' in root) return decodeNode(root.inline, null, this.meta.pageCount);
    return this.node(root.pgid);
  }
}

class BucketImpl implements BboltBucket {
  readonly inline: boolean;
  readonly rootPage: number | null;

  constructor(
    private readonly db: DbImpl,
    private readonly rootRef: BucketRoot,
    readonly sequence: bigint,
    private readonly nesting: number,
    private readonly name: string,
  ) {
    this.inline = 'inline' in rootRef;
    this.rootPage = 'pgid' in rootRef ? rootRef.pgid : null;
  }

  entries(): AsyncIterable<BboltEntry> {
    return { [Symbol.asyncIterator]: () => this.taggedWalk() };
  }

  private async *taggedWalk(): AsyncGenerator<BboltEntry> {
    try {
      yield* this.walk();
    } catch (err) {
      throw this.db.tag(err);
    }
  }

  private async *walk(): AsyncGenerator<BboltEntry> {
    const visited = new Set<number>();
    // explicit stack of (node, next element index); its length is the depth
    const rootNode = await this.loadRoot(visited);
    const stack: { node: Node; i: number }[] = [{ node: rootNode, i: 0 }];
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      const n = top.node;
      if (top.i >= n.keys.length) {
        stack.pop();
        continue;
      }
      const i = top.i++;
      if (n.leaf) {
        yield this.entry(n, i);
      } else {
        if (stack.length >= MAX_TREE_DEPTH) {
          throw new BboltError(`${this.name}: B+tree deeper than ${MAX_TREE_DEPTH} levels (corrupt)`);
        }
        const child = n.children[i];
        if (visited.has(child)) {
          throw new BboltError(`${this.name}: page ${child} is reached twice from ${n.where} (cycle in the page tree)`);
        }
        visited.add(child);
        stack.push({ node: await this.db.node(child), i: 0 });
      }
    }
  }

  private async loadRoot(visited: Set<number>): Promise<Node> {
    if ('pgid' in this.rootRef) visited.add(this.rootRef.pgid);
    return this.db.rootNode(this.rootRef);
  }

  private entry(n: Node, i: number): BboltEntry {
    const isBucket = (n.flags[i] & BUCKET_LEAF_FLAG) !== 0;
    return { key: Buffer.from(n.keys[i]), value: isBucket ? null : Buffer.from(n.values[i]) };
  }

  /** Find the leaf element for `key`: returns [node, index] or null. */
  private async find(key: Buffer): Promise<{ node: Node; i: number } | null> {
    const visited = new Set<number>();
    let n = await this.loadRoot(visited);
    for (let depth = 1; !n.leaf; depth++) {
      if (depth >= MAX_TREE_DEPTH) {
        throw new BboltError(`${this.name}: B+tree deeper than ${MAX_TREE_DEPTH} levels (corrupt)`);
      }
      // the last element whose key <= key (element 0 if none), like bbolt's Cursor.searchPage
      let idx = 0;
      for (let j = 0; j < n.keys.length; j++) {
        if (Buffer.compare(n.keys[j], key) <= 0) idx = j;
        else break;
      }
      const child = n.children[idx];
      if (visited.has(child)) {
        throw new BboltError(`${this.name}: page ${child} is reached twice from ${n.where} (cycle in the page tree)`);
      }
      visited.add(child);
      n = await this.db.node(child);
    }
    for (let j = 0; j < n.keys.length; j++) {
      const c = Buffer.compare(n.keys[j], key);
      if (c === 0) return { node: n, i: j };
      if (c > 0) break;
    }
    return null;
  }

  async get(key: Buffer | string): Promise<Buffer | null> {
    const hit = await this.find(toKey(key)).catch((err: unknown) => {
      throw this.db.tag(err);
    });
    if (!hit || (hit.node.flags[hit.i] & BUCKET_LEAF_FLAG) !== 0) return null;
    return Buffer.from(hit.node.values[hit.i]);
  }

  async bucket(name: Buffer | string): Promise<BboltBucket | null> {
    const k = toKey(name);
    try {
      const hit = await this.find(k);
      if (!hit || (hit.node.flags[hit.i] & BUCKET_LEAF_FLAG) === 0) return null;
      return this.openChild(k, hit.node.values[hit.i]);
    } catch (err) {
      throw this.db.tag(err);
    }
  }

  private openChild(key: Buffer, value: Buffer): BboltBucket {
    const childName = `${this.nesting === 0 ? '' : `${this.name}/`}bucket ${showKey(key)}`;
    if (this.nesting + 1 > MAX_BUCKET_NESTING) {
      throw new BboltError(`${childName}: buckets nested deeper than ${MAX_BUCKET_NESTING} (corrupt)`);
    }
    if (value.length < BUCKET_HEADER_SIZE) {
      throw new BboltError(`${childName}: bucket header is ${value.length} bytes, expected at least ${BUCKET_HEADER_SIZE}`);
    }
    const root = u64(value, 0);
    const sequence = u64(value, 8);
    if (root === 0n) {
      const inline = Buffer.from(value.subarray(BUCKET_HEADER_SIZE));
      // Validate eagerly so a broken inline bucket is reported where it is opened.
      const n = decodeNode(inline, null, this.db.meta.pageCount);
      if (!n.leaf) throw new BboltError(`${childName}: inline bucket page is not a leaf page`);
      return new BucketImpl(this.db, { inline }, sequence, this.nesting + 1, childName);
    }
    const pageCount = this.db.meta.pageCount;
    if (root < 2n || root >= BigInt(pageCount)) {
      throw new BboltError(`${childName}: root page ${root} is outside the data pages 2..${pageCount - 1}`);
    }
    return new BucketImpl(this.db, { pgid: Number(root) }, sequence, this.nesting + 1, childName);
  }
}

// ---- open ---------------------------------------------------------------------------------------

/**
 * Open a bbolt file read-only. Throws BboltError when the file is not a bbolt database, when both
 * meta pages are invalid, or when the chosen meta page points outside the file.
 */
export async function openBbolt(path: string, options: OpenBboltOptions = {}): Promise<BboltDb> {
  let fh: FileHandle;
  try {
    // never through a symlink, never blocking on a FIFO
    fh = await open(path, READ_FLAGS);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ELOOP') throw new BboltError(`${path}: a symlink, never followed`, { cause: err, code: e.code });
    throw new BboltError(`cannot open ${path}: ${e.message}`, { cause: err, code: e.code });
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new BboltError(`${fileType(st)}, not a regular file`, { code: 'EINVAL' });
    const size = st.size;
    const db = await openWith(path, fh, size, options);
    return db;
  } catch (err) {
    await fh.close().catch(() => undefined);
    if (err instanceof BboltError) {
      if (!err.message.startsWith(`${path}: `)) {
        throw new BboltError(`${path}: ${err.message}`, { cause: err.cause, code: err.code });
      }
      throw err;
    }
    const e = err as NodeJS.ErrnoException;
    throw new BboltError(`${path}: ${e.message}`, { cause: err, code: e.code });
  }
}

async function readAt(fh: FileHandle, pos: number, len: number, size: number): Promise<Buffer> {
  const n = Math.max(0, Math.min(len, size - pos));
  const buf = Buffer.alloc(n);
  let got = 0;
  while (got < n) {
    const { bytesRead } = await fh.read(buf, got, n - got, pos + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return buf.subarray(0, got);
}

async function openWith(path: string, fh: FileHandle, size: number, options: OpenBboltOptions): Promise<DbImpl> {
  if (size < PAGE_HEADER_SIZE + META_SIZE) {
    throw new BboltError(`file is ${size} bytes, too small to be a bbolt database`);
  }
  const probe = PAGE_HEADER_SIZE + META_SIZE;

  // 1. Find the page size: from meta page 0, else from a valid meta 1 at a plausible offset
  //    (bbolt's getPageSize does the same search, 1 KiB .. 16 MiB).
  const m0probe = parseMeta(await readAt(fh, 0, probe, size), PAGE_HEADER_SIZE);
  let pageSize = 0;
  if (m0probe.valid) pageSize = m0probe.pageSize;
  else {
    for (let ps = 1024; ps <= MAX_PAGE_SIZE && ps + probe <= size; ps *= 2) {
      const m = parseMeta(await readAt(fh, ps, probe, size), PAGE_HEADER_SIZE);
      if (m.valid && m.pageSize === ps) {
        pageSize = ps;
        break;
      }
    }
    if (pageSize === 0) {
      throw new BboltError(`no valid meta page: meta 0 has ${m0probe.why ?? 'a problem'} and no valid meta 1 was found (not a bbolt file, or both meta pages are damaged)`);
    }
  }
  if (pageSize < MIN_PAGE_SIZE || pageSize > MAX_PAGE_SIZE || (pageSize & (pageSize - 1)) !== 0) {
    throw new BboltError(`meta page gives an implausible page size ${pageSize}`);
  }

  // 2. Read both meta pages with that page size and pick the valid one with the higher txid.
  const metas = [parseMeta(await readAt(fh, 0, probe, size), PAGE_HEADER_SIZE), parseMeta(await readAt(fh, pageSize, probe, size), PAGE_HEADER_SIZE)];
  for (const [i, m] of metas.entries()) {
    if (m.valid && m.pageSize !== pageSize) {
      metas[i] = { ...m, valid: false, why: `page size ${m.pageSize} differs from ${pageSize}` };
    }
  }
  const order = [0, 1].filter((i) => metas[i].valid).sort((a, b) => (metas[b].txid > metas[a].txid ? 1 : -1));
  if (order.length === 0) {
    throw new BboltError(`both meta pages are invalid (meta 0: ${metas[0].why}; meta 1: ${metas[1].why})`);
  }
  const idx = order[0] as 0 | 1;
  const m = metas[idx];
  const what = `meta page ${idx} (txid ${m.txid})`;
  if (m.pgid > BigInt(Number.MAX_SAFE_INTEGER) || m.pgid < 2n) {
    throw new BboltError(`${what}: implausible high water mark ${m.pgid}`);
  }
  const pageCount = Number(m.pgid);
  if (pageCount * pageSize > size) {
    throw new BboltError(`${what}: ${pageCount} pages of ${pageSize} bytes need ${pageCount * pageSize} bytes but the file has ${size} (truncated)`);
  }
  if (m.rootPgid < 2n || m.rootPgid >= m.pgid) {
    throw new BboltError(`${what}: root page ${m.rootPgid} is outside the data pages 2..${pageCount - 1}`);
  }
  if (m.txid > BigInt(Number.MAX_SAFE_INTEGER)) throw new BboltError(`${what}: implausible txid`);
  const meta: BboltMeta = {
    pageSize,
    txid: Number(m.txid),
    metaPage: idx,
    pageCount,
    rootPgid: Number(m.rootPgid),
    rootSequence: m.rootSequence,
    otherMetaInvalid: !metas[1 - idx].valid,
  };
  return new DbImpl(path, fh, size, meta, options.cacheBytes ?? 4 * 1024 * 1024);
}

/**
 * Convenience: walk every bucket recursively, depth-first, calling `visit` with the bucket path
 * (list of names) and each entry. Besides the per-walk bounds, a page that is the root of two
 * buckets is reported as corruption, so a damaged file cannot make the walk blow up exponentially.
 */
export async function walkAll(db: BboltDb, visit: (path: Buffer[], entry: BboltEntry) => void | Promise<void>): Promise<void> {
  const roots = new Set<number>();
  const rec = async (b: BboltBucket, path: Buffer[]): Promise<void> => {
    if (b.rootPage !== null) {
      if (roots.has(b.rootPage)) {
        throw new BboltError(`${db.path}: page ${b.rootPage} is the root of more than one bucket (corrupt)`);
      }
      roots.add(b.rootPage);
    }
    for await (const e of b.entries()) {
      await visit(path, e);
      if (e.value === null) {
        const child = await b.bucket(e.key);
        if (child) await rec(child, [...path, e.key]);
      }
    }
  };
  await rec(await db.root(), []);
}

/** A whole bucket in memory: its sequence and its entries in key order (a value, or a nested bucket). */
export interface BboltTree {
  sequence: bigint;
  entries: BboltTreeEntry[];
}
export type BboltTreeEntry = { key: Buffer; value: Buffer } | { key: Buffer; bucket: BboltTree };

/**
 * Read the whole database into memory (what an offline rewrite copies), with the bounds of
 * walkAll: a page that is the root of two buckets is corruption.
 */
export async function readTree(db: BboltDb): Promise<BboltTree> {
  const roots = new Set<number>();
  const rec = async (b: BboltBucket): Promise<BboltTree> => {
    if (b.rootPage !== null) {
      if (roots.has(b.rootPage)) throw new BboltError(`${db.path}: page ${b.rootPage} is the root of more than one bucket (corrupt)`);
      roots.add(b.rootPage);
    }
    const entries: BboltTreeEntry[] = [];
    for await (const e of b.entries()) {
      if (e.value !== null) {
        entries.push({ key: e.key, value: e.value });
        continue;
      }
      const child = await b.bucket(e.key);
      if (!child) throw new BboltError(`${db.path}: bucket ${showKey(e.key)} is listed but cannot be opened`);
      entries.push({ key: e.key, bucket: await rec(child) });
    }
    return { sequence: b.sequence, entries };
  };
  return rec(await db.root());
}
