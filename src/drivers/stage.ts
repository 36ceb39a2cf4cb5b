// Stage-then-delete, shared by the adapters whose layer data is one directory: rename it to
// <dir>-layergc-removing, then delete that. A staged copy an interrupted run left is finished first.
import type { Stats } from 'node:fs';
import { lstatOrNull } from '../fsx/read.js';
import type { Remover } from '../fsx/remove.js';
import { STAGED_SUFFIX } from './types.js';

export type DeleteStaged = (staged: string, st: Stats) => Promise<void>;

export async function stageAndDelete(dir: string, rm: Remover, del: DeleteStaged = (p) => rm.removeTree(p)): Promise<void> {
  const staged = `${dir}${STAGED_SUFFIX}`;
  const st = await lstatOrNull(dir);
  if (st && !st.isDirectory()) {
    await rm.unlink(dir); // a stray file or symlink: the entry itself goes, never its target
    return;
  }
  if (st) {
    // a staged copy left by an interrupted run goes first, or the rename would meet it
    const old = await lstatOrNull(staged);
    if (old) await del(staged, old);
    await rm.rename(dir, staged);
  }
  const sst = await lstatOrNull(staged);
  if (sst) await del(staged, sst);
  else if (rm.dryRun && st) await del(staged, st); // a dry run did not rename: plan the delete all the same
}
