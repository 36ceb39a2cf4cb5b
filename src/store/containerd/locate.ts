// Where Docker's containerd image store is: a managed containerd (<data-root>/containerd/daemon), or
// the system one (root from /etc/containerd/config.toml, default /var/lib/containerd), or
// --containerd-root. And who holds it now: containerd or dockerd processes, bbolt's flock, mounts.
import { readFileSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { lstatOrNull, listDir } from '../../fsx/read.js';
import { ExitCode, LayergcError } from '../../errors.js';
import { resolveDataRoot, type LocateOptions } from '../locate.js';
import { findDaemons, flagValue } from '../daemon.js';
import { trimSpace } from '../digest.js';
import { containerdDaemonDir, containersDir, imageRoot, layerdbOf, remapOf } from '../../layout.js';
import { MountTable } from '../../fsx/mounts.js';
import type { ContainerdLocation, Holder } from './model.js';

export const SYSTEM_CONTAINERD_CONFIG = '/etc/containerd/config.toml';
export const DEFAULT_CONTAINERD_ROOT = '/var/lib/containerd';
const META_DB = 'io.containerd.metadata.v1.bolt/meta.db';
const OVERLAYFS = 'io.containerd.snapshotter.v1.overlayfs';
const CONTENT = 'io.containerd.content.v1.content';

/** Top-level `root = "…"` of a containerd config.toml (before any [table]). */
export function tomlRoot(text: string): string | undefined {
  for (const line of text.split('\n')) {
    const l = line.trim();
    if (l.startsWith('[')) break;
    const m = /^root\s*=\s*(?:"([^"]*)"|'([^']*)')/.exec(l);
    if (m) return m[1] ?? m[2];
  }
  return undefined;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** The system containerd's root: its config.toml's root, else /var/lib/containerd. */
export function systemContainerdRoot(configFile = SYSTEM_CONTAINERD_CONFIG): { root: string; note: string; text?: string } {
  const text = readText(configFile);
  const root = text ? tomlRoot(text) : undefined;
  return root ? { root, note: `containerd root from ${configFile}`, text } : { root: DEFAULT_CONTAINERD_ROOT, note: 'default system containerd root', text };
}

/** Whether the data root's images live in layerdb (graph drivers) or in containerd's image store. */
export async function storeKind(opts: LocateOptions): Promise<'graph' | 'containerd'> {
  if (opts.containerdRoot) return 'containerd';
  const { real, config } = await resolveDataRoot(opts);
  if (config.features?.['containerd-snapshotter'] === true) return 'containerd';
  for (const e of await listDir(imageRoot(real)).catch(() => [])) {
    if (e.stat.isDirectory() && (await lstatOrNull(layerdbOf(e.path)))?.isDirectory()) return 'graph';
  }
  if ((await lstatOrNull(containerdDaemonDir(real)))?.isDirectory()) return 'containerd';
  // Docker 29 with the packaged units: no layerdb, the store is the system containerd's
  const looksDocker = (await lstatOrNull(containersDir(real)))?.isDirectory() || (await lstatOrNull(`${real}/engine-id`))?.isFile();
  if (looksDocker && config.features?.['containerd-snapshotter'] !== false && (await lstatOrNull(`${systemContainerdRoot().root}/${META_DB}`))) return 'containerd';
  return 'graph'; // locate() says why it is not a data root
}

export async function locateContainerd(opts: LocateOptions): Promise<ContainerdLocation> {
  const { real: dataRoot, config, configFile, notes } = await resolveDataRoot(opts);
  let root: string;
  let managed = false;
  let tomlText: string | undefined;
  if (opts.containerdRoot) {
    root = opts.containerdRoot.startsWith('/') ? opts.containerdRoot : `${process.cwd()}/${opts.containerdRoot}`;
    notes.push('containerd root from --containerd-root');
  } else if (!config.containerd && (await lstatOrNull(containerdDaemonDir(dataRoot)))?.isDirectory()) {
    root = containerdDaemonDir(dataRoot);
    managed = true;
    notes.push('managed containerd (<data-root>/containerd/daemon)');
  } else {
    const sys = systemContainerdRoot();
    root = sys.root;
    tomlText = sys.text;
    notes.push(config.containerd ? `system containerd (${config.containerd} in ${configFile}); ${sys.note}` : `system containerd; ${sys.note}`);
  }
  try {
    root = realpathSync(root);
  } catch (err) {
    throw new LayergcError(
      `${dataRoot} uses the containerd image store but containerd's root ${root} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); pass --containerd-root`,
    );
  }
  const metaDb = `${root}/${META_DB}`;
  if (!(await lstatOrNull(metaDb))?.isFile()) {
    throw new LayergcError(`${dataRoot} uses the containerd image store but ${root} has no ${META_DB}: a containerd layout layergc does not know`, ExitCode.UNSUPPORTED);
  }
  // A moved snapshotter (root_path) is a layout layergc has not been shown.
  if (tomlText && /root_path\s*=/.test(tomlText)) {
    throw new LayergcError(`${SYSTEM_CONTAINERD_CONFIG} sets a plugin root_path: a containerd layout layergc does not handle`, ExitCode.UNSUPPORTED);
  }
  const driver = config['storage-driver'];
  if (driver && driver !== 'overlayfs' && driver !== 'overlay2') {
    throw new LayergcError(`storage-driver ${driver} with the containerd image store uses a snapshotter layergc does not handle (only overlayfs)`, ExitCode.UNSUPPORTED);
  }
  const remap = remapOf(dataRoot)?.subdir;
  const suffix = config['userns-remap'] && remap ? `-${remap}` : '';
  const ns = config['containerd-namespace'] ?? `moby${suffix}`;
  const pluginNs = config['containerd-plugin-namespace'] ?? `plugins.moby${suffix}`;
  const pidFiles = managed ? ['/var/run/docker/containerd/containerd.pid'] : ['/run/containerd/containerd.pid'];
  return {
    dataRoot,
    root,
    managed,
    metaDb,
    snapshotter: 'overlayfs',
    snapshotterRoot: `${root}/${OVERLAYFS}`,
    contentRoot: `${root}/${CONTENT}`,
    mobyNamespaces: [ns, pluginNs, 'moby_history'],
    pidFiles,
    configFile,
    notes,
  };
}

function realOr(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

/** The root a containerd process uses: --root, else its --config's root, else the default. */
export function containerdProcessRoot(args: string[]): string {
  const flag = flagValue(args, ['--root']);
  if (flag) return realOr(flag);
  const cfg = flagValue(args, ['--config', '-c']) ?? SYSTEM_CONTAINERD_CONFIG;
  const text = readText(cfg);
  return realOr((text && tomlRoot(text)) ?? DEFAULT_CONTAINERD_ROOT);
}

/** `major:minor:inode` as /proc/locks prints it (hex device numbers). */
function lockId(path: string): string | undefined {
  try {
    const st = statSync(path, { bigint: true });
    const dev = st.dev;
    const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
    const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
    return `${major.toString(16).padStart(2, '0')}:${minor.toString(16).padStart(2, '0')}:${st.ino}`;
  } catch {
    return undefined;
  }
}

/** Everything that holds the store now: a purge needs none (exit 3). `ignore`: layergc's own lock holder. */
export function findHolders(loc: ContainerdLocation, procDir = '/proc', ignore: ReadonlySet<number> = new Set()): Holder[] {
  const holders: Holder[] = [];
  for (const p of findDaemons(loc.dataRoot, procDir).processes) holders.push({ what: `dockerd (pid ${p.pid}) on ${p.dataRoot}`, pid: p.pid });
  let pids: string[] = [];
  try {
    pids = readdirSync(procDir).filter((n) => /^\d+$/.test(n));
  } catch {
    /* no /proc */
  }
  for (const p of pids) {
    try {
      if (trimSpace(readFileSync(`${procDir}/${p}/comm`, 'utf8')) !== 'containerd') continue;
      const args = readFileSync(`${procDir}/${p}/cmdline`, 'utf8').split('\0').filter(Boolean);
      if (containerdProcessRoot(args.slice(1)) === loc.root) holders.push({ what: `containerd (pid ${p}) with root ${loc.root}`, pid: Number(p) });
    } catch {
      /* ended while we looked */
    }
  }
  for (const f of loc.pidFiles) {
    const pid = Number(trimSpace(readText(f) ?? ''));
    if (pid > 0 && !holders.some((h) => h.pid === pid) && trimSpace(readText(`${procDir}/${pid}/comm`) ?? '') === 'containerd') {
      holders.push({ what: `containerd (pid ${pid}) from ${f}`, pid });
    }
  }
  const ids = new Map<string, string>();
  for (const f of [loc.metaDb, `${loc.snapshotterRoot}/metadata.db`]) {
    const id = lockId(f);
    if (id) ids.set(id, f);
  }
  for (const line of (readText(`${procDir}/locks`) ?? '').split('\n')) {
    const f = line.trim().split(/\s+/);
    // "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"
    const file = ids.get(f[5] ?? '');
    if (file && f[1] === 'FLOCK') holders.push({ what: `a lock on ${file} (pid ${f[4]})`, pid: Number(f[4]) });
  }
  const mounts = MountTable.read();
  for (const m of [...mounts.under(loc.snapshotterRoot), ...mounts.under(`${loc.dataRoot}/rootfs`)]) holders.push({ what: `a mount at ${m}` });
  return holders.filter((h) => h.pid === undefined || !ignore.has(h.pid));
}
