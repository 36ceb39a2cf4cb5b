// scan --json: the envelope published as docs/scan.schema.json.
import type { Finding } from '../../findings/types.js';
import { findingJson } from './finding-json.js';
import type { ScanHeader } from './scan-human.js';

export const SCHEMA_VERSION = 1;

export function scanJson(h: ScanHeader, findings: Finding[], notes: string[] = []): Record<string, unknown> {
  return {
    schemaVersion: SCHEMA_VERSION,
    dataRoot: h.dataRoot,
    driver: h.driver,
    ...(h.containerdRoot ? { containerdRoot: h.containerdRoot } : {}),
    daemonRunning: h.daemonRunning,
    findings: findings.map(findingJson),
    ...(notes.length ? { notes } : {}),
    summary: {
      findings: findings.length,
      reclaimableBytes: findings.filter((f) => f.reclaimable).reduce((s, f) => s + f.bytes, 0),
    },
  };
}
