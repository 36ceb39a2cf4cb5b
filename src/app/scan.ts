// The scan use case: every orphan and broken layer, why, what it costs and what it breaks; with
// deep, every layer's content checked against its DiffID too.
import { openStore } from '../store/index.js';
import { scanStore } from '../findings/index.js';
import { addRemedies } from '../repair/remedy.js';
import { storeKind } from '../store/containerd/index.js';
import { buildkitNote, imagesNote, sourceNotes } from './notes.js';
import type { Hooks, Where } from './hooks.js';
import type { ScanReport } from './report.js';

export interface ScanOptions extends Where {
  deep?: boolean;
}

export async function scan(opts: ScanOptions, hooks: Hooks = {}): Promise<ScanReport> {
  const started = Date.now();
  if ((await storeKind(opts)) === 'containerd') return scanContainerdStore(opts, started);
  const store = await openStore(opts);
  const { findings, refs } = await scanStore(store);
  addRemedies(findings, store, refs, opts);
  let verified: ScanReport['verified'];
  if (opts.deep) {
    const { verifyFindings } = await import('../verify/findings.js');
    const run = await verifyFindings(store, { refs, scanFindings: findings, progress: hooks.progress });
    findings.push(...run.findings);
    verified = { unit: 'layer', count: run.results.length, ok: run.results.filter((r) => r.ok).length, bytes: run.bytes, skipped: run.skipped, ms: Date.now() - started };
  }
  const header = { dataRoot: store.loc.dataRoot, driver: store.loc.driver, daemonRunning: store.daemon.running };
  const notes = [buildkitNote(store), imagesNote(store), ...sourceNotes(store)].filter((n): n is string => !!n);
  return { command: 'scan', header, findings, notes, verified, times: { started, finished: Date.now() } };
}

/** scan of Docker's containerd image store: the same report, other finding kinds. */
async function scanContainerdStore(opts: ScanOptions, started: number): Promise<ScanReport> {
  const { openContainerdStore } = await import('../store/containerd/index.js');
  const { scanContainerd } = await import('../findings/containerd/scan.js');
  const store = await openContainerdStore(opts);
  const { findings } = await scanContainerd(store);
  if (opts.deep) {
    const { verifyBlobs } = await import('../verify/containerd.js');
    const { verifyUnpackedLayers } = await import('../verify/containerd-layers.js');
    const damaged = await verifyBlobs(store);
    findings.push(...damaged, ...(await verifyUnpackedLayers(store, undefined, new Set(damaged.map((f) => f.containerd?.digest ?? '')))));
  }
  const header = { dataRoot: store.loc.dataRoot, driver: store.loc.snapshotter, daemonRunning: store.holders.length > 0, containerdRoot: store.loc.root };
  const notes = store.holders.map((h) => `held by ${h.what}: the store may change under the scan`);
  return { command: 'scan', header, findings, notes, times: { started, finished: Date.now() } };
}
