/**
 * Red team: attacks that try to make layergc delete, rename or overwrite something live or outside
 * the data root, through the real CLI on synthetic roots. Each test states the attack and asserts
 * the promise (sha256 listings of the live tree and of a canary tree outside the root, before and
 * after). Tests named "regression: ..." broke before their fix; the others pin a promise that held.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { diffSnapshots, randomId, rootMaker, runCliAsync, scan, sha256Hex, snapshotTree, type ContainerInfo, type ImageInfo, type SyntheticRoot } from '../helpers/synthetic.js';
import { containerdRoot, digestOf, hex64, type ContainerdSpec } from '../helpers/containerd-synth.js';
import { pausedCli } from '../helpers/signal.js';

const root = rootMaker();
const STATE = ['layergc'];
const purge = (s: SyntheticRoot, args: string[], env?: Record<string, string>) => runCliAsync(['purge', '--data-root', s.root, ...args], { env });
const exists = (p: string) => !!fs.lstatSync(p, { throwIfNoEntry: false });
const same = (a: Map<string, string>, b: Map<string, string>) => expect(diffSnapshots(a, b)).toEqual({ onlyBefore: [], onlyAfter: [], changed: [] });
/** Listings of `dirs` (sha256 of every file), to prove that each is untouched. */
const listing = (dirs: string[]) => new Map(dirs.flatMap((d) => [...snapshotTree(d)].map(([k, v]) => [`${d}/${k}`, v] as [string, string])));

describe('the reference model: an image the daemon loads keeps its layers', () => {
  // Go's encoding/json matches object keys to struct fields case-insensitively (and folds the long
  // s, U+017F, to s): moby loads {"RootFS": {"Diff_IDs": [...]}} as an image with those layers.
  for (const [what, rootfs, diffIds] of [
    ['RootFS / Diff_IDs', 'RootFS', 'Diff_IDs'],
    ['ROOTFS / DIFF_IDS', 'ROOTFS', 'DIFF_IDS'],
    ['rootf\u017f (long s)', 'rootf\u017f', 'diff_id\u017f'],
  ] as const) {
    it.concurrent(`regression: a config spelling its keys ${what}: its layers are live, not unreferenced`, async () => {
      const s = root();
      s.populate();
      const layer = s.addDanglingLayer({ 'odd/file': 'odd image data\n' });
      const cfg = JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, [rootfs]: { type: 'layers', [diffIds]: [layer.diffId] } });
      const img = s.writeImageConfig(cfg);
      s.writeRepositoriesRaw(JSON.stringify({ Repositories: { odd: { 'odd:1': img.id } } }));
      const live = listing([layer.dir, layer.driverDir]);
      const sc = await scan(s.root);
      expect(sc.json.findings.map((f: { kind: string }) => f.kind)).toEqual([]);
      const r = await purge(s, ['--yes', '--json', '--include', 'unreferenced-layer']);
      expect(r.code).toBe(0);
      same(live, listing([layer.dir, layer.driverDir]));
    });
  }
});

describe('files layergc writes', () => {
  it.concurrent('regression: --metrics-file whose temporary name is a planted symlink to a file outside: the file is not written through', async () => {
    const s = root();
    s.populate();
    s.makeLeakedDriverDir();
    const metricsDir = path.join(s.base, 'textfile');
    fs.mkdirSync(metricsDir);
    const victim = path.join(s.outside, 'precious.txt');
    const before = listing([s.outside]);
    const pause = fs.mkdtempSync(path.join(s.base, 'pause-'));
    const run = pausedCli(['purge', '--data-root', s.root, '--yes', '--metrics-file', path.join(metricsDir, 'layergc.prom')], 'before-item', pause);
    await run.paused;
    fs.symlinkSync(victim, path.join(metricsDir, `.layergc.prom.${run.pid()}.tmp`));
    run.resume();
    await run.done;
    same(before, listing([s.outside]));
    expect(fs.readFileSync(path.join(metricsDir, 'layergc.prom'), 'utf8')).toContain('layergc_reclaimed_bytes');
  });

  it.concurrent('a crafted journal whose unfinished intents name paths outside and live dirs: nothing named is touched', async () => {
    const s = root();
    const { app, web } = s.populate();
    s.makeLeakedDriverDir();
    fs.mkdirSync(path.join(s.root, 'layergc'), { mode: 0o700 });
    const lines = [s.outside, path.join(s.outside, 'precious.txt'), app.layers[0].driverDir, app.layers[0].dir, web.mountDriverDir, web.containerDir].map((p) =>
      JSON.stringify({ time: '2024-01-01T00:00:00Z', run: 'x', event: 'intent', kind: 'unreferenced-driver-dir', paths: [p] }),
    );
    fs.writeFileSync(path.join(s.root, 'layergc/journal.jsonl'), `${lines.join('\n')}\n`);
    const guard = [s.outside, app.layers[0].driverDir, app.layers[0].dir, web.mountDriverDir, web.containerDir];
    const before = listing(guard);
    const r = await purge(s, ['--yes', '--json']);
    expect(r.code).toBe(0);
    same(before, listing(guard));
  });
});

describe('restore with a crafted manifest', () => {
  it.concurrent('regression: a manifest whose dataRoot is a folder that is not a Docker data root: refused, nothing written there', async () => {
    const s = root();
    const q = path.join(s.base, 'q');
    fs.mkdirSync(path.join(q, 'data/sub'), { recursive: true });
    fs.writeFileSync(path.join(q, 'data/sub/planted'), 'planted\n');
    fs.writeFileSync(
      path.join(q, 'manifest.jsonl'),
      [
        { op: 'quarantine', dataRoot: s.outside, run: 'x', time: '2024-01-01T00:00:00Z' },
        { op: 'move', from: path.join(s.outside, 'sub/planted'), to: 'data/sub/planted' },
      ]
        .map((e) => JSON.stringify(e))
        .join('\n') + '\n',
    );
    const before = listing([s.outside]);
    const r = await runCliAsync(['restore', q]);
    expect(r.code).toBe(2);
    same(before, listing([s.outside]));
  });

  it.concurrent('regression: an edit entry whose "previous" is another live file: refused, neither file changes', async () => {
    const s = root();
    const { app } = s.populate();
    const q = path.join(s.base, 'q');
    fs.mkdirSync(q);
    const a = path.join(app.layers[0].dir, 'cache-id');
    const b = path.join(app.layers[1].dir, 'cache-id');
    fs.writeFileSync(
      path.join(q, 'manifest.jsonl'),
      [
        { op: 'quarantine', dataRoot: s.root, run: 'x', time: '2024-01-01T00:00:00Z' },
        { op: 'edit', path: b, previous: a, sha256: sha256Hex(fs.readFileSync(b)) },
      ]
        .map((e) => JSON.stringify(e))
        .join('\n') + '\n',
    );
    const before = snapshotTree(s.root, { exclude: STATE });
    const r = await runCliAsync(['restore', q]);
    expect(r.code).toBe(2);
    same(before, snapshotTree(s.root, { exclude: STATE }));
  });

  it.concurrent('a move entry whose source in the quarantine is reached through a symlinked dir, or lies outside data/: refused', async () => {
    const s = root();
    s.populate();
    const q = path.join(s.base, 'q');
    fs.mkdirSync(path.join(q, 'data'), { recursive: true });
    fs.symlinkSync(s.outside, path.join(q, 'data/out'));
    for (const to of ['data/out/precious.txt', 'data/../../outside/precious.txt']) {
      fs.writeFileSync(
        path.join(q, 'manifest.jsonl'),
        [
          { op: 'quarantine', dataRoot: s.root, run: 'x', time: '2024-01-01T00:00:00Z' },
          { op: 'move', from: path.join(s.root, 'precious.txt'), to },
        ]
          .map((e) => JSON.stringify(e))
          .join('\n') + '\n',
      );
      const before = [listing([s.outside]), snapshotTree(s.root, { exclude: STATE })];
      const r = await runCliAsync(['restore', q]);
      expect(r.code, to).not.toBe(0);
      same(before[0], listing([s.outside]));
      same(before[1], snapshotTree(s.root, { exclude: STATE }));
    }
  });
});

describe('purge --include broken: what a doomed item names that something else needs', () => {
  it.concurrent("regression: a container on a broken chain whose mount-id names a live layer's dir: with containers, the live dir stays", async () => {
    const s = root();
    const { app } = s.populate();
    const doomed = s.addImage(['doomed:1'], [{ files: { 'd/1': 'd1' } }, { files: { 'd/2': 'd2' } }]);
    const c = s.addContainer('c', doomed.id);
    s.removeDriverDir(doomed.layers[0].cacheId); // missing-driver-data under c's chain
    const live = app.layers[2];
    s.writeMountFile(c.id, 'mount-id', live.cacheId);
    s.writeMountFile(c.id, 'init-id', `${live.cacheId}-init`);
    const before = listing([live.driverDir, live.dir]);
    const r = await purge(s, ['--include', 'broken,containers', '--yes', '--json']);
    expect(r.code).toBeLessThan(2);
    same(before, listing([live.driverDir, live.dir]));
  });

  it.concurrent('regression: a broken entry whose cache-id is a dir BuildKit may own while its databases cannot be read: the dir stays', async () => {
    const s = root({ buildkit: 'garbage' });
    s.populate();
    const bk = s.makeBuildkitDir();
    const img = s.addImage(['b:1'], [{ files: { 'b/1': 'b1' } }]);
    s.writeLayerFile(img.layers[0].chainId, 'cache-id', bk.id); // now names BuildKit's dir
    s.breakSize(img.layers[0].chainId); // and does not load: broken
    const before = listing([bk.dir]);
    const r = await purge(s, ['--include', 'broken', '--yes', '--json']);
    expect(r.code).toBeLessThan(2);
    same(before, listing([bk.dir]));
  });

  it.concurrent("two entries claiming one cache-id, one broken and one live: the live layer's dir stays", async () => {
    const s = root();
    const { app } = s.populate();
    const img = s.addImage(['b:1'], [{ files: { 'b/1': 'b1' } }]);
    s.writeLayerFile(img.layers[0].chainId, 'cache-id', app.layers[1].cacheId);
    s.breakSize(img.layers[0].chainId);
    const before = listing([app.layers[1].driverDir, app.layers[1].dir]);
    const r = await purge(s, ['--include', 'broken', '--yes', '--json']);
    expect(r.code).toBeLessThan(2);
    same(before, listing([app.layers[1].driverDir, app.layers[1].dir]));
  });
});

describe('ids that are not ids', () => {
  it.concurrent("regression: a live layer whose cache-id ends in layergc's staging suffix is not an interrupted purge's leftover", async () => {
    const s = root();
    s.populate();
    const img = s.addImage(['odd:1'], [{ files: { 'o/1': 'odd' } }]);
    const odd = img.layers[0];
    const staged = `${odd.driverDir}-layergc-removing`;
    fs.renameSync(odd.driverDir, staged);
    fs.writeFileSync(path.join(odd.dir, 'cache-id'), path.basename(staged));
    fs.unlinkSync(odd.linkPath);
    fs.symlinkSync(`../${path.basename(staged)}/diff`, odd.linkPath);
    const before = listing([staged, odd.dir]);
    expect((await purge(s, ['--yes', '--json'])).code).toBe(0);
    same(before, listing([staged, odd.dir]));
    // and garbage whose staging name is that dir (emptied, so a rename could replace it)
    const leak = s.makeLeakedDriverDir({ id: path.basename(odd.driverDir) });
    expect((await purge(s, ['--yes', '--json'])).code).toBeLessThan(2);
    same(before, listing([staged, odd.dir]));
    expect(exists(leak.dir)).toBe(true);
  });
});

describe('lost container metadata', () => {
  it.concurrent('a container whose layerdb/mounts/<id> is gone: its RW and init dirs are not purged as unreferenced', async () => {
    const s = root();
    const { web } = s.populate();
    fs.rmSync(web.mountDir, { recursive: true });
    const before = listing([web.mountDriverDir, web.initDriverDir, web.containerDir]);
    const r = await purge(s, ['--yes', '--json']);
    expect(r.code).toBeLessThan(2);
    same(before, listing([web.mountDriverDir, web.initDriverDir, web.containerDir]));
  });
});

describe('a live dir whose own lower file is damaged', () => {
  // A middle layer's entry is gone (removed by hand, or moved aside as a write-set), so only the
  // lower files of the dirs above name its dir; those are truncated, garbage or missing too.
  for (const [how, lost] of [
    ['truncated', 'gone'],
    ['garbage', 'write-set'],
    ['missing', 'gone'],
    ['a FIFO', 'write-set'],
  ] as const) {
    it.concurrent(`regression: lower ${how}, the layer entry ${lost}: the dir it may stack on is kept`, async () => {
      const s = root();
      const { app, web } = s.populate();
      const mid = app.layers[1];
      if (lost === 'gone') fs.rmSync(mid.dir, { recursive: true });
      else fs.renameSync(mid.dir, path.join(s.layerdb, 'tmp', 'write-set-123456789'));
      for (const d of [app.layers[2].driverDir, web.initDriverDir, web.mountDriverDir]) {
        const f = path.join(d, 'lower');
        const text = fs.readFileSync(f, 'utf8');
        fs.rmSync(f);
        if (how === 'truncated') fs.writeFileSync(f, text.slice(0, 5));
        if (how === 'garbage') fs.writeFileSync(f, '\0\0\0garbage');
        if (how === 'a FIFO') spawnSync('mkfifo', [f]);
      }
      const before = listing([mid.driverDir]);
      const r = await purge(s, ['--yes', '--json']);
      expect(r.code).toBeLessThan(2);
      same(before, listing([mid.driverDir]));
      expect(exists(mid.linkPath)).toBe(true);
    });
  }

  it.concurrent("regression: lower files whole, but the dir's l/ link is lost too: the dir its own link file names is kept", async () => {
    const s = root();
    const { app } = s.populate();
    const mid = app.layers[1];
    fs.rmSync(mid.dir, { recursive: true });
    fs.unlinkSync(mid.linkPath);
    const before = listing([mid.driverDir]);
    const r = await purge(s, ['--yes', '--json']);
    expect(r.code).toBeLessThan(2);
    same(before, listing([mid.driverDir]));
  });

  it.concurrent('a damaged lower file whose layer store chain names every lower keeps nothing else: a leaked dir still goes', async () => {
    const s = root();
    const { app } = s.populate();
    fs.writeFileSync(path.join(app.layers[2].driverDir, 'lower'), '');
    const leak = s.makeLeakedDriverDir();
    const r = await purge(s, ['--yes', '--json']);
    expect(r.code).toBeLessThan(2);
    expect(exists(leak.dir)).toBe(false);
  });
});

describe('layergc unlock', () => {
  it.concurrent('regression: <root>/layergc a symlink to a dir outside holding a file named lock: refused, the file stays', async () => {
    const s = root();
    s.populate();
    fs.writeFileSync(path.join(s.outside, 'lock'), "some other program's lock\n");
    fs.symlinkSync(s.outside, path.join(s.root, 'layergc'));
    const before = listing([s.outside]);
    const r = await runCliAsync(['unlock', '--data-root', s.root]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('is not a directory');
    same(before, listing([s.outside]));
  });
});

describe('the containerd image store purge', () => {
  /** A managed-containerd root whose meta.db and metadata.db are `empty` (fresh, no namespace) or name one image's blob and snapshot. */
  function ctrdStore(empty: boolean) {
    const b = fs.mkdtempSync(path.join(os.tmpdir(), 'layergc-rt-ctrd-'));
    const layer = 'layer bytes of app:1';
    const d = digestOf(layer);
    const chain = `sha256:${hex64('chain')}`;
    const spec: ContainerdSpec = empty
      ? { namespaces: {}, backend: {} }
      : {
          namespaces: {
            moby: {
              images: { 'docker.io/library/app:1': { target: d } },
              blobs: { [d]: { size: layer.length, labels: { 'containerd.io/gc.ref.snapshot.overlayfs': chain } } },
              snapshots: { [chain]: { name: `moby/1/${chain}` } },
            },
          },
          backend: { [`moby/1/${chain}`]: { id: 1 } },
        };
    const s = containerdRoot(b, spec);
    s.blob(layer);
    s.snapshotDir(1);
    return s;
  }

  it.concurrent('regression: a lost meta.db and metadata.db re-created empty (no namespace at all): no snapshot dir or blob is called garbage', async () => {
    const s = ctrdStore(true);
    const before = snapshotTree(s.root);
    const r = await runCliAsync(['purge', '--yes', '--json', '--data-root', s.dataRoot]);
    expect(r.code).toBe(0);
    expect(r.json.actions).toEqual([]);
    same(before, snapshotTree(s.root));
    const sc = await runCliAsync(['scan', '--json', '--data-root', s.dataRoot]);
    expect(sc.json.findings.map((f: { kind: string }) => f.kind)).toContain('containerd-db-mismatch');
    fs.rmSync(path.dirname(s.dataRoot), { recursive: true, force: true });
  });

  it.concurrent('regression: a containerd that takes meta.db between the plan and an item: the item is not begun (the blob a pull may be committing again stays), exit 1', async () => {
    const s = ctrdStore(false);
    const orphan = path.join(s.blobs, s.blob('a blob a pull is about to commit again').slice(7));
    const pause = fs.mkdtempSync(path.join(path.dirname(s.dataRoot), 'pause-'));
    const run = pausedCli(['purge', '--yes', '--json', '--data-root', s.dataRoot], 'before-item', pause);
    await run.paused;
    // containerd's bbolt holds flock(LOCK_EX) on meta.db while it runs
    const ready = path.join(pause, 'locked');
    const holder = spawn('flock', [path.join(s.root, 'io.containerd.metadata.v1.bolt/meta.db'), '-c', `touch '${ready}'; sleep 60`], { stdio: 'ignore' });
    while (!exists(ready)) await new Promise((r) => setTimeout(r, 10));
    run.resume();
    const r = await run.done;
    holder.kill();
    expect(r.code).toBe(1);
    expect(exists(orphan)).toBe(true);
    expect(JSON.parse(r.stdout).actions.map((a: { status: string; reason: string }) => [a.status, a.reason])).toEqual([['failed', expect.stringContaining('came into use')]]);
    fs.rmSync(path.dirname(s.dataRoot), { recursive: true, force: true });
  });

  for (const how of ['gone', 'empty (a volume not mounted)'] as const) {
    it.concurrent(`regression: containers/ ${how}: no container's lease is called orphan, meta.db is not rewritten (its GC would drop the containers' RW snapshots)`, async () => {
      const b = fs.mkdtempSync(path.join(os.tmpdir(), 'layergc-rt-ctrd-'));
      const layer = 'layer bytes of app:1';
      const d = digestOf(layer);
      const [chain, c1] = [`sha256:${hex64('chain')}`, hex64('c1')];
      const s = containerdRoot(b, {
        namespaces: {
          moby: {
            images: { 'docker.io/library/app:1': { target: d } },
            blobs: { [d]: { size: layer.length } },
            snapshots: { [chain]: { name: `moby/1/${chain}` }, [c1]: { name: `moby/2/${c1}`, parent: chain } },
            leases: { [c1]: { snapshots: [c1] } },
          },
        },
        backend: { [`moby/1/${chain}`]: { id: 1 }, [`moby/2/${c1}`]: { id: 2, kind: 2, parent: `moby/1/${chain}` } },
      });
      s.blob(layer);
      for (const id of [1, 2]) s.snapshotDir(id);
      if (how === 'gone') fs.rmSync(path.join(s.dataRoot, 'containers'), { recursive: true });
      const before = snapshotTree(s.root);
      const r = await runCliAsync(['purge', '--yes', '--json', '--data-root', s.dataRoot]);
      expect(r.code).toBe(0);
      expect(r.json.containerdLeases).toBeUndefined();
      same(before, snapshotTree(s.root));
      fs.rmSync(b, { recursive: true, force: true });
    });
  }

  it.concurrent('regression: a symlink to a dir outside in ingest/ (and in snapshots/, blobs/sha256, containers/): unsafe-path, never removed', async () => {
    const s = ctrdStore(false);
    const outside = path.join(path.dirname(s.dataRoot), 'outside');
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(outside, 'precious.txt'), 'precious\n');
    const links = [path.join(s.ingest, hex64('i')), path.join(s.snapshots, '7'), path.join(s.blobs, hex64('b')), path.join(s.dataRoot, 'containers', hex64('c'))];
    for (const l of links) fs.symlinkSync(outside, l);
    const before = listing([outside]);
    const r = await runCliAsync(['purge', '--yes', '--json', '--data-root', s.dataRoot]);
    expect(r.code).toBe(0);
    expect(r.json.actions).toEqual([]);
    for (const l of links) expect(fs.lstatSync(l).isSymbolicLink(), l).toBe(true);
    same(before, listing([outside]));
    const sc = await runCliAsync(['scan', '--json', '--data-root', s.dataRoot]);
    expect(sc.json.findings.filter((f: { kind: string }) => f.kind === 'unsafe-path').map((f: { paths: string[] }) => f.paths[0])).toContain(links[0]);
    fs.rmSync(path.dirname(s.dataRoot), { recursive: true, force: true });
  });

  it.concurrent('regression: a dir in containers/ whose name is no container ID, without config.v2.json, is no config-less container: it stays', async () => {
    const s = ctrdStore(false);
    const odd = path.join(s.dataRoot, 'containers', 'my-notes');
    fs.mkdirSync(odd);
    fs.writeFileSync(path.join(odd, 'important.txt'), 'not a container\n');
    const before = listing([odd]);
    const r = await runCliAsync(['purge', '--yes', '--json', '--data-root', s.dataRoot]);
    expect(r.code).toBe(0);
    expect(r.json.actions).toEqual([]);
    same(before, listing([odd]));
    fs.rmSync(path.dirname(s.dataRoot), { recursive: true, force: true });
  });

  it.concurrent('regression: a container dir whose config.v2.json is too big to read, a symlink or a dir is not config-less: it stays', async () => {
    const s = ctrdStore(false);
    const big = s.containerDir(hex64('big'));
    fs.writeFileSync(path.join(big, 'config.v2.json'), JSON.stringify({ ID: hex64('big'), Name: '/big', Config: { Env: [`A=${'x'.repeat(2 << 20)}`] } }));
    const link = s.containerDir(hex64('link'));
    fs.rmSync(path.join(link, 'config.v2.json'));
    fs.symlinkSync('config.v2.json.bak', path.join(link, 'config.v2.json'));
    const dir = s.containerDir(hex64('dir'));
    fs.rmSync(path.join(dir, 'config.v2.json'));
    fs.mkdirSync(path.join(dir, 'config.v2.json'));
    const gone = s.containerDir(hex64('gone'), { config: false }); // a create killed half way: garbage
    const before = listing([big, link, dir]);
    const r = await runCliAsync(['purge', '--yes', '--json', '--data-root', s.dataRoot]);
    expect(r.code).toBe(0);
    same(before, listing([big, link, dir]));
    expect(exists(gone)).toBe(false);
    fs.rmSync(path.dirname(s.dataRoot), { recursive: true, force: true });
  });
});

describe('purge --include broken: tags it cannot read', () => {
  for (const how of ['a symlink to a copy outside', 'a FIFO']) {
    it.concurrent(`regression: repositories.json ${how}: no image is removed (its tags may name it), nothing outside changes`, async () => {
      const s = root();
      s.populate();
      const doomed = s.addImage(['doomed:1'], [{ files: { 'd/1': 'd1' } }]);
      s.removeDriverDir(doomed.layers[0].cacheId);
      const repo = path.join(s.imageDir, 'repositories.json');
      const text = fs.readFileSync(repo);
      fs.rmSync(repo);
      if (how === 'a FIFO') spawnSync('mkfifo', [repo]);
      else {
        fs.writeFileSync(path.join(s.outside, 'repositories.json'), text);
        fs.symlinkSync(path.join(s.outside, 'repositories.json'), repo);
      }
      const before = listing([s.outside, doomed.layers[0].dir]);
      const r = await purge(s, ['--include', 'broken,containers', '--yes', '--json']);
      expect(r.code).toBe(1);
      same(before, listing([s.outside, doomed.layers[0].dir]));
      expect(exists(doomed.configPath)).toBe(true);
    });
  }
});

describe('layergc restore: the manifest file itself', () => {
  it.concurrent('regression: manifest.jsonl a FIFO or a symlink to /dev/zero: no hang, no endless read; exit 2 with one line', async () => {
    const s = root();
    for (const how of ['fifo', 'zero']) {
      const q = fs.mkdtempSync(path.join(s.base, 'q-'));
      if (how === 'fifo') spawnSync('mkfifo', [path.join(q, 'manifest.jsonl')]);
      else fs.symlinkSync('/dev/zero', path.join(q, 'manifest.jsonl'));
      const r = await runCliAsync(['restore', q]);
      expect(r.code, how).toBe(2);
      expect(r.stderr.trim().split('\n'), how).toHaveLength(1);
    }
  });
});

describe('purge --include broken: what a tar-split proves', () => {
  // The cache-id proof rebuilds the DiffID from the tar-split and the files it names; a dir holding
  // those files and more (an unrelated leaked dir on the same parent) passed it, and the image
  // silently gained that dir's files.
  it.concurrent('regression: a lost cache-id of an empty layer is not proved by a leaked dir holding other files', async () => {
    const s = root();
    s.populate();
    const img = s.addImage(['e:1'], [{ files: { 'e/base': 'base' } }, { files: {} }]);
    const [base, empty] = img.layers;
    fs.rmSync(empty.driverDir, { recursive: true });
    fs.unlinkSync(empty.linkPath);
    fs.writeFileSync(path.join(empty.dir, 'cache-id'), '');
    const leak = s.createDriverDir(randomId(), base.cacheId); // a killed pull of another image on the same base
    fs.writeFileSync(path.join(leak.dir, 'diff/junk'), 'not part of e:1\n');
    const r = await purge(s, ['--include', 'broken', '--yes', '--json']);
    expect(r.code).toBeLessThan(2);
    expect(r.json.repairs ?? []).toEqual([]);
    const cacheId = path.join(empty.dir, 'cache-id');
    expect(exists(cacheId) ? fs.readFileSync(cacheId, 'utf8') : 'entry gone as broken').not.toBe(path.basename(leak.dir));
  });
});

describe('layergc restore of a meta.db backup: the record beside it', () => {
  it.concurrent('regression: a record whose dataRoot is a folder that is not a Docker data root: refused, nothing written there', async () => {
    const b = fs.mkdtempSync(path.join(os.tmpdir(), 'layergc-rt-ctrd-'));
    const s = containerdRoot(b, { namespaces: { moby: {} }, backend: {} });
    const outside = path.join(b, 'outside');
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(outside, 'precious.txt'), 'precious\n');
    const bolt = path.join(s.root, 'io.containerd.metadata.v1.bolt');
    const backup = path.join(bolt, 'meta.db.layergc-abcdef012345');
    fs.copyFileSync(path.join(bolt, 'meta.db'), backup);
    const h = createHash('sha256').update(fs.readFileSync(backup)).digest('hex');
    // previousSha256 is meta.db as it is: restore would only say "already back", after taking the record's data root's lock
    const rec = {
      layergc: 'meta.db lease removal',
      run: 'abcdef012345',
      time: '2026-11-30T00:00:00Z',
      dataRoot: outside,
      containerdRoot: s.root,
      metaDb: path.join(bolt, 'meta.db'),
      backup,
      previousSha256: h,
      writtenSha256: h,
      removedLeases: [],
    };
    fs.writeFileSync(`${backup}.json`, JSON.stringify(rec));
    const before = listing([outside]);
    const r = await runCliAsync(['restore', backup, '--json']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('not a Docker data root');
    same(before, listing([outside]));
    expect(exists(path.join(outside, 'layergc'))).toBe(false);
    fs.rmSync(b, { recursive: true, force: true });
  });
});

describe('the scan read path (typed listings, listed files read without fstat): what it cannot read keeps its dirs', () => {
  const faults: [string, (s: SyntheticRoot, app: ImageInfo, web: ContainerInfo) => string][] = [
    ['a typed listing of layerdb/sha256 that fails', () => 'EIO:readdir-types:/layerdb/sha256'],
    ['a typed listing of the driver home that fails', (s) => `EIO:readdir-types:${s.root}/overlay2`],
    ['l/ that cannot be listed', (s) => `EIO:readdir:${s.root}/overlay2/l`],
    ['layerdb/mounts that cannot be listed by type', () => 'EIO:readdir-types:/layerdb/mounts'],
    ["a live layer's cache-id that cannot be read", (_s, app) => `EIO:read:${app.layers[2].chainId.slice(7)}/cache-id`],
    ["a mid layer's link file that cannot be read", (_s, app) => `EIO:read:${app.layers[1].driverDir}/link`],
    ["the container's lower file that cannot be read", (_s, _app, web) => `EIO:read:${web.mountDriverDir}/lower`],
  ];
  for (const [what, fault] of faults) {
    it.concurrent(`${what}: a purge removes no live dir`, async () => {
      const s = root();
      const { app, web } = s.populate();
      const live = [...app.layers.flatMap((l) => [l.driverDir, l.dir]), web.mountDriverDir, web.initDriverDir, web.mountDir, web.containerDir];
      const before = listing(live);
      const r = await purge(s, ['--yes', '--json'], { LAYERGC_TEST_READ_ERROR: fault(s, app, web) });
      expect(r.code).toBeLessThan(3);
      same(before, listing(live));
    });
  }
});

describe('a store dir gone or swapped between its lstat and its listing (ENOENT, ENOTDIR): unknown, never empty', () => {
  for (const code of ['ENOENT', 'ENOTDIR']) {
    for (const dir of ['/layerdb/sha256', '/layerdb/mounts', '/imagedb/content/sha256', '/docker/containers', '/docker/overlay2']) {
      it.concurrent(`regression: ${dir.slice(1)} (${code}): purge stops (exit 2) and removes nothing`, async () => {
        const s = root();
        const { app, web } = s.populate();
        // an image no container stacks on: with layerdb/sha256 read as empty its dirs were unreferenced, and purged
        const solo = s.addImage(['solo:1'], [{ files: { 'a.txt': 'a\n' } }, { files: { 'b.txt': 'b\n' } }]);
        const leak = s.makeLeakedDriverDir();
        const live = [...[...app.layers, ...solo.layers].flatMap((l) => [l.driverDir, l.dir]), web.mountDriverDir, web.initDriverDir, web.mountDir, web.containerDir, leak.dir];
        const before = listing(live);
        const r = await purge(s, ['--yes', '--json'], { LAYERGC_TEST_READ_ERROR: `${code}:readdir:${dir};${code}:readdir-types:${dir}` });
        expect(r.code).toBe(2);
        expect(r.stderr).toMatch(/^layergc: cannot read .*: /);
        same(before, listing(live));
      });
    }
  }
});

describe('reading the store up front (overlay2 preload, the sources check): what cannot be read keeps, and stops nothing else', () => {
  it.concurrent('regression: a leaked dir whose diff/ cannot be examined (EIO) does not stop the scan or verify of the rest', async () => {
    const s = root();
    s.populate();
    const leak = s.makeLeakedDriverDir();
    const env = { LAYERGC_TEST_READ_ERROR: `EIO:lstat:${leak.id}/diff` };
    const sc = await runCliAsync(['scan', '--data-root', s.root, '--json'], { env });
    expect([sc.code, sc.stderr]).toEqual([1, '']);
    expect((sc.json.findings as { kind: string; cacheId?: string }[]).map((f) => [f.kind, f.cacheId])).toEqual([['unreferenced-driver-dir', leak.id]]);
    const v = await runCliAsync(['verify', '--data-root', s.root, '--json'], { env });
    expect([v.code, v.stderr]).toEqual([0, '']);
    expect(v.json.summary).toMatchObject({ findings: 0, layersVerified: 3, layersOk: 3 }); // as at c6923b9, before preload
  });

  // a layer that lost its cache-id (power loss empties cache-id and lower alike) keeps every unclaimed
  // dir that may be its data; only a lower list read whole may rule a dir out
  for (const lower of ['a FIFO', 'empty', 'unreadable (EIO)', 'garbage', 'a directory']) {
    it.concurrent(`regression: a lost cache-id whose own dir's lower file is ${lower}: that dir, the layer's only copy, is kept`, async () => {
      const s = root();
      s.populate();
      const img = s.addImage(['solo:1'], [{ files: { 'base.txt': 'base\n' } }, { files: { 'top.txt': 'only copy\n' } }]);
      const top = img.layers[1];
      s.removeLayerFile(top.chainId, 'cache-id');
      const file = path.join(top.driverDir, 'lower');
      const env: Record<string, string> = {};
      if (lower === 'a FIFO') {
        fs.rmSync(file);
        spawnSync('mkfifo', [file]);
      } else if (lower === 'empty') fs.writeFileSync(file, '');
      else if (lower === 'garbage') fs.writeFileSync(file, 'l/SHORT');
      else if (lower === 'a directory') {
        fs.rmSync(file);
        fs.mkdirSync(file);
      } else env.LAYERGC_TEST_READ_ERROR = `EIO:read:${top.cacheId}/lower`;
      const live = listing([path.join(top.driverDir, 'diff')]);
      const r = await purge(s, ['--yes', '--json'], env);
      expect(r.code).toBe(0);
      const act = (r.json.actions as { paths: string[]; status: string; reason?: string }[]).find((a) => a.paths[0] === top.driverDir);
      expect(act?.status).toBe('skipped');
      expect(act?.reason).toContain(`layer ${top.chainId.slice(7, 19)} has lost its cache-id`);
      same(live, listing([path.join(top.driverDir, 'diff')]));
    });
  }

  it.concurrent("regression: layerdb/mounts missing while containers/ cannot be listed when it is counted: the containers' dirs are kept", async () => {
    const s = root();
    const { web } = s.populate();
    fs.rmSync(path.join(s.layerdb, 'mounts'), { recursive: true });
    const live = listing([web.mountDriverDir, web.initDriverDir]);
    // the open succeeds, the listing fails: a dir removed or swapped between the two; the containers
    // loader hears it first now (its listing is unknown, never empty), and nothing is begun
    const r = await purge(s, ['--yes', '--json'], { LAYERGC_TEST_READ_ERROR: 'ENOENT:readdir:/docker/containers' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`cannot read ${path.join(s.root, 'containers')}`);
    same(live, listing([web.mountDriverDir, web.initDriverDir]));
  });
});

describe("a lost cache-id: the dir's lower chain rules it out only while the parent it names by link is whole", () => {
  for (const damage of ["the parent's l/ link points to the grandparent", "the parent's l/ link is gone and its link file empty", "the parent's driver dir is gone"]) {
    it.concurrent(`regression: ${damage}: the lost layer's own dir (its only copy) is kept`, async () => {
      const s = root();
      s.populate();
      const img = s.addImage(['trio:1'], [{ files: { 'a.txt': 'a\n' } }, { files: { 'b.txt': 'b\n' } }, { files: { 'c.txt': 'only copy\n' } }]);
      const [grand, parent, top] = img.layers;
      s.removeLayerFile(top.chainId, 'cache-id');
      fs.rmSync(parent.linkPath);
      if (damage.includes('grandparent')) fs.symlinkSync(`../${grand.cacheId}/diff`, parent.linkPath);
      else if (damage.includes('link file')) fs.writeFileSync(path.join(parent.driverDir, 'link'), '');
      else fs.rmSync(parent.driverDir, { recursive: true });
      const live = listing([path.join(top.driverDir, 'diff')]);
      const r = await purge(s, ['--yes', '--json']);
      expect(r.code).toBe(0);
      const act = (r.json.actions as { paths: string[]; status: string; reason?: string }[]).find((a) => a.paths[0] === top.driverDir);
      expect(act?.status).toBe('skipped');
      expect(act?.reason).toContain(`layer ${top.chainId.slice(7, 19)} has lost its cache-id`);
      same(live, listing([path.join(top.driverDir, 'diff')]));
    });
  }
});

describe('purge --include broken on an image whose layer entry is gone', () => {
  it.concurrent('regression: no internal error; the image goes, the layers only it used go with it, the rest stays', async () => {
    const s = root();
    const { app, web } = s.populate();
    const img = s.addImage(['gone:1'], [{ files: { 'a.txt': 'a\n' } }, { files: { 'b.txt': 'b\n' } }]);
    s.removeLayerDir(img.chainIds[1]);
    const live = listing([...app.layers.map((l) => l.driverDir), web.mountDriverDir, web.initDriverDir, ...app.layers.map((l) => l.dir)]);
    const r = await purge(s, ['--yes', '--json', '--include', 'broken']);
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(fs.existsSync(img.configPath)).toBe(false);
    expect(fs.existsSync(img.layers[0].dir)).toBe(false);
    expect(fs.existsSync(img.layers[0].driverDir)).toBe(false);
    same(live, listing([...app.layers.map((l) => l.driverDir), web.mountDriverDir, web.initDriverDir, ...app.layers.map((l) => l.dir)]));
  });
});
