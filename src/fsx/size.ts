// What deleting a tree frees: an lstat walk that counts disk blocks, each inode once, and never
// crosses into another filesystem or a mount point (moby#38848: du over overlay mounts lies).
// A big tree is walked by two threads (this one and a helper worker) sharing its directories: in
// Node each lstat also builds a Stats object with four Dates, which costs a core what the kernel
// costs it, so one thread cannot keep pace with du and two can.
import type { Stats } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { isMainThread, MessageChannel, type MessagePort, receiveMessageOnPort, Worker, workerData } from 'node:worker_threads';
import { fs } from './fs.js';
import type { MountTable } from './mounts.js';

export interface TreeSize {
  bytes: number;
  files: number;
  /** Newest mtime or ctime seen anywhere in the tree: how recently something wrote here. */
  newestMs: number;
  /** Mount points found inside the tree: such a tree is never removed. */
  mountsInside: string[];
}

/** What one thread counted: hard-linked files (dev:ino, bytes, links) are left to the accounting. */
interface Tally {
  files: number;
  bytes: number;
  newestMs: number;
  mounts: string[];
  linked: (string | number)[];
}

/** The tree being walked, as both threads see it: dirs are named by their path from `root`. */
interface Walk {
  root: string;
  dev: number;
  /** Mount points below the root (absolute), or null when the mount table has none there. */
  mounts: Set<string> | null;
}

const newTally = (): Tally => ({ files: 0, bytes: 0, newestMs: 0, mounts: [], linked: [] });

function tally(st: Stats, t: Tally): void {
  t.files++;
  t.newestMs = Math.max(t.newestMs, st.mtimeMs, st.ctimeMs);
  const blocks = st.blocks * 512;
  if (!st.isDirectory() && st.nlink > 1) t.linked.push(`${st.dev}:${st.ino}`, blocks, st.nlink);
  else t.bytes += blocks;
}

/**
 * Lists the directory `rel` of the tree ('' for the root), found at `dir` ('.' when it is the cwd), and
 * lstat's each entry by `dir/name`; subdirs go on `stack`, their inodes on `inos`.
 */
function walkDir(w: Walk, rel: string, dir: string, stack: string[], inos: number[], t: Tally): void {
  let names: string[];
  try {
    names = fs.readdirSync(dir) as string[];
  } catch {
    return;
  }
  const at = dir === '.' ? '' : `${dir}/`;
  const base = rel ? `${rel}/` : '';
  for (const n of names) {
    let st: Stats | undefined;
    try {
      st = fs.lstatSync(at + n, { throwIfNoEntry: false });
    } catch {
      continue;
    }
    if (!st) continue;
    if (st.dev !== w.dev || (w.mounts !== null && w.mounts.has(`${w.root}/${base}${n}`))) {
      t.mounts.push(`${w.root}/${base}${n}`);
      continue;
    }
    tally(st, t);
    if (st.isDirectory()) {
      stack.push(base + n);
      inos.push(st.ino);
    }
  }
}

// The helper's protocol. Each side posts on its MessagePort and bumps its counter in `ctl`; the other
// side, never returning to its event loop mid-walk, reads with receiveMessageOnPort and sleeps with
// Atomics.wait on that counter. This thread hands over half of its pending directories when the helper
// is idle; the helper hands back half of its own when this thread runs out (WANT) and it has some.
const TO_HELPER = 0;
const TO_MAIN = 1;
const WANT = 2;
const READY = 3; // set by the helper once booted: work is handed only to a running helper, never queued for one still starting
const WORKER_MARK = 'layergc-size-worker';
/** How long this thread waits on a helper that shows no progress at all before giving up with an error. */
const STALL_MS = 120_000;

// The helper reads by whole paths (a worker thread cannot chdir, and the cwd is this thread's walk's).
type ToHelper = { walk: Omit<Walk, 'mounts'> & { mounts: string[] }; dirs: string[]; inos: number[] };
type FromHelper = { dirs: string[]; inos: number[] } | { done: Tally };

function bump(ctl: Int32Array, i: number): void {
  Atomics.add(ctl, i, 1);
  Atomics.notify(ctl, i);
}

if (!isMainThread && (workerData as Record<string, unknown> | null)?.[WORKER_MARK]) {
  const { port, ctl } = workerData as { port: MessagePort; ctl: Int32Array };
  Atomics.store(ctl, READY, 1);
  for (;;) {
    const seq = Atomics.load(ctl, TO_HELPER);
    const m = receiveMessageOnPort(port)?.message as ToHelper | undefined;
    if (!m) {
      Atomics.wait(ctl, TO_HELPER, seq);
      continue;
    }
    const w: Walk = { ...m.walk, mounts: m.walk.mounts.length ? new Set(m.walk.mounts) : null };
    const t = newTally();
    const { dirs: stack, inos } = m;
    while (stack.length) {
      const rel = stack.pop()!;
      inos.pop();
      walkDir(w, rel, rel ? `${w.root}/${rel}` : w.root, stack, inos, t);
      if (stack.length >= 2 && Atomics.load(ctl, WANT) === 1) {
        Atomics.store(ctl, WANT, 0);
        const half = stack.length >> 1;
        port.postMessage({ dirs: stack.splice(0, half), inos: inos.splice(0, half) } satisfies FromHelper);
        bump(ctl, TO_MAIN);
      }
    }
    port.postMessage({ done: t } satisfies FromHelper);
    bump(ctl, TO_MAIN);
  }
}

/** The module's own file, which a worker can load (not when running from TypeScript sources). */
function workerEntry(): string | null {
  const self = fileURLToPath(import.meta.url);
  return self.endsWith('.js') ? self : null;
}

/** A second thread walking part of the tree; started once per accounting, idle (and unref'd) between trees. */
class Helper {
  private readonly ctl = new Int32Array(new SharedArrayBuffer(4 * Int32Array.BYTES_PER_ELEMENT));
  private readonly port: MessagePort;
  private readonly worker: Worker;
  /** Batches handed over and not yet answered with `done`. */
  private busy = 0;
  /** The helper's post counter when its port was last read. */
  private seen = 0;

  constructor(entry: string) {
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.worker = new Worker(entry, { execArgv: [], workerData: { [WORKER_MARK]: true, port: port2, ctl: this.ctl }, transferList: [port2] });
    this.worker.unref(); // it sleeps between trees: it must not keep the process alive
    this.worker.on('error', () => {}); // a failure shows as a stall (below), not as an unhandled event
    this.port.unref();
  }

  /** Half of `stack` (the oldest dirs, nearest the root: the bigger subtrees) when the helper is idle. */
  share(w: Walk, stack: string[], inos: number[], done: (t: Tally) => void): void {
    if (this.busy > 0 && Atomics.load(this.ctl, TO_MAIN) !== this.seen) this.receive(stack, inos, done);
    if (this.busy > 0 || stack.length < 2 || Atomics.load(this.ctl, READY) !== 1) return;
    const walk = { root: w.root, dev: w.dev, mounts: w.mounts ? [...w.mounts] : [] };
    const half = stack.length >> 1;
    this.port.postMessage({ walk, dirs: stack.splice(0, half), inos: inos.splice(0, half) } satisfies ToHelper);
    this.busy++;
    bump(this.ctl, TO_HELPER);
  }

  /** With `stack` empty: waits until the helper hands dirs back or finishes; its tallies go to `done`. */
  take(stack: string[], inos: number[], done: (t: Tally) => void): void {
    Atomics.store(this.ctl, WANT, 1);
    let last = Date.now();
    for (;;) {
      const seq = Atomics.load(this.ctl, TO_MAIN);
      if (seq !== this.seen) last = Date.now();
      this.receive(stack, inos, done);
      if (stack.length > 0 || this.busy === 0) break;
      if (Atomics.wait(this.ctl, TO_MAIN, seq, 1000) === 'timed-out' && Date.now() - last > STALL_MS) {
        throw new Error(`the sizing worker made no progress for ${STALL_MS / 1000} s`);
      }
    }
    Atomics.store(this.ctl, WANT, 0);
  }

  /** Everything the helper has posted: dirs handed back go on `stack`, finished batches' tallies to `done`. */
  private receive(stack: string[], inos: number[], done: (t: Tally) => void): void {
    this.seen = Atomics.load(this.ctl, TO_MAIN); // read before the port: a later post bumps it again
    for (let m = receiveMessageOnPort(this.port); m; m = receiveMessageOnPort(this.port)) {
      const msg = m.message as FromHelper;
      if ('dirs' in msg) {
        stack.push(...msg.dirs);
        inos.push(...msg.inos);
      } else {
        this.busy--;
        done(msg.done);
      }
    }
  }

  /** Resolves once the helper runs (false if it has not within `ms`). */
  async running(ms: number): Promise<boolean> {
    const until = Date.now() + ms;
    while (Atomics.load(this.ctl, READY) !== 1 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    return Atomics.load(this.ctl, READY) === 1;
  }

  get idle(): boolean {
    return this.busy === 0;
  }
}

/**
 * Counts blocks shared through hard links only when every link to the inode lies in what was
 * measured: deleting one name of a file still linked elsewhere frees nothing.
 */
export class SizeAccounting {
  private readonly shared = new Map<string, { blocks: number; nlink: number; seen: number }>();
  private helper: Helper | null | undefined;
  /** Every root measured so far: `layergc df` walks the rest of the data root around them. */
  readonly measured = new Set<string>();
  /** How many trees a helper thread walked part of. */
  sharedWalks = 0;

  /**
   * With `enabled` false nothing is walked: only mount points are found, from the mount table.
   * `parallelAfter`: entries counted in one tree before a helper thread is started for it (it joins once
   * booted; a tree done before that is not kept waiting for it).
   */
  constructor(
    private readonly mounts: MountTable,
    private readonly enabled = true,
    private readonly parallelAfter = 10_000,
  ) {}

  measure(root: string): TreeSize {
    const out: TreeSize = { bytes: 0, files: 0, newestMs: 0, mountsInside: [] };
    this.measured.add(root);
    if (!this.enabled) {
      out.mountsInside = this.mounts.under(root);
      return out;
    }
    let rootSt;
    try {
      rootSt = fs.lstatSync(root, { bigint: false });
    } catch {
      return out;
    }
    if (this.mounts.isMountPoint(root)) out.mountsInside.push(root);
    const t = newTally();
    tally(rootSt, t);
    if (rootSt.isDirectory()) this.walk(root, rootSt, t);
    out.files = t.files;
    out.newestMs = t.newestMs;
    out.mountsInside.push(...t.mounts);
    out.bytes = t.bytes + this.linked(t.linked);
    return out;
  }

  /**
   * Walks below `root` (lstat'ed as `st`) into `t`, as du does: each dir is made the cwd and its entries
   * lstat'ed by name (fstatat(dirfd, name) in du: a one-component lookup instead of the whole path, a
   * third less system time). A helper thread, which cannot chdir (the cwd is the process's), reads the
   * dirs it is handed by their whole paths: this thread's walk is never slowed by sharing, and when the
   * helper gets no core (a loaded machine) the walk costs what it costs alone. A dir that cannot be made
   * the cwd, or is not the dir lstat'ed when it is (swapped for a symlink since: the walk never measures
   * what a link leads to), is read by its whole path; so is everything when there is no cwd to put back.
   */
  private walk(root: string, st: Stats, t: Tally): void {
    const mountsBelow = this.mounts.under(root).filter((p) => p !== root);
    const w: Walk = { root, dev: st.dev, mounts: mountsBelow.length ? new Set(mountsBelow) : null };
    let cwd: string | null = null;
    try {
      cwd = process.cwd();
    } catch {
      /* the cwd was deleted: whole paths */
    }
    let moved = false;
    /** chdir into the tree's dir `rel`, whose inode is `ino`; false when not there (see above). */
    const enter = (rel: string, ino: number): boolean => {
      if (cwd === null) return false;
      try {
        process.chdir(rel ? `${root}/${rel}` : root); // in a worker thread chdir throws: whole paths there
        moved = true;
        const here = fs.lstatSync('.');
        return here.dev === w.dev && here.ino === ino;
      } catch {
        return false;
      }
    };
    let helped = false;
    const done = (h: Tally) => {
      if (!helped) this.sharedWalks++;
      helped = true;
      t.files += h.files;
      t.bytes += h.bytes;
      t.newestMs = Math.max(t.newestMs, h.newestMs);
      t.mounts.push(...h.mounts);
      for (let i = 0; i < h.linked.length; i++) t.linked.push(h.linked[i]);
    };
    const stack: string[] = [''];
    const inos: number[] = [st.ino];
    const whole = (rel: string) => (rel ? `${root}/${rel}` : root);
    try {
      let helper: Helper | null = null;
      let shared = false; // whether this tree has been offered to a helper (once: it is big enough)
      for (;;) {
        while (stack.length) {
          const rel = stack.pop()!;
          const ino = inos.pop()!;
          walkDir(w, rel, enter(rel, ino) ? '.' : whole(rel), stack, inos, t);
          if (helper) helper.share(w, stack, inos, done);
          else if (!shared && t.files >= this.parallelAfter && stack.length >= 2) {
            shared = true;
            if (this.helper === undefined) this.helper = this.startHelper();
            helper = this.helper;
          }
        }
        if (!helper || helper.idle) break;
        helper.take(stack, inos, done);
      }
    } finally {
      if (moved) {
        try {
          process.chdir(cwd!);
        } catch {
          process.chdir('/');
        }
      }
    }
  }

  /** Starts the helper thread ahead of a big walk; resolves once it runs (false: there is none, and walks use this thread alone). */
  async startHelperNow(): Promise<boolean> {
    if (this.helper === undefined) this.helper = this.startHelper();
    return this.helper ? this.helper.running(30_000) : false;
  }

  /** A helper thread, or null (for good) where there is no second core or no worker can load this module. */
  private startHelper(): Helper | null {
    const entry = workerEntry();
    if (entry === null || !isMainThread || availableParallelism() < 2) return null;
    try {
      return new Helper(entry);
    } catch {
      return null;
    }
  }

  /** Bytes of the hard-linked files in `linked` (dev:ino, bytes, links triples) whose every link has now been measured. */
  private linked(linked: (string | number)[]): number {
    let bytes = 0;
    for (let i = 0; i < linked.length; i += 3) {
      const key = linked[i] as string;
      let e = this.shared.get(key);
      if (!e) this.shared.set(key, (e = { blocks: linked[i + 1] as number, nlink: linked[i + 2] as number, seen: 0 }));
      if (++e.seen === e.nlink) bytes += e.blocks;
    }
    return bytes;
  }

  /** Blocks of hard-linked files some of whose links were never measured (outside, or behind a mount). */
  unfinishedBytes(): number {
    let bytes = 0;
    for (const e of this.shared.values()) if (e.seen < e.nlink) bytes += e.blocks;
    return bytes;
  }
}
