/**
 * `layergc purge --include broken[,containers]` on a root a real dockerd (20.10 and 28.5) made and
 * that was then damaged by hand, proven by the daemon that starts on the result.
 *
 * Images (legacy builder, so no BuildKit cache holds their chains): multi:1 (busybox + 3 RUN
 * layers) with a created container `oncreated`, empty:1, lost:1 (busybox + 2 RUN layers), and the
 * unaffected ok:1. multi:1 is saved to a tar first. Then, with the daemon stopped: multi:1's middle
 * layer's driver dir is removed (its l/ link left dangling), empty:1's top layerdb entry is emptied,
 * lost:1's middle layer's cache-id file is deleted.
 *
 * - a daemon on a copy of the damaged root logs the load errors checked for below (the check can fail);
 * - repair without containers: exit 1, `oncreated` named as holding multi:1's chain back, lost:1's
 *   cache-id written back with its old value, empty:1 gone;
 * - repair with containers: exit 0; a scan is clean;
 * - the daemon starts with --debug and logs no load error; multi:1, empty:1 and `oncreated` are gone
 *   from docker images / ps -a; lost:1 (restored cache-id) and ok:1 run; `docker load` of the saved
 *   tar succeeds (no "rename … file exists") and the loaded image runs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TestDaemon, dockerAvailable, type DockerVersion } from '../helpers/dockerd.js';
import { emptyLayerdbEntry, imageDiffIds, chainIds, layerCacheId, layerDir } from '../helpers/damage.js';
import { runCli } from '../helpers/synthetic.js';
import { copyRoot, logSinceLastStart, timed } from './scenario.js';

const LONG = 300_000;
const VERSIONS: DockerVersion[] = ['20.10', '28.5'];

/** What a daemon logs when a store it restores is broken (layer/store.go, image/store.go, daemon.go). */
const LOAD_ERRORS = /not restoring image|layer does not exist|failed to load container|Failed to load container mount|invalid image|failed to load layer|cannot remove orphan|unexpectedly nil/i;

interface Facts {
  multi: { chains: string[]; middleCache: string };
  empty: { top: string };
  lost: { middle: string; cacheId: string };
  tar: string;
}

describe.each(VERSIONS)('repair on a real damaged overlay2 root (dockerd %s)', (version) => {
  describe.skipIf(!dockerAvailable(version))('overlay2', () => {
    let d: TestDaemon;
    let f: Facts;
    const times: Record<string, number> = {};
    const purge = (extra: string[]) => runCli(['purge', '--data-root', d.dataRoot, '--json', ...extra]);

    beforeAll(async () => {
      d = await timed(times, 'start', () => TestDaemon.start({ version, debug: true }));
      await d.importBusybox('busybox:base');
      await timed(times, 'builds', async () => {
        await d.build('multi:1', 'FROM busybox:base\nRUN echo a > /a\nRUN echo b > /b\nRUN echo c > /c\n');
        await d.build('empty:1', 'FROM busybox:base\nRUN echo e > /e\n');
        await d.build('lost:1', 'FROM busybox:base\nRUN echo x > /x\nRUN echo y > /y\n');
        await d.build('ok:1', 'FROM busybox:base\nRUN echo ok > /ok\n');
      });
      await d.docker(['create', '--name', 'oncreated', '--pull', 'never', '--network', 'none', 'multi:1', 'cat', '/b']);
      const tar = path.join(d.workDir, 'multi.tar');
      await d.docker(['save', '-o', tar, 'multi:1']);
      const multiChains = chainIds(await imageDiffIds(d, 'multi:1'));
      const emptyChains = chainIds(await imageDiffIds(d, 'empty:1'));
      const lostChains = chainIds(await imageDiffIds(d, 'lost:1'));
      await d.stop();
      f = {
        multi: { chains: multiChains, middleCache: layerCacheId(d, multiChains[2]) },
        empty: { top: emptyChains[emptyChains.length - 1] },
        lost: { middle: lostChains[1], cacheId: layerCacheId(d, lostChains[1]) },
        tar,
      };
      // the damage, by hand
      fs.rmSync(path.join(d.dataRoot, 'overlay2', f.multi.middleCache), { recursive: true });
      emptyLayerdbEntry(d, f.empty.top);
      fs.rmSync(path.join(layerDir(d, f.lost.middle), 'cache-id'));
    }, LONG);

    afterAll(async () => {
      if (d) await d.destroy();
      console.log(`[repair-real ${version}] times (ms): ${JSON.stringify(times)}`);
    }, LONG);

    it(
      'before the repair, a daemon on a copy of the damaged root logs the load errors this file checks for',
      async () => {
        const copy = copyRoot(d.dataRoot, path.join(d.workDir, 'damaged-copy'));
        const c = await timed(times, 'daemon on the copy', () => TestDaemon.start({ version, dataRoot: copy, debug: true }));
        try {
          const log = fs.readFileSync(c.logFile, 'utf8');
          expect(log).toMatch(LOAD_ERRORS);
        } finally {
          await c.destroy();
          fs.rmSync(copy, { recursive: true, force: true });
        }
      },
      LONG,
    );

    it(
      'without containers: exit 1, the container named, the lost cache-id restored; with them: exit 0 and a clean scan',
      async () => {
        const before = runCli(['scan', '--data-root', d.dataRoot]);
        expect(before.code).toBe(1);
        expect(before.stdout).toContain(`remedy: layergc purge --include broken,containers --dry-run --data-root ${d.dataRoot}`);

        const r1 = await timed(times, 'repair', () => purge(['--include', 'broken', '--yes']));
        expect(r1.code, r1.stderr).toBe(1);
        expect(r1.json, `stdout: ${r1.stdout}\nstderr: ${r1.stderr}`).toBeDefined();
        expect(r1.json.repair.heldBack.map((h: { container: string }) => h.container)).toEqual(['oncreated']);
        expect(r1.json.repair.heldBack[0].images).toContain('multi:1');
        expect(r1.json.repair.repaired).toContainEqual(expect.objectContaining({ kind: 'cache-id', layer: f.lost.middle, cacheId: f.lost.cacheId, status: 'done' }));
        expect(fs.readFileSync(path.join(layerDir(d, f.lost.middle), 'cache-id'), 'utf8')).toBe(f.lost.cacheId);
        expect(r1.json.repair.images.map((i: { tags: string[] }) => i.tags)).toContainEqual(['empty:1']);
        expect(fs.existsSync(layerDir(d, f.empty.top))).toBe(false);
        expect(fs.existsSync(layerDir(d, f.multi.chains[2]))).toBe(true);

        const r2 = await timed(times, 'repair containers', () => purge(['--include', 'broken,containers', '--yes']));
        expect(r2.code, r2.stderr).toBe(0);
        expect(r2.json.repair.heldBack).toEqual([]);
        const multi = r2.json.repair.images.find((i: { tags: string[] }) => i.tags.includes('multi:1'));
        expect(multi).toMatchObject({ status: 'removed', remedy: expect.stringContaining('rebuild it (docker build -t multi:1)') });
        expect(r2.json.actions.filter((a: { kind: string }) => a.kind === 'broken-mount')).toHaveLength(1);
        for (const c of f.multi.chains.slice(2)) expect(fs.existsSync(layerDir(d, c)), c).toBe(false);

        const after = runCli(['scan', '--data-root', d.dataRoot, '--json']);
        expect(after.json.findings).toEqual([]);
        expect(after.code).toBe(0);
      },
      LONG,
    );

    it(
      'the daemon starts without load errors, the damaged image and container are gone, the others run, and the saved tar loads again',
      async () => {
        await timed(times, 'restart', () => d.restart());
        const log = logSinceLastStart(d);
        // and no error or warning about anything under the data root (a missing layer dir, mount, config)
        const bad = log.split('\n').filter((l) => LOAD_ERRORS.test(l) || (/level=(error|warning)/.test(l) && l.includes(d.dataRoot)));
        expect(bad).toEqual([]);
        // multi:1's first RUN step stays as a valid untagged image (the legacy builder's intermediate; its chain is whole)
        const images = (await d.docker(['images', '--format', '{{.Repository}}:{{.Tag}}'])).stdout
          .trim()
          .split('\n')
          .filter((t) => t !== '<none>:<none>')
          .sort();
        expect(images).toEqual(['busybox:base', 'lost:1', 'ok:1']);
        for (const t of ['multi:1', 'empty:1']) expect((await d.docker(['image', 'inspect', t], { allowFail: true })).code, t).not.toBe(0);

        const ps = (await d.docker(['ps', '-a', '--format', '{{.Names}}'])).stdout.trim();
        expect(ps).toBe('');
        expect(await d.run('lost:1', ['cat', '/x', '/y'])).toBe('x\ny\n');
        expect(await d.run('ok:1', ['cat', '/ok'])).toBe('ok\n');
        const load = await timed(times, 'load', () => d.docker(['load', '-i', f.tar], { allowFail: true }));
        expect(load.stderr).not.toMatch(/file exists/);
        expect(load.code, load.stderr).toBe(0);
        expect(load.stdout).toContain('multi:1');
        expect(await d.run('multi:1', ['cat', '/a', '/b', '/c'])).toBe('a\nb\nc\n');
        await d.stop();
      },
      LONG,
    );
  });
});
