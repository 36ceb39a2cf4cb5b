// Carrying out a repair: the proven repairs first, then repositories.json (so no tag ever names an
// image that is gone), then the removals as purge actions, journaled the same way. With a
// quarantine every removal is a move into it instead, recorded in its manifest.
import { readSmallFile, lstatOrNull, smallFileProblem } from '../fsx/read.js';
import type { AtomicWriter } from '../fsx/atomic.js';
import { faultPoint } from '../fsx/fault.js';
import type { Quarantine } from '../fsx/quarantine.js';
import type { DriverAdapter } from '../drivers/types.js';
import type { Journal } from '../purge/journal.js';
import { notBegunIfAborted } from '../purge/execute.js';
import type { Action } from '../purge/plan.js';
import type { Store } from '../store/model.js';
import { repositoriesJson, STAGED_SUFFIX } from '../layout.js';
import type { Repair } from './evidence.js';
import { withoutRefs } from './plan.js';

export interface Edit {
  path: string;
  previous: string;
  removedRefs: string[];
  status: 'planned' | 'done' | 'failed';
  reason?: string;
}

export async function applyRepairs(repairs: Repair[], w: AtomicWriter, journal: Journal): Promise<void> {
  for (const r of repairs) {
    try {
      await journal.write({ event: 'intent', kind: `repair-${r.kind}`, paths: [r.path] });
      if (r.kind === 'link') await w.symlink(r.value, r.path);
      else {
        // moby writes cache-id and link without a newline, 0644
        const keepAs = r.previous === 'unreadable' ? `${r.path}.layergc-${journal.run}` : undefined;
        await w.write(r.path, r.value, { mode: 0o644, keepAs });
        if (keepAs) r.previous = keepAs;
      }
      faultPoint('after-repair');
      if (!w.dryRun) {
        r.status = 'done';
        await journal.write({ event: 'removed', kind: `repair-${r.kind}`, paths: [r.path] });
      }
    } catch (err) {
      r.status = 'failed';
      r.reason = (err as Error).message;
      await journal.write({ event: 'failed', kind: `repair-${r.kind}`, paths: [r.path], reason: r.reason }).catch(() => undefined);
    }
  }
}

/** Drop the removed images' tags and digests from repositories.json, the old file kept beside it. */
export async function editRepositories(store: Store, refs: string[], removesImages: boolean, w: AtomicWriter, journal: Journal, q?: Quarantine): Promise<Edit | undefined> {
  const path = repositoriesJson(store.loc.imageDir);
  const f = await readSmallFile(path);
  // tags that cannot be read may name the images about to go: none of them is removed
  const unknown = f.state === 'missing' ? undefined : f.state !== 'ok' ? `it ${smallFileProblem(f)}` : store.images.repositoriesProblem;
  if (removesImages && unknown) return { path, previous: path, removedRefs: [], status: 'failed', reason: `${unknown}, so which tags name the images to remove is unknown` };
  if (!refs.length || f.state !== 'ok') return undefined;
  const text = withoutRefs(f.text, new Set(refs));
  if (text === null) return undefined;
  const previous = `${path}.layergc-${journal.run}`;
  const edit: Edit = { path, previous, removedRefs: [...refs].sort(), status: 'planned' };
  try {
    await journal.write({ event: 'intent', kind: 'edit-repositories', paths: [path, previous] });
    await q?.noteEdit(path, previous, text);
    await w.write(path, text, { mode: 0o600, keepAs: previous });
    if (!w.dryRun) {
      edit.status = 'done';
      await journal.write({ event: 'removed', kind: 'edit-repositories', paths: [path, previous] });
    }
  } catch (err) {
    edit.status = 'failed';
    edit.reason = (err as Error).message;
    await journal.write({ event: 'failed', kind: 'edit-repositories', paths: [path, previous], reason: edit.reason }).catch(() => undefined);
  }
  return edit;
}

/** The paths one action moves, in order: metadata before the data it names. */
async function movesOf(a: Action, driver: DriverAdapter): Promise<string[]> {
  const r = a.finding.removal!;
  const driverPaths = async (id: string) => {
    const staged = `${driver.dirOf(id)}${STAGED_SUFFIX}`;
    return (await lstatOrNull(staged)) ? [staged] : driver.pathsOf(id);
  };
  switch (r.type) {
    case 'link':
      return [r.path];
    case 'driver-dir':
      return a.finding.staged ? a.finding.paths : driverPaths(r.driverId);
    case 'entry':
      return [r.dir, ...(r.driverId ? await driverPaths(r.driverId) : [])];
    case 'paths':
      return [...r.paths, ...(await Promise.all((r.driverIds ?? []).map(driverPaths))).flat()];
  }
}

/** executePlan's quarantine twin: every item journaled, moved path by path, then checked gone. */
export async function quarantinePlan(actions: Action[], driver: DriverAdapter, q: Quarantine, journal: Journal, signal?: AbortSignal): Promise<void> {
  for (const a of actions) {
    notBegunIfAborted(a, signal);
    if (a.status !== 'planned') continue;
    const f = a.finding;
    try {
      const paths = await movesOf(a, driver);
      await journal.write({ event: 'intent', kind: f.kind, paths: f.paths, bytes: f.bytes });
      for (const p of paths) await q.move(p);
      if (!q.dryRun) {
        const left = [];
        for (const p of paths) if (await lstatOrNull(p)) left.push(p);
        if (left.length) throw new Error(`still there after the move: ${left.join(', ')}`);
        a.status = 'removed';
        a.freedBytes = 0; // moved, not freed: the quarantine holds it
        await journal.write({ event: 'removed', kind: f.kind, paths: f.paths, bytes: 0 });
      }
    } catch (err) {
      a.status = 'failed';
      a.reason = (err as Error).message;
      await journal.write({ event: 'failed', kind: f.kind, paths: f.paths, reason: a.reason }).catch(() => undefined);
    }
  }
}
