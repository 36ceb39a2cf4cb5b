/**
 * Real damage to a TestDaemon's data root, made the way it happens in the wild (see
 * docs "Seen on a real daemon" and test/e2e/harness.test.ts for what each leaves on disk).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { chattr, clearImmutable, type TestDaemon } from './dockerd.js';

const HEX64 = /^[0-9a-f]{64}$/;

/** chain[0]=diff[0], chain[i]="sha256:"+sha256hex(chain[i-1]+" "+diff[i]) */
export function chainIds(diffIds: string[]): string[] {
  const out: string[] = [];
  for (const diff of diffIds) {
    const prev = out[out.length - 1];
    out.push(prev === undefined ? diff : 'sha256:' + createHash('sha256').update(`${prev} ${diff}`).digest('hex'));
  }
  return out;
}

function hexOf(digest: string): string {
  const h = digest.startsWith('sha256:') ? digest.slice(7) : digest;
  if (!HEX64.test(h)) throw new Error(`not a sha256 digest: ${digest}`);
  return h;
}

/** <root>/image/<driver>/layerdb/sha256/<hex> */
export function layerDir(d: TestDaemon, chainId: string): string {
  return path.join(d.dataRoot, 'image', d.driver, 'layerdb', 'sha256', hexOf(chainId));
}

/** Directory that holds one entry per driver id: overlay2/fuse-overlayfs <root>/<driver>, vfs <root>/vfs/dir, btrfs <root>/btrfs/subvolumes. */
export function driverLayersDir(d: TestDaemon): string {
  const home = path.join(d.dataRoot, d.driver);
  if (d.driver === 'vfs') return path.join(home, 'dir');
  if (d.driver === 'btrfs') return path.join(home, 'subvolumes');
  return home;
}

export function driverDirFor(d: TestDaemon, cacheId: string): string {
  return path.join(driverLayersDir(d), cacheId);
}

/** Where the layer's own files live: overlay2 <id>/diff, vfs dir/<id>, btrfs subvolumes/<id>. */
export function layerContentDir(d: TestDaemon, cacheId: string): string {
  const dir = driverDirFor(d, cacheId);
  return d.driver === 'overlay2' || d.driver === 'fuse-overlayfs' ? path.join(dir, 'diff') : dir;
}

export function layerCacheId(d: TestDaemon, chainId: string): string {
  return fs.readFileSync(path.join(layerDir(d, chainId), 'cache-id'), 'utf8').trim();
}

/** Resolve an image reference (tag, familiar name, full or short ID) from the data root, daemon not needed. */
export function resolveImageIdOnDisk(d: TestDaemon, ref: string): string {
  const imgRoot = path.join(d.dataRoot, 'image', d.driver);
  const m = /^(?:sha256:)?([0-9a-f]{12,64})$/.exec(ref);
  const content = path.join(imgRoot, 'imagedb', 'content', 'sha256');
  if (m) {
    const hits = fs.readdirSync(content).filter((n) => n.startsWith(m[1]!));
    if (hits.length === 1) return 'sha256:' + hits[0];
  }
  const repos = JSON.parse(fs.readFileSync(path.join(imgRoot, 'repositories.json'), 'utf8')) as {
    Repositories: Record<string, Record<string, string>>;
  };
  let familiar = ref.replace(/^docker\.io\/library\//, '').replace(/^docker\.io\//, '');
  const lastSeg = familiar.split('/').pop() ?? familiar;
  if (!lastSeg.includes(':') && !familiar.includes('@')) familiar += ':latest';
  for (const tags of Object.values(repos.Repositories ?? {})) {
    const id = tags[familiar];
    if (id) return id;
  }
  throw new Error(`image ${ref} not found in ${imgRoot}`);
}

/** diff_ids of an image: `docker image inspect` when the daemon runs, the image config on disk otherwise. */
export async function imageDiffIds(d: TestDaemon, ref: string): Promise<string[]> {
  if (d.running) {
    const r = await d.docker(['image', 'inspect', '--format', '{{json .RootFS.Layers}}', ref]);
    return JSON.parse(r.stdout) as string[];
  }
  const id = resolveImageIdOnDisk(d, ref);
  const cfg = JSON.parse(fs.readFileSync(path.join(d.dataRoot, 'image', d.driver, 'imagedb', 'content', 'sha256', hexOf(id)), 'utf8')) as { rootfs: { diff_ids: string[] } };
  return cfg.rootfs.diff_ids;
}

/** Chain ID of the image's top layer (sha256:…). */
export async function imageTopChain(d: TestDaemon, ref: string): Promise<string> {
  const chain = chainIds(await imageDiffIds(d, ref));
  const top = chain[chain.length - 1];
  if (!top) throw new Error(`image ${ref} has no layers`);
  return top;
}

async function imageId(d: TestDaemon, ref: string): Promise<string> {
  if (d.running) return (await d.docker(['image', 'inspect', '--format', '{{.Id}}', ref])).stdout.trim();
  return resolveImageIdOnDisk(d, ref);
}

function walkFiles(dir: string, out: string[] = []): string[] {
  let ents: fs.Dirent[];
  try {
    ents = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  ents.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of ents) {
    const p = path.join(dir, e.name);
    if (e.isFile()) out.push(p);
    else if (e.isDirectory()) walkFiles(p, out);
  }
  return out;
}

/** Sum of regular-file sizes under dir (lstat; does not follow symlinks). */
export function treeBytes(dir: string): number {
  let total = 0;
  let ents: fs.Dirent[];
  try {
    ents = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of ents) {
    const p = path.join(dir, e.name);
    try {
      if (e.isFile()) total += fs.lstatSync(p).size;
      else if (e.isDirectory()) total += treeBytes(p);
    } catch {
      /* raced with the writer */
    }
  }
  return total;
}

function listRemoving(d: TestDaemon, chainId: string): string[] {
  const dir = path.join(d.dataRoot, 'image', d.driver, 'layerdb', 'sha256');
  const hex = hexOf(chainId);
  return fs
    .readdirSync(dir)
    .filter((n) => n.startsWith(hex + '-') && n.endsWith('-removing'))
    .map((n) => path.join(dir, n));
}

export interface FailedRemoval {
  /** layerdb/sha256/<chain hex>-<64 hex random>-removing */
  removingDir: string;
  chainId: string;
  cacheId: string;
  /** the file given chattr +i (btrfs: the subvolume dir itself). Still immutable on return. */
  immutableFile: string;
  /** the (half-deleted) driver dir, e.g. <root>/overlay2/<cache-id> */
  driverDir: string;
  imageId: string;
  /** what `docker rmi -f` printed (it fails: "unlinkat …: operation not permitted") */
  rmiStderr: string;
}

/**
 * The moby#38488 state: chattr +i one regular file of the image's top layer, then `docker rmi -f`.
 * The daemon renames the layerdb dir to `<chain>-<rand64>-removing` and driver.Remove fails half way.
 * The image must be the only user of its top layer (no child images, no containers).
 * On btrfs the subvolume would be destroyed despite an immutable file inside, so there the
 * subvolume dir itself is made immutable (BTRFS_IOC_SNAP_DESTROY then fails with EPERM).
 */
export async function failedRemoval(d: TestDaemon, imageRef: string): Promise<FailedRemoval> {
  if (!d.running) throw new Error('failedRemoval needs a running daemon');
  const id = await imageId(d, imageRef);
  const chainId = await imageTopChain(d, imageRef);
  const cacheId = layerCacheId(d, chainId);
  const driverDir = driverDirFor(d, cacheId);
  let immutableFile: string;
  if (d.driver === 'btrfs') {
    immutableFile = driverDir;
  } else {
    const files = walkFiles(layerContentDir(d, cacheId));
    if (files.length === 0) throw new Error(`top layer ${chainId} of ${imageRef} has no regular file to make immutable`);
    immutableFile = files[0]!;
  }
  chattr(immutableFile, '+i');
  const r = await d.docker(['rmi', '-f', imageRef], { allowFail: true });
  const removing = listRemoving(d, chainId);
  if (removing.length === 0) {
    throw new Error(`docker rmi -f ${imageRef} left no ${hexOf(chainId)}-*-removing dir (exit ${r.code}: ${r.stderr.trim()}); ` + `is the top layer shared with another image?`);
  }
  return { removingDir: removing[removing.length - 1]!, chainId, cacheId, immutableFile, driverDir, imageId: id, rmiStderr: r.stderr };
}

export interface BigImageTar {
  tarFile: string;
  imageId: string;
  bytes: number;
}

/**
 * Build an image with one layer of `sizeMiB` MiB of /dev/urandom data on top of `base`
 * (imported first if missing), `docker save` it to a tar in the daemon's workDir, `docker rmi` it.
 */
export async function makeBigImageTar(d: TestDaemon, opts: { sizeMiB?: number; tag?: string; base?: string; source?: '/dev/urandom' | '/dev/zero' } = {}): Promise<BigImageTar> {
  const sizeMiB = opts.sizeMiB ?? 160;
  const tag = opts.tag ?? 'lgc-big:1';
  const base = opts.base ?? 'busybox:base';
  const have = await d.docker(['image', 'inspect', base], { allowFail: true });
  if (have.code !== 0) await d.importBusybox(base);
  const imageId = await d.build(tag, `FROM ${base}\nRUN head -c ${sizeMiB * 1024 * 1024} ${opts.source ?? '/dev/urandom'} > /big.bin\n`);
  const tarFile = path.join(d.workDir, `${tag.replace(/[^a-zA-Z0-9]+/g, '-')}.tar`);
  await d.docker(['save', '-o', tarFile, tag], { timeoutMs: 300_000 });
  await d.docker(['rmi', tag]);
  return { tarFile, imageId, bytes: fs.statSync(tarFile).size };
}

export interface KilledLoad {
  /** layerdb/tmp/write-set-<digits> (holds only a stub tar-split.json.gz) */
  writeSetDir: string;
  /** the driver dir the killed registration was writing (overlay2: diff link lower work; no committed) */
  leakedDriverDir: string;
  /** bytes in the leaked driver dir when the daemon was killed */
  leakedBytes: number;
  writeSetFiles: string[];
  /** ms from `docker load` start to SIGKILL */
  killedAfterMs: number;
  loadStderr: string;
}

export interface KilledLoadOptions {
  /** kill once the new driver dir holds at least this many bytes (default 100 MiB; 0 = as soon as the write-set exists) */
  minBytes?: number;
  /** give up after this long (default 120 s) */
  timeoutMs?: number;
  /** restart the daemon afterwards (default true) */
  restart?: boolean;
}

/**
 * `docker load -i tarFile`, SIGKILL the DAEMON (not the client: a killed client just makes the
 * daemon finish or cancel cleanly) while it registers the new layer: once a new
 * layerdb/tmp/write-set-* exists and the new driver dir holds >= minBytes. The tar must contain a
 * layer not yet in the store (see makeBigImageTar). Then unmount leftovers and (by default) restart.
 *
 * Observed: dockerd first extracts the whole tar to <root>/tmp/docker-import-*, then registers
 * layers; 20.10 calls driver.Create before StartTransaction, so the driver dir exists before the
 * write-set. A restart wipes <root>/tmp but keeps the write-set and the driver dir (20.10 and 28.5).
 */
export async function killedLoad(d: TestDaemon, tarFile: string, opts: KilledLoadOptions = {}): Promise<KilledLoad> {
  if (!d.running) throw new Error('killedLoad needs a running daemon');
  const minBytes = opts.minBytes ?? 100 * 1024 * 1024;
  const layersDir = driverLayersDir(d);
  const tmpDir = path.join(d.layerdb, 'tmp');
  const readNames = (dir: string): string[] => {
    try {
      return fs.readdirSync(dir);
    } catch {
      return [];
    }
  };
  const beforeDirs = new Set(readNames(layersDir));
  const beforeWs = new Set(readNames(tmpDir).filter((n) => n.startsWith('write-set-')));
  const t0 = Date.now();
  let loadDone = false;
  const loadP = d.docker(['load', '-i', tarFile], { allowFail: true, timeoutMs: opts.timeoutMs ?? 120_000 }).finally(() => {
    loadDone = true;
  });
  const deadline = t0 + (opts.timeoutMs ?? 120_000);
  let writeSet: string | undefined;
  let leaked: string | undefined;
  let leakedBytes = 0;
  let killedAfterMs = -1;
  const pid = d.pid;
  while (Date.now() < deadline) {
    if (loadDone) break;
    const ws = readNames(tmpDir).filter((n) => n.startsWith('write-set-') && !beforeWs.has(n));
    if (ws.length > 0) {
      const fresh = readNames(layersDir).filter((n) => !beforeDirs.has(n) && n !== 'l');
      for (const n of fresh) {
        const bytes = minBytes > 0 ? treeBytes(path.join(layersDir, n)) : 0;
        if (bytes >= minBytes) {
          process.kill(pid, 'SIGKILL');
          killedAfterMs = Date.now() - t0;
          writeSet = path.join(tmpDir, ws[0]!);
          leaked = path.join(layersDir, n);
          leakedBytes = bytes;
          break;
        }
      }
      if (leaked) break;
    }
    // yield to the event loop (child exit events) without sleeping a whole timer tick
    await new Promise((r) => setImmediate(r));
  }
  if (!leaked || !writeSet) {
    const r = await loadP;
    throw new Error(`docker load finished (exit ${r.code}) or timed out before a write-set with >= ${minBytes} bytes in its driver dir was seen; ` + `use a bigger image (stderr: ${r.stderr.trim()})`);
  }
  await d.kill();
  const r = await loadP;
  // measure again after the kill (the writer may have got a little further)
  leakedBytes = Math.max(leakedBytes, treeBytes(leaked));
  if (!fs.existsSync(writeSet)) throw new Error(`write-set ${writeSet} vanished after the kill`);
  if (!fs.existsSync(leaked)) throw new Error(`driver dir ${leaked} vanished after the kill`);
  const writeSetFiles = fs.readdirSync(writeSet);
  if (opts.restart !== false) await d.restart();
  return { writeSetDir: writeSet, leakedDriverDir: leaked, leakedBytes, writeSetFiles, killedAfterMs, loadStderr: r.stderr };
}

export interface RemovedDriverDir {
  chainId: string;
  cacheId: string;
  driverDir: string;
  /** overlay2: the l/<LID> symlink that now points nowhere (left in place, as a manual rm -rf would) */
  danglingLink?: string;
  /** true if the daemon was running and got stopped for this */
  stoppedDaemon: boolean;
}

/**
 * rm -rf the driver dir of an image's top layer with the daemon stopped (stops it if running;
 * restarts only when opts.restart). The layerdb entry stays and still loads: state #3.
 */
export async function removeDriverDir(d: TestDaemon, imageRef: string, opts: { restart?: boolean } = {}): Promise<RemovedDriverDir> {
  const chainId = await imageTopChain(d, imageRef);
  const stoppedDaemon = d.running;
  if (d.running) await d.stop();
  const cacheId = layerCacheId(d, chainId);
  const driverDir = driverDirFor(d, cacheId);
  let danglingLink: string | undefined;
  if (d.driver === 'overlay2' || d.driver === 'fuse-overlayfs') {
    try {
      const lid = fs.readFileSync(path.join(driverDir, 'link'), 'utf8').trim();
      if (lid) danglingLink = path.join(d.dataRoot, d.driver, 'l', lid);
    } catch {
      /* no link file */
    }
  }
  if (!fs.existsSync(driverDir)) throw new Error(`driver dir ${driverDir} does not exist`);
  clearImmutable(driverDir);
  if (d.driver === 'btrfs') {
    spawnSync('btrfs', ['subvolume', 'delete', driverDir], { stdio: 'ignore' });
  }
  fs.rmSync(driverDir, { recursive: true, force: true });
  if (opts.restart) await d.restart();
  return { chainId, cacheId, driverDir, danglingLink, stoppedDaemon };
}

export interface EmptiedLayerdbEntry {
  dir: string;
  removedFiles: string[];
}

/** Delete every file in layerdb/sha256/<hex>/ and leave the dir empty (the moby#44909 power-loss state). */
export function emptyLayerdbEntry(d: TestDaemon, chainId: string): EmptiedLayerdbEntry {
  const dir = layerDir(d, chainId);
  const removedFiles = fs.readdirSync(dir).sort();
  for (const n of removedFiles) fs.rmSync(path.join(dir, n), { recursive: true, force: true });
  return { dir, removedFiles };
}

/** Poll until fn() is truthy (for on-disk effects of asynchronous daemon work). */
export async function waitFor<T>(fn: () => T | undefined | false, timeoutMs = 10_000, stepMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error('waitFor: timed out');
    await sleep(stepMs);
  }
}
