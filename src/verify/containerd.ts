// verify for the containerd image store: each blob's sha256 against its name and its size against
// its records (containerd never checks content at rest; F10: a truncated blob made `docker save`
// write a truncated tar and exit 0). Streamed: memory does not grow with blob size.
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { fs } from '../fsx/fs.js';
import { short } from '../store/digest.js';
import { GcGraph, contentNode } from '../store/containerd/gc.js';
import type { ContainerdStore } from '../store/containerd/model.js';
import { usersOf } from '../findings/containerd/scan.js';
import type { Finding } from '../findings/types.js';

async function sha256File(path: string): Promise<{ hex: string; size: number }> {
  const fh = await fs.open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new Error('not a regular file');
    const h = createHash('sha256');
    const buf = Buffer.allocUnsafe(1 << 20);
    let size = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
      size += bytesRead;
    }
    return { hex: h.digest('hex'), size };
  } finally {
    await fh.close();
  }
}

export interface BlobVerifyStats {
  blobs: number;
  ok: number;
  bytes: number;
}

export async function verifyBlobs(s: ContainerdStore, stats?: BlobVerifyStats): Promise<Finding[]> {
  const affectsOf = usersOf(s, new GcGraph(s.meta, s.now));
  const recorded = new Map<string, { ns: string; size?: number }[]>();
  for (const ns of s.meta.namespaces) for (const b of ns.blobs) recorded.set(b.digest, [...(recorded.get(b.digest) ?? []), { ns: ns.name, size: b.size }]);
  const out: Finding[] = [];
  for (const [digest, b] of s.disk.blobs) {
    const recs = recorded.get(digest) ?? [];
    const problems: string[] = [];
    let bytes = 0;
    try {
      const got = await sha256File(b.path);
      bytes = got.size;
      if (`sha256:${got.hex}` !== digest) problems.push(`its content hashes to sha256:${got.hex}`);
      const want = recs.find((r) => r.size !== undefined && r.size !== got.size);
      if (want) problems.push(`it is ${got.size} bytes but its record in namespace ${want.ns} says ${want.size}`);
    } catch (err) {
      problems.push(`it cannot be read: ${(err as Error).message}`);
    }
    if (stats) {
      stats.blobs++;
      stats.bytes += bytes;
      if (!problems.length) stats.ok++;
    }
    if (!problems.length) continue;
    out.push({
      kind: 'containerd-blob-mismatch',
      severity: 'error',
      paths: [b.path],
      bytes: 0,
      reclaimable: false,
      reason: `blob ${short(digest)} is damaged: ${problems.join('; ')}; docker save and push of its images write broken data (re-pull or re-load them)`,
      affects: affectsOf(recs.map((r) => contentNode(r.ns, digest))),
      containerd: { digest },
    });
  }
  return out;
}
