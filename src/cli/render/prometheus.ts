// Prometheus text exposition for node_exporter's textfile collector: every kind is always present
// (0 when clean) so alerts can tell "clean" from "not run".
import { writeFile, rename, unlink } from 'node:fs/promises';
import { dirname, basename } from 'node:path';
import { FINDING_KINDS, type Finding } from '../../findings/types.js';
import type { ScanHeader } from './scan-human.js';
import { VERSION } from '../version.js';

export interface RunTimes { started: number; finished: number }
export interface PurgeTotals { removed: number; failed: number; skipped: number; reclaimedBytes: number; dryRun: boolean }

const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

class Exposition {
  private readonly lines: string[] = [];
  metric(name: string, help: string, type: 'gauge' | 'counter', samples: [Record<string, string>, number][]): this {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) {
      const l = Object.entries(labels).map(([k, v]) => `${k}="${esc(v)}"`).join(',');
      this.lines.push(`${name}${l ? `{${l}}` : ''} ${Number.isFinite(value) ? value : 0}`);
    }
    return this;
  }
  toString(): string {
    return `${this.lines.join('\n')}\n`;
  }
}

function common(e: Exposition, h: ScanHeader, t: RunTimes): void {
  e.metric('layergc_info', 'layergc version, data root and storage driver of the last run.', 'gauge', [[{ version: VERSION, data_root: h.dataRoot, driver: h.driver }, 1]])
    .metric('layergc_daemon_running', 'Whether a dockerd was running on the data root during the last run.', 'gauge', [[{}, h.daemonRunning ? 1 : 0]])
    .metric('layergc_last_run_timestamp_seconds', 'Unix time the last run finished.', 'gauge', [[{}, Math.round(t.finished / 1000)]])
    .metric('layergc_last_run_duration_seconds', 'How long the last run took.', 'gauge', [[{}, (t.finished - t.started) / 1000]]);
}

function findingMetrics(e: Exposition, findings: Finding[]): void {
  const count = (k: string) => findings.filter((f) => f.kind === k).length;
  const bytes = (k: string) => findings.filter((f) => f.kind === k).reduce((s, f) => s + f.bytes, 0);
  e.metric('layergc_findings', 'Findings of the last scan, by kind.', 'gauge', FINDING_KINDS.map((k) => [{ kind: k }, count(k)]))
    .metric('layergc_finding_bytes', 'Bytes held by the findings of the last scan, by kind.', 'gauge', FINDING_KINDS.map((k) => [{ kind: k }, bytes(k)]))
    .metric('layergc_reclaimable_bytes', 'Bytes a purge would free.', 'gauge', [[{}, findings.filter((f) => f.reclaimable).reduce((s, f) => s + f.bytes, 0)]]);
}

export function scanMetrics(h: ScanHeader, findings: Finding[], t: RunTimes): string {
  const e = new Exposition();
  common(e, h, t);
  findingMetrics(e, findings);
  return e.toString();
}

export function purgeMetrics(h: ScanHeader, findings: Finding[], p: PurgeTotals, t: RunTimes): string {
  const e = new Exposition();
  common(e, h, t);
  findingMetrics(e, findings);
  e.metric('layergc_purge_items', 'Items of the last purge, by outcome.', 'gauge', [[{ status: 'removed' }, p.removed], [{ status: 'failed' }, p.failed], [{ status: 'skipped' }, p.skipped]])
    .metric('layergc_reclaimed_bytes', 'Bytes the last purge freed (0 on a dry run).', 'gauge', [[{}, p.dryRun ? 0 : p.reclaimedBytes]]);
  return e.toString();
}

/** Write atomically: a temporary file in the same directory, then rename (node_exporter's rule). */
export async function writeMetricsFile(path: string, text: string): Promise<void> {
  const tmp = `${dirname(path)}/.${basename(path)}.${process.pid}.tmp`;
  try {
    await writeFile(tmp, text, { mode: 0o644 });
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}
