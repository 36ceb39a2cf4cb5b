// --quarantine DIR: what a repair would delete is moved into DIR instead, each move a rename on the
// same filesystem, each recorded in DIR/manifest.jsonl (fsynced) before it happens. `layergc
// restore DIR` reads the manifest and moves everything back, newest first; it refuses to
// overwrite anything, and a rerun after a crash finishes what is left.
import { constants, lstatSync, readdirSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { fs, isNotFound, mkdirs } from './fs.js';
import { assertContained } from './contain.js';
import { faultPoint } from './fault.js';
import { readFileCapped, smallFileProblem } from './read.js';
import { liveMounts, Remover } from './remove.js';
import { DOCKER_DIRS, imageRoot, layerdbPaths, storePaths } from '../layout.js';

export const MANIFEST = 'manifest.jsonl';
/** Largest manifest (and edited file) restore reads: a quarantine of a million moves fits. */
const MAX_MANIFEST = 256 << 20;

export type ManifestEntry =
  | { op: 'quarantine'; dataRoot: string; run: string; time: string }
  | { op: 'move'; from: string; to: string }
  | { op: 'edit'; path: string; previous: string; sha256: string };

export class QuarantineError extends Error {}

async function lstatOrNull(p: string) {
  try {
    return await fs.lstat(p);
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function appendLine(path: string, e: ManifestEntry): Promise<void> {
  const fh = await fs.open(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  try {
    await fh.write(`${JSON.stringify(e)}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export const sha256Of = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

export class Quarantine {
  readonly moved: { from: string; to: string }[] = [];
  private constructor(
    readonly dir: string,
    readonly root: string,
    readonly dryRun: boolean,
    private readonly rm: Remover,
  ) {}

  /** Check DIR (absolute, same filesystem as the data root, not inside Docker's dirs) and start its manifest. */
  static async open(dir: string, root: string, driverHome: string, run: string, rm: Remover): Promise<Quarantine> {
    const dryRun = rm.dryRun;
    if (!dir.startsWith('/')) throw new QuarantineError(`--quarantine ${dir}: give an absolute path`);
    const d = posix.normalize(dir).replace(/\/+$/, '');
    if (d === root || root.startsWith(`${d}/`)) throw new QuarantineError(`--quarantine ${d}: it holds the data root`);
    if ([...DOCKER_DIRS.map((x) => `${root}/${x}`), driverHome].some((x) => d === x || d.startsWith(`${x}/`))) {
      throw new QuarantineError(`--quarantine ${d}: it is inside Docker's own directories of ${root}; pick a directory beside them`);
    }
    // the nearest existing ancestor tells the filesystem a new dir would be on
    let probe = d;
    let st = await lstatOrNull(probe);
    while (!st && probe !== '/') {
      probe = probe.slice(0, probe.lastIndexOf('/')) || '/';
      st = await lstatOrNull(probe);
    }
    if (st && st.isSymbolicLink()) throw new QuarantineError(`--quarantine ${d}: ${probe} is a symlink; give the real path`);
    const rootSt = await fs.stat(root);
    if (!st || st.dev !== rootSt.dev) throw new QuarantineError(`--quarantine ${d} is on another filesystem than ${root}: every move must be a rename, so it must be on the same one`);
    if (probe === d) {
      const existing = await lstatOrNull(`${d}/${MANIFEST}`);
      if (existing) throw new QuarantineError(`--quarantine ${d} already holds a quarantine (${MANIFEST}); restore it, or pick a new directory`);
    }
    const q = new Quarantine(d, root, dryRun, rm);
    if (!dryRun) {
      await mkdirs(d, 0o700);
      await appendLine(`${d}/${MANIFEST}`, { op: 'quarantine', dataRoot: root, run, time: new Date().toISOString() });
    }
    return q;
  }

  /** Move a path of the data root into the quarantine, under its path relative to the root. */
  async move(path: string): Promise<void> {
    assertContained(this.root, path);
    const rel = `data/${path.slice(this.root.length + 1)}`;
    const to = `${this.dir}/${rel}`;
    this.moved.push({ from: path, to });
    if (this.dryRun) return;
    if (!(await lstatOrNull(path))) return; // gone already (a rerun): nothing to move
    if (await lstatOrNull(to)) throw new QuarantineError(`${to} exists already; layergc never overwrites in a quarantine`);
    await mkdirs(to.slice(0, to.lastIndexOf('/')), 0o700);
    await appendLine(`${this.dir}/${MANIFEST}`, { op: 'move', from: path, to: rel });
    // the pinned remover: containment of both ends, no symlink followed, no mount point moved
    await this.rm.rename(path, to, { to: this.dir });
    await fsyncDir(path.slice(0, path.lastIndexOf('/')));
    await fsyncDir(to.slice(0, to.lastIndexOf('/')));
  }

  /** Record a metadata edit (the previous version kept beside the file), so restore can undo it. */
  async noteEdit(path: string, previous: string, written: string | Buffer): Promise<void> {
    if (this.dryRun) return;
    await appendLine(`${this.dir}/${MANIFEST}`, { op: 'edit', path, previous, sha256: sha256Of(written) });
  }
}

export interface RestoreItem {
  op: 'move' | 'edit';
  path: string;
  from: string;
  status: 'restored' | 'planned' | 'already';
}

/** Read a quarantine's manifest; its first line names the data root it came from. */
export async function readManifest(dir: string): Promise<ManifestEntry[]> {
  // never through a link, never blocking on a FIFO, never reading without end
  const f = readFileCapped(`${dir}/${MANIFEST}`, MAX_MANIFEST);
  if (f.state !== 'ok') throw new QuarantineError(`${dir} is not a layergc quarantine: ${f.state === 'missing' ? `no ${MANIFEST}` : `${MANIFEST} ${smallFileProblem(f)}`}`);
  const text = f.bytes.toString('utf8');
  const out: ManifestEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line) as ManifestEntry);
    } catch {
      /* a torn last line: its move never happened */
    }
  }
  if (out[0]?.op !== 'quarantine') throw new QuarantineError(`${dir}/${MANIFEST} does not start with a quarantine header`);
  assertDataRoot(dir, out[0].dataRoot);
  return out;
}

/** The manifest names where it puts things back: that must still be a Docker data root (image/<driver>/layerdb, no symlink on the way). */
function assertDataRoot(dir: string, root: unknown): void {
  const refuse = () => new QuarantineError(`${dir}/${MANIFEST} names ${JSON.stringify(root)} as its data root, which is not a Docker data root (no image/<driver>/layerdb); nothing was restored`);
  if (typeof root !== 'string' || !root.startsWith('/') || root === '/' || posix.normalize(root) !== root || root.endsWith('/')) throw refuse();
  let drivers: string[];
  try {
    if (!lstatSync(root).isDirectory()) throw refuse();
    drivers = readdirSync(imageRoot(root));
  } catch {
    throw refuse();
  }
  const isStore = (d: string) => {
    try {
      assertContained(root, layerdbPaths(storePaths(root, d).layerdb).sha256);
      return true;
    } catch {
      return false;
    }
  };
  if (!drivers.some(isStore)) throw refuse();
}

/**
 * Put everything back, newest first. Checked in full before the first move: anything it would
 * overwrite (a path that exists again, a metadata file changed since) refuses the whole restore.
 */
export async function restoreQuarantine(dir: string, dryRun: boolean): Promise<{ dataRoot: string; items: RestoreItem[] }> {
  const entries = await readManifest(dir);
  const dataRoot = (entries[0] as { dataRoot: string }).dataRoot;
  const rm = new Remover(dataRoot, liveMounts, dryRun);
  const items: (RestoreItem & { do: () => Promise<void> })[] = [];
  const conflicts: string[] = [];
  for (const e of entries.slice(1).reverse()) {
    if (e.op === 'move') {
      const src = `${dir}/${e.to}`;
      assertContained(dataRoot, e.from);
      if (!posix.normalize(src).startsWith(`${dir}/data/`)) throw new QuarantineError(`${MANIFEST} names ${e.to}, outside ${dir}/data`);
      const [inQ, back] = [await lstatOrNull(src), await lstatOrNull(e.from)];
      if (!inQ) {
        items.push({ op: 'move', path: e.from, from: src, status: 'already', do: async () => undefined });
        continue;
      }
      if (back) conflicts.push(`${e.from} exists again`);
      items.push({
        op: 'move',
        path: e.from,
        from: src,
        status: 'planned',
        do: async () => {
          faultPoint('restore-before-rename');
          await rm.rename(src, e.from, { from: dir });
          await fsyncDir(e.from.slice(0, e.from.lastIndexOf('/')));
        },
      });
    } else if (e.op === 'edit') {
      assertContained(dataRoot, e.path);
      assertContained(dataRoot, e.previous);
      // only the previous version the repair kept beside the file goes back over it, never another file
      const run = (entries[0] as { run: string }).run;
      if (e.previous !== `${e.path}.layergc-${run}`)
        throw new QuarantineError(`${MANIFEST} names ${e.previous} as the previous version of ${e.path}; a repair keeps it as ${e.path}.layergc-${run}, so nothing was restored`);
      if (!(await lstatOrNull(e.previous))) {
        items.push({ op: 'edit', path: e.path, from: e.previous, status: 'already', do: async () => undefined });
        continue;
      }
      let now = '';
      const cur = readFileCapped(e.path, MAX_MANIFEST);
      if (cur.state === 'ok') now = sha256Of(cur.bytes); // anything else (missing, a FIFO, a link): changed since
      if (now !== e.sha256) conflicts.push(`${e.path} changed since the repair wrote it`);
      items.push({
        op: 'edit',
        path: e.path,
        from: e.previous,
        status: 'planned',
        do: async () => {
          faultPoint('restore-before-rename');
          await rm.rename(e.previous, e.path);
          await fsyncDir(e.path.slice(0, e.path.lastIndexOf('/')));
        },
      });
    }
  }
  if (conflicts.length) throw new QuarantineError(`refusing to restore ${dir}: it would overwrite what is there now: ${conflicts.join('; ')}`);
  for (const it of items) {
    if (it.status !== 'planned' || dryRun) continue;
    await it.do();
    it.status = 'restored';
  }
  return { dataRoot, items: items.map(({ do: _d, ...rest }) => rest) };
}
