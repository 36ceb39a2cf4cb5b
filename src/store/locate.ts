// Where the store is: data root (flag, daemon config, default), userns-remap subdir, driver
// (flag, daemon config, detection), and whether it is a layout layergc handles at all.
import type { Stats } from 'node:fs';
import { fs } from '../fsx/fs.js';
import { listDir, lstatOrNull, readSmallFileSync } from '../fsx/read.js';
import { ExitCode, LayergcError } from '../errors.js';
import { KNOWN_DRIVERS } from '../drivers/registry/index.js';
import type { StoreLocation } from './model.js';
import { DEFAULT_DATA_ROOT, readDaemonConfig, type DaemonConfig } from './daemon-config.js';
import { containerdDaemonDir, imageRoot, layerdbOf, REMAP_SUBDIR, storePaths } from '../layout.js';

export interface LocateOptions {
  dataRoot?: string;
  driver?: string;
  daemonConfig?: string;
  containerdRoot?: string;
}

/** <uid>.<gid> of the userns-remap subordinate ranges, as daemon_unix.go names the subdir. */
function remapSubdir(spec: string): string | undefined {
  const [user, group] = (spec === 'default' ? 'dockremap' : spec).split(':');
  const first = (file: string, name: string): string | undefined => {
    try {
      const f = readSmallFileSync(file);
      for (const line of (f.state === 'ok' ? f.text : '').split('\n')) {
        const [n, start] = line.split(':');
        if (n === name && start) return start;
      }
    } catch {
      /* no such file */
    }
    return undefined;
  };
  const uid = first('/etc/subuid', user);
  const gid = first('/etc/subgid', group ?? user);
  return uid && gid ? `${uid}.${gid}` : undefined;
}

export interface DataRoot {
  real: string;
  config: DaemonConfig;
  configFile?: string;
  notes: string[];
}

/** The data root (flag, daemon config, default), as a real path, with the userns-remap subdir. */
export async function resolveDataRoot(opts: LocateOptions): Promise<DataRoot> {
  const notes: string[] = [];
  const { config, path: configFile } = readDaemonConfig(opts.daemonConfig);
  let root = opts.dataRoot ?? config['data-root'] ?? config.graph ?? DEFAULT_DATA_ROOT;
  notes.push(opts.dataRoot ? 'data root from --data-root' : config['data-root'] || config.graph ? `data root from ${configFile}` : 'default data root');
  if (!root.startsWith('/')) root = `${process.cwd()}/${root}`;

  let st: Stats | null;
  try {
    st = await lstatOrNull(root);
  } catch (err) {
    throw err instanceof LayergcError ? err : new LayergcError(`${root} cannot be read: ${(err as Error).message}`);
  }
  if (!st) throw new LayergcError(`${root} does not exist: not a Docker data root (pass --data-root)`);
  let real: string;
  try {
    real = await fs.realpath(root);
  } catch (err) {
    throw new LayergcError(`${root} cannot be resolved: ${(err as Error).message}`);
  }
  const rst = await fs.stat(real);
  if (!rst.isDirectory()) throw new LayergcError(`${root} is not a directory: not a Docker data root`);

  if (config['userns-remap'] && !opts.dataRoot) {
    const sub = remapSubdir(config['userns-remap']);
    const candidates = (await listDir(real)).filter((e) => REMAP_SUBDIR.test(e.name) && e.stat.isDirectory()).map((e) => e.name);
    const pick = sub && candidates.includes(sub) ? sub : candidates.length === 1 ? candidates[0] : undefined;
    if (!pick) throw new LayergcError(`userns-remap is set in ${configFile} but no single <uid>.<gid> data root was found in ${real} (found: ${candidates.join(', ') || 'none'}); pass --data-root`);
    real = `${real}/${pick}`;
    notes.push(`userns-remap: using ${pick}`);
  }
  return { real, config, configFile, notes };
}

export async function locate(opts: LocateOptions): Promise<StoreLocation> {
  const dr = await resolveDataRoot(opts);
  const { config, configFile, notes } = dr;
  const real = dr.real;

  if (config.features?.['containerd-snapshotter'] === true) {
    throw new LayergcError(
      `${configFile} turns on the containerd image store (features.containerd-snapshotter): images live in containerd's snapshotter, not in image/<driver>/layerdb; layergc scan, verify and explain read that store, this command does not`,
      ExitCode.UNSUPPORTED,
    );
  }

  const withLayerdb: string[] = [];
  try {
    await fs.readdir(real);
    for (const e of await listDir(imageRoot(real))) {
      if (e.stat.isDirectory() && (await lstatOrNull(layerdbOf(e.path)))?.isDirectory()) withLayerdb.push(e.name);
    }
  } catch (err) {
    throw new LayergcError(`${real} cannot be read: ${(err as Error).message}`);
  }
  withLayerdb.sort();
  const containerdStore = !!(await lstatOrNull(containerdDaemonDir(real)))?.isDirectory();

  if (withLayerdb.length === 0) {
    if (containerdStore) {
      throw new LayergcError(
        `${real} uses the containerd image store (containerd/daemon, no image/<driver>/layerdb), as Docker 29 does on new installs; layergc scan, verify and explain read that store, this command does not`,
        ExitCode.UNSUPPORTED,
      );
    }
    throw new LayergcError(`${real} is not a Docker data root: it has no image/<driver>/layerdb`);
  }

  let driver = opts.driver ?? config['storage-driver'];
  if (driver) notes.push(opts.driver ? 'driver from --driver' : `driver from ${configFile}`);
  if (!driver) {
    if (withLayerdb.length > 1) {
      throw new LayergcError(`${real} has layer stores for several drivers (${withLayerdb.join(', ')}); pass --driver to say which one the daemon uses`);
    }
    driver = withLayerdb[0];
    notes.push('driver detected from image/<driver>/layerdb');
  }
  if (!KNOWN_DRIVERS.includes(driver)) {
    throw new LayergcError(`storage driver "${driver}" is not one layergc knows (${KNOWN_DRIVERS.join(', ')})`, ExitCode.UNSUPPORTED);
  }
  if (!withLayerdb.includes(driver)) {
    throw new LayergcError(`${real} has no layer store for driver ${driver} (image/${driver}/layerdb); found: ${withLayerdb.join(', ')}`);
  }
  if (containerdStore) notes.push('containerd/daemon exists too; the graph-driver store is the one read');
  return { dataRoot: real, driver, ...storePaths(real, driver), configFile, notes };
}
