// windowsfilter: home/<id>/ is an hcsshim layer (Files/, Hives/, UtilityVM/ for a base layer,
// sandbox.vhdx for a container's RW layer, layerchain.json naming the parents); the daemon stages a
// removal as home/<id>-removing and destroys those at shutdown. Layout facts:
// daemon/graphdriver/windows/windows.go.
import { ExitCode, LayergcError } from '../errors.js';
import { listDir, lstatOrNull, readSmallFile } from '../fsx/read.js';
import type { Remover } from '../fsx/remove.js';
import type { DanglingLink, DriverAdapter, DriverEntry } from './types.js';

/** The daemon's own staging suffix; layergc's STAGED_SUFFIX ends the same way. */
const REMOVING = '-removing';

export class WindowsfilterDriver implements DriverAdapter {
  readonly name = 'windowsfilter';
  readonly removal = 'report-only' as const;
  readonly removalNote =
    'windowsfilter layers must be destroyed with hcsshim DestroyLayer on Windows: their Files hold hard links into OS files, so deleting them as plain files is unsafe (moby#26873); layergc reports them';

  constructor(readonly home: string) {}

  async listEntries(): Promise<DriverEntry[]> {
    const out: DriverEntry[] = [];
    for (const e of await listDir(this.home)) {
      if (!e.stat.isDirectory() && !e.stat.isSymbolicLink()) continue;
      const staged = e.name.endsWith(REMOVING);
      out.push({ id: staged ? e.name.slice(0, -REMOVING.length) : e.name, path: e.path, stat: e.stat, staged });
    }
    return out;
  }

  dirOf(id: string): string {
    return `${this.home}/${id}`;
  }

  async pathsOf(id: string): Promise<string[]> {
    return (await lstatOrNull(this.dirOf(id))) ? [this.dirOf(id)] : [];
  }

  async checkLayer(id: string): Promise<string[]> {
    const st = await lstatOrNull(this.dirOf(id));
    if (!st) return [`${id} is missing`];
    if (st.isSymbolicLink()) return [`${id} is a symlink, not a layer directory`];
    if (!st.isDirectory()) return [`${id} is not a directory`];
    const problems: string[] = [];
    const chain = await readSmallFile(`${this.dirOf(id)}/layerchain.json`);
    if (chain.state === 'missing') return problems;
    if (chain.state !== 'ok') return [`${id}/layerchain.json is not readable (${chain.state === 'unreadable' ? chain.error : chain.state})`];
    let parsed: unknown;
    try {
      parsed = JSON.parse(chain.text);
    } catch {
      return [`${id}/layerchain.json is not valid JSON`];
    }
    // json.Unmarshal into []string accepts null as an empty chain
    if (parsed === null) return problems;
    if (!Array.isArray(parsed) || !parsed.every((p) => typeof p === 'string')) return [`${id}/layerchain.json is not a JSON array of strings`];
    const homeName = this.home.slice(this.home.lastIndexOf('/') + 1).toLowerCase();
    for (const p of parsed as string[]) {
      // the paths are absolute Windows paths: only those under a windowsfilter dir map to this home
      const parts = p.split(/[\\/]/).filter(Boolean);
      const name = parts[parts.length - 1];
      if (parts.length < 2 || parts[parts.length - 2].toLowerCase() !== homeName || !name || name === '..' || name === '.') continue;
      const pst = await lstatOrNull(this.dirOf(name));
      if (!pst?.isDirectory()) problems.push(`${id}/layerchain.json names parent ${name}, which is not a layer in ${homeName}`);
    }
    return problems;
  }

  async danglingLinks(): Promise<DanglingLink[]> {
    return [];
  }

  /**
   * None: the files can only be read on Windows with SeBackupPrivilege (the daemon's DiffGetter), and
   * the UtilityVM BCD files verify against their .bak copies, so layergc does not verify these.
   */
  async contentRoots(_id: string): Promise<string[]> {
    return [];
  }

  async remove(id: string, _rm: Remover): Promise<void> {
    throw new LayergcError(`windowsfilter layer ${id} is not removed by layergc on this platform (report-only): ${this.removalNote}`, ExitCode.UNSUPPORTED);
  }

  async removeLink(path: string, _rm: Remover): Promise<void> {
    throw new LayergcError(`${path}: the windowsfilter driver keeps no links; nothing to remove`, ExitCode.UNSUPPORTED);
  }
}
