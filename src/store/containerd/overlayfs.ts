// The overlayfs snapshotter's own metadata.db (snapshots/storage/bolt.go): backend key -> id, kind,
// parent. The id names the directory snapshots/<id>.
import { withDb } from '../bbolt.js';
import { ExitCode, LayergcError } from '../../errors.js';
import { readUvarint } from './meta.js';
import type { BackendSnapshot, SnapshotterDb } from './model.js';

export async function readSnapshotterDb(path: string): Promise<SnapshotterDb> {
  return withDb(path, async (db) => {
    const records = new Map<string, BackendSnapshot>();
    const byId = new Map<number, BackendSnapshot>();
    const v1 = await (await db.root()).bucket('v1');
    // A database containerd re-created has no buckets until its first snapshot (F12: a truncated file becomes that).
    const snaps = v1 ? await v1.bucket('snapshots') : null;
    if (!snaps) return { records, byId };
    for await (const e of snaps.entries()) {
      if (e.value !== null) continue;
      const b = await snaps.bucket(e.key);
      if (!b) continue;
      const key = e.key.toString('utf8');
      const idRaw = await b.get('id');
      const id = idRaw ? readUvarint(idRaw) : undefined;
      if (id === undefined) throw new LayergcError(`${path}: snapshot ${JSON.stringify(key)} has no readable id`, ExitCode.UNSUPPORTED);
      const kind = (await b.get('kind'))?.[0] ?? 0;
      const parent = (await b.get('parent'))?.toString('utf8');
      const rec: BackendSnapshot = { key, id, kind, ...(parent ? { parent } : {}) };
      records.set(key, rec);
      byId.set(id, rec);
    }
    return { records, byId };
  });
}
