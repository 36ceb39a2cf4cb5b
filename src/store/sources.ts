// Unknown is not empty. A reference source (layerdb entries, mounts, image configs, containers)
// that is not a plain readable directory would read as empty, and every driver dir would look
// unused. Each source's state is checked here; one that cannot be read makes purge keep every
// driver dir it could claim (findings/kept.ts), and the report names the source and why.
import { constants, type Stats } from 'node:fs';
import { fs, errCode } from '../fsx/fs.js';
import { containersDir, HEX64, imagedbPaths, layerdbPaths } from '../layout.js';
import { listNames } from '../fsx/read.js';
import type { SourceName, StoreLocation, UnknownSource } from './model.js';

/** What an unreadable source leaves unknown, for the report. */
export const SOURCE_CLAIMS: Record<SourceName, string> = {
  'layerdb/sha256': 'which driver dirs hold layers',
  'layerdb/mounts': "which driver dirs are containers' layers",
  'imagedb/content/sha256': 'which layers images use',
  containers: 'which layers containers use',
};

// a dir's names are listed only when a missing source's check needs them (the loaders listed each one already)
type DirState = { state: 'dir'; names: () => string[] } | { state: 'missing' } | { state: 'bad'; why: string };

async function dirState(path: string): Promise<DirState> {
  let st: Stats;
  try {
    st = await fs.lstat(path);
  } catch (err) {
    if (errCode(err) === 'ENOENT') return { state: 'missing' };
    return { state: 'bad', why: `cannot be examined (${errCode(err) ?? err})` };
  }
  if (st.isSymbolicLink()) {
    let target = '?';
    try {
      target = await fs.readlink(path);
    } catch {
      /* keep ? */
    }
    return { state: 'bad', why: `is a symlink (to ${target}); layergc never follows one` };
  }
  if (!st.isDirectory()) return { state: 'bad', why: 'is not a directory' };
  try {
    // readable as a directory, without following anything (O_NOFOLLOW on the open)
    const fh = await fs.open(path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
    await fh.close();
    let names: string[] | undefined;
    return { state: 'dir', names: () => (names ??= [...(listNames(path) ?? [])]) };
  } catch (err) {
    return { state: 'bad', why: `cannot be read (${errCode(err) ?? err})` };
  }
}

/** Sources that cannot be read, or are missing where the rest of the root says they must exist. */
export async function unknownSources(loc: StoreLocation, driverEntries: number): Promise<UnknownSource[]> {
  const paths: Record<SourceName, string> = {
    'layerdb/sha256': layerdbPaths(loc.layerdb).sha256,
    'layerdb/mounts': layerdbPaths(loc.layerdb).mounts,
    'imagedb/content/sha256': imagedbPaths(loc.imageDir).content,
    containers: containersDir(loc.dataRoot),
  };
  const states = new Map<SourceName, DirState>();
  for (const s of Object.keys(paths) as SourceName[]) states.set(s, await dirState(paths[s]));
  const count = (s: SourceName, test: (n: string) => boolean = () => true) => {
    const st = states.get(s)!;
    return st.state === 'dir' ? st.names().filter(test).length : 0;
  };
  // a missing source is empty only when nothing else says it had entries (moby makes each dir on first use)
  const mustExist: Record<SourceName, () => string | undefined> = {
    'layerdb/sha256': () => (driverEntries ? `is missing, but the driver home holds ${driverEntries} layer dir(s)` : undefined),
    'layerdb/mounts': () => (count('containers') ? `is missing, but containers/ holds ${count('containers')} container(s)` : undefined),
    'imagedb/content/sha256': () => (count('layerdb/sha256', (n) => HEX64.test(n)) ? 'is missing, but the layer store holds layers (the daemon makes it at its first start)' : undefined),
    containers: () => (count('layerdb/mounts') ? `is missing, but layerdb/mounts holds ${count('layerdb/mounts')} mount(s) (the daemon makes it at its first start)` : undefined),
  };
  const out: UnknownSource[] = [];
  for (const s of Object.keys(paths) as SourceName[]) {
    const st = states.get(s)!;
    const why = st.state === 'bad' ? st.why : st.state === 'missing' ? mustExist[s]() : undefined;
    if (why) out.push({ source: s, path: paths[s], why });
  }
  return out;
}
