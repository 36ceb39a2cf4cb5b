// A finding as published JSON (docs/scan.schema.json): the documented fields, in a fixed order.
import type { Finding } from '../../findings/types.js';

export function findingJson(f: Finding): Record<string, unknown> {
  return {
    kind: f.kind,
    severity: f.severity,
    ...(f.layer ? { layer: f.layer } : {}),
    ...(f.cacheId ? { cacheId: f.cacheId } : {}),
    paths: f.paths,
    bytes: f.bytes,
    reclaimable: f.reclaimable,
    reason: f.reason,
    affects: f.affects,
    ...(f.files ? { files: f.files } : {}),
    ...(f.remedy ? { remedy: f.remedy } : {}),
    ...(f.containerd ? { containerd: f.containerd } : {}),
  };
}
