// `layergc verify`: prove each layer's content against its DiffID offline, by rebuilding the tar stream from
// tar-split.json.gz plus the storage driver's files (see assemble.ts), and name the damaged files.

import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { ContentRoots, crcPass, hashPass, type FileProblem } from './assemble.js';
import { closeQuietly, openDirBelow } from '../fsx/read.js';

export type { FileProblem } from './assemble.js';
export { Crc64, crc64 } from './crc64.js';
export { readTarSplit, TarSplitError, type TarSplitEntry, type TarSplitErrorKind } from './tarsplit.js';

export interface VerifyTarget {
  chainId: string; // 'sha256:<hex>'
  diffId: string; // expected, 'sha256:<hex>'
  tarSplitPath: string; // <layerdb>/sha256/<hex>/tar-split.json.gz
  contentRoots: string[]; // [own root, ...fallback roots (overlay2 lower chain, nearest first)]
  /**
   * The data root (a real directory) the content roots lie below: each root is then opened from it
   * down without following a symlink, and read only through that opened directory.
   */
  anchor?: string;
}

export type VerifyKind = 'content-mismatch' | 'tar-split-missing' | 'tar-split-corrupt' | 'sparse-unverifiable' | 'unsafe-path';

export interface VerifyResult {
  chainId: string;
  ok: boolean;
  kind?: VerifyKind;
  reason?: string;
  expected: string;
  computed?: string;
  bytes: number;
  files: FileProblem[];
}

export interface VerifyLayerOptions {
  onBytes?: (n: number) => void;
  signal?: AbortSignal;
}

export interface VerifyProgress {
  layersDone: number;
  layersTotal: number;
  bytes: number;
}

export interface VerifyLayersOptions {
  /** Layers verified at once, each on a worker thread of its own; default os.availableParallelism(). */
  concurrency?: number;
  onProgress?: (p: VerifyProgress) => void;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export async function verifyLayer(t: VerifyTarget, opts: VerifyLayerOptions = {}): Promise<VerifyResult> {
  if (!t.anchor) return verifyLayerIn(t, new ContentRoots(t.contentRoots), opts);
  const fds: number[] = [];
  try {
    const pinned: string[] = [];
    for (const root of t.contentRoots) {
      const d = openDirBelow(t.anchor, root);
      if (d.state === 'ok') {
        fds.push(d.fd);
        pinned.push(d.path);
      } else if (d.state === 'missing') pinned.push(root); // nothing there: the root is passed over
      else {
        const why = `${d.at} ${d.why}: the layer is not read through it`;
        return { chainId: t.chainId, ok: false, kind: d.state === 'unsafe' ? 'unsafe-path' : 'content-mismatch', reason: why, expected: t.diffId.trim(), bytes: 0, files: [] };
      }
    }
    return await verifyLayerIn(t, new ContentRoots(pinned, t.contentRoots), opts);
  } finally {
    for (const fd of fds) closeQuietly(fd);
  }
}

async function verifyLayerIn(t: VerifyTarget, roots: ContentRoots, opts: VerifyLayerOptions): Promise<VerifyResult> {
  const expected = t.diffId.trim();
  const pass = await hashPass(t.tarSplitPath, roots, opts);
  const base = { chainId: t.chainId, expected, bytes: pass.bytes };
  const bad = (kind: VerifyKind, reason: string, files: FileProblem[], computed?: string): VerifyResult => ({
    ...base,
    ok: false,
    kind,
    reason,
    ...(computed ? { computed } : {}),
    files,
  });

  if (pass.tarSplitError) {
    const e = pass.tarSplitError;
    if (e.kind === 'missing') return bad('tar-split-missing', e.message, [...pass.damaged.values()]);
    // Name what can be named in the part that could be read.
    const files = await crcPass(t.tarSplitPath, roots, pass.damaged, opts.signal);
    return bad('tar-split-corrupt', e.kind === 'truncated' ? `tar-split is truncated: ${e.message}` : e.message, files);
  }

  const computed = pass.digest!;
  if (computed === expected) {
    const long = [...pass.damaged.values()];
    if (long.length === 0) return { ...base, ok: true, computed, files: [] };
    // Only 'long' files get here: their first `size` bytes are right, but moby's assembler copies whole
    // files, so push and save would fail the CRC.
    const are = long.length === 1 ? 'is' : 'are';
    const why = `content matches the DiffID, but ${plural(long.length, 'file')} on disk ${are} longer than tar-split records`;
    return bad('content-mismatch', `${why}; docker push/save would fail`, long, computed);
  }

  const mismatch = `rebuilt stream hashes to ${computed}, not ${expected}`;
  const files = await crcPass(t.tarSplitPath, roots, pass.damaged, opts.signal);
  if (files.length > 0) return bad('content-mismatch', `${mismatch}: ${plural(files.length, 'damaged file')}`, files, computed);
  if (pass.sparse.length > 0) {
    const some = pass.sparse.slice(0, 3).join(', ') + (pass.sparse.length > 3 ? ', …' : '');
    const entries = pass.sparse.length === 1 ? 'entry' : 'entries';
    const why = `every file matches its tar-split CRC-64, but the layer holds GNU sparse ${entries} (${some})`;
    return bad('sparse-unverifiable', `${why} that tar-split cannot rebuild`, files, computed);
  }
  const why = `${mismatch}, yet every file matches its tar-split CRC-64`;
  return bad('content-mismatch', `${why}: the tar-split's own header data does not belong to this DiffID`, files, computed);
}

// ---------------------------------------------------------------------------------------------------------
// Many layers: one layer keeps this thread busy (tar-split, opening and reading files) plus its sha256
// worker, so parallelism across layers needs worker threads. The worker is this same module (started with a
// marker in workerData); when running from TypeScript sources (tests), where a worker cannot load the
// module, layers are interleaved on the calling thread instead.

const WORKER_MARK = 'layergc-verify-worker';
const PROGRESS_EVERY = 8 << 20;

type ToWorker = { id: number; target: VerifyTarget };
type FromWorker =
  | { id: number; bytes: number }
  | { id: number; result: VerifyResult }
  | { id: number; error: string };

if (!isMainThread && parentPort && (workerData as Record<string, unknown> | null)?.[WORKER_MARK]) {
  const port = parentPort;
  port.on('message', (msg: ToWorker) => {
    let unreported = 0;
    const onBytes = (n: number) => {
      unreported += n;
      if (unreported >= PROGRESS_EVERY) {
        port.postMessage({ id: msg.id, bytes: unreported } satisfies FromWorker);
        unreported = 0;
      }
    };
    verifyLayer(msg.target, { onBytes }).then(
      (result) => {
        if (unreported > 0) port.postMessage({ id: msg.id, bytes: unreported } satisfies FromWorker);
        port.postMessage({ id: msg.id, result } satisfies FromWorker);
      },
      (err: unknown) => port.postMessage({ id: msg.id, error: err instanceof Error ? (err.stack ?? err.message) : String(err) } satisfies FromWorker),
    );
  });
}

/** The parent's node flags minus those about how its own entry was given (-e, --input-type), which would
 * break loading a worker from a file. */
function workerExecArgv(): string[] {
  const out: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-e' || a === '--eval' || a === '-p' || a === '--print') i++;
    else if (!a.startsWith('--input-type') && !a.startsWith('--eval=') && !a.startsWith('--print=')) out.push(a);
  }
  return out;
}

function workerEntry(): string | null {
  const self = fileURLToPath(import.meta.url);
  return self.endsWith('.js') ? self : null;
}

export async function verifyLayers(targets: VerifyTarget[], opts: VerifyLayersOptions = {}): Promise<VerifyResult[]> {
  const total = targets.length;
  const concurrency = Math.max(1, Math.min(opts.concurrency ?? availableParallelism(), total));
  const results: VerifyResult[] = new Array(total);
  let done = 0;
  let bytes = 0;
  const progress = () => opts.onProgress?.({ layersDone: done, layersTotal: total, bytes });
  const entry = concurrency > 1 ? workerEntry() : null;
  if (total === 0) return results;

  if (entry === null) {
    let next = 0;
    const lane = async () => {
      while (next < total) {
        const i = next++;
        results[i] = await verifyLayer(targets[i], {
          onBytes: (n) => {
            const before = bytes;
            bytes += n;
            if (Math.floor(before / PROGRESS_EVERY) !== Math.floor(bytes / PROGRESS_EVERY)) progress();
          },
        });
        done++;
        progress();
      }
    };
    await Promise.all(Array.from({ length: concurrency }, lane));
    return results;
  }

  const workers: Worker[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      let next = 0;
      const dispatch = (w: Worker) => {
        if (next >= total) return;
        const id = next++;
        w.postMessage({ id, target: targets[id] } satisfies ToWorker);
      };
      for (let k = 0; k < concurrency; k++) {
        const w = new Worker(entry, { execArgv: workerExecArgv(), workerData: { [WORKER_MARK]: true } });
        workers.push(w);
        w.on('message', (m: FromWorker) => {
          if ('bytes' in m) {
            bytes += m.bytes;
            progress();
          } else if ('result' in m) {
            results[m.id] = m.result;
            done++;
            progress();
            if (done === total) resolve();
            else dispatch(w);
          } else {
            reject(new Error(`verifying ${targets[m.id].chainId}: ${m.error}`));
          }
        });
        w.on('error', reject);
        w.on('exit', (code) => {
          if (done < total) reject(new Error(`verify worker exited with code ${code}`));
        });
        dispatch(w);
      }
    });
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  return results;
}
