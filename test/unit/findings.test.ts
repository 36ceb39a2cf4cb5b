/**
 * Every finding kind, made on a synthetic data root and read back through the real CLI
 * (`layergc scan --json`): exact kinds, severities, layers, cache IDs, paths, reclaimability,
 * reasons and what each breaks. A healthy root scans clean (exit 0); any finding means exit 1.
 */
import { REPAIR_ACTION_KINDS } from '../../src/repair/plan.js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FINDING_KINDS } from '../../src/findings/types.js';
import { pausedCli } from '../helpers/signal.js';
import { randomBuildkitId, randomId, rootMaker, runCliAsync, scan, SyntheticRoot, type CliResult } from '../helpers/synthetic.js';

const root = rootMaker();

interface Expect {
  kind: (typeof FINDING_KINDS)[number];
  severity: 'error' | 'warning';
  layer?: string;
  cacheId?: string;
  paths: string[];
  /** 0 exactly, or 'some' (> 0, filesystem dependent) */
  bytes: 0 | 'some';
  reclaimable: boolean;
  /** substrings of the reason, in order */
  reason: string[];
  affects?: { images: string[]; containers: string[] };
}

const NONE = { images: [], containers: [] };

function order(a: { kind: string; paths: string[] }, b: { kind: string; paths: string[] }): number {
  return FINDING_KINDS.indexOf(a.kind as never) - FINDING_KINDS.indexOf(b.kind as never) || a.paths[0].localeCompare(b.paths[0]);
}

/** The scan found exactly these, in the documented order, and exited 1. */
function expectFindings(r: CliResult, want: Expect[]): void {
  expect(r.stderr).toBe('');
  const got = r.json.findings as Record<string, unknown>[];
  const expected = [...want].sort(order).map((w) => ({
    kind: w.kind,
    severity: w.severity,
    ...(w.layer ? { layer: w.layer } : {}),
    ...(w.cacheId ? { cacheId: w.cacheId } : {}),
    paths: w.paths,
    bytes: w.bytes === 0 ? 0 : expect.any(Number),
    reclaimable: w.reclaimable,
    reason: expect.stringMatching(new RegExp(w.reason.map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*'), 's')),
    affects: w.affects ?? NONE,
    // every broken finding says how to repair it (src/repair/remedy.ts)
    ...(REPAIR_ACTION_KINDS.includes(w.kind as never) && (w.kind !== 'broken-mount' || w.reason.join(' ').includes('is missing or does not load'))
      ? { remedy: expect.arrayContaining([expect.stringContaining('layergc purge --include broken')]) }
      : {}),
  }));
  expect(got).toEqual(expected);
  for (const [i, w] of [...want].sort(order).entries()) if (w.bytes === 'some') expect(got[i].bytes, `${w.kind} bytes`).toBeGreaterThan(0);
  expect(r.json.summary).toEqual({
    findings: want.length,
    reclaimableBytes: got.filter((f) => f.reclaimable).reduce((s, f) => s + (f.bytes as number), 0),
  });
  expect(r.code).toBe(want.length ? 1 : 0);
}

describe('a healthy data root', () => {
  it.concurrent('scans clean (exit 0, findings []), container RW dirs included: they are named by mount-id, not container ID', async () => {
    const s = root();
    const { web } = s.populate();
    const db = s.addContainer('db', s.images[0].id);
    for (const c of [web, db]) {
      expect(c.mountId).not.toBe(c.id);
      expect(fs.existsSync(s.driverDir(c.id))).toBe(false);
      expect(fs.statSync(c.mountDriverDir).isDirectory()).toBe(true);
      expect(fs.statSync(c.initDriverDir).isDirectory()).toBe(true);
    }
    const r = await scan(s.root);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.json).toEqual({ schemaVersion: 1, dataRoot: s.root, driver: 'overlay2', daemonRunning: false, findings: [], summary: { findings: 0, reclaimableBytes: 0 } });
  });

  it.concurrent('keeps both chains when one diff ID sits on two different parents', async () => {
    const s = root();
    const shared = { files: { 'app/shared.txt': 'same bytes on two bases\n' } };
    const a = s.addImage(['a:1'], [{ files: { 'base-a': 'a' } }, shared]);
    const b = s.addImage(['b:1'], [{ files: { 'base-b': 'b' } }, shared]);
    expect(a.diffIds[1]).toBe(b.diffIds[1]);
    expect(a.chainIds[1]).not.toBe(b.chainIds[1]);
    expect(a.layers[1].cacheId).not.toBe(b.layers[1].cacheId);
    expectFindings(await scan(s.root), []);
  });

  it.concurrent("keeps every dir the BuildKit database names (a real daemon's snapshots.db)", async () => {
    const s = root({ buildkit: 'fixture' });
    s.populate();
    for (const id of SyntheticRoot.buildkitFixtureDirs()) s.makeBuildkitDir(id);
    expectFindings(await scan(s.root), []);
  });
});

describe('garbage', () => {
  it.concurrent('removing-orphan: half-deleted driver dir; no or empty cache-id; cache-id of a live layer; driver data gone', async () => {
    const s = root();
    const { app } = s.populate();
    const top = app.layers[2];
    const half = s.makeRemovingOrphan();
    const noCid = s.makeRemovingOrphan({ cacheIdFile: null, driverData: 'none' });
    const emptyCid = s.makeRemovingOrphan({ cacheIdFile: '  \n', driverData: 'none' });
    const live = s.makeRemovingOrphan({ cacheId: top.cacheId });
    const gone = s.makeRemovingOrphan({ driverData: 'none' });
    const base = { kind: 'removing-orphan', severity: 'warning', bytes: 'some', reclaimable: true } as const;
    expectFindings(await scan(s.root), [
      {
        ...base,
        layer: half.chainId,
        cacheId: half.cacheId,
        paths: [half.dir, half.driverDir],
        reason: ['renamed for removal', 'moby retries only at a clean daemon shutdown', `driver dir ${half.driverDir} is left behind`],
      },
      // moby's getOrphan skips these forever; only the entry itself is layergc's to remove
      { ...base, layer: noCid.chainId, paths: [noCid.dir], reason: ['renamed for removal and cache-id is missing, so moby skips it forever'] },
      { ...base, layer: emptyCid.chainId, paths: [emptyCid.dir], reason: ['renamed for removal and cache-id is empty, so moby skips it forever'] },
      // the live layer's driver dir stays out of the finding
      {
        ...base,
        layer: live.chainId,
        cacheId: top.cacheId,
        paths: [live.dir],
        reason: [`its cache-id ${top.cacheId} is still used by layer ${top.chainId.slice(7, 19)} (image app:1), so that driver dir is kept`],
      },
      { ...base, layer: gone.chainId, cacheId: gone.cacheId, paths: [gone.dir], reason: [`its driver data (${gone.driverDir}) is already gone`] },
    ]);
  });

  it.concurrent('stale-write-set: a killed load (write-set + unregistered driver dir); one that got as far as cache-id', async () => {
    const s = root();
    s.populate();
    const killed = s.makeWriteSet({ withDriverDir: true });
    const named = s.makeWriteSet({ withDriverDir: true, cacheId: true });
    const bare = s.makeWriteSet();
    expectFindings(await scan(s.root), [
      { kind: 'stale-write-set', severity: 'warning', paths: [killed.dir], bytes: 'some', reclaimable: true, reason: ['never committed', 'moby never cleans layerdb/tmp'] },
      {
        kind: 'unreferenced-driver-dir',
        severity: 'warning',
        cacheId: killed.driverId,
        paths: [killed.driverDir!, killed.linkPath!],
        bytes: 'some',
        reclaimable: true,
        reason: [`no layer, mount or BuildKit snapshot uses driver dir ${killed.driverId}`, 'registration was interrupted'],
      },
      // a write-set whose cache-id names its driver dir takes that dir (and its l/ link) with it
      {
        kind: 'stale-write-set',
        severity: 'warning',
        cacheId: named.driverId,
        paths: [named.dir, named.driverDir!, named.linkPath!],
        bytes: 'some',
        reclaimable: true,
        reason: ['never committed', `its driver dir ${named.driverDir} was never registered`],
      },
      { kind: 'stale-write-set', severity: 'warning', paths: [bare.dir], bytes: 'some', reclaimable: true, reason: ['never committed'] },
    ]);
  });

  it.concurrent('unreferenced-driver-dir: leaked 64-hex, -init and 25-char dirs (no BuildKit dir at all)', async () => {
    const s = root();
    s.populate();
    const hex = s.makeLeakedDriverDir();
    const init = s.makeLeakedDriverDir({ init: true });
    const bk = s.makeBuildkitDir();
    expectFindings(await scan(s.root), [
      {
        kind: 'unreferenced-driver-dir',
        severity: 'warning',
        cacheId: hex.id,
        paths: [hex.dir, hex.linkPath],
        bytes: 'some',
        reclaimable: true,
        reason: [`uses driver dir ${hex.id}: most likely a layer whose registration was interrupted`],
      },
      {
        kind: 'unreferenced-driver-dir',
        severity: 'warning',
        cacheId: init.id,
        paths: [init.dir, init.linkPath],
        bytes: 'some',
        reclaimable: true,
        reason: ['the init layer of a container that no longer exists'],
      },
      {
        kind: 'unreferenced-driver-dir',
        severity: 'warning',
        cacheId: bk.id,
        paths: [bk.dir, bk.linkPath],
        bytes: 'some',
        reclaimable: true,
        reason: ['a BuildKit snapshot that BuildKit no longer records'],
      },
    ]);
  });

  it.concurrent('dangling-link: an l/ link whose layer dir is gone', async () => {
    const s = root();
    s.populate();
    const gone = randomId();
    const l = s.danglingLink(`../${gone}/diff`);
    expectFindings(await scan(s.root), [
      { kind: 'dangling-link', severity: 'warning', paths: [l], bytes: 'some', reclaimable: true, reason: [`link points to ../${gone}/diff, which does not exist`] },
    ]);
  });

  it.concurrent('unreferenced-layer: a valid chain nothing uses (reported, not purged by default)', async () => {
    const s = root();
    s.populate();
    const p = s.addDanglingLayer({ 'p.txt': 'parent' });
    const c = s.addDanglingLayer({ 'c.txt': 'child' }, p);
    const want = (l: typeof p): Expect => ({
      kind: 'unreferenced-layer',
      severity: 'warning',
      layer: l.chainId,
      cacheId: l.cacheId,
      paths: [l.dir, l.driverDir, l.linkPath],
      bytes: 'some',
      reclaimable: false,
      reason: ['no image, container or BuildKit snapshot uses this layer', 'keeps it forever'],
    });
    expectFindings(await scan(s.root), [want(p), want(c)]);
  });
});

describe('a daemon at work while the scan runs', () => {
  it.concurrent('regression: a layer dir and its link removed the way moby does (link first) after the scan listed l/: no dangling-link; a link left behind is one', async () => {
    const s = root();
    s.populate();
    const removed = s.makeLeakedDriverDir({ init: true }); // a container's init layer, removed with its container
    const left = s.makeLeakedDriverDir({ init: true });
    const pause = fs.mkdtempSync(path.join(s.base, 'pause-'));
    const run = pausedCli(['scan', '--data-root', s.root, '--json'], 'links-listed', pause);
    await run.paused;
    fs.unlinkSync(removed.linkPath);
    fs.rmSync(removed.dir, { recursive: true });
    fs.rmSync(left.dir, { recursive: true }); // its link stays: a real dangling link
    run.resume();
    const r = await run.done;
    expect(r.code, r.stderr).toBe(1);
    const found = JSON.parse(r.stdout).findings as { kind: string; paths: string[] }[];
    expect(found.map((f) => [f.kind, f.paths])).toEqual([['dangling-link', [left.linkPath]]]);
  });
});

describe('broken layers', () => {
  it.concurrent('missing-driver-data: the cache-id dir was deleted by hand (its l/ link left dangling)', async () => {
    const s = root();
    const { app } = s.populate();
    const top = app.layers[2];
    s.removeDriverDir(top.cacheId);
    expectFindings(await scan(s.root), [
      { kind: 'dangling-link', severity: 'warning', paths: [top.linkPath], bytes: 'some', reclaimable: true, reason: [`points to ../${top.cacheId}/diff, which does not exist`] },
      {
        kind: 'missing-driver-data',
        severity: 'error',
        layer: top.chainId,
        cacheId: top.cacheId,
        paths: [top.dir, top.driverDir],
        bytes: 0,
        reclaimable: false,
        reason: [`driver dir ${top.driverDir} does not exist`, 'Already exists'],
        affects: { images: ['app:1'], containers: ['web'] },
      },
    ]);
  });

  it.concurrent('invalid-layer-metadata: an empty layer dir (power loss after the rename)', async () => {
    const s = root();
    s.populate();
    const dir = s.emptyLayerDir();
    expectFindings(await scan(s.root), [
      {
        kind: 'invalid-layer-metadata',
        severity: 'error',
        layer: `sha256:${path.basename(dir)}`,
        paths: [dir],
        bytes: 'some',
        reclaimable: false,
        reason: ['the layer directory is empty', 'moby#44909'],
      },
    ]);
  });

  it.concurrent('invalid-layer-metadata: size with a trailing newline breaks the layer, its image and its container', async () => {
    const s = root();
    const { app } = s.populate();
    const mid = app.layers[1];
    s.breakSize(mid.chainId);
    expectFindings(await scan(s.root), [
      {
        kind: 'invalid-layer-metadata',
        severity: 'error',
        layer: mid.chainId,
        cacheId: mid.cacheId,
        paths: [mid.dir, mid.driverDir, mid.linkPath],
        bytes: 'some',
        reclaimable: false,
        reason: [`the daemon cannot load this layer: size is not a decimal integer: ${JSON.stringify(`${mid.size}\n`)}`],
        affects: { images: ['app:1'], containers: ['web'] },
      },
      {
        kind: 'broken-mount',
        severity: 'error',
        layer: app.chainIds[2],
        cacheId: s.containers[0].mountId,
        paths: [s.containers[0].mountDir],
        bytes: 0,
        reclaimable: false,
        reason: [`container web cannot be used: its image layer ${app.chainIds[2].slice(7, 19)} is missing or does not load`],
        affects: { images: [], containers: ['web'] },
      },
      {
        kind: 'image-missing-layers',
        severity: 'error',
        layer: mid.chainId,
        paths: [app.configPath],
        bytes: 0,
        reclaimable: false,
        reason: [`layer 2 of 3 (${mid.chainId.slice(7, 19)}) does not load`, 'layer does not exist'],
        affects: { images: ['app:1'], containers: ['web'] },
      },
    ]);
  });

  it.concurrent('invalid-layer-metadata: a diff that is not a digest; a missing cache-id', async () => {
    const s = root();
    s.populate();
    const solo = s.addImage(['solo:1'], [{ files: { solo: '1' } }]);
    const l = solo.layers[0];
    s.writeLayerFile(l.chainId, 'diff', 'sha256:not-hex');
    const other = s.addImage(['other:1'], [{ files: { other: '1' } }]);
    const o = other.layers[0];
    s.removeLayerFile(o.chainId, 'cache-id');
    expectFindings(await scan(s.root), [
      {
        kind: 'invalid-layer-metadata',
        severity: 'error',
        layer: l.chainId,
        cacheId: l.cacheId,
        paths: [l.dir, l.driverDir, l.linkPath],
        bytes: 'some',
        reclaimable: false,
        reason: ['diff is not a digest: "sha256:not-hex"'],
        affects: { images: ['solo:1'], containers: [] },
      },
      {
        kind: 'invalid-layer-metadata',
        severity: 'error',
        layer: o.chainId,
        paths: [o.dir],
        bytes: 'some',
        reclaimable: false,
        reason: ['cache-id is missing'],
        affects: { images: ['other:1'], containers: [] },
      },
      {
        kind: 'image-missing-layers',
        severity: 'error',
        layer: l.chainId,
        paths: [solo.configPath],
        bytes: 0,
        reclaimable: false,
        reason: ['layer 1 of 1', 'does not load'],
        affects: { images: ['solo:1'], containers: [] },
      },
      {
        kind: 'image-missing-layers',
        severity: 'error',
        layer: o.chainId,
        paths: [other.configPath],
        bytes: 0,
        reclaimable: false,
        reason: ['layer 1 of 1', 'does not load'],
        affects: { images: ['other:1'], containers: [] },
      },
      // with its cache-id gone, nothing names the layer's driver dir: reported, and kept as what may be its only copy
      {
        kind: 'unreferenced-driver-dir',
        severity: 'warning',
        cacheId: o.cacheId,
        paths: [o.driverDir, o.linkPath],
        bytes: 'some',
        reclaimable: false,
        reason: [
          `uses driver dir ${o.cacheId}, but it is kept: layer ${o.chainId.slice(7, 19)} has lost its cache-id (cache-id is missing), and this dir may be its only copy`,
          '`layergc purge --include broken` resolves it',
        ],
      },
    ]);
  });

  it.concurrent('missing-parent: a parent layer deleted by hand (metadata and data)', async () => {
    const s = root();
    s.populate();
    const deep = s.addImage(['deep:1'], [{ files: { d0: '0' } }, { files: { d1: '1' } }]);
    const [p, c] = deep.layers;
    s.removeLayerDir(p.chainId);
    s.removeDriverDir(p.cacheId, { withLink: true });
    expectFindings(await scan(s.root), [
      {
        kind: 'missing-parent',
        severity: 'error',
        layer: c.chainId,
        cacheId: c.cacheId,
        paths: [`${c.dir}/parent`],
        bytes: 0,
        reclaimable: false,
        reason: [`its parent layer ${p.chainId.slice(7, 19)} is not in the layer store`],
        affects: { images: ['deep:1'], containers: [] },
      },
      {
        kind: 'driver-data-damaged',
        severity: 'error',
        layer: c.chainId,
        cacheId: c.cacheId,
        paths: [c.driverDir],
        bytes: 0,
        reclaimable: false,
        reason: [`driver dir ${c.cacheId}: lower names l/${p.lid}, which does not exist`],
        affects: { images: ['deep:1'], containers: [] },
      },
      {
        kind: 'image-missing-layers',
        severity: 'error',
        layer: p.chainId,
        paths: [deep.configPath],
        bytes: 0,
        reclaimable: false,
        reason: [`layer 1 of 2 (${p.chainId.slice(7, 19)}) is missing`],
        affects: { images: ['deep:1'], containers: [] },
      },
    ]);
  });

  it.concurrent('chain-id-mismatch: a layer dir copied by hand under another name', async () => {
    const s = root();
    const { app } = s.populate();
    const src = app.layers[1];
    const hex = randomId();
    const copy = path.join(s.layerdb, 'sha256', hex);
    fs.cpSync(src.dir, copy, { recursive: true });
    expectFindings(await scan(s.root), [
      // nothing uses the copy; its driver dir belongs to the original, so only the entry is listed
      {
        kind: 'unreferenced-layer',
        severity: 'warning',
        layer: `sha256:${hex}`,
        cacheId: src.cacheId,
        paths: [copy],
        bytes: 'some',
        reclaimable: false,
        reason: ['no image, container or BuildKit snapshot uses this layer'],
      },
      {
        kind: 'chain-id-mismatch',
        severity: 'warning',
        layer: `sha256:${hex}`,
        cacheId: src.cacheId,
        paths: [copy],
        bytes: 0,
        reclaimable: false,
        reason: [`the directory is named ${hex.slice(0, 12)} but its diff and parent give chain ID ${src.chainId.slice(7, 19)}`, 'edited or copied by hand'],
      },
    ]);
  });

  it.concurrent('driver-data-damaged: link file missing, or empty', async () => {
    const s = root();
    s.populate();
    const a = s.addImage(['a:1'], [{ files: { a: '1' } }]).layers[0];
    const b = s.addImage(['b:1'], [{ files: { b: '1' } }]).layers[0];
    s.removeDriverFile(a.cacheId, 'link');
    s.writeDriverFile(b.cacheId, 'link', '');
    expectFindings(await scan(s.root), [
      {
        kind: 'driver-data-damaged',
        severity: 'error',
        layer: a.chainId,
        cacheId: a.cacheId,
        paths: [a.driverDir],
        bytes: 0,
        reclaimable: false,
        reason: [`driver dir ${a.cacheId}: link file is missing`],
        affects: { images: ['a:1'], containers: [] },
      },
      {
        kind: 'driver-data-damaged',
        severity: 'error',
        layer: b.chainId,
        cacheId: b.cacheId,
        paths: [b.driverDir],
        bytes: 0,
        reclaimable: false,
        reason: [`driver dir ${b.cacheId}: link file is empty`],
        affects: { images: ['b:1'], containers: [] },
      },
    ]);
  });

  it.concurrent('driver-data-damaged: the l/ link of a layer is missing (moby never recreates it): the layer and every dir above it', async () => {
    const s = root();
    const { app, web } = s.populate();
    const top = app.layers[2];
    s.removeShortLink(top.cacheId);
    const affects = { images: [], containers: ['web'] };
    expectFindings(await scan(s.root), [
      {
        kind: 'driver-data-damaged',
        severity: 'error',
        layer: top.chainId,
        cacheId: top.cacheId,
        paths: [top.driverDir],
        bytes: 0,
        reclaimable: false,
        reason: [`driver dir ${top.cacheId}: l/${top.lid} is missing`, 'moby never recreates it'],
        affects: { images: ['app:1'], containers: ['web'] },
      },
      {
        kind: 'driver-data-damaged',
        severity: 'error',
        cacheId: web.initId,
        paths: [web.initDriverDir],
        bytes: 0,
        reclaimable: false,
        reason: [`driver dir ${web.initId}: lower names l/${top.lid}, which does not exist`],
        affects,
      },
      {
        kind: 'driver-data-damaged',
        severity: 'error',
        cacheId: web.mountId,
        paths: [web.mountDriverDir],
        bytes: 0,
        reclaimable: false,
        reason: [`driver dir ${web.mountId}: lower names l/${top.lid}, which does not exist`],
        affects,
      },
    ]);
  });

  it.concurrent('driver-data-damaged: lower names a link that does not exist', async () => {
    const s = root();
    const { app } = s.populate();
    const top = app.layers[2];
    const lower = fs.readFileSync(path.join(top.driverDir, 'lower'), 'utf8');
    s.writeDriverFile(top.cacheId, 'lower', `l/AAAAAAAAAAAAAAAAAAAAAAAAAA:${lower}`);
    expectFindings(await scan(s.root), [
      {
        kind: 'driver-data-damaged',
        severity: 'error',
        layer: top.chainId,
        cacheId: top.cacheId,
        paths: [top.driverDir],
        bytes: 0,
        reclaimable: false,
        reason: ['lower names l/AAAAAAAAAAAAAAAAAAAAAAAAAA, which does not exist'],
        affects: { images: ['app:1'], containers: ['web'] },
      },
    ]);
  });

  it.concurrent('broken-mount: a mount-id that is not an ID; a RW dir that is gone; a container without a mount', async () => {
    const s = root();
    const { app } = s.populate();
    const bad = s.addContainer('bad', app.id);
    s.writeMountFile(bad.id, 'mount-id', 'garbage\n');
    const gone = s.addContainer('gone', app.id);
    const goneLink = path.join(s.links, fs.readFileSync(path.join(gone.mountDriverDir, 'link'), 'utf8'));
    s.removeDriverDir(gone.mountId);
    const lost = s.addContainer('lost', s.images[0].id);
    fs.rmSync(lost.mountDir, { recursive: true });
    const r = await scan(s.root);
    const got = (r.json.findings as { kind: string }[]).filter((f) => f.kind === 'broken-mount');
    expect(got).toEqual(
      [
        {
          kind: 'broken-mount',
          severity: 'error',
          layer: app.chainIds[2],
          paths: [bad.mountDir],
          bytes: 0,
          reclaimable: false,
          reason: 'container bad cannot be used: mount-id is not a valid ID: "garbage\\n"',
          affects: { images: [], containers: ['bad'] },
        },
        {
          kind: 'broken-mount',
          severity: 'error',
          layer: app.chainIds[2],
          cacheId: gone.mountId,
          paths: [gone.mountDir],
          bytes: 0,
          reclaimable: false,
          reason: `container gone cannot be used: its mount-id dir ${gone.mountDriverDir} does not exist`,
          affects: { images: [], containers: ['gone'] },
        },
        {
          kind: 'broken-mount',
          severity: 'error',
          paths: [lost.containerDir],
          bytes: 0,
          reclaimable: false,
          reason: `container lost has no layer mount (layerdb/mounts/${lost.id} is missing): the daemon logs "failed to load container mount" and it cannot start`,
          affects: { images: [], containers: ['lost'] },
        },
      ].sort(order),
    );
    expect(r.code).toBe(1);
    // the RW dir that is gone leaves its l/ link dangling
    expect((r.json.findings as { kind: string; paths: string[] }[]).filter((f) => f.kind === 'dangling-link').map((f) => f.paths)).toEqual([[goneLink]]);
  });

  it.concurrent("broken-mount: an empty mount-id or init-id (a crash during their non-atomic writes) does not make the container's driver dirs garbage", async () => {
    // mount-id and init-id are written by plain os.WriteFile: a crash can leave either empty. The other
    // file still names the pair (<X> and <X>-init), so both dirs are the container's, not a leak:
    // purging them loses the container's data (the RW dir) or breaks its lower chain (the init dir).
    const s = root();
    const { web } = s.populate();
    const db = s.addContainer('db', s.images[0].id);
    s.writeMountFile(web.id, 'mount-id', '');
    s.writeMountFile(db.id, 'init-id', '');
    const r = await scan(s.root);
    const got = (r.json.findings as { kind: string; cacheId?: string; paths: string[] }[]).map((f) => `${f.kind} ${f.cacheId ?? f.paths[0]}`);
    expect(got).toContain(`broken-mount ${web.mountDir}`);
    expect(got).toContain(`broken-mount ${db.mountId}`);
    expect(got).not.toContain(`unreferenced-driver-dir ${web.mountId}`);
    expect(got).not.toContain(`unreferenced-driver-dir ${db.initId}`);
  });

  it.concurrent('image-missing-layers: the top layer of an image is gone', async () => {
    const s = root();
    s.populate();
    const img = s.addImage(['two:1'], [{ files: { t0: '0' } }, { files: { t1: '1' } }]);
    const top = img.layers[1];
    s.removeLayerDir(top.chainId);
    s.removeDriverDir(top.cacheId, { withLink: true });
    expectFindings(await scan(s.root), [
      {
        kind: 'image-missing-layers',
        severity: 'error',
        layer: top.chainId,
        paths: [img.configPath],
        bytes: 0,
        reclaimable: false,
        reason: [`layer 2 of 2 (${top.chainId.slice(7, 19)}) is missing`, 'the daemon skips this image at start'],
        affects: { images: ['two:1'], containers: [] },
      },
    ]);
  });

  it.concurrent('invalid-image: a config that does not match its digest, one without rootfs, a broken repositories.json', async () => {
    const s = root();
    const { base } = s.populate();
    const cfg = s.corruptImageConfig(base.id);
    const norootfs = s.writeImageConfig('{"architecture":"amd64","os":"linux"}');
    const repos = s.writeRepositoriesRaw('{"Repositories":{');
    const r = await scan(s.root);
    expectFindings(r, [
      {
        kind: 'invalid-image',
        severity: 'error',
        paths: [cfg],
        bytes: 0,
        reclaimable: false,
        reason: ['config content does not match its digest', 'invalid image'],
        affects: { images: [base.id], containers: [] },
      },
      { kind: 'invalid-image', severity: 'error', paths: [norootfs.path], bytes: 0, reclaimable: false, reason: ['config has no rootfs'], affects: { images: [norootfs.id], containers: [] } },
      { kind: 'invalid-image', severity: 'error', paths: [repos], bytes: 0, reclaimable: false, reason: ['repositories.json is not valid JSON: the daemon refuses to start'] },
    ]);
  });

  it.concurrent('invalid-image: an image whose config is not its digest leaves its layers unknown, so none is unreferenced', async () => {
    const s = root();
    s.populate();
    const solo = s.addImage(['solo:1'], [{ files: { only: 'solo' } }]);
    s.corruptImageConfig(solo.id);
    expectFindings(await scan(s.root), [
      { kind: 'invalid-image', severity: 'error', paths: [solo.configPath], bytes: 0, reclaimable: false, reason: ['does not match its digest'], affects: { images: ['solo:1'], containers: [] } },
    ]);
  });
});

describe('unsafe paths: reported, never followed', () => {
  it.concurrent('a -removing entry that is a symlink to a folder outside the data root', async () => {
    const s = root();
    s.populate();
    const l = s.removingSymlinkOutside();
    expectFindings(await scan(s.root), [
      { kind: 'unsafe-path', severity: 'error', paths: [l.path], bytes: 0, reclaimable: false, reason: ['is a symlink where moby keeps a layer directory; it is never followed'] },
    ]);
  });

  it.concurrent('a cache-id of ../../.. in a -removing entry and in a layer', async () => {
    const s = root();
    s.populate();
    const o = s.makeRemovingOrphan({ cacheIdFile: '../../..', driverData: 'none' });
    const solo = s.addImage(['solo:1'], [{ files: { s: '1' } }]);
    const l = solo.layers[0];
    s.writeLayerFile(l.chainId, 'cache-id', '..');
    expectFindings(await scan(s.root), [
      {
        kind: 'unsafe-path',
        severity: 'error',
        paths: [`${o.dir}/cache-id`],
        bytes: 0,
        reclaimable: false,
        reason: ['cache-id "../../.." contains a path separator or NUL; it would lead out of the driver home'],
      },
      {
        kind: 'unsafe-path',
        severity: 'error',
        paths: [`${l.dir}/cache-id`],
        bytes: 0,
        reclaimable: false,
        reason: ['cache-id ".." is a relative directory name; it would lead out of the driver home'],
      },
      {
        kind: 'removing-orphan',
        severity: 'warning',
        layer: o.chainId,
        paths: [o.dir],
        bytes: 'some',
        reclaimable: true,
        reason: ['its cache-id "../../.." contains a path separator or NUL, so moby skips it forever'],
      },
      // the layer's own driver dir is named by nothing now: kept as what may be its only copy
      {
        kind: 'unreferenced-driver-dir',
        severity: 'warning',
        cacheId: l.cacheId,
        paths: [l.driverDir, l.linkPath],
        bytes: 'some',
        reclaimable: false,
        reason: [`uses driver dir ${l.cacheId}, but it is kept: layer ${l.chainId.slice(7, 19)} has lost its cache-id`],
      },
      {
        kind: 'invalid-layer-metadata',
        severity: 'error',
        layer: l.chainId,
        paths: [l.dir],
        bytes: 'some',
        reclaimable: false,
        reason: ['cache-id ".." is a relative directory name'],
        affects: { images: ['solo:1'], containers: [] },
      },
      {
        kind: 'image-missing-layers',
        severity: 'error',
        layer: l.chainId,
        paths: [solo.configPath],
        bytes: 0,
        reclaimable: false,
        reason: ['layer 1 of 1'],
        affects: { images: ['solo:1'], containers: [] },
      },
    ]);
  });

  it.concurrent('a symlink in overlay2/ pointing outside; an l/ link pointing to /etc', async () => {
    const s = root();
    s.populate();
    const d = s.driverSymlinkOutside();
    const l = s.shortLinkTo('/etc');
    const up = s.shortLinkTo('../../../outside/diff');
    expectFindings(await scan(s.root), [
      { kind: 'unsafe-path', severity: 'error', paths: [d.path], bytes: 0, reclaimable: false, reason: ['is a symlink where the driver keeps a layer dir; it is never followed'] },
      { kind: 'unsafe-path', severity: 'error', paths: [l], bytes: 0, reclaimable: false, reason: [`points to /etc, outside the layer dirs of ${s.home}; it is never followed`] },
      { kind: 'unsafe-path', severity: 'error', paths: [up], bytes: 0, reclaimable: false, reason: ['points to ../../../outside/diff, outside the layer dirs'] },
    ]);
  });

  it.concurrent('symlinks where moby keeps a mount dir, a layer file, an image config', async () => {
    const s = root();
    const { app } = s.populate();
    const mount = path.join(s.layerdb, 'mounts', randomId());
    fs.symlinkSync(s.outside, mount);
    const l = s.addDanglingLayer({ z: 'z' });
    const size = path.join(l.dir, 'size');
    fs.rmSync(size);
    fs.symlinkSync('/etc/hostname', size);
    const cfg = path.join(s.imageDir, 'imagedb/content/sha256', randomId());
    fs.symlinkSync(app.configPath, cfg);
    expectFindings(await scan(s.root), [
      { kind: 'unsafe-path', severity: 'error', paths: [mount], bytes: 0, reclaimable: false, reason: ['is a symlink where moby keeps a mount directory; it is never followed'] },
      { kind: 'unsafe-path', severity: 'error', paths: [size], bytes: 0, reclaimable: false, reason: ['is a symlink (to /etc/hostname) where moby keeps a file; it is never followed'] },
      { kind: 'unsafe-path', severity: 'error', paths: [cfg], bytes: 0, reclaimable: false, reason: ['is a symlink where moby keeps an image config; it is never followed'] },
      {
        kind: 'invalid-layer-metadata',
        severity: 'error',
        layer: l.chainId,
        cacheId: l.cacheId,
        paths: [l.dir, l.driverDir, l.linkPath],
        bytes: 'some',
        reclaimable: false,
        reason: ['size is a symlink (to /etc/hostname), not a file'],
      },
    ]);
  });

  it.concurrent('a store directory (layerdb/tmp) that is a symlink out of the data root is reported, not listed as garbage', async () => {
    const s = root();
    s.populate();
    const tmp = path.join(s.layerdb, 'tmp');
    fs.rmSync(tmp, { recursive: true });
    fs.mkdirSync(path.join(s.outside, 'write-set-123'));
    fs.symlinkSync(s.outside, tmp);
    const r = await scan(s.root);
    const got = (r.json.findings as { kind: string; paths: string[] }[]).map((f) => [f.kind, f.paths[0]]);
    expect(got).toEqual([['unsafe-path', tmp]]);
  });

  it.concurrent('a cache-id "l" (the overlay2 link dir) is not a driver dir layergc may take', async () => {
    // moby's own Remove("l") would delete overlay2/l; layergc must not count or purge it
    const s = root();
    s.populate();
    const o = s.makeRemovingOrphan({ cacheIdFile: 'l', driverData: 'none' });
    const r = await scan(s.root);
    const f = (r.json.findings as { kind: string; paths: string[] }[]).find((x) => x.kind === 'removing-orphan')!;
    expect(f.paths).toEqual([o.dir]);
    expect(f.paths).not.toContain(s.links);
  });
});

describe('BuildKit', () => {
  it.concurrent('a 25-char dir with an unreadable snapshots.db is kept, and the report says why', async () => {
    const s = root({ buildkit: 'garbage' });
    s.populate();
    s.makeBuildkitDir();
    s.addDanglingLayer(); // BuildKit may hold any layer: no unreferenced-layer either
    const r = await scan(s.root);
    expectFindings(r, []);
    const human = await runCliAsync(['scan', '--data-root', s.root]);
    expect(human.code).toBe(0);
    const unwrapped = human.stdout.replace(/\n {2}/g, ' '); // the note is wrapped at 80 columns
    expect(unwrapped).toContain(`note: BuildKit's database ${s.root}/buildkit/snapshots.db could not be read`);
    expect(unwrapped).toContain('every driver dir BuildKit might own is kept');
  });

  it.concurrent('scan --json carries the note too (a JSON consumer would otherwise read "clean")', async () => {
    const s = root({ buildkit: 'garbage' });
    s.populate();
    s.makeBuildkitDir();
    const r = await scan(s.root);
    expect(r.json.findings).toEqual([]);
    expect(r.json.notes).toEqual([expect.stringContaining(`BuildKit's database ${s.root}/buildkit/snapshots.db could not be read`)]);
  });

  it.concurrent('an unreadable snapshots.db still lets a 64-hex leak be flagged', async () => {
    const s = root({ buildkit: 'garbage' });
    s.populate();
    const hex = s.makeLeakedDriverDir();
    expectFindings(await scan(s.root), [
      { kind: 'unreferenced-driver-dir', severity: 'warning', cacheId: hex.id, paths: [hex.dir, hex.linkPath], bytes: 'some', reclaimable: true, reason: [`uses driver dir ${hex.id}`] },
    ]);
  });

  it.concurrent('with a readable snapshots.db, a 25-char dir it does not name is flagged', async () => {
    const s = root({ buildkit: 'fixture' });
    s.populate();
    for (const id of SyntheticRoot.buildkitFixtureDirs()) s.makeBuildkitDir(id);
    const stray = s.makeBuildkitDir(randomBuildkitId());
    expectFindings(await scan(s.root), [
      {
        kind: 'unreferenced-driver-dir',
        severity: 'warning',
        cacheId: stray.id,
        paths: [stray.dir, stray.linkPath],
        bytes: 'some',
        reclaimable: true,
        reason: ['a BuildKit snapshot that BuildKit no longer records'],
      },
    ]);
  });
});

describe('references through overlay2 lower chains', () => {
  it.concurrent('the driver dir of a layer whose metadata is broken is not garbage while layers above it use it as a lower', async () => {
    // layerdb/sha256/<mid> emptied by a power loss: nothing names its cache-id any more, but the top
    // layer's and the container's `lower` files still name its l/ link. Purging it as an
    // unreferenced-driver-dir would destroy data the layers above need once the entry is repaired.
    const s = root();
    const { app } = s.populate();
    const mid = app.layers[1];
    s.emptyLayerDir(mid.chainId);
    const r = await scan(s.root);
    const leaked = (r.json.findings as { kind: string; cacheId?: string }[]).filter((f) => f.kind === 'unreferenced-driver-dir');
    expect(leaked).toEqual([]);
  });
});
