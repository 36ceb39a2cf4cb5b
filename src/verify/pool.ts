import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { verifyLayer, type VerifyResult, type VerifyTarget } from './layer.js';

// Many layers: one layer keeps this thread busy (tar-split, opening and reading files) plus its sha256
// worker, so parallelism across layers needs worker threads. The worker is this same module (started with
// a marker in workerData); when running from TypeScript sources (tests), where a worker cannot load the
// module, layers are interleaved on the calling thread instead.

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

const WORKER_MARK = 'layergc-verify-worker';
const PROGRESS_EVERY = 8 << 20;

type ToWorker = { id: number; target: VerifyTarget };
type FromWorker = { id: number; bytes: number } | { id: number; result: VerifyResult } | { id: number; error: string };

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
