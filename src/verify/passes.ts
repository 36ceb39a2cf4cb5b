// The two passes over a layer: rebuild its tar stream as moby's assembler does and sha256 it; on a
// mismatch, CRC-64 each file against tar-split to name the damaged ones. Why: docs/verify-internals.md.

import * as fs from 'node:fs';
import { isMetacopyCandidate } from '../drivers/overlay2/content.js';
import { closeQuietly } from '../fsx/read.js';
import type { ContentRoots, Opened, OpenedFile } from './content-roots.js';
import { Crc64 } from './crc64.js';
import { acquireHasher, CHUNK, type StreamHasher } from './hasher.js';
import { SparseSniffer } from './sparse.js';
import { cleanName, fileProblem, reportName, type FileProblem, type FileProblemKind } from './tar-names.js';
import { readTarSplitBatches, TarSplitError, type FileEntry, type TarSplitEntry } from './tarsplit.js';

export interface AssembleOptions {
  onBytes?: (n: number) => void;
  signal?: AbortSignal;
}

export interface HashPass {
  /** 'sha256:<hex>' of the rebuilt stream; undefined when the tar-split could not be read to its end. */
  digest?: string;
  bytes: number;
  /** Damaged files found so far, by entry number in the tar-split (insertion order is stream order). */
  damaged: Map<number, FileProblem>;
  sparse: string[];
  tarSplitError?: TarSplitError;
}

const YIELD_MS = 10;
/**
 * Bytes of parsed tar-split entries (segment payloads, names) held ahead while the hasher is full: about
 * eight batches of an ordinary layer, and few of a hostile one whose lines are megabytes long.
 */
const READ_AHEAD_BYTES = 4 << 20;

/** Lets timers, signals and progress output run during a long pass; checking is cheap, yielding is not. */
class Yielder {
  private last = performance.now();
  constructor(private readonly signal?: AbortSignal) {}

  due(): boolean {
    this.signal?.throwIfAborted();
    return performance.now() - this.last >= YIELD_MS;
  }

  async yield(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.last = performance.now();
    this.signal?.throwIfAborted();
  }
}

/**
 * The tar-split's batches in order, some parsed ahead: when the hasher is full (a run of large files),
 * the time this thread would spend waiting goes to parsing what comes next (a run of small files, where
 * this thread is the slower side).
 */
class Batches {
  private readonly ahead: { p: Promise<IteratorResult<TarSplitEntry[]>>; bytes: number; taken: boolean }[] = [];
  private aheadBytes = 0; // of the batches read ahead and parsed, not yet taken
  private parsing = false; // one batch read ahead at a time: its size is known only once parsed
  private ended = false;
  private waits = 0; // the caller's waits for the hasher in progress
  constructor(private readonly it: AsyncGenerator<TarSplitEntry[]>) {}

  next(): Promise<IteratorResult<TarSplitEntry[]>> {
    const a = this.ahead.shift();
    if (!a) return this.it.next();
    a.taken = true;
    this.aheadBytes -= a.bytes;
    return a.p;
  }

  /** Parses batches ahead, one after another, until `wait` (the caller's wait for the hasher) settles. */
  readAheadWhile(wait: Promise<unknown>): void {
    this.waits++;
    const done = () => void this.waits--;
    wait.then(done, done);
    this.readAhead();
  }

  private readAhead(): void {
    if (this.waits === 0 || this.parsing || this.ended || this.aheadBytes >= READ_AHEAD_BYTES) return;
    this.parsing = true;
    const slot = { p: this.it.next(), bytes: 0, taken: false };
    slot.p.then(
      (r) => {
        this.parsing = false;
        if (r.done) {
          this.ended = true;
          return;
        }
        for (const e of r.value) slot.bytes += e.type === 2 ? e.payload.length : e.nameLatin1.length + 64;
        if (!slot.taken) this.aheadBytes += slot.bytes;
        this.readAhead();
      },
      () => {
        this.parsing = false; // the TarSplitError is thrown where next() takes it, in stream order
        this.ended = true;
      },
    );
    this.ahead.push(slot);
  }

  async close(): Promise<void> {
    await this.it.return(undefined).catch(() => {});
  }
}

/** Streams the first `size` bytes of the file into the hasher. Returns how many there were. */
async function pumpToHasher(fd: number, size: number, h: StreamHasher, y: Yielder, onBytes?: (n: number) => void, onWait?: (w: Promise<unknown>) => void): Promise<number> {
  let pos = 0;
  while (pos < size) {
    let v = h.space();
    if (v instanceof Promise) {
      onWait?.(v);
      v = await v;
    }
    const n = fs.readSync(fd, v, 0, Math.min(v.length, size - pos), pos);
    if (n === 0) break;
    h.commit(n);
    pos += n;
    onBytes?.(n);
    if (y.due()) await y.yield();
  }
  return pos;
}

/** Feeds the first `size` bytes of the file to `sink` through one reused buffer; returns how many there were. */
async function pump(fd: number, size: number, buf: Buffer, sink: (chunk: Buffer) => void, y: Yielder): Promise<number> {
  let pos = 0;
  while (pos < size) {
    const n = fs.readSync(fd, buf, 0, Math.min(buf.length, size - pos), pos);
    if (n === 0) break;
    pos += n;
    sink(n === buf.length ? buf : buf.subarray(0, n));
    if (y.due()) await y.yield();
  }
  return pos;
}

function sizeDetail(got: number, want: number): string {
  return `${got} bytes on disk, tar-split says ${want}`;
}

/**
 * First pass: rebuild and sha256 the stream. Records files that are missing, unsafe, unreadable, short or
 * long, and sparse entries; a tar-split that ends early is reported, not thrown.
 */
export async function hashPass(tarSplitPath: string, roots: ContentRoots, opts: AssembleOptions = {}): Promise<HashPass> {
  const { onBytes, signal } = opts;
  const y = new Yielder(signal);
  const sniffer = new SparseSniffer();
  const out: HashPass = { bytes: 0, damaged: new Map(), sparse: [] };
  let n = -1; // entry number; tar-split's own `position` field is not trusted to be unique
  const note = (e: FileEntry, problem: FileProblemKind, detail?: string) => out.damaged.set(n, fileProblem(e, problem, detail));
  const count = (bytes: number) => {
    out.bytes += bytes;
    onBytes?.(bytes);
  };
  let scratch: Buffer | undefined; // for the rare hole-only file

  const hasher = acquireHasher();
  const batches = new Batches(readTarSplitBatches(tarSplitPath, { signal }));
  const readAhead = (w: Promise<unknown>) => batches.readAheadWhile(w);
  try {
    for (let r = await batches.next(); !r.done; r = await batches.next()) {
      for (const e of r.value) {
        n++;
        if (y.due()) await y.yield();
        if (e.type === 2) {
          sniffer.segment(e.payload);
          const w = hasher.write(e.payload);
          if (w) {
            readAhead(w);
            await w;
          }
          count(e.payload.length);
          continue;
        }
        if (sniffer.entry()) out.sparse.push(reportName(e));
        if (e.size === 0) continue;
        const rel = cleanName(e.nameLatin1);
        if (rel === null || rel === '') {
          note(e, 'unsafe', rel === null ? 'name climbs out of the layer root' : 'name is the layer root');
          continue;
        }
        let o = roots.open(rel);
        if (!o.ok) {
          note(e, o.problem, o.detail);
          continue;
        }
        if (isMetacopyCandidate(o.stat) && o.root < roots.count - 1) {
          o = await pickMetacopy(e, o, roots, (scratch ??= Buffer.allocUnsafeSlow(CHUNK)), y);
        }
        let got: number;
        try {
          got = await pumpToHasher(o.fd, e.size, hasher, y, count, readAhead);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (!code || signal?.aborted) throw err;
          note(e, 'unreadable', `${code} in ${roots.rootPath(o.root)}`);
          continue;
        } finally {
          closeQuietly(o.fd);
        }
        if (got < e.size) note(e, 'short', sizeDetail(got, e.size));
        else if (o.stat.size > e.size) note(e, 'long', sizeDetail(o.stat.size, e.size));
      }
    }
    out.digest = await hasher.digest();
  } catch (err) {
    if (!(err instanceof TarSplitError)) throw err;
    out.tarSplitError = err;
  } finally {
    hasher.release();
    await batches.close(); // an early exit leaves batches read ahead, and the gzip stream, open
  }
  return out;
}

/**
 * A hole-only file in an upper root with the same name below may be an overlayfs metacopy: its data is in
 * the first lower root whose copy matches tar-split's CRC-64. Returns that candidate (opened), else the own
 * file. Limitation: only directories' redirects are followed, not a metacopy file's own (a file renamed
 * in the upper layer), which names its lower data by another path.
 */
async function pickMetacopy(e: FileEntry, own: OpenedFile, roots: ContentRoots, buf: Buffer, y: Yielder): Promise<OpenedFile> {
  let cand: Opened = own;
  while (cand.ok) {
    const crc = new Crc64();
    const got = await pump(cand.fd, e.size, buf, (c) => void crc.update(c), y);
    if (got === e.size && e.payload && crc.digest().equals(e.payload)) {
      if (cand !== own) closeQuietly(own.fd);
      return cand;
    }
    if (cand !== own) closeQuietly(cand.fd);
    if (cand.root + 1 >= roots.count) break;
    cand = roots.open(cand.rel, cand.root + 1);
  }
  return own;
}

/**
 * Second pass, run only when the digest differs: CRC-64 each file not already found damaged and compare it
 * with tar-split's payload, naming the modified ones. Stops quietly where the tar-split stops. Returns every
 * damaged file of both passes, in stream order.
 */
export async function crcPass(tarSplitPath: string, roots: ContentRoots, damaged: Map<number, FileProblem>, signal?: AbortSignal): Promise<FileProblem[]> {
  const buf = Buffer.allocUnsafeSlow(CHUNK);
  const y = new Yielder(signal);
  const found = new Map(damaged);
  let n = -1;
  try {
    for await (const batch of readTarSplitBatches(tarSplitPath, { signal })) {
      for (const e of batch) {
        n++;
        if (y.due()) await y.yield();
        if (e.type !== 1 || e.size === 0) continue;
        const prior = damaged.get(n);
        if (prior && prior.problem !== 'long') continue;
        const rel = cleanName(e.nameLatin1);
        if (rel === null || rel === '') continue;
        let o = roots.open(rel);
        let matched = false;
        let where = '';
        // A hole-only file may be an overlay metacopy: any candidate root whose data matches will do.
        while (o.ok) {
          const crc = new Crc64();
          try {
            await pump(o.fd, e.size, buf, (c) => void crc.update(c), y);
          } catch (err) {
            if (!(err as NodeJS.ErrnoException).code || signal?.aborted) throw err;
          } finally {
            closeQuietly(o.fd);
          }
          where ||= roots.rootPath(o.root);
          if (e.payload && crc.digest().equals(e.payload)) {
            matched = true;
            break;
          }
          if (!isMetacopyCandidate(o.stat) || o.root + 1 >= roots.count) break;
          o = roots.open(rel, o.root + 1);
        }
        if (matched) continue;
        if (prior) {
          // 'long' whose first `size` bytes differ as well
          prior.problem = 'modified';
          prior.detail = `content differs from tar-split's CRC-64 and ${prior.detail ?? 'the size differs'}`;
          continue;
        }
        if (!where) continue; // vanished between the passes
        found.set(n, fileProblem(e, 'modified', `CRC-64 differs from tar-split (read from ${where})`));
      }
    }
  } catch (err) {
    if (!(err instanceof TarSplitError)) throw err;
  }
  return [...found.entries()].sort((a, b) => a[0] - b[0]).map(([, p]) => p);
}
