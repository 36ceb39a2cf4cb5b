// vfs: home/dir/<id>/ is a full copy of the parent plus the layer (CopyDir); there is no other
// metadata. Layout facts: daemon/graphdriver/vfs/driver.go.
import { listDir, lstatOrNull } from '../fsx/read.js';
import type { Remover } from '../fsx/remove.js';
import { stageAndDelete } from './stage.js';
import { STAGED_SUFFIX, type DanglingLink, type DriverAdapter, type DriverEntry } from './types.js';

export class VfsDriver implements DriverAdapter {
  readonly name = 'vfs';
  readonly removal = 'files' as const;
  readonly dirs: string;

  constructor(readonly home: string) {
    this.dirs = `${home}/dir`;
  }

  async listEntries(): Promise<DriverEntry[]> {
    const out: DriverEntry[] = [];
    for (const e of await listDir(this.dirs)) {
      if (!e.stat.isDirectory() && !e.stat.isSymbolicLink()) continue;
      const staged = e.name.endsWith(STAGED_SUFFIX);
      out.push({ id: staged ? e.name.slice(0, -STAGED_SUFFIX.length) : e.name, path: e.path, stat: e.stat, staged });
    }
    return out;
  }

  dirOf(id: string): string {
    return `${this.dirs}/${id}`;
  }

  async pathsOf(id: string): Promise<string[]> {
    const dir = this.dirOf(id);
    return (await lstatOrNull(dir)) ? [dir] : [];
  }

  async checkLayer(id: string): Promise<string[]> {
    const st = await lstatOrNull(this.dirOf(id));
    if (!st) return [`dir/${id} is missing`];
    if (st.isSymbolicLink()) return [`dir/${id} is a symlink, not a directory`];
    if (!st.isDirectory()) return [`dir/${id} is not a directory`];
    return [];
  }

  async danglingLinks(): Promise<DanglingLink[]> {
    return [];
  }

  /** A vfs dir is the whole filesystem of the layer (its parents' files too): what driver.Get returns. */
  async contentRoots(id: string): Promise<string[]> {
    return [this.dirOf(id)];
  }

  async remove(id: string, rm: Remover): Promise<void> {
    await stageAndDelete(this.dirOf(id), rm);
  }

  async removeLink(path: string, rm: Remover): Promise<void> {
    await rm.unlink(path);
  }
}
