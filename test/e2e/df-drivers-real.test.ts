/**
 * `layergc df` on real vfs, btrfs and fuse-overlayfs data roots (dockerd 20.10 and 28.5): an
 * imported base, a built image on it, a created container; the daemon stopped, so the tree holds
 * still. vfs and fuse-overlayfs: the categories add up to `du -sx -B1` exactly. btrfs: each layer
 * is a subvolume with an st_dev of its own, where `du -x` stops; df counts every subvolume's blocks
 * as `du -s -B1` (without -x) does, so it equals that (snapshots share extents: these are the
 * blocks each subvolume references, as du counts them, not what btrfs allocated).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestDaemon, dockerAvailable, type DockerVersion, type DriverName } from '../helpers/dockerd.js';
import { runCli } from '../helpers/synthetic.js';

const LONG = 180_000;

const have = (bin: string) => {
  try {
    execFileSync('which', [bin], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};
const haveBtrfs = have('mkfs.btrfs') && fs.readFileSync('/proc/filesystems', 'utf8').includes('btrfs');

function duB1(root: string, xdev: boolean): number {
  return Number(execFileSync('du', ['-s', '-B1', ...(xdev ? ['-x'] : []), root], { encoding: 'utf8' }).split('\t')[0]);
}

interface Cat {
  category: string;
  bytes: number;
  path?: string;
}

function suite(driver: DriverName, version: DockerVersion, enabled: boolean): void {
  describe.skipIf(!enabled)(`df on a real ${driver} root (dockerd ${version})`, () => {
    let d: TestDaemon;

    beforeAll(async () => {
      d = await TestDaemon.start({ driver, version });
      await d.importBusybox('base:1');
      await d.build('built:1', 'FROM base:1\nRUN head -c 300000 /dev/urandom > /blob\n');
      await d.docker(['create', '--name', 'keep', '--network', 'none', 'built:1', 'true']);
      await d.stop();
    }, LONG);

    afterAll(async () => {
      if (d) await d.destroy();
    }, LONG);

    it(
      'every byte in a category, adding up to du; layers, container layers and images where they belong',
      () => {
        const r = runCli(['df', '--json', '--data-root', d.dataRoot]);
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        const j = r.json;
        expect(j.driver).toBe(driver);
        const want = duB1(d.dataRoot, driver !== 'btrfs');
        console.log(
          `[df-drivers ${driver} ${version}] df ${j.total.bytes}, du -s -B1${driver !== 'btrfs' ? ' -x' : ''} ${want} (du -sx -B1 ${duB1(d.dataRoot, true)}); ${JSON.stringify(j.categories.filter((c: Cat) => c.bytes).map((c: Cat) => [c.path ? `other:${c.path}` : c.category, c.bytes]))}`,
        );
        expect(j.total.bytes).toBe(want);
        const cat = (k: string) => j.categories.find((c: Cat) => c.category === k && !c.path).bytes;
        expect(cat('image-layers')).toBeGreaterThan(300_000);
        expect(cat('container-layers')).toBeGreaterThan(0);
        for (const k of ['removing-orphan', 'stale-write-set', 'unreferenced-driver-dir', 'dangling-link', 'unreferenced-layer', 'broken-layer', 'linked-outside']) expect(cat(k), k).toBe(0);
        const built = j.images.find((i: { image: string }) => i.image === 'built:1');
        // the container stands on built:1: a docker rmi frees none of its layers
        expect(built.uniqueBytes).toBe(0);
        expect(built.sharedBytes).toBeGreaterThan(300_000);
        expect(j.images.find((i: { image: string }) => i.image === 'base:1').uniqueBytes).toBe(0);
      },
      LONG,
    );
  });
}

for (const v of ['20.10', '28.5'] as const) {
  suite('vfs', v, dockerAvailable(v));
  suite('btrfs', v, dockerAvailable(v) && haveBtrfs);
  suite('fuse-overlayfs', v, dockerAvailable(v) && have('fuse-overlayfs'));
}
