// btrfs: home/subvolumes/<id> is a btrfs subvolume (a child layer is a snapshot of its parent, so
// it holds the whole tree); home/quotas/<id> holds a size limit when one was set.
// Layout facts: daemon/graphdriver/btrfs/btrfs.go.
import { statfs } from 'node:fs/promises';
import { fs } from '../fsx/fs.js';
import { listDir, lstatOrNull } from '../fsx/read.js';
import { RemovalFailed, type Remover } from '../fsx/remove.js';
import { findTool, runTool } from '../fsx/tools.js';
import type { DriverEntry } from './types.js';
import { DirPerLayerDriver } from './base.js';
import { stageAndDelete } from './stage.js';
import type { Stats } from 'node:fs';

const BTRFS_SUPER_MAGIC = 0x9123683e;
/** A subvolume's root directory always has this inode number (BTRFS_FIRST_FREE_OBJECTID). */
const SUBVOL_ROOT_INO = 256;

export interface BtrfsOptions {
  /** Path of the btrfs CLI; null means "act as if it is not installed". Found on PATH when absent. */
  btrfsCli?: string | null;
}

export class BtrfsDriver extends DirPerLayerDriver {
  readonly name = 'btrfs';
  readonly removal = 'tool' as const;
  readonly removalNote =
    'btrfs layers are subvolumes: layergc deletes them with `btrfs subvolume delete` (btrfs-progs), or file by file and an rmdir of the emptied subvolume (Linux >= 4.18) when the CLI is missing, which cannot get past a nested subvolume; the qgroup of a size limit is left (`btrfs qgroup clear-stale <mount>` drops it)';
  readonly quotas: string;
  private cli: Promise<string | null> | undefined;

  constructor(
    home: string,
    private readonly opts: BtrfsOptions = {},
  ) {
    super(home, { layersDir: `${home}/subvolumes`, label: 'subvolumes/', noun: 'a subvolume' });
    this.quotas = `${home}/quotas`;
  }

  private btrfsCli(): Promise<string | null> {
    if (this.opts.btrfsCli !== undefined) return Promise.resolve(this.opts.btrfsCli);
    return (this.cli ??= findTool('btrfs'));
  }

  /** Subvolumes, then quota files whose subvolume is gone (leftovers of an interrupted Remove). */
  override async listEntries(): Promise<DriverEntry[]> {
    const out = await super.listEntries();
    const seen = new Set(out.filter((e) => !e.staged).map((e) => e.id));
    for (const e of await listDir(this.quotas)) {
      if (!seen.has(e.name)) out.push({ id: e.name, path: e.path, stat: e.stat, staged: false });
    }
    return out;
  }

  override async pathsOf(id: string): Promise<string[]> {
    const out: string[] = [];
    for (const p of [this.dirOf(id), `${this.quotas}/${id}`]) if (await lstatOrNull(p)) out.push(p);
    return out;
  }

  override async checkLayer(id: string): Promise<string[]> {
    const problems = await super.checkLayer(id);
    if (problems.length) return problems;
    const dir = this.dirOf(id);
    const st = await lstatOrNull(dir);
    if (st && (await onBtrfs(dir)) && st.ino !== SUBVOL_ROOT_INO) {
      return [`subvolumes/${id} is a plain directory, not a btrfs subvolume (snapshots of it, that is child layers and containers, cannot be created)`];
    }
    return [];
  }

  /** A snapshot holds the whole tree of the layer, parents' files included: contentRoots is the subvolume. */
  override async remove(id: string, rm: Remover): Promise<void> {
    // like moby, the quota file goes before the subvolume
    const quota = `${this.quotas}/${id}`;
    const qst = await lstatOrNull(quota);
    if (qst?.isDirectory()) await rm.removeTree(quota);
    else if (qst) await rm.unlink(quota);
    // rename(2) moves a subvolume like a directory
    await stageAndDelete(this.dirOf(id), rm, { del: (p, st) => this.deleteStaged(p, st, rm) });
  }

  private async deleteStaged(path: string, st: Stats, rm: Remover): Promise<void> {
    if (!st.isDirectory()) return rm.removeTree(path); // removeTree unlinks a non-directory itself
    const cli = await this.btrfsCli();
    if (!cli || st.ino !== SUBVOL_ROOT_INO || !(await onBtrfs(path, rm.dryRun))) return rm.removeTree(path);
    await this.deleteSubvolume(cli, path, rm);
  }

  /**
   * `btrfs subvolume delete`, behind the Remover's checks. A subvolume with subvolumes nested inside
   * cannot be destroyed ("Directory not empty"): those go first, deepest first, as moby's subvolDelete does.
   */
  private async deleteSubvolume(cli: string, path: string, rm: Remover): Promise<void> {
    await rm.removeTreeWith(path, async () => {
      const dev = (await lstatOrNull(path))?.dev;
      let err = await this.runDelete(cli, path);
      if (err && /not empty/i.test(err) && dev !== undefined) {
        for (const nested of nestedSubvolumes(path, dev)) await this.deleteSubvolume(cli, nested, rm);
        err = await this.runDelete(cli, path);
      }
      if (err) throw new RemovalFailed([{ path, code: 'BTRFS', message: `btrfs subvolume delete failed: ${err}` }]);
    });
  }

  private async runDelete(cli: string, path: string): Promise<string | null> {
    const r = await runTool(cli, ['subvolume', 'delete', path], 120_000);
    return r.ok ? null : r.error;
  }
}

async function onBtrfs(path: string, orParent = false): Promise<boolean> {
  try {
    return (await statfs(path)).type === BTRFS_SUPER_MAGIC;
  } catch {
    if (!orParent) return false;
    try {
      return (await statfs(path.slice(0, path.lastIndexOf('/')))).type === BTRFS_SUPER_MAGIC;
    } catch {
      return false;
    }
  }
}

/**
 * Subvolume roots nested anywhere below `root` (whose st_dev is `dev`), each reported once and not
 * descended into, since deleting it takes what is below. Never follows a symlink.
 */
function nestedSubvolumes(root: string, dev: number): string[] {
  const out: string[] = [];
  const stack = [root];
  while (stack.length) {
    const dir = stack.pop()!;
    let names: string[];
    try {
      names = fs.readdirSync(dir) as string[];
    } catch {
      continue;
    }
    for (const n of names) {
      const p = `${dir}/${n}`;
      let st;
      try {
        st = fs.lstatSync(p);
      } catch {
        continue;
      }
      if (!st.isDirectory()) continue;
      if (st.dev !== dev) {
        if (st.ino === SUBVOL_ROOT_INO) out.push(p);
        continue; // anything else on another device is a mount; Remover refused those already
      }
      stack.push(p);
    }
  }
  return out;
}
