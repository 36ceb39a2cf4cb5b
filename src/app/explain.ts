// The explain use case: why a thing is live (the chain of ownership from an image tag or
// container down to the dir) or why it is garbage or broken.
import { openStore } from '../store/index.js';
import { scanStore } from '../findings/index.js';
import { LayergcError } from '../errors.js';
import { explain as explainIn } from '../findings/explain.js';
import { storeKind } from '../store/containerd/index.js';
import type { Where } from './hooks.js';
import type { ExplainReport } from './report.js';

export async function explain(opts: Where, target: string): Promise<ExplainReport> {
  const started = Date.now();
  if ((await storeKind(opts)) === 'containerd') return explainContainerdStore(opts, target, started);
  const store = await openStore(opts);
  const scan = await scanStore(store);
  const e = await explainIn(store, scan, target);
  if (!e) throw new LayergcError(`${target} is not an image, container, layer, driver dir or path that layergc knows in ${store.loc.dataRoot}`);
  const header = { dataRoot: store.loc.dataRoot, driver: store.loc.driver, daemonRunning: store.daemon.running };
  return { command: 'explain', header, explanation: e, findings: scan.findings, times: { started, finished: Date.now() } };
}

async function explainContainerdStore(opts: Where, target: string, started: number): Promise<ExplainReport> {
  const { openContainerdStore } = await import('../store/containerd/index.js');
  const { scanContainerd } = await import('../findings/containerd/scan.js');
  const { explainContainerd } = await import('../findings/containerd/explain.js');
  const store = await openContainerdStore(opts);
  const scan = await scanContainerd(store);
  const e = explainContainerd(store, scan, target);
  if (!e) throw new LayergcError(`${target} is not a path, blob digest, snapshot key or lease ID that layergc knows in ${store.loc.root}`);
  const header = { dataRoot: store.loc.dataRoot, driver: store.loc.snapshotter, daemonRunning: store.holders.length > 0, containerdRoot: store.loc.root };
  return { command: 'explain', header, explanation: e, findings: scan.findings, times: { started, finished: Date.now() } };
}
