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

// a dir's names are listed only when a missing source's check needs them (the loaders listed each one
// already); null when that listing fails (the dir went or changed since it was opened)
type DirState = { state: 'dir'; names: () => string[] | null } | { state: 'missing' } | { state: 'bad'; why: string };

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
    let names: string[] | null | undefined;
    const list = () => {
      const set = listNames(path);
      return set && [...set];
    };
    return { state: 'dir', names: () => (names === undefined ? (names = list()) : names) };
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
  // why a missing source must exist, from what `s` holds; a listing of `s` that fails cannot say it is empty
  const holds = (s: SourceName, what: (n: number) => string, test: (n: string) => boolean = () => true) => {
    const st = states.get(s)!;
    const names = st.state === 'dir' ? st.names() : [];
    if (names === null) return `is missing, and ${paths[s]} cannot be listed to tell whether it must exist`;
    const n = names.filter(test).length;
    return n ? `is missing, but ${what(n)}` : undefined;
  };
  // a missing source is empty only when nothing else says it had entries (moby makes each dir on first use)
  const mustExist: Record<SourceName, () => string | undefined> = {
    'layerdb/sha256': () => (driverEntries ? `is missing, but the driver home holds ${driverEntries} layer dir(s)` : undefined),
    'layerdb/mounts': () => holds('containers', (n) => `containers/ holds ${n} container(s)`),
    'imagedb/content/sha256': () =>
      holds(
        'layerdb/sha256',
        () => 'the layer store holds layers (the daemon makes it at its first start)',
        (n) => HEX64.test(n),
      ),
    containers: () => holds('layerdb/mounts', (n) => `layerdb/mounts holds ${n} mount(s) (the daemon makes it at its first start)`),
  };
  const out: UnknownSource[] = [];
  for (const s of Object.keys(paths) as SourceName[]) {
    const st = states.get(s)!;
    const why = st.state === 'bad' ? st.why : st.state === 'missing' ? mustExist[s]() : undefined;
    if (why) out.push({ source: s, path: paths[s], why });
  }
  return out;
}
