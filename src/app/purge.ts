// The purge use case: remove what scan calls garbage, through the storage-driver adapter, safely
// and resumably: the lock, the journal (finishing what an interrupted run left), measuring,
// planning, asking, executing, the free-space delta. A dry run runs the same plan and skips only
// the removal. --include broken (src/app/purge-broken.ts) and the containerd image store
// (src/app/purge-containerd.ts) go through the same lock, journal and report.
import { locate } from '../store/locate.js';
import { openStore } from '../store/index.js';
import { scanStore } from '../findings/index.js';
import { GARBAGE_KINDS, type Finding, type FindingKind } from '../findings/types.js';
import type { MountTable } from '../fsx/mounts.js';
import { ancestors } from '../store/references.js';
import { ExitCode, LayergcError } from '../errors.js';
import { liveMounts, Remover } from '../fsx/remove.js';
import { SizeAccounting } from '../fsx/size.js';
import { acquireLock } from '../purge/lock.js';
import type { Journal, JournalEntry } from '../purge/journal.js';
import { lstatOrNull } from '../fsx/read.js';
import { STAGED_SUFFIX } from '../layout.js';
import { INCLUDABLE_KINDS, planPurge } from '../purge/plan.js';
import { executePlan, freeBytes } from '../purge/execute.js';
import { storeKind } from '../store/containerd/index.js';
import { buildkitNote, imagesNote, sourceNotes } from './notes.js';
import { quietLog, type Log } from './hooks.js';
import { interruptedBy, logTakeover, openJournal, type PurgeHooks, type PurgeOptions } from './purge-run.js';
import { purgeBroken } from './purge-broken.js';
import { purgeContainerd } from './purge-containerd.js';

export type { PurgeHooks, PurgeOptions };
import { purgeReport, type Header, type PurgeReport } from './report.js';

/** Words --include takes besides finding kinds. */
export const REPAIR_WORDS = ['broken', 'containers'];

/** The kinds and repair words of --include, refused with the list of what it takes. */
export function includedKinds(include: string | undefined): { kinds: FindingKind[]; repair: Set<string> } {
  const kinds: FindingKind[] = [...GARBAGE_KINDS];
  const repair = new Set<string>();
  for (const k of (include ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    if (REPAIR_WORDS.includes(k)) {
      repair.add(k);
      continue;
    }
    if (!INCLUDABLE_KINDS.includes(k as FindingKind)) throw new LayergcError(`--include ${k}: not a kind purge can remove (${INCLUDABLE_KINDS.join(', ')})`);
    if (!kinds.includes(k as FindingKind)) kinds.push(k as FindingKind);
  }
  return { kinds, repair };
}

/** Close the journal entries of items an interrupted run began that are now gone, staged names included. */
async function closeFinished(unfinished: JournalEntry[], journal: Journal): Promise<void> {
  for (const e of unfinished) {
    const left = await Promise.all(e.paths.flatMap((p) => [p, `${p}${STAGED_SUFFIX}`]).map((p) => lstatOrNull(p)));
    if (left.every((st) => !st)) await journal.write({ event: 'finished-interrupted', kind: e.kind, paths: e.paths });
  }
}

/** Sizes of findings the scan did not measure (a purge measures only what it needs). */
function measureNow(findings: Finding[], mounts: MountTable): void {
  const sizes = new SizeAccounting(mounts);
  for (const f of findings) f.bytes = f.paths.reduce((t, p) => t + sizes.measure(p).bytes, 0);
}

export async function purge(opts: PurgeOptions, hooks: PurgeHooks = {}): Promise<PurgeReport> {
  const started = Date.now();
  const log = hooks.log ?? quietLog;
  if ((await storeKind(opts)) === 'containerd') {
    if (opts.kinds.length > GARBAGE_KINDS.length || opts.broken) throw new LayergcError('--include does not apply to the containerd image store');
    if (opts.ask) throw new LayergcError('on the containerd image store, run --dry-run first, then --yes');
    return purgeContainerd(opts, hooks, started);
  }
  const loc = await locate(opts);
  const lock = opts.dryRun ? undefined : await acquireLock(loc.dataRoot, 'layergc purge');
  try {
    logTakeover(lock, log);
    if (opts.broken) {
      return await purgeBroken(opts, opts.broken, loc, hooks, started);
    }
    return await purgeGarbage(opts, hooks, loc, started, log);
  } finally {
    await lock?.release();
  }
}

async function purgeGarbage(opts: PurgeOptions, hooks: PurgeHooks, loc: Awaited<ReturnType<typeof locate>>, started: number, log: Log): Promise<PurgeReport> {
  const { kinds } = opts;
  const planOnly = !!opts.dryRun || !!opts.ask; // a run that asks plans first
  const store = await openStore(opts, loc);
  if (store.daemon.running && kinds.includes('unreferenced-layer')) {
    throw new LayergcError(`a dockerd (pid ${store.daemon.processes.map((p) => p.pid).join(', ')}) runs on ${loc.dataRoot}; removing unreferenced layers needs it stopped`, ExitCode.DAEMON_RUNNING);
  }
  const unknownSources = sourceNotes(store);
  for (const n of unknownSources) log.warn(n, { event: 'unknown-source' });
  const notes = [buildkitNote(store), imagesNote(store), ...unknownSources].filter((n): n is string => !!n);
  const { journal, unfinished } = await openJournal(loc.dataRoot, !!opts.dryRun, log); // a run that asks and goes ahead is not a dry one

  // sizes and ages matter for a plan shown to a person, and for the policy while a daemon runs;
  // otherwise the removal itself counts what it frees, and the trees are walked once, not twice
  const measureFirst = planOnly || store.daemon.running;
  const scan = await scanStore(store, { sizes: measureFirst });
  const depthOf = (f: { layer?: string }) => (f.layer ? ancestors(store.layerdb.layers, f.layer).length : 0);
  const actions = planPurge(scan.findings, { kinds, daemonRunning: store.daemon.running, minAgeMs: opts.minAgeMs, now: Date.now(), driver: store.driver }, depthOf);
  const header: Header = { dataRoot: store.loc.dataRoot, driver: store.loc.driver, daemonRunning: store.daemon.running };
  if (!measureFirst)
    measureNow(
      actions.filter((a) => a.status === 'skipped').map((a) => a.finding),
      scan.mounts,
    );
  const report = (dryRun: boolean, measuredFreed?: number): PurgeReport =>
    purgeReport({ header, dryRun, actions, findings: scan.findings, measuredFreed, notes, interrupted: interruptedBy(hooks.signal), started });

  if (opts.ask) {
    const answer = hooks.confirm ? await hooks.confirm(report(true)) : 'no';
    if (answer !== 'yes') return { ...report(true), declined: true };
  }
  const dryRun = !!opts.dryRun;
  const freeBefore = freeBytes(loc.dataRoot);
  const rm = new Remover(loc.dataRoot, liveMounts, dryRun, hooks.signal); // the mount table as it is at each removal, not at the scan
  await executePlan(actions, { driver: store.driver, rm, journal, signal: hooks.signal, onAction: hooks.onAction });
  const freeAfter = freeBytes(loc.dataRoot);
  if (!dryRun) await closeFinished(unfinished, journal).catch(() => undefined); // a journal that cannot be written is reported per item
  if (!measureFirst && opts.measureAll) {
    // metrics report every kind's bytes, also of findings this purge left alone
    const acted = new Set(actions.map((a) => a.finding));
    measureNow(
      scan.findings.filter((f) => !acted.has(f)),
      scan.mounts,
    );
  }
  const r = report(dryRun, dryRun ? undefined : freeAfter - freeBefore);
  if (!measureFirst) {
    // what a removal freed is what the findings held: counted as it went, not walked before
    const freed = new Map(actions.filter((a) => a.freedBytes !== undefined).map((a) => [a.finding, a.freedBytes!]));
    r.findings = scan.findings.map((f) => (freed.has(f) ? { ...f, bytes: freed.get(f)! } : f));
  }
  return r;
}
