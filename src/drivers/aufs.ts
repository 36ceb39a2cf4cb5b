// aufs (Docker <= 23): home/diff/<id>/ holds the layer's own files with aufs whiteouts on disk,
// home/mnt/<id>/ is its mount point, home/layers/<id> lists its parent IDs, direct parent first.
// Layout facts: daemon/graphdriver/aufs/{aufs.go,dirs.go}.
import { listDir, lstatOrNull, readSmallFile } from '../fsx/read.js';
import type { Remover } from '../fsx/remove.js';
import type { DriverEntry } from './types.js';
import { DriverBase } from './base.js';
import { stageAndDelete } from './stage.js';
import { MOBY_REMOVING_SUFFIX } from '../layout.js';

/** aufs's own staging name (atomicRemove); aufs deletes diff/*-removing and mnt/*-removing at startup. */
const REMOVING = MOBY_REMOVING_SUFFIX;

/** A name that can only be one path component. */
const SAFE_NAME = /^(?!\.\.?$)[^/\0]+$/;

export class AufsDriver extends DriverBase {
  readonly name = 'aufs';
  readonly removal = 'files' as const;
  readonly diff: string;
  readonly mnt: string;
  readonly layers: string;

  constructor(home: string) {
    super(home);
    this.diff = `${home}/diff`;
    this.mnt = `${home}/mnt`;
    this.layers = `${home}/layers`;
  }

  /**
   * One entry per ID found in diff/, layers/ or mnt/ (its path is the first of these that exists),
   * and one staged entry per ID with diff/<id>-removing or mnt/<id>-removing.
   */
  async listEntries(): Promise<DriverEntry[]> {
    const live = new Map<string, DriverEntry>();
    const staged = new Map<string, DriverEntry>();
    for (const [dir, wantDir] of [
      [this.diff, true],
      [this.layers, false],
      [this.mnt, true],
    ] as const) {
      for (const e of await listDir(dir)) {
        const isStaged = dir !== this.layers && e.name.endsWith(REMOVING);
        if (!e.stat.isSymbolicLink() && e.stat.isDirectory() !== wantDir && !isStaged) continue;
        if (isStaged) {
          const id = e.name.slice(0, -REMOVING.length);
          if (!staged.has(id)) staged.set(id, { id, path: e.path, stat: e.stat, staged: true });
        } else if (!live.has(e.name)) {
          live.set(e.name, { id: e.name, path: e.path, stat: e.stat, staged: false });
        }
      }
    }
    return [...live.values(), ...staged.values()];
  }

  dirOf(id: string): string {
    return `${this.diff}/${id}`;
  }

  async pathsOf(id: string): Promise<string[]> {
    const out: string[] = [];
    for (const p of [this.dirOf(id), `${this.mnt}/${id}`, `${this.layers}/${id}`]) if (await lstatOrNull(p)) out.push(p);
    return out;
  }

  async checkLayer(id: string, opts: { hasParent: boolean }): Promise<string[]> {
    const problems: string[] = [];
    const st = await lstatOrNull(this.dirOf(id));
    if (!st) problems.push(`diff/${id} is missing`);
    else if (st.isSymbolicLink()) problems.push(`diff/${id} is a symlink, not a directory`);
    else if (!st.isDirectory()) problems.push(`diff/${id} is not a directory`);
    const layers = await readSmallFile(`${this.layers}/${id}`);
    if (layers.state === 'missing') {
      problems.push(`layers/${id} is missing (moby#38051: registering a child of this layer fails)`);
    } else if (layers.state !== 'ok') {
      problems.push(`layers/${id} is not readable (${layers.state === 'unreadable' ? layers.error : layers.state})`);
    } else {
      // bufio.Scanner lines, empty ones skipped, as aufs's getParentIDs reads them
      const parents = layers.text
        .split('\n')
        .map((l) => l.replace(/\r$/, ''))
        .filter((l) => l !== '');
      if (!parents.length && opts.hasParent) problems.push(`layers/${id} lists no parent although the layer has one`);
      for (const p of parents) {
        if (!SAFE_NAME.test(p)) {
          problems.push(`layers/${id} names ${JSON.stringify(p.slice(0, 80))}, not a layer ID`);
          continue;
        }
        const pst = await lstatOrNull(`${this.diff}/${p}`);
        if (!pst?.isDirectory()) problems.push(`layers/${id} names parent ${p}, whose diff/${p} ${pst ? 'is not a directory' : 'is missing'}`);
      }
    }
    return problems;
  }

  async parentsOf(id: string): Promise<string[]> {
    const layers = await readSmallFile(`${this.layers}/${id}`);
    if (layers.state !== 'ok') return [];
    return layers.text
      .split('\n')
      .map((l) => l.replace(/\r$/, ''))
      .filter((l) => SAFE_NAME.test(l));
  }

  /**
   * layers/<id> lists every ancestor, direct parent first, so it is whole only when each name is an
   * ID with a diff/ dir and the direct parent's own list is the rest of it (a file cut at a line
   * end loses ancestors without a malformed line).
   */
  async lowersUnknown(id: string, hasParent: boolean): Promise<string | undefined> {
    const lines = async (x: string) => {
      const f = await readSmallFile(`${this.layers}/${x}`);
      return f.state === 'ok'
        ? {
            lines: f.text
              .split('\n')
              .map((l) => l.replace(/\r$/, ''))
              .filter((l) => l !== ''),
          }
        : { state: f.state };
    };
    const own = await lines(id);
    if (!own.lines) return own.state === 'missing' ? (hasParent ? `layers/${id} is missing` : undefined) : `layers/${id} is not readable (${own.state})`;
    if (!own.lines.length) return hasParent ? `layers/${id} is empty` : undefined;
    for (const p of own.lines) {
      if (!SAFE_NAME.test(p)) return `layers/${id} names ${JSON.stringify(p.slice(0, 40))}, not a layer ID`;
      if (!(await lstatOrNull(`${this.diff}/${p}`))?.isDirectory()) return `layers/${id} names ${JSON.stringify(p.slice(0, 40))}, which has no diff/ dir`;
    }
    const parent = await lines(own.lines[0]);
    if (!parent.lines || parent.lines.join('\n') !== own.lines.slice(1).join('\n')) return `layers/${id} does not end as its parent's layers/${own.lines[0]} lists`;
    return undefined;
  }

  // contentRoots: diff/<id> holds only the layer's own files (aufs has a native DiffGetter reading from there)

  /** What aufs's Remove does, unmount aside: layers/<id>, then diff/<id>, then mnt/<id>. */
  async remove(id: string, rm: Remover): Promise<void> {
    const layers = `${this.layers}/${id}`;
    const lst = await lstatOrNull(layers);
    if (lst?.isDirectory()) await rm.removeTree(layers);
    else if (lst) await rm.unlink(layers);
    // aufs's own atomicRemove staging name: aufs finishes these at startup too
    await stageAndDelete(`${this.diff}/${id}`, rm, { suffix: REMOVING });
    await stageAndDelete(`${this.mnt}/${id}`, rm, { suffix: REMOVING });
  }
}
