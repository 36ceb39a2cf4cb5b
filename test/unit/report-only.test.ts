/**
 * Report-only storage drivers (zfs, devicemapper, windowsfilter) through the real CLI on synthetic
 * roots: scan reports their garbage as not reclaimable, and purge (dry run and real run, default
 * kinds and --include unreferenced-layer) skips every item whose data the driver holds, with the
 * driver's reason, before anything is renamed: exit 0, and the tree is unchanged byte for byte but
 * for what needs no driver (a write-set's own dir).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { diffSnapshots, hexOf, rootMaker, runCliAsync, scan, snapshotTree, type SyntheticRoot } from '../helpers/synthetic.js';
import { createDriver } from '../../src/drivers/registry/index.js';
import { noAffects, type Finding } from '../../src/findings/types.js';
import { MountTable } from '../../src/fsx/mounts.js';
import { Remover } from '../../src/fsx/remove.js';
import { executePlan } from '../../src/purge/execute.js';
import { Journal } from '../../src/purge/journal.js';
import { planPurge } from '../../src/purge/plan.js';

const root = rootMaker();
const STATE = ['layergc']; // the lock and journal are layergc's own, not the store's

const REPORT_ONLY = ['zfs', 'devicemapper', 'windowsfilter'] as const;
type ReportOnly = (typeof REPORT_ONLY)[number];

/** The removal note each adapter gives, by a phrase of it. */
const NOTE: Record<ReportOnly, RegExp> = { zfs: /zfs destroy -r/, devicemapper: /dmsetup/, windowsfilter: /DestroyLayer/ };

/**
 * A synthetic overlay2 root moved onto a report-only driver's layout: the same layerdb under
 * image/<driver>, and every overlay2 dir turned into that driver's entry for the same ID (a zfs
 * mount point, a devicemapper record and mount point, a windowsfilter layer dir).
 */
function moveOnto(s: SyntheticRoot, driver: ReportOnly): void {
  fs.renameSync(s.imageDir, path.join(s.root, 'image', driver));
  const home = path.join(s.root, driver);
  const ids = fs.readdirSync(s.home).filter((n) => n !== 'l');
  ids.forEach((id, i) => {
    if (driver === 'zfs') fs.mkdirSync(path.join(home, 'graph', id), { recursive: true });
    if (driver === 'devicemapper') {
      fs.mkdirSync(path.join(home, 'metadata'), { recursive: true });
      fs.writeFileSync(path.join(home, 'metadata', id), JSON.stringify({ device_id: i + 2, size: 10737418240, transaction_id: i + 2, initialized: false, deleted: false }));
      fs.mkdirSync(path.join(home, 'mnt', id), { recursive: true });
    }
    if (driver === 'windowsfilter') {
      fs.mkdirSync(path.join(home, id, 'Files'), { recursive: true });
      fs.writeFileSync(path.join(home, id, 'Files', 'data.txt'), `layer ${id}\n`);
    }
  });
  fs.rmSync(s.home, { recursive: true });
  for (const c of s.containers) {
    const p = path.join(c.containerDir, 'config.v2.json');
    fs.writeFileSync(p, fs.readFileSync(p, 'utf8').replace('"Driver":"overlay2"', `"Driver":"${driver}"`));
  }
}

interface Garbage {
  s: SyntheticRoot;
  /** chain ID and cache-id of the layer nothing uses */
  dangling: string;
  danglingCache: string;
  orphan: string;
  leaked: string;
  writeSet: string;
}

function garbageOn(driver: ReportOnly): Garbage {
  const s = root();
  s.populate();
  const { chainId: dangling, cacheId: danglingCache } = s.addDanglingLayer();
  const orphan = s.makeRemovingOrphan();
  const leaked = s.makeLeakedDriverDir().id;
  const writeSet = s.makeWriteSet({ withDriverDir: true, cacheId: true }).dir;
  moveOnto(s, driver);
  const moved = (p: string) => p.replace(s.imageDir, path.join(s.root, 'image', driver));
  return { s, dangling, danglingCache, orphan: moved(orphan.dir), leaked, writeSet: moved(writeSet) };
}

const tree = (s: SyntheticRoot) => snapshotTree(s.root, { exclude: STATE });
const purge = (s: SyntheticRoot, args: string[]) => runCliAsync(['purge', '--data-root', s.root, '--json', ...args]);

interface JsonAction {
  kind: string;
  status: string;
  reason?: string;
  paths: string[];
}

/** Every action that hands the driver something is skipped with its reason; the write-set alone (no driver data) goes its way. */
function expectSkippedForDriver(actions: JsonAction[], driver: ReportOnly, writeSetStatus: string, g: Garbage): void {
  for (const a of actions) {
    if (a.kind === 'stale-write-set') {
      expect(a.paths).toEqual([g.writeSet]); // the driver's data is not part of it on a report-only driver
      expect(a.status).toBe(writeSetStatus);
      continue;
    }
    expect(a.status, `${a.kind} ${a.paths[0]}`).toBe('skipped');
    expect(a.reason).toContain(`report-only: layergc does not remove ${driver} data`);
    expect(a.reason).toMatch(NOTE[driver]);
  }
}

describe.each(REPORT_ONLY)('%s (report-only)', (driver) => {
  it('scan reports its garbage, none of it reclaimable but a write-set dir', async () => {
    const g = garbageOn(driver);
    const r = await scan(g.s.root);
    expect(r.code).toBe(1);
    expect(r.json.driver).toBe(driver);
    const byKind = (k: string) => r.json.findings.filter((f: { kind: string }) => f.kind === k);
    expect(byKind('unreferenced-layer').map((f: { layer: string; reclaimable: boolean }) => [f.layer, f.reclaimable])).toEqual([[g.dangling, false]]);
    expect(byKind('removing-orphan').map((f: { paths: string[]; reclaimable: boolean }) => [f.paths[0], f.reclaimable])).toEqual([[g.orphan, false]]);
    const leaked = byKind('unreferenced-driver-dir').filter((f: { cacheId: string }) => f.cacheId === g.leaked);
    expect(leaked.map((f: { reclaimable: boolean; reason: string }) => f.reclaimable)).toEqual([false]);
    expect(leaked[0].reason).toMatch(NOTE[driver]);
    expect(byKind('stale-write-set').map((f: { paths: string[]; reclaimable: boolean }) => [f.paths, f.reclaimable])).toEqual([[[g.writeSet], true]]);
    expect(byKind('missing-driver-data')).toEqual([]);
  });

  it('purge --dry-run skips every item of driver data with the reason, and changes nothing', async () => {
    const g = garbageOn(driver);
    const before = tree(g.s);
    for (const include of [[], ['--include', 'unreferenced-layer']]) {
      const r = await purge(g.s, ['--dry-run', ...include]);
      expect(r.code).toBe(0);
      expect(r.json.dryRun).toBe(true);
      const kinds = r.json.actions.map((a: JsonAction) => a.kind);
      expect(kinds).toContain('removing-orphan');
      expect(kinds).toContain('unreferenced-driver-dir');
      expect(kinds.includes('unreferenced-layer')).toBe(include.length > 0);
      expectSkippedForDriver(r.json.actions, driver, 'planned', g);
      expect(diffSnapshots(before, tree(g.s))).toEqual({ onlyBefore: [], onlyAfter: [], changed: [] });
    }
  });

  it('a real purge --include unreferenced-layer renames nothing: only the write-set dir goes, every driver item is skipped', async () => {
    const g = garbageOn(driver);
    const before = tree(g.s);
    const r = await purge(g.s, ['--yes', '--include', 'unreferenced-layer']);
    expect(r.code).toBe(0);
    expect(r.json.dryRun).toBe(false);
    expect(r.json.actions.filter((a: JsonAction) => a.kind === 'unreferenced-layer')).toHaveLength(1);
    expectSkippedForDriver(r.json.actions, driver, 'removed', g);
    const rel = path.relative(g.s.root, g.writeSet);
    const gone = [...before.keys()].filter((k) => k === rel || k.startsWith(`${rel}/`)).sort();
    expect(gone.length).toBeGreaterThan(0);
    const d = diffSnapshots(before, tree(g.s));
    expect(d.onlyBefore).toEqual(gone);
    expect(d.onlyAfter).toEqual([]);
    expect(d.changed).toEqual([]);
    // and again: nothing left to do but the same skips
    const again = await purge(g.s, ['--yes', '--include', 'unreferenced-layer']);
    expect(again.code).toBe(0);
    expect(again.json.actions.every((a: JsonAction) => a.status === 'skipped')).toBe(true);
  });
});

describe('executePlan', () => {
  it('refuses an item of a report-only driver that a plan made without its driver left planned: nothing is renamed', async () => {
    const g = garbageOn('zfs');
    const before = tree(g.s);
    const dir = path.join(g.s.root, 'image/zfs/layerdb/sha256', hexOf(g.dangling));
    const f: Finding = {
      kind: 'unreferenced-layer',
      severity: 'warning',
      layer: g.dangling,
      cacheId: g.danglingCache,
      paths: [dir],
      bytes: 0,
      reclaimable: false,
      reason: 'test',
      affects: noAffects(),
      removal: { type: 'entry', dir, driverId: g.danglingCache },
    };
    const actions = planPurge([f], { kinds: ['unreferenced-layer'], daemonRunning: false, minAgeMs: 0, now: Date.now(), driver: null }, () => 0);
    expect(actions.map((a) => a.status)).toEqual(['planned']);
    const rm = new Remover(g.s.root, new MountTable([]), false);
    await executePlan(actions, { driver: createDriver('zfs', path.join(g.s.root, 'zfs')), rm, journal: new Journal(g.s.root, 'report-only-test', false) });
    expect(actions.map((a) => [a.status, a.reason])).toEqual([['skipped', expect.stringContaining('report-only: layergc does not remove zfs data')]]);
    expect(rm.ops).toEqual([]);
    expect(diffSnapshots(before, tree(g.s))).toEqual({ onlyBefore: [], onlyAfter: [], changed: [] });
  });
});
