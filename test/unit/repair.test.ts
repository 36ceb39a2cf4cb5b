/**
 * `layergc purge --include broken[,containers]` and `layergc restore` through the real CLI on
 * synthetic roots: what the evidence proves is restored (a lost cache-id, a missing l/ link, a
 * missing link file), what cannot be repaired goes with every layer, image, tag, digest and
 * distribution cache entry that needs it, a container holds its chain back unless included, the
 * dry run changes nothing, a quarantine restores to the same tree, and a kill at any step leaves
 * repositories.json whole and a rerun finishes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bucket, synthBbolt } from '../helpers/bbolt-synth.js';
import { diffSnapshots, hexOf, randomId, rootMaker, runCliAsync, scan, snapshotTree, type ImageInfo, type SyntheticRoot, type ContainerInfo } from '../helpers/synthetic.js';

const root = rootMaker();
const STATE = ['layergc'];
const BASE = { 'bin/sh': 'busybox\n', 'etc/passwd': 'root:x:0:0::/root:/bin/sh\n' };
const DIGEST = `mid@sha256:${'ab'.repeat(32)}`;

interface Damaged {
  s: SyntheticRoot;
  app: ImageInfo;
  mid: ImageInfo;
  empty: ImageInfo;
  lost: ImageInfo;
  c1: ContainerInfo;
  web: ContainerInfo;
  /** distribution entries: of mid's removed diff IDs, and of a healthy layer */
  doomedDist: string[];
  healthyDist: string;
  /** app's top layer: its l/ link removed by hand */
  unlinked: string;
}

/**
 * The damage on a populated root: mid:1 (tagged and with a digest) lost its middle
 * layer's driver dir and has a created container c1; empty:1's top layer entry is empty; lost:1's
 * middle layer lost its cache-id file; app's top layer lost its l/ link.
 */
function damaged(opts: { repairable?: boolean } = {}): Damaged {
  const s = root();
  const { app, web } = s.populate();
  const mid = s.addImage(['mid:1', DIGEST], [{ files: BASE }, { files: { 'm/1': 'one' } }, { files: { 'm/2': 'two' } }]);
  s.removeDriverDir(mid.layers[1].cacheId);
  const c1 = s.addContainer('c1', mid.id);
  const empty = s.addImage(['empty:1'], [{ files: BASE }, { files: { 'e/1': 'eee' } }]);
  s.emptyLayerDir(empty.layers[1].chainId);
  const lost = s.addImage(['lost:1'], [{ files: BASE }, { files: { 'x/1': 'x1 data' } }, { files: { 'x/2': 'x2' } }]);
  let unlinked = '';
  if (opts.repairable !== false) {
    s.removeLayerFile(lost.layers[1].chainId, 'cache-id');
    unlinked = s.removeShortLink(app.layers[2].cacheId);
  }
  const dist = path.join(s.imageDir, 'distribution');
  fs.mkdirSync(path.join(dist, 'diffid-by-digest/sha256'), { recursive: true });
  fs.mkdirSync(path.join(dist, 'v2metadata-by-diffid/sha256'), { recursive: true });
  const doomedDist = [path.join(dist, 'diffid-by-digest/sha256', randomId()), path.join(dist, 'v2metadata-by-diffid/sha256', hexOf(mid.layers[2].diffId))];
  fs.writeFileSync(doomedDist[0], mid.layers[1].diffId);
  fs.writeFileSync(doomedDist[1], '[{"Digest":"sha256:00","SourceRepository":"docker.io/library/mid","HMAC":""}]');
  const healthyDist = path.join(dist, 'diffid-by-digest/sha256', randomId());
  fs.writeFileSync(healthyDist, app.layers[1].diffId);
  return { s, app, mid, empty, lost, c1, web, doomedDist, healthyDist, unlinked };
}

const purge = (s: SyntheticRoot, args: string[], env?: Record<string, string>) => runCliAsync(['purge', '--data-root', s.root, ...args], { env });
const repositories = (s: SyntheticRoot) => JSON.parse(fs.readFileSync(path.join(s.imageDir, 'repositories.json'), 'utf8'));
const exists = (p: string) => fs.existsSync(p) || !!fs.lstatSync(p, { throwIfNoEntry: false });

describe('purge --include broken', () => {
  it.concurrent('restores the lost cache-id and the l/ link, removes the rest; a container holds its chain back (exit 1) until included (exit 0); then the scan is clean', async () => {
    const d = damaged();
    const { s } = d;
    const r1 = await purge(s, ['--include', 'broken', '--yes', '--json']);
    expect(r1.stderr).toBe('');
    expect(r1.code).toBe(1);
    // step 1: proven repairs
    const lostLayer = d.lost.layers[1];
    expect(r1.json.repair.repaired).toEqual([
      expect.objectContaining({
        kind: 'cache-id',
        layer: lostLayer.chainId,
        cacheId: lostLayer.cacheId,
        path: path.join(lostLayer.dir, 'cache-id'),
        previous: 'missing',
        status: 'done',
        evidence: expect.stringContaining(lostLayer.diffId),
      }),
      expect.objectContaining({ kind: 'link', cacheId: d.app.layers[2].cacheId, path: d.unlinked, value: `../${d.app.layers[2].cacheId}/diff`, status: 'done' }),
    ]);
    expect(fs.readFileSync(path.join(lostLayer.dir, 'cache-id'), 'utf8')).toBe(lostLayer.cacheId);
    expect(fs.readlinkSync(d.unlinked)).toBe(`../${d.app.layers[2].cacheId}/diff`);
    // the container holds mid:1 back, named
    expect(r1.json.repair.heldBack).toEqual([
      { holder: 'container', container: 'c1', chains: [d.mid.layers[2].chainId, d.mid.layers[1].chainId], images: ['mid:1'], reason: expect.stringContaining('--include broken,containers') },
    ]);
    expect(exists(d.mid.layers[1].dir)).toBe(true);
    // empty:1 went: its layer, its image, its tag; the previous repositories.json is kept beside
    expect(r1.json.repair.images).toEqual([{ id: d.empty.id, tags: ['empty:1'], why: expect.any(String), remedy: expect.stringContaining('rebuild it (docker build -t empty:1)'), status: 'removed' }]);
    expect(exists(d.empty.layers[1].dir)).toBe(false);
    expect(exists(d.empty.configPath)).toBe(false);
    const edit = r1.json.repair.edits[0];
    expect(edit).toMatchObject({ path: path.join(s.imageDir, 'repositories.json'), removedRefs: ['empty:1'], status: 'done' });
    expect(JSON.parse(fs.readFileSync(edit.previous, 'utf8')).Repositories.empty).toEqual({ 'empty:1': d.empty.id });
    expect(repositories(s).Repositories.empty).toBeUndefined();
    expect(r1.json.actions.every((a: { status: string }) => a.status === 'removed')).toBe(true);

    const r2 = await purge(s, ['--include', 'broken,containers', '--yes', '--json']);
    expect(r2.stderr).toBe('');
    expect(r2.code).toBe(0);
    expect(r2.json.repair.heldBack).toEqual([]);
    expect(r2.json.repair.images).toEqual([{ id: d.mid.id, tags: [DIGEST, 'mid:1'].sort(), why: expect.any(String), remedy: `docker pull ${DIGEST}`, status: 'removed' }]);
    for (const p of [d.c1.containerDir, d.c1.mountDir, d.c1.mountDriverDir, d.c1.initDriverDir, d.mid.layers[1].dir, d.mid.layers[2].dir, d.mid.layers[2].driverDir, d.mid.configPath, ...d.doomedDist])
      expect(exists(p), p).toBe(false);
    // what healthy images and containers use is untouched
    for (const p of [d.healthyDist, d.web.containerDir, d.web.mountDriverDir, ...d.app.layers.map((l) => l.driverDir), ...d.lost.layers.map((l) => l.driverDir), d.mid.layers[0].dir])
      expect(exists(p), p).toBe(true);
    expect(Object.keys(repositories(s).Repositories).sort()).toEqual(['app', 'busybox', 'lost']);
    const clean = await scan(s.root);
    expect(clean.json.findings).toEqual([]);
    expect(clean.code).toBe(0);
  });

  it.concurrent('--dry-run plans the same and changes nothing, byte for byte', async () => {
    const d = damaged();
    const before = snapshotTree(d.s.root, { dirTimes: true });
    const r = await purge(d.s, ['--include', 'broken,containers', '--dry-run', '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.json.dryRun).toBe(true);
    expect(r.json.repair.repaired.map((x: { kind: string; status: string }) => [x.kind, x.status])).toEqual([
      ['cache-id', 'planned'],
      ['link', 'planned'],
    ]);
    expect(r.json.repair.images.map((i: { id: string }) => i.id).sort()).toEqual([d.mid.id, d.empty.id].sort());
    expect(r.json.repair.edits[0].status).toBe('planned');
    expect(r.json.actions.every((a: { status: string }) => a.status === 'planned')).toBe(true);
    const human = await purge(d.s, ['--include', 'broken,containers', '--dry-run']);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain('would repair  cache-id of layer');
    expect(human.stdout).toContain(`mid:1: docker pull ${DIGEST}`);
    expect(snapshotTree(d.s.root, { dirTimes: true })).toEqual(before);
    expect(exists(path.join(d.s.root, 'layergc'))).toBe(false);
  });

  it.concurrent('refuses: without --dry-run or --yes, containers without broken, quarantine without broken, a dockerd on the root (exit 3)', async () => {
    const d = damaged();
    const before = snapshotTree(d.s.root, { exclude: STATE });
    for (const [args, msg] of [
      [['--include', 'broken'], '--include broken needs --dry-run or --yes'],
      [['--include', 'containers', '--yes'], '--include containers goes with broken'],
      [['--quarantine', '/tmp/q', '--yes'], '--quarantine goes with --include broken'],
      [['--include', 'broken', '--yes', '--quarantine', '/dev/shm/layergc-q'], 'is on another filesystem'],
      [['--include', 'broken', '--yes', '--quarantine', path.join(d.s.root, 'image/q')], "inside Docker's own directories"],
    ] as const) {
      const r = await purge(d.s, [...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toContain(msg);
    }
    const fake = await d.s.startFakeDockerd();
    try {
      const r = await purge(d.s, ['--include', 'broken', '--yes']);
      expect(r.code).toBe(3);
      expect(r.stderr).toContain('repairing broken layers needs it stopped');
    } finally {
      fake.stop();
    }
    expect(snapshotTree(d.s.root, { exclude: STATE })).toEqual(before);
  });

  it.concurrent('a cache-id two dirs would prove is not guessed: the entry goes as broken, both dirs are garbage', async () => {
    const s = root();
    s.populate();
    const img = s.addImage(['twin:1'], [{ files: { 'twin/a': 'same bytes' } }]);
    const layer = img.layers[0];
    const copy = s.driverDir(randomId());
    fs.cpSync(layer.driverDir, copy, { recursive: true });
    s.removeLayerFile(layer.chainId, 'cache-id');
    const r = await purge(s, ['--include', 'broken', '--dry-run', '--json']);
    expect(r.code).toBe(0);
    expect(r.json.repair.repaired).toEqual([]);
    expect(r.json.repair.unproven).toEqual([{ layer: layer.chainId, reason: expect.stringMatching(/^2 driver dirs rebuild its DiffID/) }]);
    const run = await purge(s, ['--include', 'broken', '--yes', '--json']);
    expect(run.code).toBe(0);
    expect(exists(layer.dir)).toBe(false);
    expect(exists(copy)).toBe(false);
    expect(exists(layer.driverDir)).toBe(false);
    expect((await scan(s.root)).json.findings).toEqual([]);
  });

  it.concurrent('a layer only removed images used goes with them, as docker rmi releases it', async () => {
    const s = root();
    s.populate();
    const gone = s.addImage(['gone:1'], [{ files: { 'g/1': 'base of gone' } }, { files: { 'g/2': 'top of gone' } }]);
    s.removeDriverDir(gone.layers[1].cacheId, { withLink: true });
    const r = await purge(s, ['--include', 'broken', '--yes', '--json']);
    expect(r.code).toBe(0);
    expect(r.json.actions.map((a: { kind: string; paths: string[] }) => [a.kind, a.paths[0]])).toEqual([
      ['image-missing-layers', path.join(s.imageDir, 'imagedb/metadata/sha256', hexOf(gone.id))],
      ['missing-driver-data', gone.layers[1].dir],
      ['unreferenced-layer', gone.layers[0].dir],
    ]);
    for (const p of [gone.layers[0].dir, gone.layers[0].driverDir, gone.layers[0].linkPath]) expect(exists(p), p).toBe(false);
    expect((await scan(s.root)).json.findings).toEqual([]);
  });

  it.concurrent("BuildKit's cache holds a broken chain and its image back, named (exit 1), until it lets go (exit 0)", async () => {
    const s = root();
    s.populate();
    const built = s.addImage(['built:1'], [{ files: BASE }, { files: { 'b/1': 'one' } }, { files: { 'b/2': 'two' } }]);
    s.removeDriverDir(built.layers[1].cacheId, { withLink: true });
    // BuildKit's metadata_v2.db records the top of the broken chain as a cache snapshot
    fs.mkdirSync(path.join(s.root, 'buildkit'), { recursive: true });
    fs.writeFileSync(path.join(s.root, 'buildkit/snapshots.db'), synthBbolt(bucket({})).file);
    fs.writeFileSync(
      path.join(s.root, 'buildkit/metadata_v2.db'),
      synthBbolt(bucket({ _main: bucket({ rec1aaaaaaaaaaaaaaaaaaaaa: bucket({ 'cache.snapshot': JSON.stringify({ value: built.layers[2].chainId }) }) }) })).file,
    );
    const before = snapshotTree(s.root, { exclude: STATE });
    const r1 = await purge(s, ['--include', 'broken', '--yes', '--json']);
    expect(r1.stderr).toBe('');
    expect(r1.code).toBe(1);
    expect(r1.json.repair.heldBack).toEqual([
      { holder: 'buildkit', chains: [built.layers[2].chainId, built.layers[1].chainId], images: ['built:1'], reason: expect.stringContaining('docker builder prune') },
    ]);
    expect(r1.json.repair.images).toEqual([]);
    expect(diffSnapshots(before, snapshotTree(s.root, { exclude: STATE }))).toEqual({ onlyBefore: [], onlyAfter: [], changed: [] });
    const human = await purge(s, ['--include', 'broken', '--dry-run']);
    expect(human.stdout).toContain("held back  BuildKit's build cache (and image built:1)");

    fs.rmSync(path.join(s.root, 'buildkit'), { recursive: true });
    const r2 = await purge(s, ['--include', 'broken', '--yes', '--json']);
    expect(r2.code).toBe(0);
    expect(r2.json.repair.heldBack).toEqual([]);
    expect(r2.json.repair.images).toEqual([expect.objectContaining({ id: built.id, tags: ['built:1'], status: 'removed' })]);
    for (const l of built.layers.slice(1)) expect(exists(l.dir), l.dir).toBe(false);
  });

  it.concurrent('unknown is not empty: while an image config cannot be read, the layers only removed images used are kept, and the report says why', async () => {
    const s = root();
    s.populate();
    const gone = s.addImage(['gone:1'], [{ files: { 'g/1': 'base of gone' } }, { files: { 'g/2': 'top of gone' } }]);
    s.removeDriverDir(gone.layers[1].cacheId, { withLink: true });
    const other = s.addImage(['other:1'], [{ files: { 'o/1': 'other' } }]);
    s.corruptImageConfig(other.id);
    const r = await purge(s, ['--include', 'broken', '--yes', '--json']);
    expect(r.code).toBe(0);
    expect(r.json.repair.images.map((i: { id: string }) => i.id)).toEqual([gone.id]);
    expect(r.json.repair.notes).toEqual(['the layers only the removed images used are kept: 1 image config(s) cannot be read, and they may use them']);
    expect(exists(gone.layers[1].dir)).toBe(false);
    expect(exists(gone.layers[0].dir)).toBe(true);
    expect(exists(gone.layers[0].driverDir)).toBe(true);
  });

  it.concurrent('unknown is not empty: with containers/ unreadable (a symlink), no broken layer, image or container is removed; exit 1, the report says why', async () => {
    const d = damaged({ repairable: false });
    const containers = path.join(d.s.root, 'containers');
    fs.renameSync(containers, path.join(d.s.outside, 'containers'));
    fs.symlinkSync(path.join(d.s.outside, 'containers'), containers);
    const r = await purge(d.s, ['--include', 'broken,containers', '--yes', '--json']);
    expect(r.code).toBe(1);
    expect(r.json.repair.notes).toEqual([expect.stringMatching(/containers is a symlink .*cannot be known, so no broken layer, image or container is removed$/)]);
    expect(r.json.repair.images).toEqual([]);
    for (const p of [d.mid.layers[1].dir, d.empty.layers[1].dir, d.mid.configPath, d.empty.configPath, ...d.doomedDist]) expect(exists(p), p).toBe(true);
  });

  it.concurrent('a missing link file is written from its one l/ symlink', async () => {
    const s = root();
    const { app } = s.populate();
    const l = app.layers[1];
    s.removeDriverFile(l.cacheId, 'link');
    const r = await purge(s, ['--include', 'broken', '--yes', '--json']);
    expect(r.code).toBe(0);
    expect(r.json.repair.repaired).toEqual([
      expect.objectContaining({ kind: 'link-file', cacheId: l.cacheId, path: path.join(l.driverDir, 'link'), value: l.lid, previous: 'missing', status: 'done' }),
    ]);
    expect(fs.readFileSync(path.join(l.driverDir, 'link'), 'utf8')).toBe(l.lid);
    expect(r.json.actions).toEqual([]);
    expect((await scan(s.root)).json.findings).toEqual([]);
  });

  it.concurrent('scan prints the remedy under each broken finding, with the flags that located the root', async () => {
    const d = damaged();
    const r = await runCliAsync(['scan', '--data-root', d.s.root, '--driver', 'overlay2']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`remedy: layergc purge --include broken,containers --dry-run --data-root ${d.s.root} --driver overlay2 (then --yes)`);
    expect(r.stdout).toContain(`remedy: then for image mid:1: docker pull ${DIGEST}`);
    expect(r.stdout).toContain('remedy: then for image empty:1: no registry digest is known');
    const j = await scan(d.s.root);
    const f = j.json.findings.find((x: { kind: string; layer?: string }) => x.kind === 'missing-driver-data');
    expect(f.remedy).toEqual([
      `layergc purge --include broken,containers --dry-run --data-root ${d.s.root} (then --yes): repairs what the evidence proves, removes the rest and what needs it`,
      `then for image mid:1: docker pull ${DIGEST}`,
    ]);
  });
});

describe('metrics', () => {
  const PROMTOOL = ['/usr/bin/promtool', '/usr/local/bin/promtool'].find((p) => fs.existsSync(p));
  it.concurrent('--format prometheus counts the repairs, the removals by kind and the held-back containers', async () => {
    const d = damaged();
    const r = await purge(d.s, ['--include', 'broken', '--dry-run', '--format', 'prometheus']);
    expect(r.code).toBe(1);
    const at = (name: string, labels: string) =>
      r.stdout
        .split('\n')
        .find((l) => l.startsWith(`${name}{data_root="${d.s.root}"${labels}} `))
        ?.split(' ')
        .pop();
    expect(at('layergc_repaired', ',kind="cache-id"')).toBe('1');
    expect(at('layergc_repaired', ',kind="link"')).toBe('1');
    expect(at('layergc_repair_removed', ',kind="image-missing-layers"')).toBe('1');
    expect(at('layergc_repair_held_back', '')).toBe('1');
    expect(at('layergc_purge_dry_run', '')).toBe('1');
    if (PROMTOOL) {
      const { spawnSync } = await import('node:child_process');
      const check = spawnSync(PROMTOOL, ['check', 'metrics'], { input: r.stdout, encoding: 'utf8' });
      expect(`${check.stdout}${check.stderr}`).toBe('');
      expect(check.status).toBe(0);
    }
  });
});

describe('--quarantine and restore', () => {
  it.concurrent('moves instead of deleting; restore gives back the same tree; a second restore has nothing to do', async () => {
    const d = damaged({ repairable: false });
    const before = snapshotTree(d.s.root, { exclude: STATE });
    const q = path.join(d.s.base, 'quarantine');
    const r = await purge(d.s, ['--include', 'broken,containers', '--yes', '--json', '--quarantine', q]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.json.repair.quarantine).toBe(q);
    for (const p of [d.c1.containerDir, d.mid.layers[1].dir, d.empty.configPath, ...d.doomedDist]) {
      expect(exists(p), p).toBe(false);
      expect(exists(path.join(q, 'data', path.relative(d.s.root, p))), p).toBe(true);
    }
    expect((await scan(d.s.root)).json.findings).toEqual([]);
    const manifest = fs
      .readFileSync(path.join(q, 'manifest.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(manifest[0]).toMatchObject({ op: 'quarantine', dataRoot: d.s.root });
    expect(manifest.filter((m) => m.op === 'edit')).toHaveLength(1);

    const back = await runCliAsync(['restore', q, '--json']);
    expect(back.stderr).toBe('');
    expect(back.code).toBe(0);
    expect(back.json.summary.restored).toBe(manifest.length - 1);
    const diff = diffSnapshots(before, snapshotTree(d.s.root, { exclude: STATE }));
    expect(diff).toEqual({ onlyBefore: [], onlyAfter: [], changed: [] });
    const again = await runCliAsync(['restore', q, '--json']);
    expect(again.code).toBe(0);
    expect(again.json.summary).toEqual({ restored: 0, planned: 0, already: manifest.length - 1 });
  });

  it.concurrent('restore refuses to overwrite anything that is back, and changes nothing', async () => {
    const d = damaged({ repairable: false });
    const q = path.join(d.s.base, 'quarantine');
    expect((await purge(d.s, ['--include', 'broken,containers', '--yes', '--quarantine', q])).code).toBe(0);
    fs.mkdirSync(d.c1.containerDir); // something made it again
    const before = snapshotTree(d.s.root, { dirTimes: true, exclude: STATE });
    const r = await runCliAsync(['restore', q]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${d.c1.containerDir} exists again`);
    expect(snapshotTree(d.s.root, { dirTimes: true, exclude: STATE })).toEqual(before);
  });
});

describe('a kill at any step', () => {
  // atomic writes: 1 is the cache-id, 2 is repositories.json; intents: repairs, the edit, then items
  const POINTS = [
    'after-repair',
    'atomic-after-temp',
    'atomic-after-rename',
    'atomic-after-temp:2',
    'atomic-after-rename:2',
    'after-intent:4',
    'after-intent:6',
    'after-stage:2',
    'after-intent',
    'after-stage',
    'after-driver',
    'after-metadata',
    'remove-tree',
    'before-rename',
    'after-rename',
  ];
  for (const point of POINTS) {
    it.concurrent(`at ${point}: repositories.json stays whole, a rerun finishes, the scan is clean`, async () => {
      const d = damaged();
      const killed = await purge(d.s, ['--include', 'broken,containers', '--yes'], { LAYERGC_TEST_CRASH_AT: point });
      expect(killed.signal, `${point} was reached`).toBe('SIGKILL');
      const repos = repositories(d.s);
      expect(repos.Repositories.app).toBeDefined();
      const rerun = await purge(d.s, ['--include', 'broken,containers', '--yes', '--json']);
      // the rerun says it took over the dead run's lock and finishes what the journal left open
      for (const line of rerun.stderr.trim().split('\n').filter(Boolean)) expect(line).toMatch(/took over the lock of a layergc that died|finishing \d+ item/);
      expect(rerun.code).toBe(0);
      expect(fs.readdirSync(d.s.imageDir).filter((n) => n.startsWith('.tmp-'))).toEqual([]);
      const clean = await scan(d.s.root);
      expect(clean.json.findings).toEqual([]);
      expect(Object.keys(repositories(d.s).Repositories).sort()).toEqual(['app', 'busybox', 'lost']);
      expect(fs.readFileSync(path.join(d.lost.layers[1].dir, 'cache-id'), 'utf8')).toBe(d.lost.layers[1].cacheId);
    });
  }
});
