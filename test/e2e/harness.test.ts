/**
 * Proves the real-daemon harness (test/helpers/dockerd.ts) and the damage helpers
 * (test/helpers/damage.ts) against Debian's dockerd 20.10.24 and, when /opt/sid-docker exists,
 * Debian sid's dockerd 28.5.2, both with overlay2 on ext4; plus fixtures/sample-root.tar.gz.
 * Whole file: ~20-30 s here.
 *
 * Observed on this machine (kernel 6.18, ext4 /tmp), identical on 20.10.24 and 28.5.2 unless noted:
 * - start: `docker info` answers after ~0.25 s; a clean stop (SIGTERM) takes ~1 s (~2-3 s with
 *   earlier activity); restart ~0.25 s; kill ~20-80 ms; destroy ~1.1 s.
 * - busybox import (~0.2-0.8 s): one layer, cache-id 64 hex, driver dir `diff link` (+`committed`
 *   once a child layer or container exists). Same diff ID on both versions (deterministic tar).
 * - legacy build (DOCKER_BUILDKIT=0, ~0.2-0.8 s): each step a layer with a 64-hex cache-id; child
 *   dirs hold `diff link lower work`; the RUN step stays as an untagged intermediate image
 *   (`<none>:<none>` in `docker images -a`) that is the tagged image's parent.
 * - BuildKit build (the 20.10 client's built-in BuildKit; no buildx; ~0.15-0.4 s): the committed
 *   layer's cache-id is a 25-char [0-9a-z] snapshot key (e.g. `t1lw9lhmiszzkqc3mjpppsc8q`) with
 *   `diff link lower work` (+`committed` after a run); two more 25-char dirs with only `diff link`
 *   that no layerdb cache-id names, all three ids present in <root>/buildkit/snapshots.db.
 *   buildkit/ holds cache.db containerdmeta.db content/ executor/ metadata_v2.db snapshots.db;
 *   28.5 adds history.db.
 * - failedRemoval (chattr +i on diff/stuff/a/1.txt of the top layer, `docker rmi -f`, ~0.1 s): the
 *   CLI exits 1 with `Error response from daemon: unlinkat <root>/overlay2/<id>/diff/stuff/a/1.txt:
 *   operation not permitted`. layerdb dir renamed `<chain hex>-<64 hex>-removing` with cache-id diff
 *   parent size tar-split.json.gz intact. The driver dir keeps exactly diff/ diff/stuff/
 *   diff/stuff/a/ diff/stuff/a/1.txt; `committed link lower work`, stuff/a/2.txt, stuff/b.txt and
 *   the `l/<LID>` symlink are gone. Tag and imagedb entry are gone; the intermediate image stays.
 *   Every clean stop logs `cannot remove orphan layer` and keeps both.
 * - killedLoad (160 MiB urandom layer; `docker save` tar 160 MiB; make+save ~2.6-5 s; dockerd
 *   SIGKILLed once the new driver dir passed 100 MiB (the harness test: 48 MiB), 0.4-1.5 s after `docker load` started): left
 *   `layerdb/tmp/write-set-<9-10 digits>` holding only `tar-split.json.gz` (10 bytes: a bare gzip
 *   header), and `overlay2/<64hex>/{diff,link,lower,work}` with a partial diff/big.bin, no
 *   `committed`, its `l/<LID>` symlink present, no layerdb cache-id naming it. Client error:
 *   20.10 `error during connect: Post "http://%2F…%2Fs/v1.41/images/load?quiet=1": EOF`,
 *   28.5 `… read unix @->…/s: read: connection reset by peer`. The daemon first copies the tar
 *   to <root>/tmp/docker-import-*; the restart wipes <root>/tmp but keeps write-set and dir.
 *   (vfs: same write-set; leaked `vfs/dir/<64hex>` is a full rootfs copy plus the partial file.)
 * - removeDriverDir (daemon stopped, rm -rf <root>/overlay2/<cache-id>; its l/<LID> left dangling):
 *   after restart the image is still listed; `docker run` fails with
 *   20.10 `open <root>/overlay2/<cache-id>/committed: no such file or directory`,
 *   28.5 `invalid output path: stat <root>/overlay2/<cache-id>: no such file or directory`.
 * - emptyLayerdbEntry (cache-id diff parent size tar-split.json.gz deleted): after restart the image
 *   is not listed; log line 20.10 `level=error msg="layer does not exist, not restoring image
 *   sha256:<image>, sha256:<chain>, linux"`, 28.5 `level=error msg="not restoring image"
 *   chainID="sha256:<chain>" err="layer does not exist" os=linux`.
 * - a raw SIGKILL of dockerd with a running container leaves (both versions): <root> bind-mounted on
 *   itself (ext4), <root>/overlay2/<mount-id>/merged (overlay) and <exec-root>/netns/<12 hex>
 *   (nsfs), plus the shim and the container process; kill() unmounts all three and kills those.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { TestDaemon, dockerAvailable, mountsUnder, type DockerVersion } from '../helpers/dockerd.js';
import {
  chainIds,
  driverDirFor,
  emptyLayerdbEntry,
  failedRemoval,
  imageTopChain,
  killedLoad,
  layerCacheId,
  layerDir,
  makeBigImageTar,
  removeDriverDir,
  treeBytes,
  type FailedRemoval,
  type KilledLoad,
} from '../helpers/damage.js';

const LONG = 300_000; // per-test timeout (ms)

describe('chainIds', () => {
  it('matches the documented test vector', () => {
    const E = 'sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef';
    expect(chainIds([E, E, E])).toEqual([E, 'sha256:170b376f64fb30995c140276be3d71dfb256b308d86183ca3b22aa93a79ad548', 'sha256:7800f80a93336d416612f372faa5f69eb67b353ce6ae9535fa0848f8784c74b1']);
    expect(chainIds([])).toEqual([]);
  });
});

/** relative paths of everything under dir, sorted */
function tree(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const rel = prefix + e.name;
    out.push(e.isDirectory() ? rel + '/' : rel);
    if (e.isDirectory()) out.push(...tree(path.join(dir, e.name), rel + '/'));
  }
  return out;
}

function allCacheIds(d: TestDaemon): Set<string> {
  const sha = path.join(d.layerdb, 'sha256');
  const ids = new Set<string>();
  for (const n of fs.readdirSync(sha)) {
    try {
      ids.add(fs.readFileSync(path.join(sha, n, 'cache-id'), 'utf8').trim());
    } catch {
      /* emptied entry */
    }
  }
  return ids;
}

async function timed<T>(times: Record<string, number>, name: string, fn: () => Promise<T>): Promise<T> {
  const t = Date.now();
  try {
    return await fn();
  } finally {
    times[name] = Date.now() - t;
  }
}

function realDaemonSuite(version: DockerVersion): void {
  describe.skipIf(!dockerAvailable(version))(`real dockerd ${version} (overlay2)`, () => {
    let d: TestDaemon;
    const times: Record<string, number> = {};
    let baseId = '';
    let fr: FailedRemoval;
    let kl: KilledLoad;
    let removedDriver: Awaited<ReturnType<typeof removeDriverDir>>;
    let emptiedChain = '';

    beforeAll(async () => {
      d = await timed(times, 'start', () => TestDaemon.start({ version }));
    }, 120_000);

    afterAll(async () => {
      if (d) await timed(times, 'destroy', () => d.destroy());
      console.log(`[harness ${version}] step times (ms): ${JSON.stringify(times)}`);
      if (d) expect(fs.existsSync(d.workDir)).toBe(false);
    }, 120_000);

    it(
      'runs privately: own network namespace, socket, pidfile, data root',
      async () => {
        expect(fs.readlinkSync(`/proc/${d.pid}/ns/net`)).not.toBe(fs.readlinkSync('/proc/self/ns/net'));
        expect(Number(fs.readFileSync(d.pidFile, 'utf8').trim())).toBe(d.pid);
        expect(d.workDir).toMatch(/^\/tmp\/lgc-/);
        const info = await d.docker(['info', '--format', '{{.ServerVersion}} {{.Driver}} {{.DockerRootDir}}']);
        const [server, drv, root] = info.stdout.trim().split(' ');
        expect(server).toMatch(version === '20.10' ? /^20\.10\.24/ : /^28\.5\./);
        expect(drv).toBe('overlay2');
        expect(root).toBe(d.dataRoot);
        // the 20.10 client talks to either daemon without DOCKER_API_VERSION
        const v = await d.docker(['version', '--format', '{{.Client.APIVersion}} {{.Server.APIVersion}}']);
        expect(v.stdout.trim().split(' ')[0]).toBe('1.41');
        if (version === '28.5') {
          expect(fs.readFileSync(d.logFile, 'utf8')).toMatch(/containerd-snapshotter=false/);
        }
      },
      LONG,
    );

    it(
      'imports busybox and runs a container without network or pulls',
      async () => {
        baseId = await timed(times, 'importBusybox', () => d.importBusybox());
        expect(baseId).toMatch(/^sha256:[0-9a-f]{64}$/);
        const out = await timed(times, 'run', () => d.run('busybox:base', ['sh', '-c', 'echo hi; ls /sys/class/net']));
        expect(out.trim().split('\n')).toEqual(['hi', 'lo']);
        // a missing image is an error, not a pull attempt
        const miss = await d.docker(['run', '--rm', '--pull', 'never', '--network', 'none', 'nosuch:img', 'true'], { allowFail: true });
        expect(miss.code).not.toBe(0);
        const top = await imageTopChain(d, 'busybox:base');
        const cache = layerCacheId(d, top);
        expect(cache).toMatch(/^[0-9a-f]{64}$/);
        expect(fs.existsSync(path.join(driverDirFor(d, cache), 'diff', 'bin', 'busybox'))).toBe(true);
      },
      LONG,
    );

    it(
      'a legacy build with a RUN step: the COPY layer is one overlay2 dir, the image runs, the RUN commit stays as an untagged parent',
      async () => {
        const id = await timed(times, 'legacyBuild', () =>
          d.build('legacy:1', 'FROM busybox:base\nRUN mkdir -p /data && echo legacy > /data/run.txt\nCOPY stuff/ /stuff/\n', {
            files: { 'stuff/a/1.txt': 'one\n', 'stuff/a/2.txt': 'two\n', 'stuff/b.txt': 'b\n' },
          }),
        );
        expect(id).toMatch(/^sha256:[0-9a-f]{64}$/);
        const top = await imageTopChain(d, 'legacy:1');
        const cache = layerCacheId(d, top);
        expect(cache).toMatch(/^[0-9a-f]{64}$/);
        expect(tree(driverDirFor(d, cache))).toEqual(['diff/', 'diff/stuff/', 'diff/stuff/a/', 'diff/stuff/a/1.txt', 'diff/stuff/a/2.txt', 'diff/stuff/b.txt', 'link', 'lower', 'work/']);
        expect(await d.run('legacy:1', ['cat', '/data/run.txt', '/stuff/a/2.txt'])).toBe('legacy\ntwo\n');
        // a container on top (its -init layer) makes overlay2 write `committed` into the top layer's dir
        expect(fs.existsSync(path.join(driverDirFor(d, cache), 'committed'))).toBe(true);
        // the RUN step's commit stays as an untagged intermediate image
        const all = await d.docker(['images', '-a', '--format', '{{.Repository}}:{{.Tag}}']);
        expect(all.stdout).toMatch(/<none>:<none>/);
      },
      LONG,
    );

    it(
      'BuildKit build (--network=none) registers a 25-char cache-id',
      async () => {
        const id = await timed(times, 'buildkitBuild', () => d.build('bk:1', 'FROM busybox:base\nRUN echo bk > /bk.txt\n', { buildkit: true }));
        expect(id).toMatch(/^sha256:[0-9a-f]{64}$/);
        expect(await d.run('bk:1', ['cat', '/bk.txt'])).toBe('bk\n');
        const cache = layerCacheId(d, await imageTopChain(d, 'bk:1'));
        expect(cache).toMatch(/^[0-9a-z]{25}$/);
        // BuildKit snapshot dirs that no layerdb entry names; their ids are in buildkit/snapshots.db
        const named = allCacheIds(d);
        const unnamed = fs.readdirSync(d.driverHome).filter((n) => /^[0-9a-z]{25}$/.test(n) && !named.has(n));
        expect(unnamed.length).toBeGreaterThan(0);
        const db = fs.readFileSync(path.join(d.dataRoot, 'buildkit', 'snapshots.db'));
        for (const n of unnamed) {
          expect(db.includes(Buffer.from(n))).toBe(true);
          expect(fs.readdirSync(path.join(d.driverHome, n)).sort()).toEqual(['diff', 'link']);
        }
        expect(db.includes(Buffer.from(cache))).toBe(true);
        console.log(
          `[harness ${version}] BuildKit: committed layer cache-id ${cache} dir ${JSON.stringify(fs.readdirSync(driverDirFor(d, cache)).sort())}; ` +
            `unnamed snapshot dirs ${JSON.stringify(unnamed)}; buildkit/ ${JSON.stringify(fs.readdirSync(path.join(d.dataRoot, 'buildkit')).sort())}`,
        );
      },
      LONG,
    );

    it(
      'failedRemoval leaves a -removing layerdb dir and a half-deleted driver dir',
      async () => {
        const top = await imageTopChain(d, 'legacy:1');
        const lid = fs.readFileSync(path.join(driverDirFor(d, layerCacheId(d, top)), 'link'), 'utf8');
        fr = await timed(times, 'failedRemoval', () => failedRemoval(d, 'legacy:1'));
        const hex = fr.chainId.slice(7);
        expect(fr.chainId).toBe(top);
        expect(path.basename(fr.removingDir)).toMatch(new RegExp(`^${hex}-[0-9a-f]{64}-removing$`));
        expect(fs.existsSync(layerDir(d, fr.chainId))).toBe(false);
        expect(fs.readdirSync(fr.removingDir).sort()).toEqual(['cache-id', 'diff', 'parent', 'size', 'tar-split.json.gz']);
        expect(fs.readFileSync(path.join(fr.removingDir, 'cache-id'), 'utf8')).toBe(fr.cacheId);
        expect(fr.immutableFile).toBe(path.join(fr.driverDir, 'diff', 'stuff', 'a', '1.txt'));
        expect(fr.rmiStderr).toMatch(/operation not permitted/);
        // half deleted: only the path to the immutable file is left
        expect(tree(fr.driverDir)).toEqual(['diff/', 'diff/stuff/', 'diff/stuff/a/', 'diff/stuff/a/1.txt']);
        expect(fs.existsSync(path.join(d.driverHome, 'l', lid))).toBe(false);
        const imgs = await d.docker(['images', '--format', '{{.Repository}}:{{.Tag}}']);
        expect(imgs.stdout).not.toMatch(/legacy:1/);
        expect(fs.existsSync(path.join(d.dataRoot, 'image', 'overlay2', 'imagedb', 'content', 'sha256', fr.imageId.slice(7)))).toBe(false);
      },
      LONG,
    );

    it(
      'killedLoad leaves a write-set and an unreferenced driver dir',
      async () => {
        const big = await timed(times, 'makeBigImageTar', () => makeBigImageTar(d, { sizeMiB: 160 }));
        expect(big.bytes).toBeGreaterThan(160 * 1024 * 1024);
        const pidBefore = d.pid;
        // killed once 48 MiB of the 160 MiB file are written: on a busy machine a later kill can land
        // after the layer is applied (diff and size written), which is not the state this test is about
        kl = await timed(times, 'killedLoad+restart', () => killedLoad(d, big.tarFile, { minBytes: 48 << 20 }));
        expect(d.pid).not.toBe(pidBefore);
        expect(path.basename(kl.writeSetDir)).toMatch(/^write-set-\d+$/);
        expect(path.dirname(kl.writeSetDir)).toBe(path.join(d.layerdb, 'tmp'));
        expect(kl.writeSetFiles).toEqual(['tar-split.json.gz']);
        const stub = fs.readFileSync(path.join(kl.writeSetDir, 'tar-split.json.gz'));
        expect(stub.subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b])); // gzip header, nothing flushed yet
        expect(kl.leakedBytes).toBeGreaterThanOrEqual(48 * 1024 * 1024);
        const id = path.basename(kl.leakedDriverDir);
        expect(id).toMatch(/^[0-9a-f]{64}$/);
        // after the restart: nothing was cleaned
        expect(fs.existsSync(kl.writeSetDir)).toBe(true);
        expect(fs.readdirSync(kl.leakedDriverDir).sort()).toEqual(['diff', 'link', 'lower', 'work']);
        expect(fs.existsSync(path.join(kl.leakedDriverDir, 'diff', 'big.bin'))).toBe(true);
        expect(treeBytes(kl.leakedDriverDir)).toBeLessThan(160 * 1024 * 1024);
        const lid = fs.readFileSync(path.join(kl.leakedDriverDir, 'link'), 'utf8');
        expect(fs.readlinkSync(path.join(d.driverHome, 'l', lid))).toBe(`../${id}/diff`);
        expect(allCacheIds(d).has(id)).toBe(false);
        expect(fs.readdirSync(path.join(d.dataRoot, 'tmp')).filter((n) => n.startsWith('docker-import-'))).toEqual([]);
        const imgs = await d.docker(['images', '--format', '{{.Repository}}']);
        expect(imgs.stdout).not.toMatch(/lgc-big/);
        console.log(
          `[harness ${version}] killedLoad: killed after ${kl.killedAfterMs} ms at ${kl.leakedBytes} bytes; write-set ${path.basename(kl.writeSetDir)} stub ${stub.length} bytes; client: ${kl.loadStderr.trim()}`,
        );
      },
      LONG,
    );

    it(
      'removeDriverDir + emptyLayerdbEntry; restart keeps all damage and the base still runs',
      async () => {
        await d.build('victim:1', 'FROM busybox:base\nRUN echo victim > /victim.txt\n');
        await d.build('empty:1', 'FROM busybox:base\nRUN echo empty > /empty.txt\n');
        emptiedChain = await imageTopChain(d, 'empty:1');
        removedDriver = await timed(times, 'removeDriverDir(stop)', () => removeDriverDir(d, 'victim:1'));
        expect(removedDriver.stoppedDaemon).toBe(true);
        expect(d.running).toBe(false);
        expect(mountsUnder(d.dataRoot)).toEqual([]);
        expect(fs.existsSync(removedDriver.driverDir)).toBe(false);
        expect(fs.existsSync(layerDir(d, removedDriver.chainId))).toBe(true);
        expect(removedDriver.danglingLink && fs.lstatSync(removedDriver.danglingLink).isSymbolicLink()).toBe(true);
        const emptied = emptyLayerdbEntry(d, emptiedChain);
        expect(emptied.removedFiles).toEqual(['cache-id', 'diff', 'parent', 'size', 'tar-split.json.gz']);
        expect(fs.readdirSync(emptied.dir)).toEqual([]);

        // the clean stop above ran moby's orphan GC, which failed on the immutable file
        const log = fs.readFileSync(d.logFile, 'utf8');
        expect(log).toMatch(/cannot remove orphan layer/);

        const oldPid = d.pid;
        await timed(times, 'restart', () => d.restart());
        expect(d.pid).not.toBe(oldPid);
        expect(await d.run('busybox:base', ['echo', 'still here'])).toBe('still here\n');
        expect(await d.run('bk:1', ['cat', '/bk.txt'])).toBe('bk\n');

        const imgs = (await d.docker(['images', '--format', '{{.Repository}}:{{.Tag}}'])).stdout;
        expect(imgs).toMatch(/victim:1/); // layerdb entry still loads
        expect(imgs).not.toMatch(/empty:1/); // not restored
        const runVictim = await d.docker(['run', '--rm', '--pull', 'never', '--network', 'none', 'victim:1', 'true'], { allowFail: true });
        expect(runVictim.code).not.toBe(0);
        console.log(`[harness ${version}] run of image with removed driver dir: ${runVictim.stderr.trim()}`);
        const restartLog = fs.readFileSync(d.logFile, 'utf8').split('===== [harness]').pop() ?? '';
        const notRestored = restartLog.split('\n').filter((l) => /not restoring image|layer does not exist/.test(l));
        expect(notRestored.length).toBeGreaterThan(0);
        console.log(`[harness ${version}] restart log for the emptied entry: ${notRestored[0]}`);

        // every piece of damage survived
        expect(fs.existsSync(fr.removingDir)).toBe(true);
        expect(tree(fr.driverDir)).toEqual(['diff/', 'diff/stuff/', 'diff/stuff/a/', 'diff/stuff/a/1.txt']);
        expect(fs.existsSync(kl.writeSetDir)).toBe(true);
        expect(fs.existsSync(kl.leakedDriverDir)).toBe(true);
        expect(fs.readdirSync(layerDir(d, emptiedChain))).toEqual([]);
      },
      LONG,
    );

    it(
      'kill() leaves no mounts behind and restart() works after it',
      async () => {
        await d.docker(['create', '--name', 'web', '--network', 'none', 'busybox:base', 'sleep', '1000']);
        await d.docker(['start', 'web']);
        expect(mountsUnder(d.dataRoot).length).toBeGreaterThan(0);
        const cpid = Number((await d.docker(['inspect', '--format', '{{.State.Pid}}', 'web'])).stdout.trim());
        expect(cpid).toBeGreaterThan(1);
        await timed(times, 'kill', () => d.kill());
        // the container process does not outlive the harness's kill()
        const alive = (() => {
          try {
            return !/^\d+ \(.*\) [ZX]/.test(fs.readFileSync(`/proc/${cpid}/stat`, 'utf8'));
          } catch {
            return false;
          }
        })();
        expect(alive).toBe(false);
        expect(d.running).toBe(false);
        expect(mountsUnder(d.dataRoot)).toEqual([]);
        expect(mountsUnder(d.execRoot)).toEqual([]);
        await d.restart();
        expect(await d.run('busybox:base', ['true'])).toBe('');
        const ps = await d.docker(['ps', '-a', '--format', '{{.Names}} {{.State}}']);
        expect(ps.stdout.trim()).toMatch(/^web (exited|running)/);
      },
      LONG,
    );
  });
}

realDaemonSuite('20.10');
realDaemonSuite('28.5');

const SAMPLE = fileURLToPath(new URL('../../fixtures/sample-root.tar.gz', import.meta.url));
const SAMPLE_MD = fileURLToPath(new URL('../../fixtures/sample-root.md', import.meta.url));

describe.skipIf(!dockerAvailable('20.10') || !fs.existsSync(SAMPLE))('fixtures/sample-root.tar.gz', () => {
  it(
    'extracts as documented and a 20.10 daemon on it shows the documented damage',
    async () => {
      const m = /```json\n([\s\S]*?)```/.exec(fs.readFileSync(SAMPLE_MD, 'utf8'));
      expect(m).not.toBeNull();
      const man = JSON.parse(m![1]!);
      const root = fs.mkdtempSync('/tmp/lgc-sample-');
      let d: TestDaemon | undefined;
      try {
        execFileSync('tar', ['-xzf', SAMPLE, '-C', root]); // the README's command
        const at = (p: string): string => path.join(root, p);
        expect(fs.existsSync(at(man.failed_removal.removing_dir))).toBe(true);
        expect(tree(at(man.failed_removal.half_deleted_dir))).toEqual(['diff/', 'diff/doomed/', 'diff/doomed/a/', 'diff/doomed/a/1.txt']);
        expect(fs.readdirSync(at(man.killed_load.write_set))).toEqual(['tar-split.json.gz']);
        expect(fs.readdirSync(at(man.killed_load.leaked_driver_dir)).sort()).toEqual(['diff', 'link', 'lower', 'work']);
        expect(fs.existsSync(at(man.images['broken:nodriver'].missing_driver_dir))).toBe(false);
        expect(fs.lstatSync(at(man.removed_driver_dir.dangling_link)).isSymbolicLink()).toBe(true);
        expect(fs.readdirSync(at(man.images['broken:emptylayer'].empty_layerdb_dir))).toEqual([]);
        for (const id of man.buildkit_snapshot_dirs as string[]) expect(fs.existsSync(at(`overlay2/${id}`))).toBe(true);

        d = await TestDaemon.start({ version: '20.10', dataRoot: root });
        const imgs = (await d.docker(['images', '--format', '{{.Repository}}:{{.Tag}}'])).stdout.split('\n');
        expect(imgs).toEqual(expect.arrayContaining(['busybox:base', 'app:legacy', 'app:buildkit', 'broken:nodriver']));
        expect(imgs).not.toContain('broken:emptylayer');
        expect(await d.run('busybox:base', ['echo', 'ok'])).toBe('ok\n');
        expect(await d.run('app:legacy', ['cat', '/srv/index.html'])).toBe('hello from app:legacy\n');
        expect(await d.run('app:buildkit', ['cat', '/buildkit.txt'])).toBe('built by BuildKit\n');
        const bad = await d.docker(['run', '--rm', '--pull', 'never', '--network', 'none', 'broken:nodriver', 'true'], { allowFail: true });
        expect(bad.stderr).toMatch(/committed: no such file or directory/);
        expect((await d.docker(['ps', '-a', '--format', '{{.Names}} {{.Status}}'])).stdout.trim()).toBe('web Created');
      } finally {
        await d?.destroy();
        fs.rmSync(root, { recursive: true, force: true });
      }
    },
    LONG,
  );
});
