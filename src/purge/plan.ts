// From findings and policy to actions. The dry run and the real run share this code: only the
// executor's Remover differs.
import { GARBAGE_KINDS, needsDriver, type Finding, type FindingKind } from '../findings/types.js';
import type { DriverAdapter } from '../drivers/types.js';

export type ActionStatus = 'planned' | 'removed' | 'failed' | 'skipped';

export interface Action {
  finding: Finding;
  status: ActionStatus;
  reason?: string;
  /** Depth in the layer chain, for children-before-parents order of unreferenced layers. */
  depth: number;
  /** Bytes its removal freed, counted as it went (a real run only). */
  freedBytes?: number;
}

/** Kinds `--include` may add to the default garbage. Broken layers need the repair command. */
export const INCLUDABLE_KINDS: readonly FindingKind[] = [...GARBAGE_KINDS, 'unreferenced-layer'];

/** Kinds that may be removed while a daemon runs: it never touches them again before shutdown. */
const SAFE_WHILE_RUNNING: readonly FindingKind[] = ['removing-orphan'];
/** Kinds removed while a daemon runs only when old enough: a pull or load may be writing them. */
const AGED_WHILE_RUNNING: readonly FindingKind[] = ['unreferenced-driver-dir', 'stale-write-set'];

export interface Policy {
  kinds: readonly FindingKind[];
  daemonRunning: boolean;
  minAgeMs: number;
  now: number;
  /** The storage driver whose data the items hold; null when no item is a driver's (containerd). */
  driver: Pick<DriverAdapter, 'name' | 'removal' | 'removalNote'> | null;
}

/** Why the driver cannot remove what `f` hands it, or undefined: decided here, before anything is renamed. */
export function reportOnly(f: Finding, driver: Policy['driver'] | undefined): string | undefined {
  if (driver?.removal !== 'report-only' || !f.removal || !needsDriver(f.removal)) return undefined;
  return `report-only: layergc does not remove ${driver.name} data (${driver.removalNote ?? 'the driver cannot be driven offline'})`;
}

export function ago(ms: number): string {
  const m = Math.round(ms / 60000);
  return m < 120 ? `${m} min` : `${Math.round(m / 60)} h`;
}

export function planPurge(findings: Finding[], policy: Policy, depthOf: (f: Finding) => number): Action[] {
  const actions: Action[] = [];
  for (const f of findings) {
    if (!policy.kinds.includes(f.kind)) continue;
    const a: Action = { finding: f, status: 'planned', depth: depthOf(f) };
    const cannot = reportOnly(f, policy.driver);
    if (f.kept) {
      a.status = 'skipped';
      a.reason = `kept: ${f.kept.why}`;
    } else if (cannot) {
      a.status = 'skipped';
      a.reason = cannot;
    } else if (!f.reclaimable && f.kind !== 'unreferenced-layer') {
      a.status = 'skipped';
      a.reason = 'layergc cannot remove this with this storage driver; see the reason';
    } else if (f.mountsInside?.length) {
      a.status = 'skipped';
      a.reason = `a mount point is inside (${f.mountsInside.join(', ')}); layergc never crosses one: unmount it first`;
    } else if (policy.daemonRunning && !SAFE_WHILE_RUNNING.includes(f.kind)) {
      if (!AGED_WHILE_RUNNING.includes(f.kind)) {
        a.status = 'skipped';
        a.reason = 'a dockerd runs on this data root; this needs it stopped';
      } else if (policy.now - (f.newestMs ?? 0) < policy.minAgeMs) {
        a.status = 'skipped';
        a.reason = `written ${ago(policy.now - (f.newestMs ?? 0))} ago, younger than --min-age ${ago(policy.minAgeMs)}, and a dockerd runs: a pull or load may still be writing it`;
      }
    }
    actions.push(a);
  }
  // staged leftovers of an interrupted run first, then children before parents
  const staged = (a: Action) => (a.finding.staged ? 0 : 1);
  return actions.sort((x, y) => staged(x) - staged(y) || y.depth - x.depth);
}
