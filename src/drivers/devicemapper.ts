// devicemapper (Docker <= 24): each layer is a thin device in a pool; home/metadata/<id> records it
// as JSON, home/mnt/<id>/ is its mount point (data under rootfs/ while mounted).
// Layout facts: daemon/graphdriver/devmapper/{driver.go,deviceset.go}.
import { listDir, lstatOrNull, readSmallFile } from '../fsx/read.js';
import { MountTable } from '../fsx/mounts.js';
import type { Remover } from '../fsx/remove.js';
import type { DriverEntry } from './types.js';
import { DriverBase } from './base.js';

/** Files in metadata/ that are the device set's own, not a layer's. */
const NOT_LAYERS = new Set(['base', 'deviceset-metadata', 'transaction-metadata']);

export interface DevicemapperOptions {
  /** mountinfo to read instead of /proc/self/mountinfo (tests). */
  mountinfo?: string;
}

export class DevicemapperDriver extends DriverBase {
  readonly name = 'devicemapper';
  readonly removal = 'report-only' as const;
  /** The data is in the thin pool: metadata/<id> is only its record. */
  override readonly dataVisibleOffline = false;
  readonly removalNote =
    'devicemapper layers are thin devices: deleting one takes dm ioctls or dmsetup (deactivate, then the pool message `delete <device_id>`) and a matching metadata update, which layergc does not do offline; remove them with the daemon (docker rmi) or migrate off devicemapper';
  readonly metadata: string;
  readonly mnt: string;

  constructor(
    home: string,
    private readonly opts: DevicemapperOptions = {},
  ) {
    super(home);
    this.metadata = `${home}/metadata`;
    this.mnt = `${home}/mnt`;
  }

  /** metadata/<id> files; the device set's own files and writeMetaFile's .tmp* leftovers excluded. */
  async listEntries(): Promise<DriverEntry[]> {
    const out: DriverEntry[] = [];
    for (const e of await listDir(this.metadata)) {
      if (NOT_LAYERS.has(e.name) || e.name.startsWith('.tmp')) continue;
      if (!e.stat.isFile() && !e.stat.isSymbolicLink()) continue;
      out.push({ id: e.name, path: e.path, stat: e.stat, staged: false });
    }
    return out;
  }

  /** The device's record: the data itself is in the thin pool, out of reach of a path. */
  dirOf(id: string): string {
    return `${this.metadata}/${id}`;
  }

  async pathsOf(id: string): Promise<string[]> {
    const out: string[] = [];
    for (const p of [this.dirOf(id), `${this.mnt}/${id}`]) if (await lstatOrNull(p)) out.push(p);
    return out;
  }

  async checkLayer(id: string): Promise<string[]> {
    const f = await readSmallFile(this.dirOf(id));
    if (f.state === 'missing') return [`metadata/${id} is missing: the daemon does not know this device`];
    if (f.state !== 'ok') return [`metadata/${id} is not readable (${f.state === 'unreadable' ? f.error : f.state})`];
    let info: unknown;
    try {
      info = JSON.parse(f.text);
    } catch {
      return [`metadata/${id} is not valid JSON`];
    }
    if (typeof info !== 'object' || info === null || Array.isArray(info)) return [`metadata/${id} is not a JSON object`];
    const rec = info as Record<string, unknown>;
    const problems: string[] = [];
    if (!Number.isInteger(rec.device_id)) problems.push(`metadata/${id} has no integer device_id`);
    if (rec.deleted === true) problems.push(`metadata/${id} is marked deleted: a deferred deletion is pending, the device is unusable`);
    return problems;
  }

  /** Readable only while the thin device is mounted on mnt/<id>. */
  override async contentRoots(id: string): Promise<string[]> {
    const mnt = `${this.mnt}/${id}`;
    return MountTable.read(this.opts.mountinfo).isMountPoint(mnt) ? [`${mnt}/rootfs`] : [];
  }

  async remove(id: string, _rm: Remover): Promise<void> {
    this.refuse(`devicemapper device ${id}`);
  }
}
