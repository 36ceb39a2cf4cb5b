// Stage-then-delete, the one way an adapter removes a layer directory: rename it to <dir><suffix>,
// then delete that. A staged copy an interrupted run left is finished first.
import type { Stats } from 'node:fs';
import { lstatOrNull } from '../fsx/read.js';
import type { Remover } from '../fsx/remove.js';
import { STAGED_SUFFIX } from '../layout.js';

export type DeleteStaged = (staged: string, st: Stats) => Promise<void>;

export interface StageOptions {
  /** The staging suffix: layergc's own, or the driver's (aufs's -removing) so the daemon finishes it too. */
  suffix?: string;
  /** Deletes the staged tree (btrfs: a subvolume); removeTree by default. */
  del?: DeleteStaged;
  /** Runs between staging and deleting, with where the data is now (the unrenamed dir in a dry run). */
  staged?: (at: string) => Promise<void>;
  /** A symlink where the dir belongs is refused rather than unlinked (overlay2: it is unsafe-path). */
  refuseSymlink?: boolean;
}

export async function stageAndDelete(dir: string, rm: Remover, opts: StageOptions = {}): Promise<void> {
  const staged = `${dir}${opts.suffix ?? STAGED_SUFFIX}`;
  const del = opts.del ?? ((p: string) => rm.removeTree(p));
  const st = await lstatOrNull(dir);
  if (st?.isSymbolicLink() && opts.refuseSymlink) throw new Error(`${dir} is a symlink; layergc never follows or removes one in the driver home`);
  if (st && !st.isDirectory()) {
    await rm.unlink(dir); // a stray file or symlink: the entry itself goes, never its target
  } else if (st) {
    // a staged copy left by an interrupted run goes first, or the rename would meet it
    const old = await lstatOrNull(staged);
    if (old) await del(staged, old);
    await rm.rename(dir, staged);
  }
  const sst = await lstatOrNull(staged);
  // a dry run did not rename: plan the rest all the same
  const at = sst ? staged : rm.dryRun && st?.isDirectory() ? dir : undefined;
  if (!at) return;
  await opts.staged?.(at);
  await del(staged, (sst ?? st)!);
}
