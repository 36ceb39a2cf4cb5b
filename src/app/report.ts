// The reports the use cases return, and the one source of their published JSON envelopes
// (docs/*.schema.json). Renderers in src/cli read these; nothing here prints.
import type { Finding, FindingKind } from '../findings/types.js';
import type { Action } from '../purge/plan.js';
import type { Explanation } from '../findings/explain.js';
import type { DfReport as DiskUsage } from '../df/index.js';
import { PURGED_CATEGORIES, type DfCategory } from '../df/categories.js';
import type { RepairRun } from '../repair/run.js';
import type { RestoreItem } from '../fsx/quarantine.js';
import type { LockHolder, Liveness } from '../purge/lock.js';

export const SCHEMA_VERSION = 1;

/** What every report opens with: the root read and whether a daemon was on it. */
export interface Header {
  dataRoot: string;
  driver: string;
  daemonRunning: boolean;
  /** the containerd image store's root, when that is what was read */
  containerdRoot?: string;
}

export interface RunTimes {
  started: number;
  finished: number;
}

/** What verify (or scan --deep) checked: layers, or blobs on the containerd image store. */
export interface Verified {
  unit: 'layer' | 'blob';
  count: number;
  ok: number;
  bytes: number;
  skipped: { chainId: string; reason: string }[];
  ms: number;
}

export interface ScanReport {
  command: 'scan';
  header: Header;
  findings: Finding[];
  notes: string[];
  verified?: Verified;
  times: RunTimes;
}

export interface VerifyReport {
  command: 'verify';
  header: Header;
  findings: Finding[];
  /** for every format */
  notes: string[];
  /** getfattr is missing: a warning for people, a note in the JSON */
  getfattr?: string;
  verified: Verified;
  times: RunTimes;
}

export interface ExplainReport {
  command: 'explain';
  header: Header;
  explanation: Explanation /** the whole scan explain ran to answer (its metrics) */;
  findings: Finding[];
  times: RunTimes;
}

export interface DfReport {
  command: 'df';
  usage: DiskUsage;
  notes: string[];
  times: RunTimes;
}

export interface PurgeTotals {
  removed: number;
  failed: number;
  skipped: number;
  planned: number;
  reclaimedBytes: number;
  plannedBytes: number;
}

/** containerd store: the meta.db rewrite that drops the dead and orphan leases (docs/purge.schema.json containerdLeases) */
export interface LeaseReport {
  status: 'planned' | 'rewritten' | 'skipped';
  reason?: string;
  metaDb: string;
  backup?: string;
  leases: { namespace: string; id: string; kind: string; bytes: number }[];
  /** what containerd's GC collects at its next start, once the leases are gone */
  bytesAtNextStart: number;
  restore?: string;
}

export interface PurgeReport {
  command: 'purge';
  header: Header;
  dryRun: boolean;
  actions: Action[];
  /** every finding of the scan, with the bytes counted for it (freed when removed, else measured) */
  findings: Finding[];
  totals: PurgeTotals;
  /** the filesystem's free space after less before (a real run) */
  measuredFreed?: number;
  notes: string[];
  /** broken: the repair run (purge --include broken) */
  repair?: RepairRun;
  quarantine?: string;
  /** the person said no (or nothing was planned) at the prompt: nothing was removed */
  declined?: boolean;
  /** SIGINT or SIGTERM stopped the run */
  interrupted?: 'SIGINT' | 'SIGTERM';
  /** containerd store: the dead and orphan leases dropped by a meta.db rewrite */
  containerdLeases?: LeaseReport;
  times: RunTimes;
}

export interface RestoreReport {
  command: 'restore';
  dataRoot: string;
  quarantine: string;
  dryRun: boolean;
  items: RestoreItem[];
}

/** unlock: the lock it removed (its holder, its text, why that holder is not alive), or none. */
export interface UnlockReport {
  command: 'unlock';
  dataRoot: string;
  lock: string;
  removed?: { holder: LockHolder; text: string; description: string };
  liveness?: Liveness;
  times: RunTimes;
}

/** What an action's line reports: bytes freed when it ran, else the scan's estimate. */
export const actionBytes = (a: Action) => a.freedBytes ?? a.finding.bytes;

/** A purge's report (all three purges): its totals derived from its actions, its end time now. */
export function purgeReport(r: Omit<PurgeReport, 'command' | 'totals' | 'times'> & { started: number }): PurgeReport {
  const { started, ...rest } = r;
  return { command: 'purge', ...rest, totals: purgeTotals(r.actions, r.dryRun), times: { started, finished: Date.now() } };
}

export function purgeTotals(actions: Action[], dryRun: boolean): PurgeTotals {
  const n = (s: Action['status']) => actions.filter((a) => a.status === s).length;
  const planned = actions.filter((a) => a.status === 'planned').reduce((t, a) => t + a.finding.bytes, 0);
  const freed = actions.reduce((t, a) => t + (a.freedBytes ?? 0), 0);
  return { removed: n('removed'), failed: n('failed'), skipped: n('skipped'), planned: n('planned'), reclaimedBytes: dryRun ? 0 : freed, plannedBytes: planned };
}

/** Per kind: count and bytes, in the order of first appearance. */
export function kindTotals(findings: readonly Finding[]): { kind: FindingKind; count: number; bytes: number }[] {
  const m = new Map<FindingKind, { kind: FindingKind; count: number; bytes: number }>();
  for (const f of findings) {
    const t = m.get(f.kind) ?? { kind: f.kind, count: 0, bytes: 0 };
    t.count++;
    t.bytes += f.bytes;
    m.set(f.kind, t);
  }
  return [...m.values()];
}

const reclaimableBytes = (findings: readonly Finding[]) => findings.filter((f) => f.reclaimable).reduce((s, f) => s + f.bytes, 0);

/** A finding as published JSON (docs/scan.schema.json): the documented fields, in a fixed order. */
export function findingJson(f: Finding): Record<string, unknown> {
  return {
    kind: f.kind,
    severity: f.severity,
    ...(f.layer ? { layer: f.layer } : {}),
    ...(f.cacheId ? { cacheId: f.cacheId } : {}),
    paths: f.paths,
    bytes: f.bytes,
    reclaimable: f.reclaimable,
    reason: f.reason,
    affects: f.affects,
    ...(f.files ? { files: f.files } : {}),
    ...(f.remedy ? { remedy: f.remedy } : {}),
    ...(f.containerd ? { containerd: f.containerd } : {}),
  };
}

const headerJson = (h: Header) => ({
  schemaVersion: SCHEMA_VERSION,
  dataRoot: h.dataRoot,
  driver: h.driver,
  ...(h.containerdRoot ? { containerdRoot: h.containerdRoot } : {}),
  daemonRunning: h.daemonRunning,
});

function findingsEnvelope(h: Header, findings: Finding[], notes: string[]): Record<string, unknown> & { summary: Record<string, unknown> } {
  return {
    ...headerJson(h),
    findings: findings.map(findingJson),
    ...(notes.length ? { notes } : {}),
    summary: { findings: findings.length, reclaimableBytes: reclaimableBytes(findings) },
  };
}

/** scan --json (docs/scan.schema.json). */
export function scanJson(r: Pick<ScanReport, 'header' | 'findings' | 'notes'>): Record<string, unknown> {
  return findingsEnvelope(r.header, r.findings, r.notes);
}

const verifiedSummary = (v: Verified) => ({ layersVerified: v.count, layersOk: v.ok, bytesVerified: v.bytes });

/** verify --json: scan's envelope (docs/scan.schema.json) with what was verified and skipped. */
export function verifyJson(r: VerifyReport): Record<string, unknown> {
  const j = findingsEnvelope(r.header, r.findings, [...r.notes, ...(r.getfattr ? [r.getfattr] : [])]);
  Object.assign(j.summary, verifiedSummary(r.verified));
  return { ...j, skipped: r.verified.skipped };
}

/** explain --json (docs/explain.schema.json). */
export function explainJson(r: ExplainReport): Record<string, unknown> {
  const { header: h, explanation: e } = r;
  return { schemaVersion: SCHEMA_VERSION, dataRoot: h.dataRoot, driver: h.driver, ...(h.containerdRoot ? { containerdRoot: h.containerdRoot } : {}), ...e, findings: e.findings.map(findingJson) };
}

/** df --json (docs/df.schema.json). */
export function dfJson(r: DfReport): Record<string, unknown> {
  const u = r.usage;
  return {
    schemaVersion: SCHEMA_VERSION,
    dataRoot: u.dataRoot,
    driver: u.driver,
    daemonRunning: u.daemonRunning,
    total: { bytes: u.total },
    categories: u.categories.map((x) => ({
      category: x.category,
      bytes: x.bytes,
      ...(x.path !== undefined ? { path: x.path } : {}),
      purged: (PURGED_CATEGORIES as readonly DfCategory[]).includes(x.category),
    })),
    images: u.images,
    reclaimableBytes: u.reclaimableBytes,
    mountsSkipped: u.mountsSkipped,
    ...(r.notes.length ? { notes: r.notes } : {}),
  };
}

/** purge --json (docs/purge.schema.json); with --include broken, the repair's part too. */
export function purgeJson(r: Pick<PurgeReport, 'header' | 'actions' | 'dryRun' | 'measuredFreed' | 'notes' | 'repair' | 'quarantine' | 'interrupted' | 'containerdLeases'>): Record<string, unknown> {
  const h = r.header;
  const t = purgeTotals(r.actions, r.dryRun);
  const j: Record<string, unknown> = {
    schemaVersion: SCHEMA_VERSION,
    dataRoot: h.dataRoot,
    driver: h.driver,
    dryRun: r.dryRun,
    daemonRunning: h.daemonRunning,
    actions: r.actions.map((a) => ({ kind: a.finding.kind, paths: a.finding.paths, bytes: actionBytes(a), status: a.status, ...(a.reason ? { reason: a.reason } : {}) })),
    ...(r.notes?.length ? { notes: r.notes } : {}),
    ...(r.interrupted ? { interrupted: r.interrupted } : {}),
    ...(r.containerdLeases ? { containerdLeases: r.containerdLeases } : {}),
    summary: {
      removed: t.removed,
      failed: t.failed,
      skipped: t.skipped,
      planned: t.planned,
      reclaimedBytes: t.reclaimedBytes,
      plannedBytes: t.plannedBytes,
      ...(r.measuredFreed !== undefined ? { measuredFreedBytes: r.measuredFreed } : {}),
    },
  };
  const x = r.repair;
  if (x) {
    j.repair = {
      repaired: x.repairs.map((p) => ({
        kind: p.kind,
        ...(p.layer ? { layer: p.layer } : {}),
        cacheId: p.cacheId,
        path: p.path,
        value: p.value,
        evidence: p.evidence,
        previous: p.previous,
        status: p.status,
        ...(p.reason ? { reason: p.reason } : {}),
      })),
      unproven: x.unproven,
      images: x.images,
      heldBack: x.heldBack,
      edits: x.edit ? [x.edit] : [],
      ...(x.notes.length ? { notes: x.notes } : {}),
      ...(r.quarantine ? { quarantine: r.quarantine } : {}),
    };
  }
  return j;
}

/** restore --json (docs/restore.schema.json). */
export function unlockJson(r: UnlockReport): Record<string, unknown> {
  return { schemaVersion: SCHEMA_VERSION, dataRoot: r.dataRoot, lock: r.lock, removed: r.removed ? { holder: r.removed.holder, content: r.removed.text } : null, liveness: r.liveness ?? null };
}

export function restoreJson(r: RestoreReport): Record<string, unknown> {
  const n = (s: string) => r.items.filter((i) => i.status === s).length;
  return {
    schemaVersion: SCHEMA_VERSION,
    dataRoot: r.dataRoot,
    quarantine: r.quarantine,
    dryRun: r.dryRun,
    items: r.items,
    summary: { restored: n('restored'), planned: n('planned'), already: n('already') },
  };
}
