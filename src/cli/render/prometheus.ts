// Prometheus text exposition for node_exporter's textfile collector. Every kind is always present
// (0 when clean) so alerts can tell "clean" from "not run"; every sample carries data_root, so two
// data roots on one host (system and rootless dockerd) can write two files without colliding.
import { FINDING_KINDS, type Finding } from '../../findings/types.js';
import type { Header as ScanHeader, DfReport, ExplainReport, PurgeReport, RestoreReport, RunTimes, ScanReport, UnlockReport, VerifyReport } from '../../app/report.js';
import { VERSION } from '../version.js';
import type { RepairRun } from '../../repair/run.js';

export type { RunTimes };
export interface PurgeTotals {
  removed: number;
  failed: number;
  skipped: number;
  /** dry run: items that would be removed */
  planned?: number;
  reclaimedBytes: number;
  dryRun: boolean;
}

type Labels = Record<string, string>;

// label values: \ " and newline escaped; HELP text: \ and newline (the exposition format's rules)
const escLabel = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
const escHelp = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');

export class Exposition {
  private readonly lines: string[] = [];
  constructor(private readonly base: Labels) {}
  metric(name: string, help: string, type: 'gauge' | 'counter', samples: [Labels, number][]): this {
    this.lines.push(`# HELP ${name} ${escHelp(help)}`, `# TYPE ${name} ${type}`);
    for (const [own, value] of samples) {
      const l = Object.entries({ ...this.base, ...own })
        .map(([k, v]) => `${k}="${escLabel(v)}"`)
        .join(',');
      this.lines.push(`${name}${l ? `{${l}}` : ''} ${Number.isFinite(value) ? value : 0}`);
    }
    return this;
  }
  toString(): string {
    return `${this.lines.join('\n')}\n`;
  }
}

const sum = (fs: readonly Finding[]) => fs.reduce((s, f) => s + f.bytes, 0);

export type MetricsCommand = 'scan' | 'purge' | 'verify' | 'explain';

function common(h: ScanHeader, t: RunTimes, command: MetricsCommand): Exposition {
  const e = new Exposition({ data_root: h.dataRoot });
  return e
    .metric('layergc_info', 'layergc version, storage driver and command of the last run on this data root.', 'gauge', [[{ version: VERSION, driver: h.driver, command }, 1]])
    .metric('layergc_daemon_running', 'Whether a dockerd was running on the data root during the last run (1) or not (0).', 'gauge', [[{}, h.daemonRunning ? 1 : 0]])
    .metric('layergc_last_run_timestamp_seconds', 'Unix time the last run finished.', 'gauge', [[{}, Math.round(t.finished / 1000)]])
    .metric('layergc_last_run_duration_seconds', 'How long the last run took.', 'gauge', [[{}, Math.max(0, t.finished - t.started) / 1000]]);
}

function findingMetrics(e: Exposition, findings: readonly Finding[], bytesHelp: string): void {
  const of = (k: string) => findings.filter((f) => f.kind === k);
  e.metric(
    'layergc_findings',
    'Findings of the last run, by kind (a purge counts them before removing anything).',
    'gauge',
    FINDING_KINDS.map((k) => [{ kind: k }, of(k).length]),
  ).metric(
    'layergc_finding_bytes',
    bytesHelp,
    'gauge',
    FINDING_KINDS.map((k) => [{ kind: k }, sum(of(k))]),
  );
}

/** scan's metrics; explain reports the scan it ran to answer, with command="explain". */
export function scanMetrics(h: ScanHeader, findings: Finding[], t: RunTimes, command: MetricsCommand = 'scan'): string {
  return scanExposition(h, findings, t, command).toString();
}

function scanExposition(h: ScanHeader, findings: Finding[], t: RunTimes, command: MetricsCommand): Exposition {
  const e = common(h, t, command);
  findingMetrics(e, findings, 'Bytes held by the findings of the last scan, by kind.');
  return e.metric('layergc_reclaimable_bytes', 'Bytes a purge would free now.', 'gauge', [[{}, sum(findings.filter((f) => f.reclaimable))]]);
}

export interface VerifyTotals {
  ok: number;
  failed: number;
  skipped: number;
  bytes: number;
}

/** verify: its findings (content kinds), and how many layers matched, did not, or could not be read. */
export function verifyMetrics(h: ScanHeader, findings: Finding[], v: VerifyTotals, t: RunTimes): string {
  return scanExposition(h, findings, t, 'verify')
    .metric('layergc_verify_layers', 'Layers of the last verify, by outcome: ok (content matches its DiffID), failed, skipped (not verifiable offline).', 'gauge', [
      [{ status: 'ok' }, v.ok],
      [{ status: 'failed' }, v.failed],
      [{ status: 'skipped' }, v.skipped],
    ])
    .metric('layergc_verified_bytes', 'Bytes of layer content the last verify read and hashed.', 'gauge', [[{}, v.bytes]])
    .toString();
}

/**
 * After a purge, layergc_reclaimable_bytes is what is still left to reclaim (skipped, failed, or
 * a dry run): the findings' reclaimable bytes less what the purge freed. So "reclaimable for a
 * day" alerts stay quiet on hosts whose daily purge works.
 */
export function purgeMetrics(h: ScanHeader, findings: Finding[], p: PurgeTotals, t: RunTimes): string {
  const e = common(h, t, 'purge');
  // purge measures what it removes as it goes (free space before and after each item) and may
  // leave the trees of kinds it does not remove unwalked: their bytes are then 0
  findingMetrics(e, findings, 'Bytes of the findings of the last purge, by kind: freed for what it removed, measured for what it skipped; 0 for kinds it did not measure.');
  const reclaimable = sum(findings.filter((f) => f.reclaimable));
  const left = p.dryRun ? reclaimable : Math.max(0, reclaimable - p.reclaimedBytes);
  e.metric('layergc_reclaimable_bytes', 'Bytes a purge would free now (after a purge: what it left, skipped or could not remove).', 'gauge', [[{}, left]])
    .metric('layergc_purge_items', 'Items of the last purge, by outcome (planned: a dry run would remove them).', 'gauge', [
      [{ status: 'removed' }, p.removed],
      [{ status: 'failed' }, p.failed],
      [{ status: 'skipped' }, p.skipped],
      [{ status: 'planned' }, p.dryRun ? (p.planned ?? 0) : 0],
    ])
    .metric('layergc_reclaimed_bytes', 'Bytes the last purge freed (0 on a dry run).', 'gauge', [[{}, p.dryRun ? 0 : p.reclaimedBytes]])
    .metric('layergc_purge_dry_run', 'Whether the last purge was a dry run (1) or removed things (0).', 'gauge', [[{}, p.dryRun ? 1 : 0]]);
  return e.toString();
}

/** The metrics of any report: one family set per command, the same for stdout and --metrics-file. */
export function metricsOf(r: ScanReport | VerifyReport | ExplainReport | PurgeReport | DfReport | RestoreReport | UnlockReport): string {
  switch (r.command) {
    case 'scan':
      return scanMetrics(r.header, r.findings, r.times);
    case 'explain':
      return scanMetrics(r.header, r.findings, r.times, 'explain');
    case 'verify': {
      const v = r.verified;
      return verifyMetrics(r.header, r.findings, { ok: v.ok, failed: v.count - v.ok, skipped: v.skipped.length, bytes: v.bytes }, r.times);
    }
    case 'purge':
      return r.repair ? repairMetrics(r) : purgeMetrics(r.header, r.findings, { ...r.totals, dryRun: r.dryRun }, r.times);
    case 'df':
      return dfMetrics(r);
    case 'restore':
      return new Exposition({ data_root: r.dataRoot })
        .metric(
          'layergc_restore_items',
          'Items the last restore put back (restored), would put back (planned: a dry run) or found back already.',
          'gauge',
          (['restored', 'planned', 'already'] as const).map((s): [Record<string, string>, number] => [{ status: s }, r.items.filter((i) => i.status === s).length]),
        )
        .toString();
    case 'unlock':
      return new Exposition({ data_root: r.dataRoot })
        .metric('layergc_unlock_removed', 'Whether the last unlock removed a lock (1) or found none (0).', 'gauge', [[{}, r.removed ? 1 : 0]])
        .metric('layergc_unlock_last_run_timestamp_seconds', 'Unix time the last unlock finished.', 'gauge', [[{}, Math.round(r.times.finished / 1000)]])
        .toString();
  }
}

/** Names of their own (layergc_df_*), so a df metrics file beside scan's or purge's never collides. */
export function dfMetrics(d: DfReport): string {
  const r = d.usage;
  const t = d.times;
  return new Exposition({ data_root: r.dataRoot })
    .metric('layergc_df_total_bytes', 'Bytes on disk under the data root (each inode once, no mount point crossed).', 'gauge', [[{}, r.total]])
    .metric(
      'layergc_df_bytes',
      'Bytes on disk under the data root, by category; `other` by path.',
      'gauge',
      r.categories.map((x): [Record<string, string>, number] => [x.category === 'other' ? { category: x.category, path: x.path ?? '' } : { category: x.category }, x.bytes]),
    )
    .metric('layergc_df_reclaimable_bytes', 'Bytes a purge would free now (as layergc_reclaimable_bytes of a scan).', 'gauge', [[{}, r.reclaimableBytes]])
    .metric('layergc_df_last_run_timestamp_seconds', 'Unix time the last df finished.', 'gauge', [[{}, Math.round(t.finished / 1000)]])
    .metric('layergc_df_last_run_duration_seconds', 'How long the last df took.', 'gauge', [[{}, Math.max(0, t.finished - t.started) / 1000]])
    .toString();
}

/** purge --include broken: the purge's families, and what was repaired, removed and held back. */
export function repairMetrics(p: PurgeReport): string {
  const r = p.repair as RepairRun;
  const base = purgeMetrics(p.header, r.findings, { ...p.totals, dryRun: p.dryRun }, p.times);
  const dr = escLabel(p.header.dataRoot);
  const count = (k: string) => r.repairs.filter((x) => x.kind === k && x.status === (p.dryRun ? 'planned' : 'done')).length;
  const removed = (k: string) => r.actions.filter((a) => a.finding.kind === k && a.status === (p.dryRun ? 'planned' : 'removed')).length;
  const lines = [
    '# HELP layergc_repaired Repairs of the last purge --include broken, by kind (planned ones on a dry run).',
    '# TYPE layergc_repaired gauge',
    ...['cache-id', 'link', 'link-file'].map((k) => `layergc_repaired{data_root="${dr}",kind="${k}"} ${count(k)}`),
    '# HELP layergc_repair_removed Items the last purge --include broken removed (or would), by finding kind.',
    '# TYPE layergc_repair_removed gauge',
    ...FINDING_KINDS.filter((k) => !['content-mismatch', 'tar-split-missing', 'tar-split-corrupt', 'sparse-unverifiable', 'unsafe-path', 'invalid-image'].includes(k)).map(
      (k) => `layergc_repair_removed{data_root="${dr}",kind="${k}"} ${removed(k)}`,
    ),
    '# HELP layergc_repair_held_back Containers that held a broken chain back in the last repair.',
    '# TYPE layergc_repair_held_back gauge',
    `layergc_repair_held_back{data_root="${dr}"} ${r.heldBack.length}`,
  ];
  return `${base}${lines.join('\n')}\n`;
}
