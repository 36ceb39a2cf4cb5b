// The sha256 of a rebuilt stream, computed on a worker thread fed through a shared ring buffer
// (RingHasher) so that parsing tar-split and reading files overlap with hashing; InlineHasher when no
// worker can be had.

import { createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';

/** The largest view space() hands out, and the read size of the passes. */
export const CHUNK = 1 << 20;

/** Where the rebuilt stream goes: space to read file data into directly, or whole buffers to copy. */
export interface StreamHasher {
  /** A writable view of at most CHUNK bytes (awaiting the consumer when the buffer is full). */
  space(): Buffer | Promise<Buffer>;
  /** The first n bytes of the last space() view are stream data. */
  commit(n: number): void;
  write(data: Buffer): void | Promise<void>;
  /** 'sha256:<hex>' of everything committed and written. */
  digest(): Promise<string>;
  /** Done with it, after digest() or on error. */
  release(): void;
}

/** Hashes on the calling thread; used when no worker thread can be had. */
class InlineHasher implements StreamHasher {
  private readonly hash: Hash = createHash('sha256');
  private readonly buf = Buffer.allocUnsafeSlow(CHUNK);
  space(): Buffer {
    return this.buf;
  }
  commit(n: number): void {
    this.hash.update(n === this.buf.length ? this.buf : this.buf.subarray(0, n));
  }
  write(data: Buffer): void {
    this.hash.update(data);
  }
  async digest(): Promise<string> {
    return 'sha256:' + this.hash.digest('hex');
  }
  release(): void {}
}

// Ring protocol, single producer (this thread) and single consumer (the worker). Positions are byte counts
// that wrap at 2^32; RING_BYTES is a power of two, so `pos & RING_MASK` is the offset.
const RING_BYTES = 8 << 20;
const RING_MASK = RING_BYTES - 1;
const PUBLISH_EVERY = 256 << 10;
const C_WRITE = 0; // bytes made visible to the consumer
const C_READ = 1; // bytes hashed
const C_STATE = 2; // RUN, END (hash what is left, then post the digest) or ABORT
const C_SEQ = 3; // bumped after every change the consumer must see; it waits on this
const RUN = 0;
const END = 1;
const ABORT = 2;

// CommonJS source for the worker (eval), so that it runs the same from TypeScript sources and from dist.
const HASHER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const ring = Buffer.from(workerData.ring);
const ctl = new Int32Array(workerData.ctl);
const MASK = ring.length - 1;
const PIECE = ${CHUNK};
parentPort.on('message', () => {
  const h = createHash('sha256');
  let r = Atomics.load(ctl, ${C_READ});
  for (;;) {
    const seq = Atomics.load(ctl, ${C_SEQ});
    let avail = (Atomics.load(ctl, ${C_WRITE}) - r) | 0;
    if (avail > 0) {
      while (avail > 0) {
        const off = r & MASK;
        const n = Math.min(avail, ring.length - off, PIECE);
        h.update(ring.subarray(off, off + n));
        r = (r + n) | 0;
        avail -= n;
        Atomics.store(ctl, ${C_READ}, r);
        Atomics.notify(ctl, ${C_READ});
      }
      continue;
    }
    const state = Atomics.load(ctl, ${C_STATE});
    if (state === ${ABORT}) { parentPort.postMessage({ aborted: true }); return; }
    if (state === ${END}) { parentPort.postMessage({ digest: h.digest('hex') }); return; }
    Atomics.wait(ctl, ${C_SEQ}, seq);
  }
});
`;

type WorkerReply = { digest?: string; aborted?: boolean };
type WaitAsync = (a: Int32Array, i: number, v: number, t?: number) => { async: boolean; value: Promise<string> | string };
const waitAsync = (Atomics as unknown as { waitAsync?: WaitAsync }).waitAsync;

// Idle workers, one pool for every copy of this module in the process: bin/layergc.js prestarts one from
// tsc's output before it loads the bundle, which holds a copy of its own.
const idle: RingHasher[] = ((globalThis as Record<symbol, RingHasher[] | undefined>)[Symbol.for('layergc.verify.idleHashers')] ??= []);

/**
 * Hashes on a worker thread. The producer reads file data straight into the shared ring, so each byte is
 * copied once (page cache to ring) and hashed once, as with `openssl dgst`.
 */
class RingHasher implements StreamHasher {
  private readonly worker: Worker;
  private readonly ring: Buffer;
  private readonly ctl: Int32Array;
  private failed: Error | undefined;
  private written = 0; // local write position, published every PUBLISH_EVERY bytes
  private published = 0;
  private view = 0; // offset of the last space() view
  private result: Promise<WorkerReply> | undefined;
  private answer: { resolve: (r: WorkerReply) => void; reject: (e: Error) => void } | undefined;

  /** A worker booting now (tens of ms) while the caller loads the store, for the first acquire() to take. */
  static prestart(): void {
    if (!waitAsync || idle.length) return;
    try {
      const h = new RingHasher();
      h.worker.unref(); // idle until acquired: it must not keep the process alive
      idle.push(h);
    } catch {
      /* acquire() falls back to hashing inline */
    }
  }

  static acquire(): StreamHasher {
    if (!waitAsync) return new InlineHasher();
    let h = idle.pop();
    if (!h) {
      try {
        h = new RingHasher();
      } catch {
        return new InlineHasher();
      }
    }
    h.start();
    return h;
  }

  private constructor() {
    const ring = new SharedArrayBuffer(RING_BYTES);
    const ctl = new SharedArrayBuffer(4 * Int32Array.BYTES_PER_ELEMENT);
    this.ring = Buffer.from(ring);
    this.ctl = new Int32Array(ctl);
    // execArgv: [] so that the parent's flags (--input-type=module, loaders) do not apply to this CommonJS source
    this.worker = new Worker(HASHER_SOURCE, { eval: true, execArgv: [], workerData: { ring, ctl } });
    const fail = (err: Error) => {
      this.failed ??= err;
      if (idle.includes(this)) idle.splice(idle.indexOf(this), 1);
      this.answer?.reject(this.failed);
      this.answer = undefined;
    };
    this.worker.on('message', (m: WorkerReply) => {
      this.answer?.resolve(m);
      this.answer = undefined;
    });
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new Error(`sha256 worker exited with code ${code}`)));
  }

  private start(): void {
    Atomics.store(this.ctl, C_WRITE, 0);
    Atomics.store(this.ctl, C_READ, 0);
    Atomics.store(this.ctl, C_STATE, RUN);
    Atomics.store(this.ctl, C_SEQ, 0);
    this.written = this.published = 0;
    this.result = new Promise((resolve, reject) => (this.answer = { resolve, reject }));
    this.result.catch(() => {}); // observed in digest()
    this.worker.ref(); // an idle pooled worker must not keep the process alive; a busy one must
    this.worker.postMessage('start');
  }

  private publish(): void {
    Atomics.store(this.ctl, C_WRITE, this.written);
    Atomics.add(this.ctl, C_SEQ, 1);
    Atomics.notify(this.ctl, C_SEQ);
    this.published = this.written;
  }

  private free(): number {
    return RING_BYTES - ((this.written - Atomics.load(this.ctl, C_READ)) | 0);
  }

  private async waitForRoom(need: number): Promise<void> {
    this.publish();
    for (;;) {
      if (this.failed) throw this.failed;
      const read = Atomics.load(this.ctl, C_READ);
      if (RING_BYTES - ((this.written - read) | 0) >= need) return;
      // The timeout only bounds how long a dead worker goes unnoticed.
      const w = waitAsync!(this.ctl, C_READ, read, 1000);
      if (w.async) await w.value;
    }
  }

  space(): Buffer | Promise<Buffer> {
    const off = this.written & RING_MASK;
    const contiguous = RING_BYTES - off;
    const want = Math.min(CHUNK, contiguous);
    if (this.free() >= want) return this.viewAt(off, want);
    return this.waitForRoom(want).then(() => this.viewAt(off, want));
  }

  private viewAt(off: number, len: number): Buffer {
    this.view = off;
    return this.ring.subarray(off, off + len);
  }

  commit(n: number): void {
    if (n <= 0) return;
    if (this.view !== (this.written & RING_MASK)) throw new Error('RingHasher: commit without space()');
    this.written = (this.written + n) | 0;
    if (((this.written - this.published) | 0) >= PUBLISH_EVERY) this.publish();
  }

  async write(data: Buffer): Promise<void> {
    let i = 0;
    while (i < data.length) {
      let v = this.space();
      if (v instanceof Promise) v = await v;
      const n = Math.min(v.length, data.length - i);
      data.copy(v, 0, i, i + n);
      this.commit(n);
      i += n;
    }
  }

  async digest(): Promise<string> {
    this.publish();
    Atomics.store(this.ctl, C_STATE, END);
    this.signal();
    const r = await this.result!;
    if (!r.digest) throw new Error('sha256 worker did not return a digest');
    return 'sha256:' + r.digest;
  }

  private signal(): void {
    Atomics.add(this.ctl, C_SEQ, 1);
    Atomics.notify(this.ctl, C_SEQ);
  }

  release(): void {
    const done = this.result!;
    if (Atomics.load(this.ctl, C_STATE) === RUN) {
      Atomics.store(this.ctl, C_STATE, ABORT);
      this.signal();
    }
    // Back to the pool once the worker has answered (digest or abort); a failed one is dropped.
    done.then(
      () => {
        this.worker.unref();
        if (!this.failed && idle.length < 4) idle.push(this);
        else void this.worker.terminate();
      },
      () => void this.worker.terminate(),
    );
  }
}

/** Starts a hashing worker ahead of the first acquireHasher() (a process that will verify on this thread). */
export function prestartHasher(): void {
  RingHasher.prestart();
}

export function acquireHasher(): StreamHasher {
  return RingHasher.acquire();
}
