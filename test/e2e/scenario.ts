/**
 * One damaged overlay2 data root on a real dockerd (20.10 or 28.5), shared by scan-real.test.ts and
 * purge-real.test.ts. Built once per version and file (beforeAll), then reused by every test.
 *
 * Healthy: busybox:base (docker import), app:legacy (legacy builder: RUN + COPY, so an untagged
 * intermediate image too), app:bk (BuildKit: 25-char cache-ids and BuildKit-only snapshot dirs), a
 * created container `created` (app:legacy) and a container `ranonce` that ran once (app:bk).
 *
 * Damage, the way it happens in the wild (test/helpers/damage.ts):
 *  - failedRemoval of doomed:1 (chattr +i one file of its top layer, docker rmi -f): a
 *    `<chain>-<rand>-removing` layerdb dir and a half-deleted driver dir (file still immutable);
 *  - killedLoad of a 140 MiB image: a stale `layerdb/tmp/write-set-*` and a leaked driver dir
 *    holding over 100 MB (dockerd SIGKILLed mid-load, then restarted);
 *  - removeDriverDir of victim:1 (still tagged; its l/<LID> link is left dangling);
 *  - emptyLayerdbEntry of empty:1's top layer (its driver dir is then named by nothing).
 * The daemon is stopped cleanly at the end (its shutdown orphan GC fails on the immutable file).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TestDaemon, type DockerVersion } from '../helpers/dockerd.js';
import {
  emptyLayerdbEntry,
  failedRemoval,
  imageTopChain,
  killedLoad,
  layerCacheId,
  makeBigImageTar,
  removeDriverDir,
  type FailedRemoval,
  type KilledLoad,
  type RemovedDriverDir,
  chainIds,
} from '../helpers/damage.js';

export const HEALTHY_TAGS = ['busybox:base', 'app:legacy', 'app:bk'] as const;

export const LEGACY_DOCKERFILE = 'FROM busybox:base\nRUN mkdir -p /srv && echo legacy > /srv/index.html\nCOPY hello.txt /srv/hello.txt\n';
export const LEGACY_FILES = { 'hello.txt': 'hello from app:legacy\n' };
export const BK_DOCKERFILE = 'FROM busybox:base\nRUN echo bk > /bk.txt && mkdir -p /opt/bk && echo two > /opt/bk/two.txt\n';

export interface ImageFacts {
  tag: string;
  id: string;
  chainIds: string[];
  cacheIds: string[];
}

export interface ContainerFacts {
  name: string;
  id: string;
  mountId: string;
  initId: string;
}

export interface Scenario {
  version: DockerVersion;
  d: TestDaemon;
  root: string;
  images: Record<(typeof HEALTHY_TAGS)[number], ImageFacts>;
  containers: { created: ContainerFacts; ranonce: ContainerFacts };
  fr: FailedRemoval;
  kl: KilledLoad;
  /** l/<LID> of the leaked dir (killedLoad leaves it in place) */
  klLink: string;
  victim: RemovedDriverDir & { tag: string };
  /** empty:1's top layer: its layerdb dir was emptied; its driver dir and l/<LID> link stay, named by nothing */
  empty: { tag: string; imageId: string; chainId: string; dir: string; cacheId: string; driverDir: string; link: string };
  /** every driver-home entry (but l/) that belongs to something healthy, and every live layerdb dir */
  healthyDriverDirs: string[];
  healthyLayerDirs: string[];
  /** live overlay2 l/<LID> links */
  healthyLinks: string[];
  /** the stop after the damage was a clean shutdown that ran (and failed) moby's orphan GC */
  cleanStop: boolean;
  times: Record<string, number>;
}

export async function timed<T>(times: Record<string, number>, name: string, fn: () => Promise<T> | T): Promise<T> {
  const t = Date.now();
  try {
    return await fn();
  } finally {
    times[name] = Date.now() - t;
  }
}

async function imageFacts(d: TestDaemon, tag: string): Promise<ImageFacts> {
  const id = (await d.docker(['image', 'inspect', '--format', '{{.Id}}', tag])).stdout.trim();
  const diffs = JSON.parse((await d.docker(['image', 'inspect', '--format', '{{json .RootFS.Layers}}', tag])).stdout) as string[];
  const chains = chainIds(diffs);
  return { tag, id, chainIds: chains, cacheIds: chains.map((c) => layerCacheId(d, c)) };
}

function containerFacts(d: TestDaemon, name: string, id: string): ContainerFacts {
  const m = path.join(d.layerdb, 'mounts', id);
  return {
    name,
    id,
    mountId: fs.readFileSync(path.join(m, 'mount-id'), 'utf8').trim(),
    initId: fs.readFileSync(path.join(m, 'init-id'), 'utf8').trim(),
  };
}

/** `docker build` like TestDaemon.build, but also returning what the build printed (BuildKit: CACHED lines). */
export async function buildCapture(d: TestDaemon, tag: string, dockerfile: string, opts: { files?: Record<string, string>; buildkit?: boolean } = {}): Promise<{ id: string; output: string }> {
  const ctx = fs.mkdtempSync(path.join(d.workDir, 'bctx-'));
  const iid = `${ctx}.iid`;
  try {
    fs.writeFileSync(path.join(ctx, 'Dockerfile'), dockerfile);
    for (const [name, content] of Object.entries(opts.files ?? {})) {
      fs.mkdirSync(path.dirname(path.join(ctx, name)), { recursive: true });
      fs.writeFileSync(path.join(ctx, name), content);
    }
    const args = ['build', '--network=none', '-t', tag, '--iidfile', iid, ...(opts.buildkit ? ['--progress=plain'] : []), ctx];
    const r = await d.docker(args, { env: { DOCKER_BUILDKIT: opts.buildkit ? '1' : '0' }, timeoutMs: 300_000 });
    return { id: fs.readFileSync(iid, 'utf8').trim(), output: `${r.stdout}${r.stderr}` };
  } finally {
    fs.rmSync(ctx, { recursive: true, force: true });
    fs.rmSync(iid, { force: true });
  }
}

export async function buildScenario(version: DockerVersion, times: Record<string, number> = {}): Promise<Scenario> {
  const d = await timed(times, 'start', () => TestDaemon.start({ version }));
  try {
    await timed(times, 'import', () => d.importBusybox('busybox:base'));
    await timed(times, 'builds', async () => {
      await d.build('app:legacy', LEGACY_DOCKERFILE, { files: LEGACY_FILES });
      await d.build('app:bk', BK_DOCKERFILE, { buildkit: true });
      await d.build('doomed:1', 'FROM busybox:base\nCOPY stuff/ /stuff/\n', {
        files: { 'stuff/a/1.txt': 'one\n', 'stuff/a/2.txt': 'two\n', 'stuff/b.txt': 'b\n' },
      });
      await d.build('victim:1', 'FROM busybox:base\nRUN echo victim > /victim.txt\n');
      await d.build('empty:1', 'FROM busybox:base\nRUN echo empty > /empty.txt\n');
    });
    const createdId = (await d.docker(['create', '--name', 'created', '--pull', 'never', '--network', 'none', 'app:legacy', 'cat', '/srv/index.html', '/srv/hello.txt'])).stdout.trim();
    await d.docker(['run', '--name', 'ranonce', '--pull', 'never', '--network', 'none', 'app:bk', 'cat', '/bk.txt']);
    const ranonceId = (await d.docker(['inspect', '--format', '{{.Id}}', 'ranonce'])).stdout.trim();

    const images = {} as Scenario['images'];
    for (const t of HEALTHY_TAGS) images[t] = await imageFacts(d, t);
    const emptyFacts = await imageFacts(d, 'empty:1');

    const fr = await timed(times, 'failedRemoval', () => failedRemoval(d, 'doomed:1'));
    const big = await timed(times, 'makeBigImageTar', () => makeBigImageTar(d, { sizeMiB: 140 }));
    const kl = await timed(times, 'killedLoad', () => killedLoad(d, big.tarFile));
    fs.rmSync(big.tarFile, { force: true });
    const klLink = path.join(d.driverHome, 'l', fs.readFileSync(path.join(kl.leakedDriverDir, 'link'), 'utf8').trim());

    const containers = { created: containerFacts(d, 'created', createdId), ranonce: containerFacts(d, 'ranonce', ranonceId) };

    // stops the daemon cleanly (its shutdown GC fails on the immutable file)
    if (!d.running) throw new Error(`dockerd ${version} died after the killed load's restart; log tail:\n${logSinceLastStart(d).slice(-3000)}`);
    const removed = await timed(times, 'removeDriverDir+stop', () => removeDriverDir(d, 'victim:1'));
    // a clean shutdown runs moby's orphan GC, which fails on the immutable file and says so
    const cleanStop = /Daemon shutdown complete/.test(logSinceLastStart(d)) && /cannot remove orphan layer/.test(logSinceLastStart(d));
    if (!cleanStop)
      console.warn(
        `[scenario ${version}] the stop after the damage did not log a clean shutdown with moby's orphan GC (took ${times['removeDriverDir+stop']} ms); log tail:\n${logSinceLastStart(d).slice(-3000)}`,
      );
    const emptyChain = await imageTopChain(d, 'empty:1');
    const emptyCache = layerCacheId(d, emptyChain);
    const emptied = emptyLayerdbEntry(d, emptyChain);
    const emptyLink = path.join(d.driverHome, 'l', fs.readFileSync(path.join(d.driverHome, emptyCache, 'link'), 'utf8').trim());

    const liveCache = new Set<string>([...Object.values(images).flatMap((i) => i.cacheIds), ...Object.values(containers).flatMap((c) => [c.mountId, c.initId])]);
    const damaged = new Set([path.basename(fr.driverDir), path.basename(kl.leakedDriverDir), emptyCache]);
    const healthyDriverDirs: string[] = [];
    for (const n of fs.readdirSync(d.driverHome).sort()) {
      if (n === 'l' || damaged.has(n)) continue;
      healthyDriverDirs.push(path.join(d.driverHome, n));
    }
    // every image layer and container layer is among them, and the BuildKit-only snapshot dirs too
    for (const id of liveCache) if (!healthyDriverDirs.includes(path.join(d.driverHome, id))) throw new Error(`live driver dir ${id} is missing`);
    const healthyLayerDirs = fs
      .readdirSync(path.join(d.layerdb, 'sha256'))
      .filter((n) => /^[0-9a-f]{64}$/.test(n) && `sha256:${n}` !== emptyChain && `sha256:${n}` !== removed.chainId)
      .map((n) => path.join(d.layerdb, 'sha256', n))
      .sort();
    const healthyLinks = fs
      .readdirSync(path.join(d.driverHome, 'l'))
      .map((n) => path.join(d.driverHome, 'l', n))
      .filter((p) => p !== klLink && p !== removed.danglingLink && p !== emptyLink)
      .sort();

    return {
      version,
      d,
      root: d.dataRoot,
      images,
      containers,
      fr,
      kl,
      klLink,
      victim: { ...removed, tag: 'victim:1' },
      empty: { tag: 'empty:1', imageId: emptyFacts.id, chainId: emptyChain, dir: emptied.dir, cacheId: emptyCache, driverDir: path.join(d.driverHome, emptyCache), link: emptyLink },
      healthyDriverDirs,
      healthyLayerDirs,
      healthyLinks,
      cleanStop,
      times,
    };
  } catch (err) {
    await d.destroy().catch(() => undefined);
    throw err;
  }
}

/** `du -s -B1 -x` of the paths together (disk usage, each inode once), summed. */
export function du(paths: string[]): number {
  const out = execFileSync('du', ['-s', '-B1', '-x', '--', ...paths], { encoding: 'utf8' });
  return out
    .trim()
    .split('\n')
    .filter(Boolean)
    .reduce((t, l) => t + Number(l.split('\t')[0]), 0);
}

/** `cp -a` of a stopped data root into a fresh dir next to it (same filesystem; no mounts inside). */
export function copyRoot(from: string, to: string): string {
  fs.rmSync(to, { recursive: true, force: true });
  execFileSync('cp', ['-a', '--', from, to]);
  return to;
}

/** The daemon log since the last start (the harness writes a marker line at every launch). */
export function logSinceLastStart(d: TestDaemon): string {
  return fs.readFileSync(d.logFile, 'utf8').split('===== [harness]').pop() ?? '';
}

/** -removing dirs in a layerdb (moby's orphan convention) and staged layergc dirs in the driver home. */
export function leftovers(root: string): { removing: string[]; staged: string[]; writeSets: string[] } {
  const sha = path.join(root, 'image', 'overlay2', 'layerdb', 'sha256');
  const tmp = path.join(root, 'image', 'overlay2', 'layerdb', 'tmp');
  const ls = (p: string) => (fs.existsSync(p) ? fs.readdirSync(p) : []);
  return {
    removing: ls(sha).filter((n) => n.endsWith('-removing')),
    staged: ls(path.join(root, 'overlay2')).filter((n) => n.endsWith('-layergc-removing')),
    writeSets: ls(tmp).filter((n) => n.startsWith('write-set-')),
  };
}
