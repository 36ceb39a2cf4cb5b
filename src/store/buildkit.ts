/**
 * What BuildKit (the graph-driver flavour built into dockerd) owns under `<data-root>`.
 *
 * moby's snapshotter adapter (builder/builder-next/adapters/snapshot/snapshot.go, same logic from
 * v20.10 through v28.x; daemon/internal/builder-next/... on v29) keeps `<root>/buildkit/snapshots.db`,
 * a bbolt file with one top-level bucket per snapshot:
 *
 *   - `Prepare(key, parent)` creates the graph-driver dir `<driver>/<key>` and then the bucket `key`
 *     with `parent` = the parent snapshot name ("" for none; a snapshot name, or `sha256:<chain>` for a
 *     layer-store layer).
 *   - `Commit(name, key)` puts `committed` = key into bucket `name` and `iscommitted` = "" into bucket
 *     `key`. The committed snapshot has no dir of its own: its dir is `<driver>/<key>`.
 *   - `EnsureLayer(name)` registers the dir as a layer-store layer (its layerdb `cache-id` is the
 *     25-char key) and stores `chainid` = `sha256:<chain>` in bucket `name`.
 *   - `getLayer(sha256:<chain>)` creates an empty bucket named by the chain ID; image layers used as a
 *     base get a name bucket with only `chainid`.
 *   - `Usage` may add `size` (decimal) to any bucket.
 *
 * Seen on real 20.10.24 and 28.5.2 daemons (fixtures/bbolt/): the dirs named by BuildKit are exactly
 * the non-`sha256:` buckets that carry `parent` or `iscommitted`; buckets that carry `committed` or
 * only `chainid` are names. The committed values always name such a dir.
 *
 * BuildKit also keeps ids elsewhere:
 *   - `metadata_v2.db` (`metadata.db` before the v2 migration): bucket `_main` holds one bucket per
 *     cache record (id = snapshot name), with JSON values `cache.snapshot`, `cache.equalMutable`,
 *     `cache.parent`, `cache.chainID`; `_external` holds one bucket per record id.
 *   - `containerdmeta.db`: containerd leases `v1/<ns>/leases/<id>/snapshots/<snapshotter>/<snapshot id>`.
 *     The buildkit cache manager adds this lease resource *before* `Prepare` creates the dir and the
 *     snapshots.db bucket, so after a crash in between, only the lease names the dir.
 * None of these named a dir that snapshots.db did not on the daemons tried, but to stay safe every id
 * any of them names counts as owned (`driverIds`); `snapshotDirIds` is the exact subset that
 * snapshots.db says are dirs. cache.db and history.db only hold cache keys and record ids already in
 * metadata_v2.db and are not read.
 *
 * bbolt keeps no checksums on data pages, so snapshots.db is also checked against what moby writes
 * (NewID keys, sha256 chain IDs, every `committed` target has a bucket with `iscommitted`); a file
 * that fails is 'unreadable'. Any BuildKit database that is present but cannot be read makes the
 * whole result 'unreadable': the caller must then keep every dir that might be BuildKit's.
 *
 * Owned chain IDs (`chainIds`) are layer-store layers BuildKit holds a reference to while the daemon
 * runs: chain-ID buckets, `chainid` values, `sha256:` parents, and metadata `cache.chainID` /
 * `cache.snapshot` values. A layer only BuildKit references looks dangling to the image store, but
 * deleting it breaks the build cache (and for BuildKit-made layers removes a BuildKit dir).
 */
import { join } from 'node:path';
import { errCode, fs } from '../fsx/fs.js';
import { BboltError, withDb, type BboltBucket } from './bbolt.js';
import { BUILDKIT_ID, buildkitDir, SHA256_DIGEST } from '../layout.js';
import type { BuildkitOwnership } from './model.js';

const SNAPSHOTS_DB = 'snapshots.db';
const METADATA_DBS = ['metadata_v2.db', 'metadata.db'];
const CONTAINERD_DB = 'containerdmeta.db';

/** Upper bound of entries read from one database: a corrupt file never makes this unbounded. */
const MAX_ENTRIES = 5_000_000;

function isChainId(s: string): boolean {
  return s.startsWith('sha256:');
}

/** Anything at the path counts as there (a symlink or FIFO too): opening it reports the problem. */
async function exists(path: string): Promise<boolean> {
  try {
    await fs.lstat(path);
    return true;
  } catch (err) {
    if (errCode(err) === 'ENOENT') return false;
    return true; // EACCES and the like: it is there; opening it will report the problem
  }
}

function describe(err: unknown): string {
  if (err instanceof BboltError) return err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}

class Budget {
  n = 0;
  constructor(private readonly file: string) {}
  tick(): void {
    if (++this.n > MAX_ENTRIES) throw new BboltError(`${this.file}: more than ${MAX_ENTRIES} entries (corrupt?)`);
  }
}

/** snapshots.db holds something moby never writes: a sign of damage bbolt cannot detect itself. */
class SnapshotsDataError extends Error {
  constructor(message: string) {
    super(`${SNAPSHOTS_DB} is inconsistent: ${message} (damaged?)`);
    this.name = 'SnapshotsDataError';
  }
}

interface SnapshotsResult {
  names: Set<string>;
  dirs: Set<string>;
  chains: Set<string>;
}

/** Parse snapshots.db (see the header comment for the layout). */
async function readSnapshotsDb(path: string): Promise<SnapshotsResult> {
  const names = new Set<string>();
  const dirs = new Set<string>();
  const chains = new Set<string>();
  const budget = new Budget(SNAPSHOTS_DB);
  const buckets = new Map<string, Map<string, string>>();
  await withDb(path, async (db) => {
    const root = await db.root();
    for await (const top of root.entries()) {
      budget.tick();
      const key = top.key.toString('utf8');
      if (key === '') continue;
      if (isChainId(key)) {
        chains.add(key);
        continue;
      }
      names.add(key);
      if (top.value !== null) {
        // moby only ever stores buckets at the top level; a plain value here is unexpected.
        // When in doubt, owned.
        dirs.add(key);
        continue;
      }
      const b = await root.bucket(top.key);
      if (!b) throw new BboltError(`${SNAPSHOTS_DB}: bucket ${JSON.stringify(key)} vanished while reading`);
      const fields = new Map<string, string>();
      for await (const e of b.entries()) {
        budget.tick();
        if (e.value !== null) fields.set(e.key.toString('utf8'), e.value.toString('utf8'));
      }
      const parent = fields.get('parent');
      const committed = fields.get('committed');
      const chainid = fields.get('chainid');
      if (parent !== undefined && parent !== '') {
        if (isChainId(parent)) chains.add(parent);
        else names.add(parent);
      }
      if (committed !== undefined && committed !== '') {
        if (isChainId(committed)) chains.add(committed);
        else {
          names.add(committed);
          dirs.add(committed);
        }
      }
      if (chainid !== undefined && chainid !== '') chains.add(chainid);
      // Prepare always writes `parent`, Commit writes `iscommitted` on the key: those are dirs.
      // A bucket with `committed` or a bare `chainid` is a name. Anything else (e.g. only `size`)
      // does not fit what moby writes: count it as a dir, to be safe.
      const prepared = fields.has('parent') || fields.has('iscommitted');
      const isName = committed !== undefined || (chainid !== undefined && !prepared);
      if (prepared || !isName) dirs.add(key);
      buckets.set(key, fields);
    }
  });
  checkSnapshots(buckets, chains);
  return { names, dirs, chains };
}

/**
 * bbolt has no checksums on data pages, so a flipped byte in a key or value reads fine. moby writes
 * only NewID keys and sha256 chain IDs, and Commit/remove create and delete a name bucket and its
 * target bucket in one transaction: check that, so that damage that would make a dir look unowned
 * is reported instead.
 */
function checkSnapshots(buckets: Map<string, Map<string, string>>, chains: Set<string>): void {
  for (const c of chains) {
    if (!SHA256_DIGEST.test(c)) throw new SnapshotsDataError(`${JSON.stringify(c)} is not a sha256 chain ID`);
  }
  for (const [key, fields] of buckets) {
    if (!BUILDKIT_ID.test(key)) throw new SnapshotsDataError(`bucket ${JSON.stringify(key)} is not a BuildKit snapshot id`);
    const parent = fields.get('parent');
    if (parent !== undefined && parent !== '' && !SHA256_DIGEST.test(parent) && !BUILDKIT_ID.test(parent)) {
      throw new SnapshotsDataError(`bucket ${key} has parent ${JSON.stringify(parent)}, not a snapshot id`);
    }
    const committed = fields.get('committed');
    if (committed === undefined || isChainId(committed)) continue;
    const target = buckets.get(committed);
    if (!target) throw new SnapshotsDataError(`bucket ${key} is committed as ${JSON.stringify(committed)}, which has no bucket`);
    if (!target.has('iscommitted')) {
      throw new SnapshotsDataError(`bucket ${key} is committed as ${committed}, whose bucket lacks iscommitted`);
    }
  }
}

/** `{"value": <json>, "index": "..."}` → the value when it is a string. */
function metadataString(raw: Buffer): string | null {
  try {
    const v: unknown = JSON.parse(raw.toString('utf8'));
    if (v && typeof v === 'object' && 'value' in v && typeof (v as { value: unknown }).value === 'string') {
      return (v as { value: string }).value;
    }
  } catch {
    // not JSON: not one of the fields we look at
  }
  return null;
}

const METADATA_ID_FIELDS = ['cache.snapshot', 'cache.equalMutable', 'cache.parent', 'cache.chainID'];

async function readMetadataDb(path: string, file: string, ids: Set<string>, chains: Set<string>): Promise<void> {
  const budget = new Budget(file);
  const add = (s: string): void => {
    if (s === '') return;
    if (isChainId(s)) chains.add(s);
    else ids.add(s);
  };
  await withDb(path, async (db) => {
    const root = await db.root();
    const external = await root.bucket('_external');
    if (external) {
      for await (const e of external.entries()) {
        budget.tick();
        add(e.key.toString('utf8'));
      }
    }
    const main = await root.bucket('_main');
    if (!main) return;
    for await (const rec of main.entries()) {
      budget.tick();
      const id = rec.key.toString('utf8');
      add(id);
      if (rec.value !== null) continue;
      const b = await main.bucket(rec.key);
      if (!b) continue;
      for (const field of METADATA_ID_FIELDS) {
        const raw = await b.get(field);
        if (!raw || raw.length === 0) continue;
        const s = metadataString(raw);
        if (s !== null) add(s);
      }
    }
  });
}

async function readContainerdMeta(path: string, ids: Set<string>): Promise<void> {
  const budget = new Budget(CONTAINERD_DB);
  await withDb(path, async (db) => {
    const root = await db.root();
    const v1 = await root.bucket('v1');
    if (!v1) return;
    for await (const ns of v1.entries()) {
      budget.tick();
      if (ns.value !== null) continue;
      const nsb = await v1.bucket(ns.key);
      const leases = nsb && (await nsb.bucket('leases'));
      if (!leases) continue;
      for await (const lease of leases.entries()) {
        budget.tick();
        if (lease.value !== null) continue;
        const lb = await leases.bucket(lease.key);
        const snaps = lb && (await lb.bucket('snapshots'));
        if (!snaps) continue;
        for await (const snapshotter of snaps.entries()) {
          budget.tick();
          if (snapshotter.value !== null) continue;
          const sb: BboltBucket | null = await snaps.bucket(snapshotter.key);
          if (!sb) continue;
          for await (const s of sb.entries()) {
            budget.tick();
            const id = s.key.toString('utf8');
            if (id !== '' && !isChainId(id)) ids.add(id);
          }
        }
      }
    }
  });
}

export async function readBuildkitOwnership(dataRoot: string): Promise<BuildkitOwnership> {
  const dir = buildkitDir(dataRoot);
  const dbPath = join(dir, SNAPSHOTS_DB);
  const out: BuildkitOwnership = {
    dbPath,
    state: 'absent',
    driverIds: new Set(),
    chainIds: new Set(),
    snapshotDirIds: new Set(),
    sources: [],
  };
  const problems: string[] = [];

  const run = async (file: string, fn: (path: string) => Promise<void>): Promise<boolean> => {
    const path = join(dir, file);
    if (!(await exists(path))) {
      out.sources.push({ file, state: 'absent' });
      return false;
    }
    try {
      await fn(path);
      out.sources.push({ file, state: 'read' });
    } catch (err) {
      const msg = describe(err);
      const reason = msg.includes(file) ? msg : `${path}: ${msg}`;
      out.sources.push({ file, state: 'unreadable', reason });
      problems.push(reason);
    }
    return true;
  };

  const snapshotsPresent = await run(SNAPSHOTS_DB, async (path) => {
    const r = await readSnapshotsDb(path);
    for (const id of r.names) out.driverIds.add(id);
    for (const id of r.dirs) {
      out.driverIds.add(id);
      out.snapshotDirIds.add(id);
    }
    for (const c of r.chains) out.chainIds.add(c);
  });

  // metadata_v2.db supersedes metadata.db, but a left-over metadata.db is read too.
  for (const file of METADATA_DBS) {
    await run(file, (path) => readMetadataDb(path, file, out.driverIds, out.chainIds));
  }
  await run(CONTAINERD_DB, (path) => readContainerdMeta(path, out.driverIds));

  if (problems.length > 0) {
    // any database that is there but cannot be read may be the only record of a dir
    out.state = 'unreadable';
    const text = problems.join('; ');
    out.reason = /[.!?]$/.test(text) ? text : `${text}.`;
  } else if (!snapshotsPresent) {
    out.state = 'absent';
  } else {
    out.state = 'read';
  }
  return out;
}
