/**
 * The vfs and btrfs adapters against what a real dockerd (Debian's 20.10.24) writes: every layer
 * and container layer the store names is listed and whole, its content root holds the files, and a
 * leaked driver dir removed through the adapter leaves a daemon that still runs its images.
 *
 * Observed here (kernel 6.18; vfs on ext4 /tmp, btrfs on a 2 GiB loop image mounted as the data root):
 * - vfs: home holds `dir/` and the daemon's `backingFsBlockDev` (xfs quota probe); `dir/<id>` is a full
 *   copy of the parent plus the layer (busybox base ~1.9 MB, each child ~2 MB again).
 * - btrfs: home holds `subvolumes/` only (no `quotas/` without a size option); each `subvolumes/<id>`
 *   is a subvolume (inode 256), children are snapshots. While running, the daemon bind-mounts the data
 *   root and `<root>/btrfs` onto themselves; a clean stop undoes both.
 * - timings (ms, two runs): start 240-290, import 110-380, legacy build with one RUN step 600-1560,
 *   clean stop ~1010, restart ~240, adapter removal of the leak 6-8 (vfs, a 2 MB copy) and 25-34
 *   (btrfs, `btrfs subvolume delete` failing on the nested subvolume, deleting it, then retrying).
 *   The whole file runs in ~10 s.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BtrfsDriver } from '../../src/drivers/btrfs.js';
import { VfsDriver } from '../../src/drivers/vfs.js';
import type { DriverAdapter } from '../../src/drivers/types.js';
import { MountTable } from '../../src/fsx/mounts.js';
import { Remover } from '../../src/fsx/remove.js';
import { TestDaemon, dockerAvailable, type DockerVersion } from '../helpers/dockerd.js';

const LONG = 120_000;
const LEAK = createHash('sha256').update('layergc leaked driver dir').digest('hex');

const haveBtrfs = (() => {
  try {
    execFileSync('which', ['mkfs.btrfs', 'btrfs'], { stdio: 'ignore' });
    return fs.readFileSync('/proc/filesystems', 'utf8').includes('btrfs');
  } catch {
    return false;
  }
})();

/** Everything under dir with type, mode, size, mtime and content hash: equal means unchanged. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (p: string, rel: string) => {
    const st = fs.lstatSync(p);
    let v = `${st.mode.toString(8)} ${st.size} ${st.mtimeMs} ${st.ino}`;
    if (st.isSymbolicLink()) v += ` -> ${fs.readlinkSync(p)}`;
    else if (st.isFile()) v += ` ${createHash('sha256').update(fs.readFileSync(p)).digest('hex')}`;
    out[rel] = v;
    if (st.isDirectory()) for (const n of fs.readdirSync(p).sort()) walk(path.join(p, n), `${rel}/${n}`);
  };
  walk(dir, '.');
  return out;
}

interface StoreIds {
  layers: { cacheId: string; hasParent: boolean; chain: string }[];
  mounts: string[]; // mount-id and init-id of every container
}

function storeIds(d: TestDaemon): StoreIds {
  const sha = path.join(d.layerdb, 'sha256');
  const layers = fs.readdirSync(sha).map((chain) => ({
    chain,
    cacheId: fs.readFileSync(path.join(sha, chain, 'cache-id'), 'utf8').trim(),
    hasParent: fs.existsSync(path.join(sha, chain, 'parent')),
  }));
  const mounts: string[] = [];
  for (const m of fs.readdirSync(path.join(d.layerdb, 'mounts'))) {
    for (const f of ['mount-id', 'init-id']) {
      const p = path.join(d.layerdb, 'mounts', m, f);
      if (fs.existsSync(p)) mounts.push(fs.readFileSync(p, 'utf8').trim());
    }
  }
  return { layers, mounts };
}

function realDriverSuite(driverName: 'vfs' | 'btrfs', version: DockerVersion, enabled: boolean): void {
  describe.skipIf(!enabled)(`${driverName} adapter on a real dockerd ${version}`, () => {
    let d: TestDaemon;
    let drv: DriverAdapter;
    let builtTopCache = '';
    const times: Record<string, number> = {};
    const timed = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
      const t = Date.now();
      try {
        return await fn();
      } finally {
        times[name] = Date.now() - t;
      }
    };

    beforeAll(async () => {
      d = await timed('start', () => TestDaemon.start({ driver: driverName, version }));
      await timed('import', () => d.importBusybox('base:1'));
      await timed('build', () => d.build('built:1', 'FROM base:1\nRUN echo hello > /hello && mkdir -p /d && echo x > /d/f\n'));
      // a created container: its RW layer and <mount-id>-init are driver entries too
      await d.docker(['create', '--name', 'keep', '--network', 'none', 'built:1', 'cat', '/hello']);
      const top = await d.docker(['image', 'inspect', '--format', '{{range .RootFS.Layers}}{{println .}}{{end}}', 'built:1']);
      const diffs = top.stdout.trim().split('\n');
      await timed('stop', () => d.stop());
      // the RUN layer: the layerdb entry whose diff is the image's last diff ID
      const sha = path.join(d.layerdb, 'sha256');
      const topChain = fs.readdirSync(sha).find((c) => fs.readFileSync(path.join(sha, c, 'diff'), 'utf8').trim() === diffs[diffs.length - 1])!;
      builtTopCache = fs.readFileSync(path.join(sha, topChain, 'cache-id'), 'utf8').trim();
      drv = driverName === 'vfs' ? new VfsDriver(d.driverHome) : new BtrfsDriver(d.driverHome);
    }, LONG);

    afterAll(async () => {
      if (d) await timed('destroy', () => d.destroy());
      console.log(`[drivers-real ${driverName}] step times (ms): ${JSON.stringify(times)}`);
    }, LONG);

    it(
      'lists every layer and container layer the store names, each whole, and nothing else',
      async () => {
        const ids = storeIds(d);
        expect(ids.layers.length).toBe(2); // base, RUN
        expect(ids.mounts.length).toBe(2); // keep's RW layer and its -init
        const entries = await drv.listEntries();
        expect(entries.every((e) => !e.staged && e.stat.isDirectory())).toBe(true);
        const listed = new Set(entries.map((e) => e.id));
        const named = [...ids.layers.map((l) => l.cacheId), ...ids.mounts];
        expect([...listed].sort()).toEqual([...named].sort());
        for (const l of ids.layers) expect(await drv.checkLayer(l.cacheId, { hasParent: l.hasParent })).toEqual([]);
        for (const m of ids.mounts) expect(await drv.checkLayer(m, { hasParent: true })).toEqual([]);
        for (const id of named) {
          const roots = await drv.contentRoots(id);
          expect(roots.length).toBeGreaterThan(0);
          for (const r of roots) expect(fs.lstatSync(r).isDirectory()).toBe(true);
        }
        // full trees: the RUN layer's root has its own file and its parent's busybox
        const [root] = await drv.contentRoots(builtTopCache);
        expect(fs.readFileSync(path.join(root, 'hello'), 'utf8')).toBe('hello\n');
        expect(fs.lstatSync(path.join(root, 'bin', 'busybox')).isFile()).toBe(true);
        if (driverName === 'btrfs') for (const id of named) expect(fs.statSync(drv.dirOf(id)).ino).toBe(256);
      },
      LONG,
    );

    it(
      'the CLI on this root: scan flags nothing healthy, and verify proves every layer against its DiffID',
      async () => {
        const cli = (args: string[]) => {
          try {
            return {
              code: 0,
              stdout: execFileSync(process.execPath, [path.resolve('bin/layergc.js'), ...args, '--data-root', d.dataRoot, '--json'], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } }),
            };
          } catch (err) {
            const e = err as { status: number; stdout: string };
            return { code: e.status, stdout: e.stdout };
          }
        };
        const scan = cli(['scan']);
        expect(JSON.parse(scan.stdout).findings).toEqual([]);
        expect(scan.code).toBe(0);
        const verify = cli(['verify']);
        const v = JSON.parse(verify.stdout);
        expect(v.findings).toEqual([]);
        expect(v.summary.layersVerified).toBe(storeIds(d).layers.length);
        expect(v.summary.layersOk).toBe(storeIds(d).layers.length);
        expect(verify.code).toBe(0);
      },
      LONG,
    );

    it(
      'removes a leaked driver dir through the adapter, and the daemon still runs its images',
      async () => {
        const leak = drv.dirOf(LEAK);
        if (driverName === 'vfs') {
          execFileSync('cp', ['-a', drv.dirOf(builtTopCache), leak]);
        } else {
          // a snapshot no layer names (a failed create), holding a nested subvolume, with a quota file
          execFileSync('btrfs', ['subvolume', 'snapshot', drv.dirOf(builtTopCache), leak], { stdio: 'ignore' });
          execFileSync('btrfs', ['subvolume', 'create', path.join(leak, 'nested')], { stdio: 'ignore' });
          fs.mkdirSync(path.join(d.driverHome, 'quotas'), { recursive: true });
          fs.writeFileSync(path.join(d.driverHome, 'quotas', LEAK), '1073741824');
        }
        expect((await drv.listEntries()).map((e) => e.id)).toContain(LEAK);
        expect(await drv.pathsOf(LEAK)).toEqual(driverName === 'vfs' ? [leak] : [leak, path.join(d.driverHome, 'quotas', LEAK)]);

        const before = snapshot(d.driverHome);
        const dry = new Remover(d.dataRoot, MountTable.read(), true);
        await drv.remove(LEAK, dry);
        expect(snapshot(d.driverHome)).toEqual(before);

        const rm = new Remover(d.dataRoot, MountTable.read(), false);
        await timed('remove', () => drv.remove(LEAK, rm));
        // the real run also deletes the nested subvolume it meets ("Directory not empty"), which a dry run cannot see
        const nested = driverName === 'btrfs' ? [{ op: 'remove-tree', path: `${dry.ops[dry.ops.length - 1].path}/nested` }] : [];
        expect(rm.ops).toEqual([...dry.ops, ...nested]);
        expect(await drv.pathsOf(LEAK)).toEqual([]);
        expect(fs.readdirSync(path.dirname(leak)).filter((n) => n.startsWith(LEAK))).toEqual([]);
        if (driverName === 'btrfs') {
          expect(execFileSync('btrfs', ['subvolume', 'list', d.dataRoot]).toString()).not.toContain(LEAK);
        }
        const again = new Remover(d.dataRoot, MountTable.read(), false);
        await drv.remove(LEAK, again);
        expect(again.ops).toEqual([]);

        await timed('restart', () => d.restart());
        await timed('run', () => d.run('base:1', ['true']));
        expect(await d.run('built:1', ['cat', '/d/f'])).toBe('x\n');
        expect((await d.docker(['start', '-a', 'keep'])).stdout).toBe('hello\n');
        await timed('stop2', () => d.stop());
        const after = await drv.listEntries();
        expect(after.map((e) => e.id)).not.toContain(LEAK);
        for (const e of after) expect(await drv.checkLayer(e.id, { hasParent: true })).toEqual([]);
      },
      LONG,
    );
  });
}

for (const v of ['20.10', '28.5'] as const) {
  realDriverSuite('vfs', v, dockerAvailable(v));
  realDriverSuite('btrfs', v, dockerAvailable(v) && haveBtrfs);
}
