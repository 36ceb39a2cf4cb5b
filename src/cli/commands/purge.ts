// layergc purge: flags to the purge use case (src/app/purge.ts), its report rendered, an exit code.
import { Command, Option } from 'commander';
import { GARBAGE_KINDS } from '../../findings/types.js';
import { ExitCode, LayergcError } from '../../errors.js';
import { INCLUDABLE_KINDS, type Action } from '../../purge/plan.js';
import { purgeJson, type PurgeReport } from '../../app/report.js';
import { DURATION_UNITS, parseDuration } from '../duration.js';
import { action, deliver, formatOf, withStoreOptions, type CommonOptions, type RunContext } from '../common.js';
import { renderPurge } from '../render/purge.js';
import { metricsOf } from '../render/prometheus.js';
import { checkMetricsTarget } from '../metrics-file.js';
import { confirm, Interrupt } from '../interrupt.js';
import { againWith } from '../hint.js';

interface PurgeOptions extends CommonOptions {
  dryRun?: boolean;
  yes?: boolean;
  force?: boolean;
  minAge: string;
  include?: string;
  quarantine?: string;
  verbose?: boolean;
}

/** Log events of the items as they end: failures for machines and logs, removals for --log-format json. */
function onAction({ log, opts }: RunContext) {
  const format = formatOf(opts);
  return (a: Action) => {
    if (a.status === 'failed' && (format !== 'human' || opts.logFormat === 'json'))
      log.warn(`could not remove ${a.finding.kind} ${a.finding.paths[0]}: ${a.reason}`, { event: 'failed', kind: a.finding.kind, paths: a.finding.paths, reason: a.reason });
    else if (a.status === 'removed' && opts.logFormat === 'json')
      log.info(`removed ${a.finding.kind} ${a.finding.paths[0]}`, { event: 'removed', kind: a.finding.kind, paths: a.finding.paths, bytes: a.finding.bytes });
  };
}

function exitOf(r: PurgeReport, interrupt: Interrupt): number {
  if (interrupt.exitCode) return interrupt.exitCode;
  if (r.declined) return ExitCode.OK;
  const x = r.repair;
  const failed = r.totals.failed + (x ? x.repairs.filter((p) => p.status === 'failed').length + (x.edit?.status === 'failed' ? 1 : 0) : 0);
  return failed || x?.heldBack.length || x?.blocked ? ExitCode.FOUND : ExitCode.OK;
}

export function purgeCommand(): Command {
  return withStoreOptions(new Command('purge'))
    .description('remove orphan layers and leaked data (removing-orphan, stale-write-set, unreferenced-driver-dir, dangling-link)')
    .option('-n, --dry-run', 'show exactly what would be removed; change nothing')
    .option('-y, --yes', 'remove without asking')
    .option('-f, --force', 'the same as --yes (as in docker system prune -f)')
    .option('--min-age <duration>', 'while a dockerd runs, keep leaked data younger than this (a pull may be in flight)', '24h')
    .addOption(
      new Option(
        '--include <kinds>',
        `also remove these kinds (comma-separated): ${INCLUDABLE_KINDS.filter((k) => !GARBAGE_KINDS.includes(k)).join(', ')}; broken: repair broken layers, remove what cannot be repaired (containers: and the containers on them)`,
      ),
    )
    .option('--quarantine <dir>', 'with --include broken: move what would be deleted into DIR (same filesystem) with a manifest; layergc restore DIR puts it back')
    .option('-v, --verbose', 'say why for every item, not once per kind')
    .action(
      action<PurgeOptions>(async (ctx, opts) => {
        const { out, log } = ctx;
        opts.yes ||= opts.force;
        const minAgeMs = parseDuration(opts.minAge);
        if (minAgeMs === null) throw new LayergcError(`--min-age ${JSON.stringify(opts.minAge)} is not a duration: a number with a unit (${DURATION_UNITS}), like 24h, 1h30m or 90m; or 0`);
        if (opts.dryRun && opts.yes) throw new LayergcError(`--dry-run and ${opts.force ? '--force' : '--yes'} contradict each other: pick one`);
        const { includedKinds, purge } = await import('../../app/purge.js'); // loaded only for this command: the CLI starts fast
        const { kinds, repair } = includedKinds(opts.include);
        if (repair.has('containers') && !repair.has('broken')) throw new LayergcError('--include containers goes with broken: --include broken,containers');
        if (opts.quarantine !== undefined && !repair.has('broken')) throw new LayergcError('--quarantine goes with --include broken');
        if (repair.has('broken') && !opts.dryRun && !opts.yes) throw new LayergcError('--include broken needs --dry-run or --yes');
        const ask = !opts.dryRun && !opts.yes;
        if (ask && !(process.stdin.isTTY && process.stdout.isTTY)) {
          throw new LayergcError('refusing to remove anything without --yes when not on a terminal; pass --yes to remove, or --dry-run to see the plan');
        }
        if (opts.metricsFile) await checkMetricsTarget(opts.metricsFile); // before anything is removed
        const format = formatOf(opts);
        const again = againWith(opts);
        const interrupt = new Interrupt((sig) => log.warn(`${sig}: finishing the item under way, then stopping (again to stop at once)`, { event: 'interrupted', signal: sig }));
        try {
          const r = await purge(
            {
              ...opts,
              ask,
              minAgeMs,
              kinds,
              broken: repair.has('broken') ? { containers: repair.has('containers'), quarantine: opts.quarantine } : undefined,
              measureAll: !!opts.metricsFile || format === 'prometheus',
            },
            {
              log,
              signal: interrupt.signal,
              onAction: onAction(ctx),
              confirm: (plan) => {
                out.out(renderPurge(out, plan, { asking: true, verbose: opts.verbose, again }));
                if (!plan.totals.planned) return Promise.resolve('no');
                return confirm('Remove the planned items? [y/N] ', interrupt);
              },
            },
          );
          if (r.declined) {
            out.out('Nothing removed.');
            return exitOf(r, interrupt);
          }
          await deliver(
            ctx,
            { json: () => purgeJson(r), metrics: () => metricsOf(r), human: () => renderPurge(out, r, { quiet: opts.quiet && !r.interrupted, verbose: opts.verbose, again }) },
            'the purge ran, its report above says what was removed',
          );
          return exitOf(r, interrupt);
        } finally {
          interrupt.dispose();
        }
      }),
    );
}
