// Removing leases from containerd's meta.db offline, as `bbolt compact` would copy it: every bucket,
// nested bucket, key, value and bucket sequence of the old file goes into a new file, minus the
// leases of moby's namespaces given. The new file is read back with the project's reader and
// compared key by key with the old one before it replaces it by rename; the old one stays beside it
// as meta.db.layergc-<run>, with a record (<backup>.json) that `layergc restore` reads to put it back.
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { ExitCode, LayergcError } from '../../errors.js';
import { lstatOrNullSync, readFileCapped } from '../../fsx/read.js';
import { containersDir } from '../../layout.js';
import { AtomicWriter, renameOverChecked, replaceVerified } from '../../fsx/atomic.js';
import { faultPoint } from '../../fsx/fault.js';
import { lockDb, type DbLock } from './dblock.js';
import { openBbolt, readTree, withDb, type BboltTree } from '../bbolt.js';
import { writeBbolt } from '../bbolt-write.js';
import { leaseKey } from './gc.js';
import { findHolders, locateContainerd } from './locate.js';
import { readMetaDb } from './meta.js';
import type { ContainerdLocation, MetaLease } from './model.js';

const MAX_META_DB = 1 << 30;
const BACKUP_RE = /^meta\.db\.layergc-([0-9a-f]{6,32})$/;

export interface LeaseRewrite {
  metaDb: string;
  /** the previous meta.db, kept beside it */
  backup: string;
  /** what `layergc restore` reads */
  record: string;
  /** namespace/id of each lease removed */
  removed: string[];
  bytesBefore: number;
  bytesAfter: number;
  dryRun: boolean;
}

/** The record kept beside the backup. */
export interface RewriteRecord {
  layergc: 'meta.db lease removal';
  run: string;
  time: string;
  dataRoot: string;
  containerdRoot: string;
  metaDb: string;
  backup: string;
  previousSha256: string;
  writtenSha256: string;
  removedLeases: string[];
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const utf8 = (s: string) => Buffer.from(s, 'utf8');

function readWhole(path: string): { bytes: Buffer; mode: number; uid: number; gid: number } {
  const f = readFileCapped(path, MAX_META_DB);
  if (f.state !== 'ok') throw new LayergcError(`${path} cannot be read (${f.state}); nothing was changed`);
  return { bytes: f.bytes, mode: f.stat.mode & 0o7777, uid: f.stat.uid, gid: f.stat.gid };
}

async function treeOf(path: string): Promise<{ tree: BboltTree; pageSize: number; txid: number }> {
  return withDb(path, async (db) => ({ tree: await readTree(db), pageSize: db.meta.pageSize, txid: db.meta.txid }));
}

const child = (t: BboltTree, name: string) => t.entries.find((e) => e.key.equals(utf8(name)));

/** The tree without the lease buckets v1/<ns>/leases/<id> named (every other node shared, unchanged). */
export function withoutLeases(tree: BboltTree, leases: Pick<MetaLease, 'namespace' | 'id'>[]): BboltTree {
  const byNs = new Map<string, Set<string>>();
  for (const l of leases) byNs.set(l.namespace, (byNs.get(l.namespace) ?? new Set()).add(l.id));
  const v1 = child(tree, 'v1');
  if (!v1 || !('bucket' in v1)) throw new LayergcError('meta.db has no v1 bucket; nothing was changed', ExitCode.UNSUPPORTED);
  const v1Entries = v1.bucket.entries.map((nsEntry) => {
    const ids = byNs.get(nsEntry.key.toString('utf8'));
    if (!ids || !('bucket' in nsEntry)) return nsEntry;
    const ns = nsEntry.bucket;
    return {
      key: nsEntry.key,
      bucket: {
        sequence: ns.sequence,
        entries: ns.entries.map((e) => {
          if (!e.key.equals(utf8('leases')) || !('bucket' in e)) return e;
          return { key: e.key, bucket: { sequence: e.bucket.sequence, entries: e.bucket.entries.filter((l) => !('bucket' in l && ids.has(l.key.toString('utf8')))) } };
        }),
      },
    };
  });
  return { sequence: tree.sequence, entries: tree.entries.map((e) => (e === v1 ? { key: v1.key, bucket: { sequence: v1.bucket.sequence, entries: v1Entries } } : e)) };
}

const show = (path: Buffer[]) => path.map((k) => JSON.stringify(k.toString('utf8'))).join('/') || '(root)';

/**
 * Differences between `a` (the old database, minus what `skip` names) and `b` (the new one): every
 * bucket's sequence, every key, whether it is a bucket or a value, and every value's bytes.
 */
export function diffTrees(a: BboltTree, b: BboltTree, skip: (path: Buffer[], key: Buffer) => boolean, path: Buffer[] = [], out: string[] = []): string[] {
  if (out.length >= 10) return out;
  if (a.sequence !== b.sequence) out.push(`${show(path)}: sequence ${a.sequence} became ${b.sequence}`);
  const kept = a.entries.filter((e) => !skip(path, e.key));
  if (kept.length !== b.entries.length) out.push(`${show(path)}: ${kept.length} entries expected, ${b.entries.length} found`);
  for (let i = 0; i < Math.min(kept.length, b.entries.length) && out.length < 10; i++) {
    const [x, y] = [kept[i], b.entries[i]];
    const at = show([...path, x.key]);
    if (!x.key.equals(y.key)) out.push(`${at}: found key ${show([y.key])} in its place`);
    else if ('bucket' in x !== 'bucket' in y) out.push(`${at}: a ${'bucket' in x ? 'bucket' : 'value'} became a ${'bucket' in y ? 'bucket' : 'value'}`);
    else if ('bucket' in x && 'bucket' in y) diffTrees(x.bucket, y.bucket, skip, [...path, x.key], out);
    else if ('value' in x && 'value' in y && !x.value.equals(y.value)) out.push(`${at}: value differs`);
  }
  return out;
}

/** Every lease of a meta.db tree, as namespace/id, sorted. */
export function leaseKeys(tree: BboltTree): string[] {
  const out: string[] = [];
  const v1 = child(tree, 'v1');
  for (const ns of v1 && 'bucket' in v1 ? v1.bucket.entries : []) {
    const leases = 'bucket' in ns ? child(ns.bucket, 'leases') : undefined;
    for (const l of leases && 'bucket' in leases ? leases.bucket.entries : []) if ('bucket' in l) out.push(`${ns.key.toString('utf8')}/${l.key.toString('utf8')}`);
  }
  return out.sort();
}

/** skip() of diffTrees for the lease buckets `removed` names (namespace/id). */
const leaseSkip = (removed: Set<string>) => (path: Buffer[], key: Buffer) =>
  path.length === 3 && path[0].equals(utf8('v1')) && path[2].equals(utf8('leases')) && removed.has(`${path[1].toString('utf8')}/${key.toString('utf8')}`);

/**
 * Write meta.db again without `leases` (all in moby's namespaces; the store stopped). `stillStopped`
 * is asked again right before the rename. In a dry run, the new file is built in memory only.
 */
export async function removeLeases(loc: ContainerdLocation, leases: MetaLease[], o: { run: string; dryRun: boolean; stillStopped: (ignore: ReadonlySet<number>) => void }): Promise<LeaseRewrite> {
  const foreign = leases.find((l) => !loc.mobyNamespaces.includes(l.namespace));
  if (foreign) throw new Error(`lease ${leaseKey(foreign)} is not in one of moby's namespaces (${loc.mobyNamespaces.join(', ')}); layergc never changes another client's namespace`);
  const dir = loc.metaDb.slice(0, loc.metaDb.lastIndexOf('/'));
  const backup = `${dir}/meta.db.layergc-${o.run}`;
  const record = `${backup}.json`;
  const old = readWhole(loc.metaDb);
  const before = await treeOf(loc.metaDb);
  const removed = new Set(leases.map(leaseKey));
  const present = (await readMetaDb(loc.metaDb)).namespaces.flatMap((ns) => ns.leases.map(leaseKey));
  const missing = [...removed].filter((k) => !present.includes(k));
  if (missing.length) throw new LayergcError(`meta.db changed since the scan: lease ${missing.join(', ')} is no longer there; nothing was changed`);
  const data = writeBbolt(withoutLeases(before.tree, leases), { pageSize: before.pageSize, txid: BigInt(before.txid) + 1n });
  const report: LeaseRewrite = { metaDb: loc.metaDb, backup, record, removed: [...removed].sort(), bytesBefore: old.bytes.length, bytesAfter: data.length, dryRun: o.dryRun };
  if (o.dryRun) return report;
  const rec: RewriteRecord = {
    layergc: 'meta.db lease removal',
    run: o.run,
    time: new Date().toISOString(),
    dataRoot: loc.dataRoot,
    containerdRoot: loc.root,
    metaDb: loc.metaDb,
    backup,
    previousSha256: sha256(old.bytes),
    writtenSha256: sha256(data),
    removedLeases: report.removed,
  };
  // containerd's own lock on meta.db, held until the swap is done and checked
  const lock = await lockDb(loc.metaDb);
  try {
    await replaceVerified(loc.root, loc.metaDb, data, {
      keepAs: backup,
      mode: old.mode,
      uid: old.uid,
      gid: old.gid,
      afterRename: () => noOldFileUsers(lock, loc.metaDb, 'the rewrite was undone: meta.db is the old file again'),
      check: async (temp) => {
        // the file as written, read back and compared with the old file as it is now
        const now = readWhole(loc.metaDb);
        if (sha256(now.bytes) !== rec.previousSha256) throw new LayergcError(`${loc.metaDb} changed while layergc rewrote it (is containerd starting?); nothing was changed`, ExitCode.DAEMON_RUNNING);
        const [a, b] = [await treeOf(loc.metaDb), await withDb(temp, readTree)];
        const diff = diffTrees(a.tree, b, leaseSkip(removed));
        const [had, has] = [leaseKeys(a.tree), leaseKeys(b)];
        const dropped = had.filter((k) => !has.includes(k));
        if (dropped.join('\n') !== report.removed.join('\n')) diff.push(`the leases removed are ${dropped.join(', ') || 'none'}, not ${report.removed.join(', ')}`);
        if (diff.length) throw new LayergcError(`the new meta.db read back differs from the old one beyond the removed leases (${diff.join('; ')}); nothing was changed`);
        o.stillStopped(lock.pids);
        const users = lock.openedByOthers();
        if (users.length) throw new LayergcError(`${loc.metaDb} is open in ${users.join(', ')} (a containerd starting?); nothing was changed`, ExitCode.DAEMON_RUNNING);
        faultPoint('containerd-swap-checked');
        // the record first: a crash before the rename leaves the old meta.db, which restore calls "already back"
        await new AtomicWriter(loc.root, false).write(record, `${JSON.stringify(rec, null, 2)}\n`, { mode: 0o600 });
      },
    });
  } finally {
    await lock.release();
  }
  return report;
}

/**
 * After the rename: a process that opened meta.db before it (and waits for the lock) would run on
 * the file just replaced; then the swap is undone (the caller's rename back) and the run ends with exit 3.
 */
async function noOldFileUsers(lock: DbLock, metaDb: string, undone: string): Promise<void> {
  const users = await lock.settledOthers();
  if (users.length) throw new LayergcError(`${metaDb} was opened by ${users.join(', ')} while layergc replaced it (a containerd starting?); ${undone}`, ExitCode.DAEMON_RUNNING);
}

export interface MetaDbRestore {
  dataRoot: string;
  metaDb: string;
  backup: string;
  status: 'planned' | 'restored' | 'already';
  removedLeases: string[];
}

/** Whether `path` names a meta.db backup layergc made (restore's argument). */
export const isMetaDbBackup = (path: string) => BACKUP_RE.test(path.slice(path.lastIndexOf('/') + 1));

/**
 * `layergc restore <containerd root>/io.containerd.metadata.v1.bolt/meta.db.layergc-<run>`: put the
 * old meta.db back, only while the store is stopped and only while meta.db is still the file
 * layergc wrote (once containerd has used it, the old file would lose what containerd did since).
 */
export async function restoreMetaDb(backup: string, dryRun: boolean): Promise<MetaDbRestore> {
  const name = backup.slice(backup.lastIndexOf('/') + 1);
  const dir = backup.slice(0, backup.lastIndexOf('/'));
  const run = BACKUP_RE.exec(name)?.[1];
  if (!run || !dir.endsWith('/io.containerd.metadata.v1.bolt'))
    throw new LayergcError(`restore ${backup}: not a meta.db backup layergc made (<containerd root>/io.containerd.metadata.v1.bolt/meta.db.layergc-<run>)`);
  const recFile = readFileCapped(`${backup}.json`);
  if (recFile.state !== 'ok') throw new LayergcError(`restore ${backup}: its record ${backup}.json cannot be read (${recFile.state}); nothing was restored`);
  let rec: RewriteRecord;
  try {
    rec = JSON.parse(recFile.bytes.toString('utf8')) as RewriteRecord;
  } catch {
    throw new LayergcError(`restore ${backup}: its record ${backup}.json is not JSON; nothing was restored`);
  }
  const metaDb = `${dir}/meta.db`;
  if (rec.backup !== backup || rec.metaDb !== metaDb || rec.run !== run || `${rec.containerdRoot}/io.containerd.metadata.v1.bolt` !== dir) {
    throw new LayergcError(`restore ${backup}: its record names another file (${rec.backup}); nothing was restored`);
  }
  // the record names the data root restore locks and checks for a dockerd: it must be one (moby makes containers/ at its start)
  const isDataRoot = (r: unknown) =>
    typeof r === 'string' && r.startsWith('/') && r !== '/' && posix.normalize(r) === r && !!lstatOrNullSync(r)?.isDirectory() && !!lstatOrNullSync(containersDir(r))?.isDirectory();
  if (!isDataRoot(rec.dataRoot))
    throw new LayergcError(`restore ${backup}: its record names ${JSON.stringify(rec.dataRoot)} as the data root, which is not a Docker data root (no containers/ directory); nothing was restored`);
  const loc = await locateContainerd({ dataRoot: rec.dataRoot, containerdRoot: rec.containerdRoot });
  const stopped = (ignore?: ReadonlySet<number>) => {
    const holders = findHolders(loc, '/proc', ignore);
    if (holders.length)
      throw new LayergcError(
        `the containerd image store ${loc.root} is in use (${holders.map((h) => h.what).join('; ')}); restoring meta.db needs containerd and dockerd stopped`,
        ExitCode.DAEMON_RUNNING,
      );
  };
  stopped();
  // containerd's own lock on meta.db, held from the checks to the swap (not for a dry run: it changes nothing)
  const lock = dryRun ? undefined : await lockDb(metaDb);
  try {
    return await restoreLocked(loc, rec, backup, metaDb, dryRun, lock, stopped);
  } finally {
    await lock?.release();
  }
}

async function restoreLocked(
  loc: ContainerdLocation,
  rec: RewriteRecord,
  backup: string,
  metaDb: string,
  dryRun: boolean,
  lock: DbLock | undefined,
  stopped: (ignore?: ReadonlySet<number>) => void,
): Promise<MetaDbRestore> {
  const current = sha256(readWhole(metaDb).bytes);
  const out: MetaDbRestore = { dataRoot: loc.dataRoot, metaDb, backup, status: 'planned', removedLeases: rec.removedLeases };
  // the old file in place already: restored before, or a purge that stopped before its rename
  if (current === rec.previousSha256) return { ...out, status: 'already' };
  const haveBackup = readFileCapped(backup, MAX_META_DB);
  if (haveBackup.state !== 'ok') throw new LayergcError(`restore ${backup}: the backup is gone and meta.db is not the old file; nothing was restored`);
  if (sha256(haveBackup.bytes) !== rec.previousSha256) throw new LayergcError(`restore ${backup}: the backup changed since layergc kept it; nothing was restored`);
  if (current !== rec.writtenSha256) {
    throw new LayergcError(
      `restore ${backup}: refusing: ${metaDb} changed since layergc wrote it (containerd has used it); putting the old file back would lose what containerd recorded since and name content its GC removed`,
    );
  }
  // the backup must still be a database containerd can open (the reader refuses what it cannot read)
  await (await openBbolt(backup)).close();
  if (dryRun || !lock) return out;
  stopped(lock.pids);
  const users = lock.openedByOthers();
  if (users.length) throw new LayergcError(`${metaDb} is open in ${users.join(', ')} (a containerd starting?); nothing was restored`, ExitCode.DAEMON_RUNNING);
  faultPoint('containerd-swap-checked');
  await renameOverChecked(loc.root, backup, metaDb, () => noOldFileUsers(lock, metaDb, 'the restore was undone: meta.db is the file layergc wrote again, the backup is kept'));
  return { ...out, status: 'restored' };
}
