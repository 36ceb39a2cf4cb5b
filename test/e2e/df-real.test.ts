/**
 * `layergc df` on a real overlay2 data root made by a real dockerd 20.10 and 28.5: the damaged
 * scenario of scan-real (test/e2e/scenario.ts: a failed removal's orphan, a killed load's write-set
 * and 100 MB leak, a removed driver dir, an emptied layerdb entry; images from docker import, the
 * legacy builder and BuildKit, so BuildKit's cache), plus, with the daemon running: a volume with
 * 3 MiB in it, a running container that wrote 2 MiB into its RW layer (its overlay mount in
 * merged/ and its shm are mount points under the root), and an imported single-layer image solo:1.
 *
 * Asserted: the categories add up to `du -sx -B1 <root>` within 1% (while the daemon and the
 * container run, and again stopped); the mount points are skipped, not counted twice; each garbage
 * category is exactly scan's bytes for that kind; and `docker rmi` of solo:1 (imported, one layer)
 * and of legacy2:1 (legacy builder: its untagged intermediate image goes with it) frees the
 * image's unique bytes (du before and after, daemon stopped for both measures).
 *
 * Observed here (kernel 6.18, ext4 /tmp), 20.10.24 and 28.5.2 alike: df's total equals
 * `du -sx -B1` to the byte, with the daemon and the container running (one mount point skipped:
 * the container's merged/; its shm is private to its mount namespace) and stopped; `docker rmi`
 * freed exactly the unique bytes df gave: solo:1 8441856, legacy2:1 3133440 (20.10) / 3141632 (28.5);
 * df takes ~1.5-3 s on this ~120-160 MB root; the whole file ~110 s (the scenario ~35 s a version).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dockerAvailable, type DockerVersion } from '../helpers/dockerd.js';
import { runCli } from '../helpers/synthetic.js';
import { buildScenario, du, timed, type Scenario } from './scenario.js';

const LONG = 300_000;
const VERSIONS: DockerVersion[] = ['20.10', '28.5'];
const GARBAGE = ['removing-orphan', 'stale-write-set', 'unreferenced-driver-dir', 'dangling-link', 'unreferenced-layer'];

interface Cat {
  category: string;
  bytes: number;
  path?: string;
  purged: boolean;
}
interface Img {
  image: string;
  id: string;
  uniqueBytes: number;
  sharedBytes: number;
}

/** Within 1% of du: the daemon writes its logs and databases as we read. */
const within1 = (got: number, want: number) => Math.abs(got - want) <= want * 0.01;

describe.each(VERSIONS)('df on a real overlay2 root (dockerd %s)', (version) => {
  describe.skipIf(!dockerAvailable(version))('overlay2', () => {
    let s: Scenario;
    let liveMountId = '';
    let liveId = '';
    const times: Record<string, number> = {};
    const cli = (args: string[]) => runCli([...args, '--data-root', s.root]);
    const cat = (j: { categories: Cat[] }, k: string) => j.categories.find((c) => c.category === k)!.bytes;

    beforeAll(async () => {
      s = await timed(times, 'scenario', () => buildScenario(version, times));
      await timed(times, 'start', () => s.d.restart());
      // solo:1: one imported layer with 8 MiB of its own, nothing else uses it
      const ctx = fs.mkdtempSync(path.join(s.d.workDir, 'solo-'));
      fs.mkdirSync(path.join(ctx, 'solo'));
      fs.writeFileSync(path.join(ctx, 'solo', 'big.bin'), randomBytes(8 * 1024 * 1024));
      const tar = `${ctx}.tar`;
      execFileSync('tar', ['-C', ctx, '-cf', tar, 'solo']);
      await s.d.docker(['import', tar, 'solo:1']);
      fs.rmSync(ctx, { recursive: true, force: true });
      fs.rmSync(tar, { force: true });
      // legacy2:1: two RUN steps by the legacy builder, so an untagged intermediate image below it
      await s.d.build('legacy2:1', 'FROM busybox:base\nRUN head -c 2000000 /dev/urandom > /a\nRUN head -c 1000000 /dev/urandom > /b\n');
      // a volume and a running container writing into it and into its RW layer
      await s.d.docker(['volume', 'create', 'vol']);
      liveId = (
        await s.d.docker([
          'run',
          '-d',
          '--name',
          'live',
          '--pull',
          'never',
          '--network',
          'none',
          '-v',
          'vol:/data',
          'busybox:base',
          'sh',
          '-c',
          'dd if=/dev/urandom of=/data/v.bin bs=1M count=3 2>/dev/null && dd if=/dev/urandom of=/rw.bin bs=1M count=2 2>/dev/null && sync && echo ready && sleep 3600',
        ])
      ).stdout.trim();
      for (let i = 0; i < 200 && !(await s.d.docker(['logs', 'live'])).stdout.includes('ready'); i++) await new Promise((r) => setTimeout(r, 100));
      liveMountId = fs.readFileSync(path.join(s.d.layerdb, 'mounts', liveId, 'mount-id'), 'utf8').trim();
    }, LONG);

    afterAll(async () => {
      if (s) await timed(times, 'destroy', () => s.d.destroy());
      console.log(`[df-real ${version}] times (ms): ${JSON.stringify(times)}`);
    }, LONG);

    it(
      'beside the running daemon and container: adds up to du -sx -B1 within 1%, mounts not crossed, garbage = scan',
      async () => {
        expect(s.d.running).toBe(true);
        const merged = path.join(s.d.driverHome, liveMountId, 'merged');
        expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).toContain(` ${merged} `);
        const r = await timed(times, 'df --json (running)', () => cli(['df', '--json']));
        const total = du([s.root]);
        const sc = cli(['scan', '--json']);
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        // runCli validated it against docs/df.schema.json
        const j = r.json;
        console.log(
          `[df-real ${version}] running: df ${j.total.bytes}, du -sx -B1 ${total}; ${JSON.stringify(j.categories.filter((c: Cat) => c.bytes).map((c: Cat) => [c.path ? `other:${c.path}` : c.category, c.bytes]))}`,
        );
        expect(j.daemonRunning).toBe(true);
        expect(j.categories.reduce((t: number, c: Cat) => t + c.bytes, 0)).toBe(j.total.bytes);
        expect(within1(j.total.bytes, total), `df ${j.total.bytes} vs du ${total}`).toBe(true);
        expect(j.mountsSkipped).toContain(merged);
        // every part of the root is there
        expect(cat(j, 'image-layers')).toBeGreaterThan(8 * 1024 * 1024);
        expect(cat(j, 'container-layers')).toBeGreaterThanOrEqual(2 * 1024 * 1024);
        expect(cat(j, 'volumes')).toBeGreaterThanOrEqual(3 * 1024 * 1024);
        expect(cat(j, 'buildkit')).toBeGreaterThan(0);
        expect(cat(j, 'buildkit-snapshots')).toBeGreaterThan(0);
        expect(cat(j, 'container-logs')).toBeGreaterThan(0);
        expect(cat(j, 'container-files')).toBeGreaterThan(0);
        expect(cat(j, 'image-metadata')).toBeGreaterThan(0);
        expect(cat(j, 'broken-layer')).toBeGreaterThan(0); // the emptied layerdb entry
        expect(cat(j, 'unreferenced-driver-dir')).toBeGreaterThan(100_000_000); // the killed load's leak
        expect(cat(j, 'linked-outside')).toBe(0);
        // the garbage is what scan says it is
        expect(sc.code).toBe(1);
        for (const k of GARBAGE) {
          const fromScan = sc.json.findings.filter((f: { kind: string }) => f.kind === k).reduce((t: number, f: { bytes: number }) => t + f.bytes, 0);
          expect(cat(j, k), k).toBe(fromScan);
        }
        expect(j.reclaimableBytes).toBe(sc.json.summary.reclaimableBytes);
        const solo = j.images.find((i: Img) => i.image === 'solo:1');
        expect(solo.uniqueBytes).toBeGreaterThanOrEqual(8 * 1024 * 1024);
        expect(solo.sharedBytes).toBe(0);
        // busybox:base is under every other image: all of it shared
        expect(j.images.find((i: Img) => i.image === 'busybox:base').uniqueBytes).toBe(0);

        const h = cli(['df']);
        expect(h.code).toBe(0);
        expect(h.stdout).toMatch(/^ {2}garbage: unreferenced-driver-dir +\d+(\.\d+)? MB +\d+\.\d% +█+/m);
        expect(h.stdout).toMatch(/mount points? under the data root not counted/);
        console.log(`[df-real ${version}] human:\n${h.stdout}`);
      },
      LONG,
    );

    it(
      "docker rmi frees the image's unique bytes: solo:1 (imported), legacy2:1 (with its untagged parent); du before and after, daemon stopped",
      async () => {
        await s.d.docker(['rm', '-f', 'live']);
        await timed(times, 'stop', () => s.d.stop());
        const store = [path.join(s.root, 'image'), s.d.driverHome];
        for (const [tag, min] of [
          ['solo:1', 8 * 1024 * 1024],
          ['legacy2:1', 3_000_000],
        ] as const) {
          const before = cli(['df', '--json']);
          expect(before.json.daemonRunning).toBe(false);
          const [rootBefore, storeBefore] = [du([s.root]), du(store)];
          expect(before.json.total.bytes).toBe(rootBefore); // nothing moves with the daemon stopped
          const unique = before.json.images.find((i: Img) => i.image === tag).uniqueBytes as number;
          expect(unique).toBeGreaterThanOrEqual(min);
          await timed(times, `start+rmi ${tag}+stop`, async () => {
            await s.d.restart();
            await s.d.docker(['rmi', tag]);
            await s.d.stop();
          });
          const [rootAfter, storeAfter] = [du([s.root]), du(store)];
          const freed = storeBefore - storeAfter;
          console.log(`[df-real ${version}] ${tag} unique ${unique}; rmi freed ${freed} in image/ + overlay2/, ${rootBefore - rootAfter} under the root`);
          // its layers and its (and its untagged parent's) config and metadata; the daemon's restart may move a block or two
          expect(Math.abs(freed - unique), `freed ${freed}, unique ${unique}`).toBeLessThanOrEqual(8192);
          expect(within1(rootBefore - rootAfter, unique)).toBe(true);
          const after = cli(['df', '--json']);
          expect(after.json.images.map((i: Img) => i.image)).not.toContain(tag);
          expect(after.json.total.bytes).toBe(rootAfter);
        }
      },
      LONG,
    );
  });
});
