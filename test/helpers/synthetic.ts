/**
 * Synthetic Docker data roots for unit tests: the graph-driver (overlay2) layout of
 * /work/shared/docs/layer-store-format.md §1–§5, written file by file the way moby writes it, in a
 * fresh mkdtemp dir. No daemon involved: `addImage` registers layers (real tar streams, their diff
 * IDs, chain IDs, tar-split.json.gz, driver dirs with diff/link/lower/work and l/<LID> links) and an
 * image config whose file name is the sha256 of its bytes; `addContainer` creates the layer mount
 * (mount-id, init-id, parent) and the two driver dirs. The damage helpers then make each state a
 * finding kind describes, as the real daemon leaves it (see test/e2e/harness.test.ts for what real
 * damage looks like on disk).
 *
 * Also here: `runCli` (the real CLI, NO_COLOR, JSON parsed and validated against docs/*.schema.json)
 * and `snapshotTree` (a byte-for-byte picture of a tree, to prove that nothing else changed).
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { chainIds as chainIdsOf } from '../../src/store/digest.js';
import { afterAll } from 'vitest';
import { expectValid, type SchemaKind } from './schema.js';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = path.join(REPO, 'bin/layergc.js');
export const BBOLT_FIXTURES = path.join(REPO, 'fixtures/bbolt');

// ------------------------------------------------------------------------------------------------
// ids

export const sha256Hex = (b: string | Buffer): string => createHash('sha256').update(b).digest('hex');
export const hexOf = (digest: string): string => (digest.startsWith('sha256:') ? digest.slice(7) : digest);
/** stringid.GenerateRandomID: 64 hex, never 12 leading digits. */
export function randomId(): string {
  for (;;) {
    const id = randomBytes(32).toString('hex');
    if (!/^\d{12}/.test(id)) return id;
  }
}
/** overlayutils.GenerateID(26): base32 StdEncoding of random bytes, first 26 chars. */
export function randomLid(): string {
  const A = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let s = '';
  for (const b of randomBytes(26)) s += A[b & 31];
  return s;
}
/** BuildKit identity.NewID: 25 chars of base36. */
export function randomBuildkitId(): string {
  const A = '0123456789abcdefghijklmnopqrstuvwxyz';
  let s = '';
  for (const b of randomBytes(25)) s += A[b % 36];
  return s;
}

// ------------------------------------------------------------------------------------------------
// tar and tar-split: the large-root generator's, so that both write layers the same way

export { tarWithSplit } from './generate-root.mjs';
import { tarWithSplit } from './generate-root.mjs';

// ------------------------------------------------------------------------------------------------
// the data root

export interface LayerSpec {
  files: Record<string, string | Buffer>;
}

export interface LayerInfo {
  chainId: string; // sha256:<hex>
  diffId: string; // sha256:<hex>
  parent?: string; // parent chain ID
  cacheId: string;
  lid: string;
  dir: string; // layerdb/sha256/<hex>
  driverDir: string; // overlay2/<cacheId>
  linkPath: string; // overlay2/l/<lid>
  size: number;
}

export interface ImageInfo {
  id: string; // sha256:<hex>
  tags: string[];
  configPath: string;
  diffIds: string[];
  chainIds: string[];
  layers: LayerInfo[];
}

export interface ContainerInfo {
  id: string;
  name: string;
  imageId: string;
  mountId: string;
  initId: string;
  mountDir: string; // layerdb/mounts/<id>
  containerDir: string; // containers/<id>
  mountDriverDir: string;
  initDriverDir: string;
}

export type BuildkitMode = 'none' | 'fixture' | 'garbage';

export interface SyntheticOptions {
  /** buildkit/: none (default), a copy of a real daemon's databases, or a garbage snapshots.db */
  buildkit?: BuildkitMode;
}

/** The fixture whose buildkit/ `buildkit: 'fixture'` copies, and the BuildKit dirs its snapshots.db names. */
export const BUILDKIT_FIXTURE = 'docker-20.10-builds';

export class SyntheticRoot {
  /** the mkdtemp dir: holds the data root and `outside/`, a folder outside the data root */
  readonly base: string;
  readonly root: string;
  readonly driver = 'overlay2';
  readonly imageDir: string;
  readonly layerdb: string;
  readonly home: string;
  readonly links: string;
  readonly outside: string;
  readonly layers = new Map<string, LayerInfo>();
  readonly images: ImageInfo[] = [];
  readonly containers: ContainerInfo[] = [];
  private readonly repositories: Record<string, Record<string, string>> = {};

  constructor(opts: SyntheticOptions = {}) {
    this.base = fs.realpathSync(fs.mkdtempSync(path.join(tmpdir(), 'layergc-synth-')));
    this.root = path.join(this.base, 'docker');
    this.imageDir = path.join(this.root, 'image', this.driver);
    this.layerdb = path.join(this.imageDir, 'layerdb');
    this.home = path.join(this.root, this.driver);
    this.links = path.join(this.home, 'l');
    this.outside = path.join(this.base, 'outside');
    fs.mkdirSync(this.outside, { recursive: true });
    fs.writeFileSync(path.join(this.outside, 'precious.txt'), 'not docker data\n');
    fs.mkdirSync(path.join(this.outside, 'sub'));
    fs.writeFileSync(path.join(this.outside, 'sub', 'keep.txt'), 'keep me\n');

    fs.mkdirSync(this.root, { mode: 0o710 });
    for (const d of ['containers', 'tmp', 'volumes', 'network/files', 'plugins', 'runtimes', 'swarm']) fs.mkdirSync(path.join(this.root, d), { recursive: true, mode: 0o700 });
    fs.mkdirSync(path.join(this.layerdb, 'sha256'), { recursive: true, mode: 0o700 });
    fs.mkdirSync(path.join(this.layerdb, 'mounts'), { mode: 0o700 });
    fs.mkdirSync(path.join(this.layerdb, 'tmp'), { mode: 0o755 });
    fs.mkdirSync(path.join(this.imageDir, 'imagedb/content/sha256'), { recursive: true, mode: 0o700 });
    fs.mkdirSync(path.join(this.imageDir, 'imagedb/metadata/sha256'), { recursive: true, mode: 0o700 });
    fs.mkdirSync(path.join(this.imageDir, 'distribution'), { recursive: true, mode: 0o700 });
    fs.mkdirSync(this.links, { recursive: true, mode: 0o700 });
    fs.chmodSync(this.home, 0o710);
    this.writeRepositories();
    this.setBuildkit(opts.buildkit ?? 'none');
  }

  cleanup(): void {
    // an immutable file left by a failed test would make rm fail
    spawnSync('chattr', ['-R', '-i', this.base], { stdio: 'ignore' });
    fs.rmSync(this.base, { recursive: true, force: true });
  }

  // ---------------------------------------------------------------------------------------------
  // layers and images

  layerDir(chainId: string): string {
    return path.join(this.layerdb, 'sha256', hexOf(chainId));
  }

  driverDir(id: string): string {
    return path.join(this.home, id);
  }

  /**
   * Register one layer as moby's registerWithDescriptor does (overlay2 create + ApplyDiff, then the
   * layerdb entry). A chain that exists already is reused (the daemon says "Already exists").
   */
  addLayer(spec: LayerSpec, parent?: LayerInfo, opts: { cacheId?: string } = {}): LayerInfo {
    const { tar, tarSplit } = tarWithSplit(spec.files);
    const diffId = `sha256:${sha256Hex(tar)}`;
    // chainIds([parentChain, diff])[1] is identity.ChainID's step: sha256(parentChain + " " + diff)
    const chainId = chainIdsOf(parent ? [parent.chainId, diffId] : [diffId]).pop()!;
    const existing = this.layers.get(chainId);
    if (existing) return existing;
    const cacheId = opts.cacheId ?? randomId();
    const driver = this.createDriverDir(cacheId, parent?.cacheId);
    for (const [name, content] of Object.entries(spec.files)) {
      const p = path.join(driver.dir, 'diff', name);
      fs.mkdirSync(path.dirname(p), { recursive: true });
      fs.writeFileSync(p, content);
    }
    const dir = this.layerDir(chainId);
    fs.mkdirSync(dir, { mode: 0o700 });
    fs.writeFileSync(path.join(dir, 'tar-split.json.gz'), tarSplit);
    fs.writeFileSync(path.join(dir, 'diff'), diffId);
    fs.writeFileSync(path.join(dir, 'size'), String(tar.length - 1024));
    fs.writeFileSync(path.join(dir, 'cache-id'), cacheId);
    if (parent) fs.writeFileSync(path.join(dir, 'parent'), parent.chainId);
    const info: LayerInfo = { chainId, diffId, parent: parent?.chainId, cacheId, lid: driver.lid, dir, driverDir: driver.dir, linkPath: driver.linkPath, size: tar.length - 1024 };
    this.layers.set(chainId, info);
    return info;
  }

  /**
   * overlay2 `create`: <id>/diff, link, l/<LID> -> ../<id>/diff; with a parent also work/, lower
   * ("l/<parent LID>:<parent's lower>") and `committed` in the parent's dir.
   */
  createDriverDir(id: string, parentId?: string, opts: { link?: boolean; committedInParent?: boolean } = {}): { dir: string; lid: string; linkPath: string } {
    const dir = this.driverDir(id);
    fs.mkdirSync(dir, { mode: 0o710 });
    fs.mkdirSync(path.join(dir, 'diff'), { mode: 0o755 });
    const lid = randomLid();
    const linkPath = path.join(this.links, lid);
    if (opts.link !== false) fs.symlinkSync(`../${id}/diff`, linkPath);
    fs.writeFileSync(path.join(dir, 'link'), lid);
    if (parentId) {
      fs.mkdirSync(path.join(dir, 'work'), { mode: 0o700 });
      const pdir = this.driverDir(parentId);
      if (opts.committedInParent !== false) fs.writeFileSync(path.join(pdir, 'committed'), '', { mode: 0o600 });
      const plid = fs.readFileSync(path.join(pdir, 'link'), 'utf8').trim();
      let lower = `l/${plid}`;
      if (fs.existsSync(path.join(pdir, 'lower'))) lower += `:${fs.readFileSync(path.join(pdir, 'lower'), 'utf8')}`;
      fs.writeFileSync(path.join(dir, 'lower'), lower);
    }
    return { dir, lid, linkPath };
  }

  /** Pull or load an image: its layers (bottom to top), its config, its tags. */
  addImage(tags: string[], layers: LayerSpec[], opts: { history?: string } = {}): ImageInfo {
    const infos: LayerInfo[] = [];
    let parent: LayerInfo | undefined;
    for (const spec of layers) infos.push((parent = this.addLayer(spec, parent)));
    const diffIds = infos.map((l) => l.diffId);
    const config = Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: { Cmd: ['/bin/sh'], Env: ['PATH=/bin'] },
        created: '2024-01-01T00:00:00Z',
        history: infos.map((_, i) => ({ created: '2024-01-01T00:00:00Z', created_by: `${opts.history ?? 'layer'} ${i}` })),
        rootfs: { type: 'layers', diff_ids: diffIds },
      }),
    );
    const id = `sha256:${sha256Hex(config)}`;
    const configPath = path.join(this.imageDir, 'imagedb/content/sha256', hexOf(id));
    fs.writeFileSync(configPath, config, { mode: 0o600 });
    const meta = path.join(this.imageDir, 'imagedb/metadata/sha256', hexOf(id));
    fs.mkdirSync(meta, { recursive: true, mode: 0o700 });
    fs.writeFileSync(path.join(meta, 'lastUpdated'), '2024-01-01T00:00:00.000000000Z', { mode: 0o600 });
    for (const t of tags) {
      const repo = t.replace(/[:@].*$/, '');
      (this.repositories[repo] ??= {})[t] = id;
    }
    this.writeRepositories();
    const img: ImageInfo = { id, tags, configPath, diffIds, chainIds: infos.map((l) => l.chainId), layers: infos };
    this.images.push(img);
    return img;
  }

  private writeRepositories(): void {
    fs.writeFileSync(path.join(this.imageDir, 'repositories.json'), JSON.stringify({ Repositories: this.repositories }), { mode: 0o600 });
  }

  /**
   * `docker create`: layerdb/mounts/<cid>/{mount-id,init-id,parent}, driver dirs <mount-id>-init (on the
   * image's top layer) and <mount-id> (on the init layer), containers/<cid>/config.v2.json.
   */
  addContainer(name: string, imageId: string): ContainerInfo {
    const img = this.images.find((i) => i.id === imageId);
    if (!img) throw new Error(`no image ${imageId}`);
    const top = img.layers[img.layers.length - 1];
    const id = randomId();
    const mountId = randomId();
    const initId = `${mountId}-init`;
    const init = this.createDriverDir(initId, top?.cacheId);
    fs.mkdirSync(path.join(init.dir, 'diff/etc'), { recursive: true });
    fs.writeFileSync(path.join(init.dir, 'diff/etc/hostname'), '');
    const rw = this.createDriverDir(mountId, initId);
    fs.writeFileSync(path.join(rw.dir, 'diff/written-by-container'), 'rw data\n');
    const mountDir = path.join(this.layerdb, 'mounts', id);
    fs.mkdirSync(mountDir, { mode: 0o755 });
    fs.writeFileSync(path.join(mountDir, 'mount-id'), mountId);
    fs.writeFileSync(path.join(mountDir, 'init-id'), initId);
    if (top) fs.writeFileSync(path.join(mountDir, 'parent'), top.chainId);
    const containerDir = path.join(this.root, 'containers', id);
    fs.mkdirSync(containerDir, { mode: 0o710 });
    fs.writeFileSync(path.join(containerDir, 'config.v2.json'), JSON.stringify({ ID: id, Name: `/${name}`, Image: imageId, Driver: this.driver, State: { Running: false } }), { mode: 0o600 });
    fs.writeFileSync(path.join(containerDir, 'hostconfig.json'), '{}', { mode: 0o600 });
    const c: ContainerInfo = { id, name, imageId, mountId, initId, mountDir, containerDir, mountDriverDir: rw.dir, initDriverDir: init.dir };
    this.containers.push(c);
    return c;
  }

  /** A small healthy store: two images sharing a base, a container on one of them. */
  populate(): { base: ImageInfo; app: ImageInfo; web: ContainerInfo } {
    const base = this.addImage(['busybox:latest'], [{ files: { 'bin/sh': 'busybox\n', 'etc/passwd': 'root:x:0:0::/root:/bin/sh\n' } }]);
    const app = this.addImage(
      ['app:1', 'app:latest'],
      [{ files: { 'bin/sh': 'busybox\n', 'etc/passwd': 'root:x:0:0::/root:/bin/sh\n' } }, { files: { 'app/run.sh': '#!/bin/sh\necho hi\n' } }, { files: { 'app/data.bin': randomBytes(3000) } }],
    );
    const web = this.addContainer('web', app.id);
    return { base, app, web };
  }

  // ---------------------------------------------------------------------------------------------
  // BuildKit

  setBuildkit(mode: BuildkitMode): void {
    const dir = path.join(this.root, 'buildkit');
    fs.rmSync(dir, { recursive: true, force: true });
    if (mode === 'none') return;
    if (mode === 'fixture') {
      fs.cpSync(path.join(BBOLT_FIXTURES, BUILDKIT_FIXTURE, 'buildkit'), dir, { recursive: true });
      return;
    }
    fs.mkdirSync(dir, { mode: 0o711 });
    fs.writeFileSync(path.join(dir, 'snapshots.db'), Buffer.concat([Buffer.from('this is not a bbolt file\n'), randomBytes(8000)]), { mode: 0o600 });
  }

  /** The BuildKit dirs the fixture's snapshots.db names (25-char keys). */
  static buildkitFixtureDirs(): string[] {
    return (JSON.parse(fs.readFileSync(path.join(BBOLT_FIXTURES, BUILDKIT_FIXTURE, 'expected.json'), 'utf8')) as { buildkitDirs: string[] }).buildkitDirs;
  }

  /** A dir BuildKit made with GraphDriver.Create: `diff`, `link`, its l/ link; no layerdb entry. */
  makeBuildkitDir(id = randomBuildkitId()): { id: string; dir: string; linkPath: string } {
    const d = this.createDriverDir(id);
    fs.writeFileSync(path.join(d.dir, 'diff/built'), 'built by buildkit\n');
    return { id, ...d };
  }

  // ---------------------------------------------------------------------------------------------
  // damage: garbage

  /**
   * moby#38488: `docker rmi` renamed the layerdb entry to <chain>-<random>-removing, then driver.Remove
   * failed part way (the link file and l/ link gone, diff/ partly deleted). With `cacheId` the entry
   * names that driver ID and no driver dir is made (e.g. a live layer's cache-id).
   */
  makeRemovingOrphan(opts: { cacheId?: string; driverData?: 'half' | 'none'; cacheIdFile?: string | null } = {}): { dir: string; chainId: string; cacheId: string; driverDir: string } {
    const diffId = `sha256:${sha256Hex(randomBytes(16))}`;
    const chainId = diffId;
    const cacheId = opts.cacheId ?? randomId();
    const dir = path.join(this.layerdb, 'sha256', `${hexOf(chainId)}-${randomId()}-removing`);
    fs.mkdirSync(dir, { mode: 0o700 });
    fs.writeFileSync(path.join(dir, 'diff'), diffId);
    fs.writeFileSync(path.join(dir, 'size'), '512');
    if (opts.cacheIdFile !== null) fs.writeFileSync(path.join(dir, 'cache-id'), opts.cacheIdFile ?? cacheId);
    fs.writeFileSync(path.join(dir, 'tar-split.json.gz'), tarWithSplit({ f: 'x' }).tarSplit);
    const driverDir = this.driverDir(cacheId);
    if (!opts.cacheId && opts.driverData !== 'none') {
      fs.mkdirSync(path.join(driverDir, 'diff/stuff/a'), { recursive: true });
      fs.writeFileSync(path.join(driverDir, 'diff/stuff/a/1.txt'), 'left behind\n');
    }
    return { dir, chainId, cacheId, driverDir };
  }

  /**
   * A killed `docker load`: layerdb/tmp/write-set-<digits>/ with only a tar-split.json.gz header, and
   * (withDriverDir) the driver dir it was filling, with no layerdb entry. With `cacheId` the
   * write-set had got as far as storeLayer and names the driver dir.
   */
  makeWriteSet(opts: { withDriverDir?: boolean; cacheId?: boolean; cacheIdValue?: string } = {}): { dir: string; driverId?: string; driverDir?: string; linkPath?: string } {
    const dir = path.join(this.layerdb, 'tmp', `write-set-${100000000 + Math.floor(Math.random() * 899999999)}`);
    fs.mkdirSync(dir, { mode: 0o700 });
    fs.writeFileSync(path.join(dir, 'tar-split.json.gz'), gzipSync(Buffer.alloc(0)).subarray(0, 10));
    if (opts.cacheIdValue !== undefined) fs.writeFileSync(path.join(dir, 'cache-id'), opts.cacheIdValue);
    if (!opts.withDriverDir) return { dir };
    const id = randomId();
    const d = this.createDriverDir(id, undefined);
    fs.mkdirSync(path.join(d.dir, 'work'));
    fs.writeFileSync(path.join(d.dir, 'diff/big.bin'), randomBytes(20000));
    if (opts.cacheId) {
      fs.writeFileSync(path.join(dir, 'diff'), `sha256:${sha256Hex('partial')}`);
      fs.writeFileSync(path.join(dir, 'size'), '20000');
      fs.writeFileSync(path.join(dir, 'cache-id'), id);
    }
    return { dir, driverId: id, driverDir: d.dir, linkPath: d.linkPath };
  }

  /** A driver dir no layer, mount or BuildKit snapshot names (moby#45939), with its l/ link. */
  makeLeakedDriverDir(opts: { id?: string; init?: boolean } = {}): { id: string; dir: string; linkPath: string } {
    const id = opts.id ?? (opts.init ? `${randomId()}-init` : randomId());
    const d = this.createDriverDir(id);
    fs.writeFileSync(path.join(d.dir, 'diff/leaked.bin'), randomBytes(5000));
    return { id, ...d };
  }

  /** An l/<LID> link whose layer dir does not exist. */
  danglingLink(target = `../${randomId()}/diff`): string {
    const p = path.join(this.links, randomLid());
    fs.symlinkSync(target, p);
    return p;
  }

  /** An unreferenced but valid layer: registered, then its image deleted without its layers. */
  addDanglingLayer(files: Record<string, string> = { 'orphan.txt': randomBytes(8).toString('hex') }, parent?: LayerInfo): LayerInfo {
    return this.addLayer({ files }, parent);
  }

  // ---------------------------------------------------------------------------------------------
  // damage: broken

  /** Power loss after the rename: layerdb/sha256/<hex>/ exists and is empty (moby#44909). */
  emptyLayerDir(chainId?: string): string {
    const dir = chainId ? this.layerDir(chainId) : path.join(this.layerdb, 'sha256', randomId());
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { mode: 0o700 });
    return dir;
  }

  /** `size` with a trailing newline: strconv.ParseInt fails, the layer does not load. */
  breakSize(chainId: string, text?: string): string {
    const p = path.join(this.layerDir(chainId), 'size');
    fs.writeFileSync(p, text ?? `${fs.readFileSync(p, 'utf8')}\n`);
    return p;
  }

  writeLayerFile(chainId: string, name: string, content: string): string {
    const p = path.join(this.layerDir(chainId), name);
    fs.writeFileSync(p, content);
    return p;
  }

  removeLayerFile(chainId: string, name: string): void {
    fs.rmSync(path.join(this.layerDir(chainId), name));
  }

  removeLayerDir(chainId: string): void {
    fs.rmSync(this.layerDir(chainId), { recursive: true });
  }

  /** rm -rf overlay2/<id> by hand; its l/ link stays unless `withLink`. */
  removeDriverDir(id: string, opts: { withLink?: boolean } = {}): void {
    const dir = this.driverDir(id);
    const lid = fs.readFileSync(path.join(dir, 'link'), 'utf8').trim();
    fs.rmSync(dir, { recursive: true });
    if (opts.withLink) fs.rmSync(path.join(this.links, lid));
  }

  removeShortLink(id: string): string {
    const lid = fs.readFileSync(path.join(this.driverDir(id), 'link'), 'utf8').trim();
    const p = path.join(this.links, lid);
    fs.rmSync(p);
    return p;
  }

  writeDriverFile(id: string, name: string, content: string): string {
    const p = path.join(this.driverDir(id), name);
    fs.writeFileSync(p, content);
    return p;
  }

  removeDriverFile(id: string, name: string): void {
    fs.rmSync(path.join(this.driverDir(id), name), { recursive: true });
  }

  /** Change an image config's bytes in place: its name no longer matches (the daemon logs "invalid image"). */
  corruptImageConfig(imageId: string): string {
    const p = path.join(this.imageDir, 'imagedb/content/sha256', hexOf(imageId));
    fs.appendFileSync(p, ' ');
    return p;
  }

  /** Store an image config as given (its name is the sha256 of these exact bytes). */
  writeImageConfig(config: string): { id: string; path: string } {
    const id = `sha256:${sha256Hex(config)}`;
    const p = path.join(this.imageDir, 'imagedb/content/sha256', hexOf(id));
    fs.writeFileSync(p, config, { mode: 0o600 });
    return { id, path: p };
  }

  writeRepositoriesRaw(text: string): string {
    const p = path.join(this.imageDir, 'repositories.json');
    fs.writeFileSync(p, text);
    return p;
  }

  writeMountFile(containerId: string, name: string, content: string): string {
    const p = path.join(this.layerdb, 'mounts', containerId, name);
    fs.writeFileSync(p, content);
    return p;
  }

  // ---------------------------------------------------------------------------------------------
  // damage: hostile

  /** layerdb/sha256/<chain>-<rand>-removing as a symlink to a folder outside the data root. */
  removingSymlinkOutside(): { path: string; target: string } {
    const target = path.join(this.outside, 'sub');
    const p = path.join(this.layerdb, 'sha256', `${randomId()}-${randomId()}-removing`);
    fs.symlinkSync(target, p);
    return { path: p, target };
  }

  /** A symlink in the driver home where a layer dir belongs, pointing out of the data root. */
  driverSymlinkOutside(name = randomId()): { path: string; target: string } {
    const p = path.join(this.home, name);
    fs.symlinkSync(this.outside, p);
    return { path: p, target: this.outside };
  }

  /** An l/<LID> link to an absolute path outside (e.g. /etc). */
  shortLinkTo(target: string): string {
    const p = path.join(this.links, randomLid());
    fs.symlinkSync(target, p);
    return p;
  }

  // ---------------------------------------------------------------------------------------------
  // misc

  /**
   * A process the daemon check takes for a dockerd on this root: a shell script named `dockerd`
   * (so /proc/<pid>/comm is "dockerd") started with `--data-root <root>`. It runs nothing else.
   */
  async startFakeDockerd(): Promise<{ pid: number; stop: () => void }> {
    const bin = path.join(this.base, 'fake-bin');
    fs.mkdirSync(bin, { recursive: true });
    const script = path.join(bin, 'dockerd');
    fs.writeFileSync(script, '#!/bin/sh\nwhile :; do sleep 1; done\n', { mode: 0o755 });
    const child = spawn(script, ['--data-root', this.root], { stdio: 'ignore', detached: false });
    const pid = child.pid!;
    for (let i = 0; i < 200; i++) {
      let comm = '';
      try {
        comm = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      } catch {
        /* not yet */
      }
      if (comm === 'dockerd') break;
      await new Promise((r) => setTimeout(r, 10));
    }
    return {
      pid,
      stop: () => {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone already */
        }
      },
    };
  }

  /** Set a path's mtime (and atime) to `secondsAgo` in the past, recursively. */
  age(p: string, secondsAgo: number): void {
    const t = new Date(Date.now() - secondsAgo * 1000);
    const walk = (q: string) => {
      const st = fs.lstatSync(q);
      if (st.isDirectory()) for (const n of fs.readdirSync(q)) walk(path.join(q, n));
      if (!st.isSymbolicLink()) fs.utimesSync(q, t, t);
    };
    walk(p);
  }
}

export function syntheticRoot(opts: SyntheticOptions = {}): SyntheticRoot {
  return new SyntheticRoot(opts);
}

// ------------------------------------------------------------------------------------------------
// tree snapshots

export interface SnapshotOptions {
  /** include directory mtimes and sizes (a byte-for-byte check); off to compare structure and content */
  dirTimes?: boolean;
  /** relative paths (prefixes) left out */
  exclude?: string[];
}

/** Every path under `root` (relative) -> lstat type, mode, size, mtime, content hash or link target. */
export function snapshotTree(root: string, opts: SnapshotOptions = {}): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string) => {
    if (opts.exclude?.some((e) => rel === e || rel.startsWith(`${e}/`))) return;
    const p = rel ? path.join(root, rel) : root;
    const st = fs.lstatSync(p);
    const mode = `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
    if (st.isSymbolicLink()) out.set(rel, `link ${mode} ${fs.readlinkSync(p)}${opts.dirTimes ? ` ${st.mtimeMs}` : ''}`);
    else if (st.isFile()) out.set(rel, `file ${mode} ${st.size} ${st.mtimeMs} ${sha256Hex(fs.readFileSync(p))}`);
    else if (st.isDirectory()) {
      out.set(rel, `dir ${mode}${opts.dirTimes ? ` ${st.size} ${st.mtimeMs}` : ''}`);
      for (const n of fs.readdirSync(p).sort()) walk(rel ? `${rel}/${n}` : n);
    } else out.set(rel, `other ${mode} ${st.mode}`);
  };
  walk('');
  return out;
}

/** Paths that differ between two snapshots, for readable assertion failures. */
export function diffSnapshots(a: Map<string, string>, b: Map<string, string>): { onlyBefore: string[]; onlyAfter: string[]; changed: string[] } {
  const onlyBefore = [...a.keys()].filter((k) => !b.has(k)).sort();
  const onlyAfter = [...b.keys()].filter((k) => !a.has(k)).sort();
  const changed = [...a.keys()].filter((k) => b.has(k) && a.get(k) !== b.get(k)).sort();
  return { onlyBefore, onlyAfter, changed };
}

// ------------------------------------------------------------------------------------------------
// the real CLI

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout parsed, when the command was asked for JSON and printed some */
  json?: any;
}

export interface CliOptions {
  env?: Record<string, string>;
  /** validate JSON output against docs/<schema>.schema.json (default: from the command) */
  schema?: SchemaKind | false;
  cwd?: string;
  input?: string;
}

function cliEnv(opts: CliOptions): Record<string, string> {
  const env: Record<string, string> = { ...(process.env as Record<string, string>), NO_COLOR: '1', ...(opts.env ?? {}) };
  if (!opts.env?.LAYERGC_TEST_CRASH_AT) delete env.LAYERGC_TEST_CRASH_AT;
  return env;
}

function finish(args: string[], opts: CliOptions, res: CliResult): CliResult {
  const wantsJson = args.includes('--json') || args.includes('--format=json') || (args.includes('--format') && args[args.indexOf('--format') + 1] === 'json');
  if (wantsJson && res.stdout.trim()) {
    res.json = JSON.parse(res.stdout);
    const kind: SchemaKind | false =
      opts.schema ??
      (args[0] === 'purge' ? 'purge' : args[0] === 'scan' || args[0] === 'verify' ? 'scan' : args[0] === 'df' ? 'df' : args[0] === 'restore' ? 'restore' : args[0] === 'explain' ? 'explain' : false);
    if (kind) expectValid(kind, res.json);
  }
  return res;
}

/**
 * `node bin/layergc.js <args>` with NO_COLOR, no terminal and no crash point unless given. JSON
 * output is parsed and checked against the published schema, so every test's output is validated.
 */
export function runCli(args: string[], opts: CliOptions = {}): CliResult {
  const r = spawnSync(process.execPath, [BIN, ...args], { env: cliEnv(opts), encoding: 'utf8', cwd: opts.cwd ?? REPO, input: opts.input ?? '', timeout: 60_000 });
  return finish(args, opts, { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr });
}

/** runCli without blocking, so tests can run side by side. */
export function runCliAsync(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: cliEnv(opts), cwd: opts.cwd ?? REPO, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      try {
        resolve(finish(args, opts, { code, signal, stdout, stderr }));
      } catch (err) {
        reject(err);
      }
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** `scan --data-root <root> --json` */
export function scan(root: string, extra: string[] = []): Promise<CliResult> {
  return runCliAsync(['scan', '--data-root', root, '--json', ...extra]);
}

/**
 * A maker of synthetic roots for one test file: every root it made is removed after the file's
 * tests. With `populate`, each starts with the healthy sample content.
 */
export function rootMaker(defaults: { populate?: boolean } = {}): (opts?: SyntheticOptions) => SyntheticRoot {
  const made: SyntheticRoot[] = [];
  afterAll(() => {
    for (const r of made) r.cleanup();
  });
  return (opts = {}) => {
    const r = new SyntheticRoot(opts);
    made.push(r);
    if (defaults.populate) r.populate();
    return r;
  };
}
