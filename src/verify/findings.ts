// From a store to verify targets, and from verify results to findings (content-mismatch,
// tar-split-missing, tar-split-corrupt, sparse-unverifiable).
import { computeReferences, type References } from '../store/references.js';
import { normalizeChainId } from '../store/digest.js';
import { tarSplitPath } from '../layout.js';
import { LayergcError } from '../errors.js';
import { firstSymlinkBelow, lstatOrNull } from '../fsx/read.js';
import { affectedBy } from '../findings/affects.js';
import type { Store } from '../store/model.js';
import { noAffects, type Finding } from '../findings/types.js';
import { verifyLayers, type VerifyResult, type VerifyTarget } from './index.js';

/** Makes the CLI's progress line, given the bytes the layers' recorded sizes add up to. */
export type ProgressFactory = (totalBytes: number) => { update: (p: { layersDone: number; layersTotal: number; bytes: number }) => void; done: () => void };

export interface VerifyRun {
  findings: Finding[];
  results: VerifyResult[];
  skipped: { chainId: string; reason: string }[];
  bytes: number;
}

export async function verifyStore(store: Store, opts: { layers?: string[]; progress?: ProgressFactory; concurrency?: number; refs?: References } = {}): Promise<VerifyRun> {
  const { layers } = store.layerdb;
  let ids = [...layers.keys()];
  if (opts.layers?.length) {
    ids = opts.layers.map((raw) => {
      const c = normalizeChainId(raw);
      if (!c) throw new LayergcError(`${raw} is not a chain ID (64 hex digits, with or without sha256:)`);
      if (!layers.has(c)) throw new LayergcError(`layer ${c} is not in the layer store ${store.loc.layerdb}`);
      return c;
    });
  }
  const targets: VerifyTarget[] = [];
  const skipped: VerifyRun['skipped'] = [];
  const unsafe = new Map<string, Finding>();
  for (const id of ids) {
    const l = layers.get(id)!;
    if (!l.diffId || !l.cacheId) {
      skipped.push({ chainId: id, reason: 'its metadata does not load (see layergc scan)' });
      continue;
    }
    if (store.driver.dataVisibleOffline && !(await lstatOrNull(store.driver.dirOf(l.cacheId)))) {
      skipped.push({ chainId: id, reason: `its driver data ${store.driver.dirOf(l.cacheId)} is gone (see layergc scan: missing-driver-data)` });
      continue;
    }
    // content is read only through directories reached from the data root without a symlink
    const unsafeRoot = (paths: string[]) => {
      const bad = paths.map((r) => firstSymlinkBelow(store.loc.dataRoot, r)).find((b) => b !== null);
      if (!bad) return false;
      const reason = `${bad.path} ${bad.what}: layergc never reads a layer through it`;
      skipped.push({ chainId: id, reason: `unsafe-path: ${reason}` });
      if (!unsafe.has(bad.path))
        unsafe.set(bad.path, {
          kind: 'unsafe-path',
          severity: 'error',
          layer: id,
          cacheId: l.cacheId,
          paths: [bad.path],
          bytes: 0,
          reclaimable: false,
          reason: `${reason}; layer ${id} is not verified`,
          affects: noAffects(),
        });
      return true;
    };
    if (unsafeRoot([store.driver.dirOf(l.cacheId)])) continue; // before reading anything in it (lower)
    const roots = await store.driver.contentRoots(l.cacheId);
    if (!roots.length) {
      skipped.push({ chainId: id, reason: `the ${store.driver.name} driver's files cannot be read offline` });
      continue;
    }
    if (unsafeRoot(roots)) continue;
    targets.push({ chainId: id, diffId: l.diffId, tarSplitPath: tarSplitPath(l.dir), contentRoots: roots, anchor: store.loc.dataRoot });
  }
  const bar = opts.progress?.(targets.reduce((n, t) => n + (layers.get(t.chainId)?.size ?? 0), 0));
  const results = await verifyLayers(targets, { concurrency: opts.concurrency, onProgress: bar?.update });
  bar?.done();

  let refs = opts.refs; // computed only when a finding names what it affects: a clean run never needs them
  const affects = (chainId: string) => affectedBy({ store, refs: (refs ??= computeReferences(store)) }, [chainId]);
  const findings: Finding[] = [...unsafe.values()];
  for (const [i, r] of results.entries()) {
    if (r.ok || !r.kind) continue;
    const l = layers.get(r.chainId)!;
    const t = targets[i]; // results come in the targets' order
    if (r.kind === 'unsafe-path') {
      // a root became a symlink after the check above: reported, never read through
      findings.push({
        kind: 'unsafe-path',
        severity: 'error',
        layer: r.chainId,
        cacheId: l.cacheId,
        paths: [t.contentRoots[0]],
        bytes: 0,
        reclaimable: false,
        reason: r.reason ?? 'unsafe',
        affects: noAffects(),
      });
      continue;
    }
    findings.push({
      kind: r.kind,
      severity: r.kind === 'sparse-unverifiable' ? 'warning' : 'error',
      layer: r.chainId,
      cacheId: l.cacheId,
      paths: r.kind === 'content-mismatch' ? [l.dir, t.contentRoots[0]] : [t.tarSplitPath],
      bytes: 0,
      reclaimable: false,
      reason: r.reason ?? r.kind,
      affects: affects(r.chainId),
      ...(r.files.length ? { files: r.files.map((f) => ({ name: f.name, problem: f.problem, ...(f.detail ? { detail: f.detail } : {}) })) } : {}),
    });
  }
  return { findings, results, skipped, bytes: results.reduce((s, r) => s + r.bytes, 0) };
}

/**
 * scan --deep, with the references the scan already computed: the scan's findings plus verify's. An
 * unsafe path both report is kept once, in verify's words (which name the layer left unverified).
 */
export async function verifyFindings(store: Store, opts: { progress?: ProgressFactory; refs?: References; scanFindings?: Finding[] }): Promise<VerifyRun> {
  const run = await verifyStore(store, opts);
  const deep = run.findings;
  if (opts.scanFindings) {
    const again = new Set(deep.filter((f) => f.kind === 'unsafe-path').map((f) => f.paths[0]));
    const list = opts.scanFindings;
    for (let i = list.length - 1; i >= 0; i--) if (list[i].kind === 'unsafe-path' && again.has(list[i].paths[0])) list.splice(i, 1);
  }
  return run;
}
