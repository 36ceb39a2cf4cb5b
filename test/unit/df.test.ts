/**
 * `layergc df` on synthetic data roots, through the real CLI: every category's bytes are `du -sx -B1`
 * of exactly the paths it stands for (the oracle), the categories add up to `du -sx -B1 <root>`, the
 * garbage categories are scan's bytes, per image unique and shared bytes, hard links counted once
 * by the documented rule, a mount point inside never crossed, and nothing in the tree changed.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DF_CATEGORIES } from '../../src/df/categories.js';
import { diffSnapshots, rootMaker, runCliAsync, scan, snapshotTree, SyntheticRoot, type ImageInfo, type LayerInfo } from '../helpers/synthetic.js';
import { loadSchema, schemaErrors } from '../helpers/schema.js';
import { du } from '../e2e/scenario.js';

const root = rootMaker();

interface Cat {
  category: string;
  bytes: number;
  path?: string;
  purged: boolean;
}

const df = (r: SyntheticRoot, extra: string[] = []) => runCliAsync(['df', '--data-root', r.root, '--json', ...extra]);
/** One inode's blocks, as du counts a dir's own entry. */
const own = (...ps: string[]) => ps.reduce((t, p) => t + fs.lstatSync(p).blocks * 512, 0);
const layerPaths = (l: LayerInfo) => [l.dir, l.driverDir, l.linkPath];
/** An image's config and imagedb metadata dir: what rmi deletes besides layers. */
const imageFiles = (r: SyntheticRoot, i: ImageInfo) => du([i.configPath, path.join(r.imageDir, 'imagedb/metadata/sha256', i.id.slice(7))]);
const GARBAGE = ['removing-orphan', 'stale-write-set', 'unreferenced-driver-dir', 'dangling-link'];

/** The fixed categories with these bytes (0 otherwise), plus `other` rows. */
function expected(bytes: Record<string, number>, other: Record<string, number>): Cat[] {
  const out: Cat[] = DF_CATEGORIES.filter((c) => c !== 'other').map((c) => ({ category: c, bytes: bytes[c] ?? 0, purged: GARBAGE.includes(c) }));
  for (const [p, b] of Object.entries(other)) out.push({ category: 'other', bytes: b, path: p, purged: false });
  return out;
}

const byName = (a: Cat, b: Cat) => `${a.category}\0${a.path ?? ''}`.localeCompare(`${b.category}\0${b.path ?? ''}`);

function expectCategories(got: Cat[], want: Cat[]): void {
  expect([...got].sort(byName)).toEqual([...want].sort(byName));
  // biggest first; ties in the documented category order
  for (let i = 1; i < got.length; i++) {
    const [a, b] = [got[i - 1], got[i]];
    expect(a.bytes > b.bytes || (a.bytes === b.bytes && DF_CATEGORIES.indexOf(a.category as never) <= DF_CATEGORIES.indexOf(b.category as never)), `${a.category} before ${b.category}`).toBe(true);
  }
}

/** A damaged root with something in every category, and what each category must hold. */
function damagedRoot(): { r: SyntheticRoot; want: Cat[]; images: Record<string, { unique: number; shared: number }>; solo: ImageInfo; garbagePaths: Record<string, string[]> } {
  const r = root();
  const { base, app, web } = r.populate();
  // an image no container uses: its own layers are unique; the busybox base it shares is not
  const solo = r.addImage(['solo:1'], [{ files: { 'bin/sh': 'busybox\n', 'etc/passwd': 'root:x:0:0::/root:/bin/sh\n' } }, { files: { 'solo/big.bin': randomBytes(50_000) } }]);
  // an image whose top layer's size file is broken: that layer does not load; the ones below do
  const cracked = r.addImage(
    ['cracked:1'],
    [{ files: { 'bin/sh': 'busybox\n', 'etc/passwd': 'root:x:0:0::/root:/bin/sh\n' } }, { files: { 'c/1': randomBytes(9000) } }, { files: { 'c/2': randomBytes(7000) } }],
  );
  r.breakSize(cracked.chainIds[2]);
  const dangling = r.addDanglingLayer({ 'orphan.bin': randomBytes(6000).toString('hex') });
  const orphan = r.makeRemovingOrphan();
  const ws = r.makeWriteSet({ withDriverDir: true });
  const leak = r.makeLeakedDriverDir();
  const link = r.danglingLink();
  // logs, a volume, layergc's own files, Docker's other files
  const log = path.join(web.containerDir, `${web.id}-json.log`);
  fs.writeFileSync(log, randomBytes(12_000));
  fs.writeFileSync(`${log}.1`, randomBytes(3000));
  fs.writeFileSync(path.join(web.containerDir, 'hostname'), 'web\n');
  fs.mkdirSync(path.join(r.root, 'volumes', 'data', '_data'), { recursive: true });
  fs.writeFileSync(path.join(r.root, 'volumes', 'data', '_data', 'db.bin'), randomBytes(20_000));
  fs.writeFileSync(path.join(r.root, 'volumes', 'metadata.db'), randomBytes(3000));
  fs.mkdirSync(path.join(r.root, 'layergc'));
  fs.writeFileSync(path.join(r.root, 'layergc', 'journal.jsonl'), '{"op":"x"}\n');
  fs.writeFileSync(path.join(r.root, 'engine-id'), 'c0ffee\n');
  fs.writeFileSync(path.join(r.root, 'network', 'files', 'local-kv.db'), randomBytes(5000));

  const containerLayer = du([
    web.mountDir,
    web.mountDriverDir,
    web.initDriverDir,
    ...fs
      .readdirSync(r.links)
      .map((n) => path.join(r.links, n))
      .filter((p) => [web.mountId, web.initId].includes(fs.readlinkSync(p).split('/')[1])),
  ]);
  const imageLayers = [...new Set([...base.layers, ...app.layers, ...solo.layers, cracked.layers[0], cracked.layers[1]])];
  const bytes = {
    'image-layers': du(imageLayers.flatMap(layerPaths)),
    'container-layers': containerLayer,
    'container-logs': du([log, `${log}.1`]),
    'container-files': du([path.join(r.root, 'containers')]) - du([log, `${log}.1`]),
    volumes: du([path.join(r.root, 'volumes')]),
    'image-metadata': du([path.join(r.root, 'image')]) - du([r.layerdb]),
    'store-bookkeeping': own(r.root, r.layerdb, path.join(r.layerdb, 'sha256'), path.join(r.layerdb, 'mounts'), path.join(r.layerdb, 'tmp'), r.home, r.links),
    'removing-orphan': du([orphan.dir, orphan.driverDir]),
    'stale-write-set': du([ws.dir]),
    // the write-set never got as far as naming its driver dir: that dir is a leak of its own
    'unreferenced-driver-dir': du([leak.dir, leak.linkPath, ws.driverDir!, ws.linkPath!]),
    'dangling-link': du([link]),
    'unreferenced-layer': du(layerPaths(dangling)),
    'broken-layer': du(layerPaths(cracked.layers[2])),
    layergc: du([path.join(r.root, 'layergc')]),
  };
  const other: Record<string, number> = {};
  for (const n of ['engine-id', 'network', 'plugins', 'runtimes', 'swarm', 'tmp']) other[n] = du([path.join(r.root, n)]);
  const lb = (l: LayerInfo) => du(layerPaths(l));
  const f = (i: ImageInfo) => imageFiles(r, i);
  const images = {
    'busybox:latest': { unique: f(base), shared: lb(base.layers[0]) },
    'app:1': { unique: 0, shared: app.layers.reduce((t, l) => t + lb(l), 0) }, // web uses it: rmi refuses
    'solo:1': { unique: f(solo) + lb(solo.layers[1]), shared: lb(solo.layers[0]) },
    'cracked:1': { unique: f(cracked) + lb(cracked.layers[1]), shared: lb(cracked.layers[0]) },
  };
  const garbagePaths = {
    'removing-orphan': [orphan.dir, orphan.driverDir],
    'stale-write-set': [ws.dir],
    'unreferenced-driver-dir': [leak.dir, leak.linkPath, ws.driverDir!, ws.linkPath!],
    'dangling-link': [link],
  };
  return { r, want: expected(bytes, other), images, solo, garbagePaths };
}

describe('layergc df', () => {
  it('every category is du of exactly its paths; they add up to du -sx -B1 of the root; exit 0; nothing changed', async () => {
    const { r, want, images, solo } = damagedRoot();
    const before = snapshotTree(r.root, { dirTimes: true });
    const res = await df(r); // runCli validated it against docs/df.schema.json
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    const j = res.json;
    expect(j.schemaVersion).toBe(1);
    expect(j.dataRoot).toBe(r.root);
    expect(j.driver).toBe('overlay2');
    expect(j.daemonRunning).toBe(false);
    expectCategories(j.categories, want);
    expect(j.total.bytes).toBe(du([r.root]));
    expect(j.categories.reduce((t: number, c: Cat) => t + c.bytes, 0)).toBe(j.total.bytes);
    expect(j.mountsSkipped).toEqual([]);
    const got = Object.fromEntries(j.images.map((i: { image: string; uniqueBytes: number; sharedBytes: number }) => [i.image, { unique: i.uniqueBytes, shared: i.sharedBytes }]));
    expect(got).toEqual(images);
    expect(j.images[0]).toEqual({ image: 'solo:1', id: solo.id, tags: ['solo:1'], uniqueBytes: images['solo:1'].unique, sharedBytes: images['solo:1'].shared });
    expect(diffSnapshots(before, snapshotTree(r.root, { dirTimes: true }))).toEqual({ onlyBefore: [], onlyAfter: [], changed: [] });
  });

  it("the garbage categories are the bytes scan reports, and reclaimableBytes is scan's", async () => {
    const { r, garbagePaths } = damagedRoot();
    const [d, s] = await Promise.all([df(r), scan(r.root)]);
    const cat = (k: string) => d.json.categories.find((c: Cat) => c.category === k).bytes;
    for (const k of [...GARBAGE, 'unreferenced-layer']) {
      const fromScan = s.json.findings.filter((f: { kind: string }) => f.kind === k).reduce((t: number, f: { bytes: number }) => t + f.bytes, 0);
      expect(cat(k), k).toBe(fromScan);
      expect(fromScan, k).toBeGreaterThan(0);
    }
    for (const [k, ps] of Object.entries(garbagePaths)) expect(cat(k), k).toBe(du(ps));
    expect(d.json.reclaimableBytes).toBe(s.json.summary.reclaimableBytes);
  });

  it('hard links: counted once, where the last link lies; a link outside the root counts in linked-outside', async () => {
    const r = root();
    const { app } = r.populate();
    const leak = r.makeLeakedDriverDir();
    // a file of the leaked dir hard-linked into an image layer: deleting the leak frees nothing of it
    const big = path.join(leak.dir, 'diff', 'shared.bin');
    fs.writeFileSync(big, randomBytes(40_000));
    fs.linkSync(big, path.join(app.layers[2].driverDir, 'diff', 'app', 'shared.bin'));
    // a volume file hard-linked to a file outside the data root
    fs.mkdirSync(path.join(r.root, 'volumes', 'v', '_data'), { recursive: true });
    const out = path.join(r.outside, 'linked.bin');
    fs.writeFileSync(out, randomBytes(30_000));
    fs.linkSync(out, path.join(r.root, 'volumes', 'v', '_data', 'linked.bin'));
    const res = await df(r);
    const cat = (k: string) => res.json.categories.find((c: Cat) => c.category === k).bytes;
    const bigBlocks = own(big);
    expect(bigBlocks).toBeGreaterThanOrEqual(40_000);
    expect(cat('unreferenced-driver-dir')).toBe(du([leak.dir, leak.linkPath]) - bigBlocks);
    expect(cat('unreferenced-driver-dir')).toBe((await scan(r.root)).json.summary.reclaimableBytes);
    expect(cat('image-layers')).toBe(du([...r.layers.values()].flatMap(layerPaths))); // du of the layers counts it: its last link is there
    expect(cat('linked-outside')).toBe(own(out));
    expect(cat('volumes')).toBe(du([path.join(r.root, 'volumes')]) - own(out));
    expect(res.json.total.bytes).toBe(du([r.root]));
  });

  it("a mount point inside (a running container's merged/) is not crossed, as du -x", async () => {
    const r = root();
    const { web } = r.populate();
    const merged = path.join(web.mountDriverDir, 'merged');
    fs.mkdirSync(merged);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', merged]);
    try {
      fs.writeFileSync(path.join(merged, 'inside.bin'), randomBytes(2_000_000));
      const res = await df(r);
      expect(res.code).toBe(0);
      expect(res.json.mountsSkipped).toEqual([merged]);
      expect(res.json.total.bytes).toBe(du([r.root]));
      expect(res.json.categories.find((c: Cat) => c.category === 'container-layers').bytes).toBeLessThan(1_000_000);
    } finally {
      spawnSync('umount', [merged]);
    }
  });

  it('BuildKit: its own dirs and the snapshot dirs its database names', async () => {
    const r = root({ buildkit: 'fixture' });
    r.populate();
    const dirs = SyntheticRoot.buildkitFixtureDirs().map((id) => r.makeBuildkitDir(id));
    const res = await df(r);
    const cat = (k: string) => res.json.categories.find((c: Cat) => c.category === k).bytes;
    expect(cat('buildkit')).toBe(du([path.join(r.root, 'buildkit')]));
    expect(cat('buildkit-snapshots')).toBe(du(dirs.flatMap((d) => [d.dir, d.linkPath])));
    expect(cat('unreferenced-driver-dir')).toBe(0);
    expect(res.json.total.bytes).toBe(du([r.root]));
  });

  it('a dir kept because a layer stacks on it, a layer whose parent is gone, and strays: each named', async () => {
    const r = root();
    const img = r.addImage(['k:1'], [{ files: { 'k/a': randomBytes(7000) } }, { files: { 'k/b': randomBytes(5000) } }]);
    const [a, b] = img.layers;
    r.removeLayerDir(a.chainId); // b's parent is gone: b does not load, and a's driver dir is named by nothing but b's lower
    const strayHome = path.join(r.home, 'notes.txt');
    fs.writeFileSync(strayHome, 'left by hand\n');
    const strayDb = path.join(r.layerdb, 'sha256', 'README');
    fs.writeFileSync(strayDb, 'left by hand\n');
    const res = await df(r);
    const cat = (k: string) => res.json.categories.find((c: Cat) => c.category === k && c.path === undefined)?.bytes;
    expect(cat('kept-driver-dir')).toBe(du([a.driverDir, a.linkPath]));
    expect(cat('broken-layer')).toBe(du(layerPaths(b)));
    expect(cat('image-layers')).toBe(0);
    expect(cat('unreferenced-driver-dir')).toBe(0);
    const others = res.json.categories.filter((c: Cat) => c.category === 'other').map((c: Cat) => [c.path, c.bytes]);
    expect(others).toEqual(
      expect.arrayContaining([
        ['overlay2/notes.txt', du([strayHome])],
        ['image/overlay2/layerdb/sha256/README', du([strayDb])],
      ]),
    );
    expect(res.json.images).toEqual([{ image: 'k:1', id: img.id, tags: ['k:1'], uniqueBytes: imageFiles(r, img), sharedBytes: 0 }]);
    expect(res.json.total.bytes).toBe(du([r.root]));
  });

  it('unique bytes follow docker rmi: untagged parent images the legacy builder left go with their only child', async () => {
    const r = root();
    const L0 = { files: { 'bin/sh': randomBytes(4000) } };
    const L1 = { files: { 'step/1': randomBytes(6000) } };
    const step = r.addImage([], [L0]); // the builder's intermediate image: untagged
    const child = r.addImage(['child:1'], [L0, L1]);
    const setParent = (img: ImageInfo, parent: ImageInfo) => fs.writeFileSync(path.join(r.imageDir, 'imagedb/metadata/sha256', img.id.slice(7), 'parent'), parent.id);
    setParent(child, step);
    const lb = (l: LayerInfo) => du(layerPaths(l));
    const rows = async () => Object.fromEntries((await df(r)).json.images.map((i: { image: string; uniqueBytes: number; sharedBytes: number }) => [i.image, [i.uniqueBytes, i.sharedBytes]]));
    // rmi child:1 deletes the untagged step too: both layers are child:1's alone
    const f = (i: ImageInfo) => imageFiles(r, i);
    expect(await rows()).toEqual({ 'child:1': [f(child) + f(step) + lb(child.layers[0]) + lb(child.layers[1]), 0], [step.id]: [0, lb(step.layers[0])] }); // rmi of a parent refuses
    // a second child of the step: the step stays, and so does its layer
    const other = r.addImage(['other:1'], [L0, { files: { 'step/2': randomBytes(3000) } }]);
    setParent(other, step);
    expect(await rows()).toEqual({
      'child:1': [f(child) + lb(child.layers[1]), lb(child.layers[0])],
      'other:1': [f(other) + lb(other.layers[1]), lb(other.layers[0])],
      [step.id]: [0, lb(step.layers[0])],
    });
  });

  it('human view: the ten biggest other paths, the rest counted in one line; --json names each', async () => {
    const r = root();
    r.populate();
    for (let i = 0; i < 14; i++) fs.writeFileSync(path.join(r.home, `stray-${String(i).padStart(2, '0')}`), randomBytes(5000 * (i + 1)));
    const [h, j] = await Promise.all([runCliAsync(['df', '--data-root', r.root]), df(r)]);
    const strays = j.json.categories.filter((c: Cat) => c.category === 'other' && c.path!.startsWith('overlay2/stray-'));
    expect(strays.map((c: Cat) => c.path)).toEqual(Array.from({ length: 14 }, (_, i) => `overlay2/stray-${String(13 - i).padStart(2, '0')}`));
    const otherRows = h.stdout.split('\n').filter((l) => l.startsWith('  other: '));
    const allOthers = j.json.categories.filter((c: Cat) => c.category === 'other' && c.bytes > 0);
    expect(otherRows.map((l) => l.split(/\s+/)[2])).toEqual(allOthers.slice(0, 10).map((c: Cat) => c.path));
    const rest = allOthers.slice(10);
    expect(h.stdout).toContain(`  … ${rest.length} more other paths, `);
  });

  it('human view: a table with bars, biggest first, the images, and what a purge would free', async () => {
    const { r } = damagedRoot();
    const [h, j] = await Promise.all([runCliAsync(['df', '--data-root', r.root]), df(r)]);
    expect(h.code).toBe(0);
    expect(h.stderr).toBe('');
    const lines = h.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe(`layergc df ${r.root} (overlay2)`);
    expect(lines[1]).toMatch(/^\d+(\.\d+)? (kB|MB) on disk under the data root, counted as `du -sx -B1` counts/);
    const rows = lines.slice(3, lines.indexOf('', 3));
    const nonzero = j.json.categories.filter((c: Cat) => c.bytes > 0);
    expect(rows).toHaveLength(nonzero.length);
    expect(rows[0]).toMatch(/^ {2}image layers +\d+(\.\d+)? (kB|MB) +\d+\.\d% +█+/);
    expect(rows.some((l) => /^ {2}garbage: unreferenced-driver-dir /.test(l))).toBe(true);
    expect(rows.some((l) => /^ {2}other: engine-id /.test(l))).toBe(true);
    expect(h.stdout).toMatch(/^ {2}image +unique +shared$/m);
    expect(h.stdout).toMatch(/^ {2}solo:1 +\d+(\.\d+)? kB +\d+(\.\d+)? kB$/m);
    expect(lines.at(-1)).toMatch(
      /^A purge would free \d+(\.\d+)? (kB|MB) now: layergc purge --dry-run shows what; `purge --include unreferenced-layer` \(daemon stopped\) would add \d+(\.\d+)? kB\.$/,
    );
  });

  it('--format prometheus and --metrics-file: layergc_df_* per category, adding up to the total', async () => {
    const { r } = damagedRoot();
    const file = path.join(r.base, 'df.prom');
    const res = await runCliAsync(['df', '--data-root', r.root, '--format', 'prometheus', '--metrics-file', file]);
    expect(res.code).toBe(0);
    const text = fs.readFileSync(file, 'utf8');
    const samples = text.split('\n').filter((l) => l.startsWith('layergc_df_bytes{'));
    expect(samples).toHaveLength(DF_CATEGORIES.length - 1 + 6); // six `other` paths
    const total = Number(/^layergc_df_total_bytes\{[^}]*\} (\d+)$/m.exec(text)![1]);
    expect(samples.reduce((t, l) => t + Number(l.split(' ').pop()), 0)).toBe(total);
    expect(total).toBe(du([r.root]));
    expect(text).toMatch(new RegExp(`^layergc_df_bytes\\{data_root="${r.root}",category="other",path="engine-id"\\} \\d+$`, 'm'));
    expect(res.stdout.split('\n').filter((l) => l.startsWith('layergc_df_bytes{')).length).toBe(samples.length);
    const promtool = ['/usr/bin/promtool', '/usr/local/bin/promtool'].find((p) => fs.existsSync(p));
    if (promtool) expect(spawnSync(promtool, ['check', 'metrics'], { input: text, encoding: 'utf8' }).status).toBe(0);
  });

  it('beside a running dockerd: reads only, says so', async () => {
    const { r } = damagedRoot();
    const d = await r.startFakeDockerd();
    try {
      const before = snapshotTree(r.root, { dirTimes: true });
      const res = await df(r);
      expect(res.code).toBe(0);
      expect(res.json.daemonRunning).toBe(true);
      expect(res.json.total.bytes).toBe(du([r.root]));
      const h = await runCliAsync(['df', '--data-root', r.root]);
      expect(h.stdout.split('\n')[0]).toBe(`layergc df ${r.root} (overlay2)  a dockerd is running on this data root`);
      expect(h.stdout.trimEnd().split('\n').at(-1)).toMatch(/With the daemon running, unreferenced-driver-dir and stale-write-set items wait until nothing in them was written for --min-age\.$/);
      expect(diffSnapshots(before, snapshotTree(r.root, { dirTimes: true }))).toEqual({ onlyBefore: [], onlyAfter: [], changed: [] });
    } finally {
      d.stop();
    }
  });

  it('the schema names exactly the categories of the code and refuses what it does not describe', () => {
    const s = loadSchema('df');
    expect(s.$defs.category.properties.category.enum).toEqual([...DF_CATEGORIES]);
    const ok = {
      schemaVersion: 1,
      dataRoot: '/r',
      driver: 'overlay2',
      daemonRunning: false,
      total: { bytes: 1 },
      categories: [{ category: 'other', bytes: 1, path: 'x', purged: false }],
      images: [],
      reclaimableBytes: 0,
      mountsSkipped: [],
    };
    expect(schemaErrors('df', ok)).toBe('');
    expect(schemaErrors('df', { ...ok, categories: [{ category: 'other', bytes: 1, purged: false }] })).not.toBe('');
    expect(schemaErrors('df', { ...ok, categories: [{ category: 'volumes', bytes: 1, path: 'x', purged: false }] })).not.toBe('');
    expect(schemaErrors('df', { ...ok, categories: [{ category: 'nope', bytes: 1, purged: false }] })).not.toBe('');
    expect(schemaErrors('df', { ...ok, extra: 1 })).not.toBe('');
  });
});
