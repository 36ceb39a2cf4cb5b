// layergc purge: remove what scan calls garbage, through the storage-driver adapter, safely and
// resumably. --dry-run runs the same plan and skips only the removal.
import { Command, Option } from 'commander';
import { randomBytes } from 'node:crypto';
import { locate } from '../../store/locate.js';
import { openStore } from '../../store/index.js';
import { scanStore } from '../../findings/index.js';
import { GARBAGE_KINDS, type Finding, type FindingKind } from '../../findings/types.js';
import type { MountTable } from '../../fsx/mounts.js';
import { ancestors } from '../../store/references.js';
import { STAGED_SUFFIX } from '../../layout.js';
import { ExitCode, LayergcError } from '../../errors.js';
import { liveMounts, Remover } from '../../fsx/remove.js';
import { SizeAccounting } from '../../fsx/size.js';
import { acquireLock } from '../../purge/lock.js';
import { Journal, type JournalEntry } from '../../purge/journal.js';
import { lstatOrNull } from '../../fsx/read.js';
import { INCLUDABLE_KINDS, planPurge, type Action } from '../../purge/plan.js';
import { DURATION_UNITS, parseDuration } from '../duration.js';
import { executePlan, freeBytes } from '../../purge/execute.js';
import { action, formatOf, withStoreOptions, type CommonOptions } from '../common.js';
import { renderPurgeHuman } from '../render/purge.js';
import { purgeJson, purgeTotals } from '../../app/report.js';
import { checkMetricsTarget, purgeMetrics, writeMetricsFile } from '../render/prometheus.js';
import { buildkitNote, imagesNote, sourceNotes } from '../../app/notes.js';
import { checkRepairOptions, purgeBroken, REPAIR_WORDS } from './purge-broken.js';
import { purgeContainerd } from './purge-containerd.js';
import { storeKind } from '../../store/containerd/index.js';
import { confirm, Interrupt } from '../interrupt.js';
import { againWith } from '../hint.js';

interface PurgeOptions extends CommonOptions { dryRun?: boolean; yes?: boolean; force?: boolean; minAge: string; include?: string; quarantine?: string }

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

export function purgeCommand(): Command {
  return withStoreOptions(new Command('purge'))
    .description('remove orphan layers and leaked data (removing-orphan, stale-write-set, unreferenced-driver-dir, dangling-link)')
    .option('-n, --dry-run', 'show exactly what would be removed; change nothing')
    .option('-y, --yes', 'remove without asking')
    .option('-f, --force', 'the same as --yes (as in docker system prune -f)')
    .option('--min-age <duration>', 'while a dockerd runs, keep leaked data younger than this (a pull may be in flight)', '24h')
    .addOption(new Option('--include <kinds>', `also remove these kinds (comma-separated): ${INCLUDABLE_KINDS.filter((k) => !GARBAGE_KINDS.includes(k)).join(', ')}; broken: repair broken layers, remove what cannot be repaired (containers: and the containers on them)`))
    .option('--quarantine <dir>', 'with --include broken: move what would be deleted into DIR (same filesystem) with a manifest; layergc restore DIR puts it back')
    .action(action<PurgeOptions>(async ({ out, log }, opts) => {
      const started = Date.now();
      opts.yes ||= opts.force;
      const minAgeMs = parseDuration(opts.minAge);
      if (minAgeMs === null) throw new LayergcError(`--min-age ${JSON.stringify(opts.minAge)} is not a duration: a number with a unit (${DURATION_UNITS}), like 24h, 1h30m or 90m; or 0`);
      if (opts.dryRun && opts.yes) throw new LayergcError(`--dry-run and ${opts.force ? '--force' : '--yes'} contradict each other: pick one`);
      const kinds: FindingKind[] = [...GARBAGE_KINDS];
      const repair = new Set<string>();
      for (const k of (opts.include ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
        if (REPAIR_WORDS.includes(k)) {
          repair.add(k);
          continue;
        }
        if (!INCLUDABLE_KINDS.includes(k as FindingKind)) throw new LayergcError(`--include ${k}: not a kind purge can remove (${INCLUDABLE_KINDS.join(', ')})`);
        if (!kinds.includes(k as FindingKind)) kinds.push(k as FindingKind);
      }
      checkRepairOptions(repair, opts);
      const interactive = !opts.dryRun && !opts.yes;
      if (interactive && !(process.stdin.isTTY && process.stdout.isTTY)) {
        throw new LayergcError('refusing to remove anything without --yes when not on a terminal; pass --yes to remove, or --dry-run to see the plan');
      }
      if (opts.metricsFile) await checkMetricsTarget(opts.metricsFile); // before anything is removed

      if ((await storeKind(opts)) === 'containerd') {
        if (kinds.length > GARBAGE_KINDS.length || repair.size) throw new LayergcError('--include does not apply to the containerd image store');
        if (interactive) throw new LayergcError('on the containerd image store, run --dry-run first, then --yes');
        return await purgeContainerd({ out, log }, opts, { minAgeMs, started });
      }
      const loc = await locate(opts);
      const dryRun = !!opts.dryRun || interactive; // an interactive run plans first, then asks
      const lock = opts.dryRun ? undefined : await acquireLock(loc.dataRoot, 'layergc purge');
      const interrupt = new Interrupt((sig) => log.warn(`${sig}: finishing the item under way, then stopping (again to stop at once)`, { event: 'interrupted', signal: sig }));
      try {
        if (lock?.takenOver) log.warn(`took over the lock of a layergc that died: pid ${lock.takenOver.pid} on ${lock.takenOver.host}, since ${lock.takenOver.since}`, { event: 'lock-takeover', holder: lock.takenOver });
        if (repair.has('broken')) return await purgeBroken({ out, log, opts }, opts, loc, { kinds, containers: repair.has('containers'), started });
        const store = await openStore(opts, loc);
        if (store.daemon.running && kinds.includes('unreferenced-layer')) {
          throw new LayergcError(`a dockerd (pid ${store.daemon.processes.map((p) => p.pid).join(', ')}) runs on ${loc.dataRoot}; removing unreferenced layers needs it stopped`, ExitCode.DAEMON_RUNNING);
        }
        for (const n of sourceNotes(store)) log.warn(n, { event: 'unknown-source' });
        const run = randomBytes(6).toString('hex');
        const journal = new Journal(loc.dataRoot, run, !!opts.dryRun); // an interactive run that goes ahead is not a dry one
        const unfinished = opts.dryRun ? [] : await journal.unfinished();
  for (const l of journal.skippedLines) log.warn(`skipped a journal line of the wrong shape: ${JSON.stringify(l)}`, { event: 'journal-skipped' });
        if (unfinished.length) log.info(`finishing ${unfinished.length} item(s) an interrupted purge left`, { event: 'resume', items: unfinished.length });
        await journal.rotate();

        // sizes and ages matter for a plan shown to a person, and for the policy while a daemon runs;
        // otherwise the removal itself counts what it frees, and the trees are walked once, not twice
        const measureFirst = dryRun || store.daemon.running;
        const scan = await scanStore(store, { sizes: measureFirst });
        const depthOf = (f: { layer?: string }) => (f.layer ? ancestors(store.layerdb.layers, f.layer).length : 0);
        const actions = planPurge(scan.findings, { kinds, daemonRunning: store.daemon.running, minAgeMs, now: Date.now(), driver: store.driver }, depthOf);
        const header = { dataRoot: store.loc.dataRoot, driver: store.loc.driver, daemonRunning: store.daemon.running };

        if (!measureFirst) measureNow(actions.filter((a) => a.status === 'skipped').map((a) => a.finding), scan.mounts);
        let doRun = !dryRun;
        if (interactive) {
          out.out(renderPurgeHuman(out, header, actions, { dryRun: true, asking: true }));
          const answer = actions.some((a) => a.status === 'planned') ? await confirm('Remove the planned items? [y/N] ', interrupt) : 'no';
          if (answer !== 'yes') {
            out.out('Nothing removed.');
            return interrupt.exitCode ?? ExitCode.OK;
          }
          doRun = true;
        }
        const format = formatOf(opts);
        const freeBefore = freeBytes(loc.dataRoot);
        const rm = new Remover(loc.dataRoot, liveMounts, !doRun); // the mount table as it is at each removal, not at the scan
        await executePlan(actions, {
          driver: store.driver,
          rm,
          journal,
          signal: interrupt.signal,
          onAction: (a: Action) => {
            if (a.status === 'failed' && (format !== 'human' || opts.logFormat === 'json')) log.warn(`could not remove ${a.finding.kind} ${a.finding.paths[0]}: ${a.reason}`, { event: 'failed', kind: a.finding.kind, paths: a.finding.paths, reason: a.reason });
            else if (a.status === 'removed' && opts.logFormat === 'json') log.info(`removed ${a.finding.kind} ${a.finding.paths[0]}`, { event: 'removed', kind: a.finding.kind, paths: a.finding.paths, bytes: a.finding.bytes });
          },
        });
        const freeAfter = freeBytes(loc.dataRoot);
        if (doRun) await closeFinished(unfinished, journal).catch(() => undefined); // a journal that cannot be written is reported per item
        if (!measureFirst && (opts.metricsFile || format === 'prometheus')) {
          // metrics report every kind's bytes, also of findings this purge left alone
          const acted = new Set(actions.map((a) => a.finding));
          measureNow(scan.findings.filter((f) => !acted.has(f)), scan.mounts);
        }
        if (!measureFirst) for (const a of actions) if (a.freedBytes !== undefined) a.finding.bytes = a.freedBytes;
        const measured = doRun ? freeAfter - freeBefore : undefined;
        const totals = purgeTotals(actions, !doRun);
        const metrics = () => purgeMetrics(header, scan.findings, { ...totals, dryRun: !doRun }, { started, finished: Date.now() });
        // a metrics file that cannot be written (a full disk) does not cost the report of what was removed
        const metricsFailed = opts.metricsFile ? await writeMetricsFile(opts.metricsFile, metrics()).then(() => undefined, (err: Error) => err) : undefined;
        if (format === 'json') out.out(JSON.stringify(purgeJson({ header, actions, dryRun: !doRun, measuredFreed: measured, notes: [] }), null, 2));
        else if (format === 'prometheus') out.out(metrics());
        else {
          // the notes are the same every day: not for --quiet (the JSON and the metrics have the counts)
          if (!opts.quiet) for (const note of [buildkitNote(store), imagesNote(store)]) if (note) log.warn(note);
          const report = renderPurgeHuman(out, header, actions, { dryRun: !doRun, measuredFreed: measured, quiet: opts.quiet && !interrupt.exitCode, again: againWith(opts) });
          if (report) out.out(report);
        }
        if (metricsFailed) throw new LayergcError(`${metricsFailed.message}; the purge ran, its report above says what was removed`);
        return interrupt.exitCode ?? (totals.failed ? ExitCode.FOUND : ExitCode.OK);
      } finally {
        interrupt.dispose();
        await lock?.release();
      }
    }));
}
