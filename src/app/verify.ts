// The verify use case: prove each layer's content against its DiffID, offline (on the containerd
// image store: every blob against its digest and recorded size).
import { openStore } from '../store/index.js';
import { LayergcError } from '../errors.js';
import { verifyStore } from '../verify/findings.js';
import { prestartHasher } from '../verify/index.js';
import { onPath } from '../fsx/tools.js';
import { resolveReference } from '../store/resolve.js';
import { ancestors } from '../store/references.js';
import { short } from '../store/digest.js';
import type { Store } from '../store/model.js';
import { storeKind } from '../store/containerd/index.js';
import { buildkitNote } from './notes.js';
import { quietLog, type Hooks, type Log, type Where } from './hooks.js';
import type { VerifyReport } from './report.js';

export interface VerifyOptions extends Where {
  /** images, containers, layers or driver dirs as a person types them; none: every layer */
  what?: string[];
  jobs?: number;
  /** `layergc scan …` with the flags that located this root, for the warnings */
  again?: (sub: string) => string;
}

/** Chain IDs to verify for what a person typed: an image's layers, a container's, a layer, a driver dir's layer. */
function chainIdsFor(store: Store, what: string, log: Log, again: (sub: string) => string): string[] {
  const r = resolveReference(store, what);
  const { layers } = store.layerdb;
  const present = (ids: string[], of: string) =>
    ids.filter((c) => {
      if (layers.has(c)) return true;
      log.warn(`layer ${short(c)} of ${of} is not in the layer store (see ${again('scan')})`);
      return false;
    });
  switch (r?.kind) {
    case 'layer':
      return [r.chainId];
    case 'image':
      return present(r.image.chainIds, `image ${what}`);
    case 'container': {
      const m = store.layerdb.mounts.find((x) => x.name === r.container.id);
      if (m?.parent) return present(ancestors(layers, m.parent).reverse(), `container ${what}`);
      const img = store.images.images.find((i) => i.id === r.container.image);
      return present(img?.chainIds ?? [], `container ${what}`);
    }
    case 'driver-dir': {
      const l = [...layers.values()].find((x) => x.cacheId === r.id);
      if (!l) throw new LayergcError(`driver dir ${r.id} is no layer's data (a container's writable layer has no DiffID to check)`);
      return [l.chainId];
    }
    default:
      throw new LayergcError(`${what} is not an image, container, layer or driver dir in ${store.loc.dataRoot}`);
  }
}

/** verify reads overlay redirects with getfattr (Debian's attr); without it, say so instead of guessing. */
async function getfattrNote(store: Store): Promise<string | undefined> {
  if (!['overlay2', 'fuse-overlayfs'].includes(store.loc.driver)) return undefined;
  if (onPath('getfattr')) return undefined; // as spawning it would find it, without a child process
  return "getfattr was not found (install Debian's or Alpine's `attr` package): directories renamed in an upper layer (overlay redirect_dir) cannot be followed, and their files would be reported missing";
}

export async function verify(opts: VerifyOptions, hooks: Hooks = {}): Promise<VerifyReport> {
  const started = Date.now();
  if ((await storeKind(opts)) === 'containerd') return verifyContainerdStore(opts, started);
  prestartHasher(); // its thread boots while the store loads
  const store = await openStore(opts);
  const what = opts.what ?? [];
  const again = opts.again ?? ((sub: string) => `layergc ${sub}`);
  const layers = [...new Set(what.flatMap((a) => chainIdsFor(store, a, hooks.log ?? quietLog, again)))];
  if (what.length && !layers.length) throw new LayergcError(`nothing to verify: no layer of ${what.join(', ')} is in the layer store`);
  const getfattr = await getfattrNote(store);
  const run = await verifyStore(store, { layers, progress: hooks.progress, concurrency: opts.jobs });
  const header = { dataRoot: store.loc.dataRoot, driver: store.loc.driver, daemonRunning: store.daemon.running };
  const finished = Date.now();
  const verified = { unit: 'layer' as const, count: run.results.length, ok: run.results.filter((r) => r.ok).length, bytes: run.bytes, skipped: run.skipped, ms: finished - started };
  return { command: 'verify', header, findings: run.findings, notes: [buildkitNote(store)].filter((n): n is string => !!n), getfattr, verified, times: { started, finished } };
}

/** verify of the containerd image store: every blob's sha256 against its name, its size against its records; every unpacked layer against its blob's tar and diff ID. */
async function verifyContainerdStore(opts: VerifyOptions, started: number): Promise<VerifyReport> {
  const { openContainerdStore } = await import('../store/containerd/index.js');
  const { verifyBlobs } = await import('../verify/containerd.js');
  const store = await openContainerdStore(opts);
  const { verifyUnpackedLayers, unpackedLayersNote } = await import('../verify/containerd-layers.js');
  const stats = { blobs: 0, ok: 0, bytes: 0 };
  const layers = { layers: 0, ok: 0, unverifiable: 0, bytes: 0 };
  const findings = await verifyBlobs(store, stats);
  // a layer whose blob is damaged is blob verify's finding, not checked again
  findings.push(...(await verifyUnpackedLayers(store, layers, new Set(findings.map((f) => f.containerd?.digest ?? '')))));
  const note = unpackedLayersNote(layers);
  const header = { dataRoot: store.loc.dataRoot, driver: store.loc.snapshotter, daemonRunning: store.holders.length > 0, containerdRoot: store.loc.root };
  const finished = Date.now();
  return {
    command: 'verify',
    header,
    findings,
    notes: [note],
    verified: { unit: 'blob', count: stats.blobs, ok: stats.ok, bytes: stats.bytes, skipped: [], ms: finished - started },
    times: { started, finished },
  };
}
