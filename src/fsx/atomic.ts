// Writing Docker's metadata the way Docker writes it (atomicwriter.WriteFile): a temporary file in
// the same directory, fsync, rename over the target, fsync of the directory. A crash leaves the old
// file or the new one, never a torn one. The previous version is kept beside it (a hard link, so
// it costs no copy) under a name the caller gives, and symlinks are created here too: src/fsx is
// the only place that changes Docker's files.
import { constants } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { fs, isNotFound } from './fs.js';
import { assertContained } from './contain.js';
import { faultPoint } from './fault.js';

export interface WriteOp { op: 'write' | 'symlink'; path: string; previous?: string }

async function fsyncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

const dirOf = (p: string) => p.slice(0, p.lastIndexOf('/'));

export class AtomicWriter {
  readonly ops: WriteOp[] = [];
  constructor(readonly root: string, readonly dryRun: boolean) {}

  /**
   * Replace `path` with `data`. With `keepAs`, an existing regular file is first linked to that
   * name (refused if the name is taken), so the old version stays whole beside the new one.
   */
  async write(path: string, data: string | Buffer, opts: { mode?: number; keepAs?: string } = {}): Promise<void> {
    assertContained(this.root, path);
    if (opts.keepAs) assertContained(this.root, opts.keepAs);
    this.ops.push({ op: 'write', path, previous: opts.keepAs });
    if (this.dryRun) return;
    const dir = dirOf(path);
    const prefix = `.tmp-${path.slice(dir.length + 1)}layergc-`;
    // a temp file of a run killed before its rename is never used: it goes now
    for (const n of await fs.readdir(dir)) if (n.startsWith(prefix)) await fs.unlink(`${dir}/${n}`).catch(() => undefined);
    const tmp = `${dir}/${prefix}${randomBytes(6).toString('hex')}`;
    const fh = await fs.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, opts.mode ?? 0o600);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    faultPoint('atomic-after-temp');
    try {
      if (opts.keepAs) {
        let st = null;
        try { st = await fs.lstat(path); } catch (err) { if (!isNotFound(err)) throw err; }
        if (st?.isFile()) await fs.link(path, opts.keepAs);
      }
      await fs.rename(tmp, path);
    } catch (err) {
      await fs.unlink(tmp).catch(() => undefined);
      throw err;
    }
    await fsyncDir(dir);
    faultPoint('atomic-after-rename');
  }

  /** Create the symlink `path` -> `target` (the link itself; nothing is followed). */
  async symlink(target: string, path: string): Promise<void> {
    assertContained(this.root, path);
    this.ops.push({ op: 'symlink', path });
    if (this.dryRun) return;
    await fs.symlink(target, path);
    await fsyncDir(dirOf(path));
  }
}
