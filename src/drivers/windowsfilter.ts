// windowsfilter: home/<id>/ is an hcsshim layer (Files/, Hives/, UtilityVM/ for a base layer,
// sandbox.vhdx for a container's RW layer, layerchain.json naming the parents); the daemon stages a
// removal as home/<id>-removing and destroys those at shutdown. Layout facts:
// daemon/graphdriver/windows/windows.go.
import { lstatOrNull, readSmallFile } from '../fsx/read.js';
import { DirPerLayerDriver } from './base.js';
import { MOBY_REMOVING_SUFFIX } from '../layout.js';

export class WindowsfilterDriver extends DirPerLayerDriver {
  readonly name = 'windowsfilter';
  readonly removal = 'report-only' as const;
  readonly removalNote =
    'windowsfilter layers must be destroyed with hcsshim DestroyLayer on Windows: their Files hold hard links into OS files, so deleting them as plain files is unsafe (moby#26873); layergc reports them';

  constructor(home: string) {
    // the daemon's own staging suffix; layergc's STAGED_SUFFIX ends the same way
    super(home, { noun: 'a layer directory', stagedSuffix: MOBY_REMOVING_SUFFIX });
  }

  override async checkLayer(id: string): Promise<string[]> {
    const dir = await super.checkLayer(id);
    if (dir.length) return dir;
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

  /**
   * None: the files can only be read on Windows with SeBackupPrivilege (the daemon's DiffGetter), and
   * the UtilityVM BCD files verify against their .bak copies, so layergc does not verify these.
   */
  override async contentRoots(_id: string): Promise<string[]> {
    return [];
  }
}
