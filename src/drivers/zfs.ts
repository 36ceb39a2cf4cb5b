// zfs: each layer is a dataset <fsname>/<id> (a child is a clone of a snapshot of its parent),
// mounted on demand at home/graph/<id>. fsname is the zfs.fsname option or, by default, the dataset
// mounted at the data root. Layout facts: daemon/graphdriver/zfs/{zfs.go,zfs_linux.go}.
import type { Stats } from 'node:fs';
import { ExitCode, LayergcError } from '../errors.js';
import { listDir, lstatOrNull } from '../fsx/read.js';
import { MountTable } from '../fsx/mounts.js';
import { shellQuote } from '../escape.js';
import type { Remover } from '../fsx/remove.js';
import { findTool, runTool } from '../fsx/tools.js';
import type { DriverEntry } from './types.js';
import { DriverBase } from './base.js';
import { isDockerLayerName } from '../layout.js';

export interface ZfsOptions {
  /** Path of the zfs CLI; null means "act as if it is not installed". Found on PATH when absent. */
  zfsCli?: string | null;
  /** The daemon's zfs.fsname storage option, when its config sets one. */
  fsname?: string;
  /** mountinfo to read instead of /proc/self/mountinfo (tests). */
  mountinfo?: string;
}

type DatasetView = { state: 'listed'; fsname: string; ids: Set<string> } | { state: 'unknown'; why: string; fsname?: string };

export class ZfsDriver extends DriverBase {
  readonly name = 'zfs';
  readonly removal = 'report-only' as const;
  /** Datasets show under graph/ only while mounted. */
  override readonly dataVisibleOffline = false;
  readonly graph: string;
  private view: Promise<DatasetView> | undefined;
  private known: DatasetView | undefined;

  constructor(
    home: string,
    private readonly opts: ZfsOptions = {},
  ) {
    super(home);
    this.graph = `${home}/graph`;
  }

  get removalNote(): string {
    const v = this.known;
    const target = v?.fsname ? `${v.fsname}/<id>` : '<fsname>/<id>';
    const base = `zfs layers are datasets, which only the zfs CLI on the pool's host can destroy; layergc reports them: run \`zfs destroy -r ${target}\``;
    if (v?.state === 'listed') return base;
    return `${base} (${v ? v.why : 'the datasets were not listed'}; fsname is the zfs.fsname storage option, or the dataset mounted at the data root)`;
  }

  /** What `zfs list` says lives under fsname, read once; never throws. */
  datasets(): Promise<DatasetView> {
    return (this.view ??= this.listDatasets().then((v) => (this.known = v)));
  }

  private async listDatasets(): Promise<DatasetView> {
    const cli = this.opts.zfsCli !== undefined ? this.opts.zfsCli : await findTool('zfs');
    const fsname = this.opts.fsname ?? (await this.datasetOfRoot());
    if (!cli) return { state: 'unknown', why: 'the zfs CLI is not installed here', fsname };
    if (!fsname) return { state: 'unknown', why: `no zfs dataset is mounted at ${parentOf(this.home)}` };
    const r = await runTool(cli, ['list', '-H', '-o', 'name', '-t', 'filesystem', '-r', fsname], 30_000);
    if (!r.ok) return { state: 'unknown', why: `zfs list ${fsname} failed: ${r.error}`, fsname };
    const ids = new Set<string>();
    for (const name of r.stdout.split('\n')) {
      if (!name.startsWith(`${fsname}/`)) continue;
      const id = name.slice(fsname.length + 1);
      if (isDockerLayerName(id)) ids.add(id);
    }
    return { state: 'listed', fsname, ids };
  }

  /** The source of the zfs mount whose device is the data root's, as moby's lookupZfsDataset finds it. */
  private async datasetOfRoot(): Promise<string | undefined> {
    const root = await lstatOrNull(parentOf(this.home)).catch(() => null);
    if (!root) return undefined;
    for (const m of MountTable.read(this.opts.mountinfo).entries) {
      if (m.fstype !== 'zfs' || !m.source) continue;
      const st = m.point ? await lstatOrNull(m.point).catch(() => null) : null;
      if (st && st.dev === root.dev) return m.source;
    }
    return undefined;
  }

  /**
   * graph/ mount point dirs, and the datasets `zfs list` names when the CLI works. A dataset with no
   * dir under graph/ carries the stat of graph/ (or the home): it has no inode of its own here.
   */
  async listEntries(): Promise<DriverEntry[]> {
    const out: DriverEntry[] = [];
    const seen = new Set<string>();
    for (const e of await listDir(this.graph)) {
      if (!e.stat.isDirectory() && !e.stat.isSymbolicLink()) continue;
      seen.add(e.name);
      out.push({ id: e.name, path: e.path, stat: e.stat, staged: false });
    }
    const v = await this.datasets();
    if (v.state === 'listed') {
      let stand: Stats | null | undefined;
      for (const id of [...v.ids].sort()) {
        if (seen.has(id)) continue;
        stand ??= (await lstatOrNull(this.graph)) ?? (await lstatOrNull(this.home));
        if (stand) out.push({ id, path: this.dirOf(id), stat: stand, staged: false });
      }
    }
    return out;
  }

  /** The mount point of the dataset; it exists only while (or after) the layer is mounted. */
  dirOf(id: string): string {
    return `${this.graph}/${id}`;
  }

  async pathsOf(id: string): Promise<string[]> {
    return (await lstatOrNull(this.dirOf(id))) ? [this.dirOf(id)] : [];
  }

  /** Only a listed pool can say a dataset is missing; without the CLI nothing is known. */
  async checkLayer(id: string): Promise<string[]> {
    const v = await this.datasets();
    if (v.state === 'listed' && !v.ids.has(id)) return [`zfs dataset ${v.fsname}/${id} does not exist`];
    return [];
  }

  /** Content is readable only while the dataset is mounted at graph/<id>; an empty dir says nothing. */
  override async contentRoots(id: string): Promise<string[]> {
    const dir = this.dirOf(id);
    return MountTable.read(this.opts.mountinfo).isMountPoint(dir) ? [dir] : [];
  }

  async remove(id: string, _rm: Remover): Promise<void> {
    const v = await this.datasets();
    const ds = v.fsname ? (shellQuote(`${v.fsname}/${id}`) ?? '<dataset>') : `<fsname>/${id}`;
    throw new LayergcError(`zfs layer ${id} is not removed by layergc (report-only): run \`zfs destroy -r ${ds}\` on the host${v.state === 'unknown' ? ` (${v.why})` : ''}`, ExitCode.UNSUPPORTED);
  }
}

function parentOf(path: string): string {
  return path.slice(0, path.lastIndexOf('/')) || '/';
}
