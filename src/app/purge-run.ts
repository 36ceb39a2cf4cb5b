// What every purge shares (the garbage purge, --include broken, the containerd image store): its
// options and hooks, the lock-takeover warning, the journal opened for a run, the signal's name.
import { randomBytes } from 'node:crypto';
import type { FindingKind } from '../findings/types.js';
import type { Lock } from '../purge/lock.js';
import { Journal, type JournalEntry } from '../purge/journal.js';
import type { Action } from '../purge/plan.js';
import type { Hooks, Log, Where } from './hooks.js';
import type { PurgeReport } from './report.js';

export interface PurgeOptions extends Where {
  /** plan only; change nothing */
  dryRun?: boolean;
  /** plan, then ask hooks.confirm before removing */
  ask?: boolean;
  minAgeMs: number;
  /** the kinds to remove: the default garbage and what --include added */
  kinds: readonly FindingKind[];
  /** --include broken: repair broken layers, remove what cannot be repaired */
  broken?: { containers: boolean; quarantine?: string };
  /** every kind's bytes are wanted (metrics), not only of what is removed or shown */
  measureAll?: boolean;
}

export interface PurgeHooks extends Hooks {
  /** the plan, shown to a person: go ahead? */
  confirm?: (plan: PurgeReport) => Promise<'yes' | 'no' | 'interrupted'>;
  /** each action as it ends (removed, failed, skipped) */
  onAction?: (a: Action) => void;
}

export function logTakeover(lock: Lock | undefined, log: Log): void {
  if (lock?.takenOver)
    log.warn(`took over the lock of a layergc that died: pid ${lock.takenOver.pid} on ${lock.takenOver.host}, since ${lock.takenOver.since}`, { event: 'lock-takeover', holder: lock.takenOver });
}

/** A journal for this run; a real run learns first what an interrupted one left. */
export async function openJournal(dataRoot: string, dryRun: boolean, log: Log): Promise<{ journal: Journal; unfinished: JournalEntry[] }> {
  const journal = new Journal(dataRoot, randomBytes(6).toString('hex'), dryRun);
  const unfinished = dryRun ? [] : await journal.unfinished();
  for (const l of journal.skippedLines) log.warn(`skipped a journal line of the wrong shape: ${JSON.stringify(l)}`, { event: 'journal-skipped' });
  if (unfinished.length) log.info(`finishing ${unfinished.length} item(s) an interrupted purge left`, { event: 'resume', items: unfinished.length });
  await journal.rotate();
  return { journal, unfinished };
}

/** The signal that stopped the run, if one did. */
export const interruptedBy = (signal?: AbortSignal): PurgeReport['interrupted'] => (signal?.aborted && (signal.reason === 'SIGINT' || signal.reason === 'SIGTERM') ? signal.reason : undefined);
