// Carrying out a plan, item by item: journal the intent, stage (rename), remove the driver data,
// remove the metadata, check that it is gone, journal the outcome. An item that fails keeps its
// staged name, so the next run takes it up; one failure never stops the others.
import { randomBytes } from 'node:crypto';
import { statfsSync } from 'node:fs';
import { RemovalFailed, RemovalInterrupted, MountInside, type Remover } from '../fsx/remove.js';
import { OutsideDataRoot } from '../fsx/contain.js';
import { lstatOrNull } from '../fsx/read.js';
import { faultPoint } from '../fsx/fault.js';
import { fsCause } from '../errors.js';
import type { DriverAdapter } from '../drivers/types.js';
import { HEX64, mobyRemovingName, unsafeDriverId } from '../layout.js';
import type { Journal } from './journal.js';
import { reportOnly, type Action } from './plan.js';

/** Free bytes of the filesystem holding `path`: the run's measured gain is reported beside the count. */
export function freeBytes(path: string): number {
  try {
    const s = statfsSync(path);
    return s.bavail * s.bsize;
  } catch {
    return 0;
  }
}

export interface ExecuteContext {
  driver: DriverAdapter;
  rm: Remover;
  journal: Journal;
  onAction?: (a: Action) => void;
  /** checked between items: once aborted (SIGINT, SIGTERM), the items not begun are skipped */
  signal?: AbortSignal;
  /** asked right before each item begins: a reason (the store came into use) fails it and every later one */
  mayBegin?: () => string | undefined;
}

/** The last word on an ID before any driver removes by it (the store validated it once already). */
function refuseId(id: string): void {
  const bad = unsafeDriverId(id);
  if (bad) throw new Error(`refusing to remove driver ID ${JSON.stringify(id)}: it ${bad}`);
}

async function removeItem(a: Action, ctx: ExecuteContext): Promise<string[]> {
  const { driver, rm } = ctx;
  const r = a.finding.removal;
  if (!r) throw new Error(`finding ${a.finding.kind} has no removal plan`);
  switch (r.type) {
    case 'link':
      await driver.removeLink(r.path, rm);
      return [r.path];
    case 'driver-dir':
      refuseId(r.driverId);
      await driver.remove(r.driverId, rm);
      return a.finding.paths;
    case 'entry': {
      let dir = r.dir;
      const name = dir.slice(dir.lastIndexOf('/') + 1);
      if (HEX64.test(name)) {
        // a live-looking layerdb entry: rename it as moby's deleteLayer does, so the daemon's own
        // shutdown GC also recognises it if this run dies here
        const staged = mobyRemovingName(dir, randomBytes(32).toString('hex'));
        await rm.rename(dir, staged);
        if (!rm.dryRun) dir = staged;
      }
      faultPoint('after-stage');
      if (r.driverId) {
        refuseId(r.driverId);
        await driver.remove(r.driverId, rm);
      }
      faultPoint('after-driver');
      await rm.removeTree(dir);
      faultPoint('after-metadata');
      return [...a.finding.paths, dir];
    }
    case 'paths':
      for (const p of r.paths) await rm.removeTree(p);
      for (const id of r.driverIds ?? []) await driver.remove(id, rm);
      return a.finding.paths;
  }
}

/** Once the run is interrupted (SIGINT, SIGTERM), a planned item is skipped, not begun. */
export function notBegunIfAborted(a: Action, signal?: AbortSignal): void {
  if (a.status === 'planned' && signal?.aborted) {
    a.status = 'skipped';
    a.reason = `not begun: the run was interrupted (${String(signal.reason)})`;
  }
}

export async function executePlan(actions: Action[], ctx: ExecuteContext): Promise<void> {
  /** Why no further item may begin: the journal, which makes a run resumable, cannot be written. */
  let journalDown: string | undefined;
  /** Why no further item may begin: what mayBegin answered. */
  let halted: string | undefined;
  const journalFailed = (err: unknown) => `the journal ${ctx.journal.path} cannot be written: ${fsCause(err) ?? (err as Error).message}`;
  for (const a of actions) {
    notBegunIfAborted(a, ctx.signal);
    if (a.status === 'planned' && journalDown) {
      a.status = 'failed'; // not removed, so not a success: exit 1
      a.reason = `not begun: ${journalDown}`;
    }
    const cannot = a.status === 'planned' ? reportOnly(a.finding, ctx.driver) : undefined;
    if (cannot) {
      // the last word, as refuseId's: a plan made without its driver never gets a layerdb entry renamed
      a.status = 'skipped';
      a.reason = cannot;
    }
    if (a.status !== 'planned') {
      ctx.onAction?.(a);
      continue;
    }
    const f = a.finding;
    const freedBefore = ctx.rm.freed;
    faultPoint('before-item');
    halted ??= ctx.mayBegin?.();
    if (halted) {
      a.status = 'failed'; // not removed, so not a success: exit 1
      a.reason = `not begun: ${halted}`;
      ctx.onAction?.(a);
      continue;
    }
    try {
      await ctx.journal.write({ event: 'intent', kind: f.kind, paths: f.paths, bytes: f.bytes });
    } catch (err) {
      journalDown = journalFailed(err);
      a.status = 'failed';
      a.reason = `not begun: ${journalDown}`;
      ctx.onAction?.(a);
      continue;
    }
    try {
      faultPoint('after-intent');
      const touched = await removeItem(a, ctx);
      if (!ctx.rm.dryRun) {
        const left: string[] = [];
        for (const p of new Set(touched)) if (await lstatOrNull(p)) left.push(p);
        if (left.length) throw new Error(`still there after removal: ${left.join(', ')}`);
        a.status = 'removed';
        // removed is removed: an outcome line that cannot be written stops the run, it does not undo the item
        await ctx.journal.write({ event: 'removed', kind: f.kind, paths: f.paths, bytes: ctx.rm.freed - freedBefore }).catch((err: unknown) => {
          journalDown = journalFailed(err);
        });
      }
    } catch (err) {
      if (err instanceof RemovalInterrupted) {
        // stopped between two files: the rest keeps its staged name, the intent stays open, and
        // the next purge finishes it, as after a crash
        a.status = 'skipped';
        a.reason = err.message;
        if (!ctx.rm.dryRun) a.freedBytes = ctx.rm.freed - freedBefore;
        ctx.onAction?.(a);
        continue;
      }
      a.status = 'failed';
      a.reason = err instanceof RemovalFailed || err instanceof MountInside || err instanceof OutsideDataRoot ? err.message : (fsCause(err) ?? (err as Error).message);
      await ctx.journal.write({ event: 'failed', kind: f.kind, paths: f.paths, reason: a.reason }).catch(() => undefined);
    }
    if (!ctx.rm.dryRun) a.freedBytes = ctx.rm.freed - freedBefore;
    ctx.onAction?.(a);
  }
}
