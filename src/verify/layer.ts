// One layer: rebuild its tar stream (passes.ts) from its content roots and say whether it hashes to
// the DiffID, and if not, which files are damaged.

import { closeQuietly, openDirBelow } from '../fsx/read.js';
import { ContentRoots } from './content-roots.js';
import { crcPass, hashPass } from './passes.js';
import type { FileProblem } from './tar-names.js';

export interface VerifyTarget {
  chainId: string; // 'sha256:<hex>'
  diffId: string; // expected, 'sha256:<hex>'
  tarSplitPath: string; // <layerdb>/sha256/<hex>/tar-split.json.gz
  contentRoots: string[]; // [own root, ...fallback roots (overlay2 lower chain, nearest first)]
  /**
   * The data root (a real directory) the content roots lie below: each root is then opened from it
   * down without following a symlink, and read only through that opened directory.
   */
  anchor?: string;
}

export type VerifyKind = 'content-mismatch' | 'tar-split-missing' | 'tar-split-corrupt' | 'sparse-unverifiable' | 'unsafe-path';

export interface VerifyResult {
  chainId: string;
  ok: boolean;
  kind?: VerifyKind;
  reason?: string;
  expected: string;
  computed?: string;
  bytes: number;
  files: FileProblem[];
}

export interface VerifyLayerOptions {
  onBytes?: (n: number) => void;
  signal?: AbortSignal;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export async function verifyLayer(t: VerifyTarget, opts: VerifyLayerOptions = {}): Promise<VerifyResult> {
  if (!t.anchor) return verifyLayerIn(t, new ContentRoots(t.contentRoots), opts);
  const fds: number[] = [];
  try {
    const pinned: string[] = [];
    for (const root of t.contentRoots) {
      const d = openDirBelow(t.anchor, root);
      if (d.state === 'ok') {
        fds.push(d.fd);
        pinned.push(d.path);
      } else if (d.state === 'missing')
        pinned.push(root); // nothing there: the root is passed over
      else {
        const why = `${d.at} ${d.why}: the layer is not read through it`;
        return { chainId: t.chainId, ok: false, kind: d.state === 'unsafe' ? 'unsafe-path' : 'content-mismatch', reason: why, expected: t.diffId.trim(), bytes: 0, files: [] };
      }
    }
    return await verifyLayerIn(t, new ContentRoots(pinned, t.contentRoots), opts);
  } finally {
    for (const fd of fds) closeQuietly(fd);
  }
}

async function verifyLayerIn(t: VerifyTarget, roots: ContentRoots, opts: VerifyLayerOptions): Promise<VerifyResult> {
  const expected = t.diffId.trim();
  const pass = await hashPass(t.tarSplitPath, roots, opts);
  const base = { chainId: t.chainId, expected, bytes: pass.bytes };
  const bad = (kind: VerifyKind, reason: string, files: FileProblem[], computed?: string): VerifyResult => ({
    ...base,
    ok: false,
    kind,
    reason,
    ...(computed ? { computed } : {}),
    files,
  });

  if (pass.tarSplitError) {
    const e = pass.tarSplitError;
    if (e.kind === 'missing') return bad('tar-split-missing', e.message, [...pass.damaged.values()]);
    // Name what can be named in the part that could be read.
    const files = await crcPass(t.tarSplitPath, roots, pass.damaged, opts.signal);
    return bad('tar-split-corrupt', e.kind === 'truncated' ? `tar-split is truncated: ${e.message}` : e.message, files);
  }

  const computed = pass.digest!;
  if (computed === expected) {
    const long = [...pass.damaged.values()];
    if (long.length === 0) return { ...base, ok: true, computed, files: [] };
    // Only 'long' files get here: their first `size` bytes are right, but moby's assembler copies whole
    // files, so push and save would fail the CRC.
    const are = long.length === 1 ? 'is' : 'are';
    const why = `content matches the DiffID, but ${plural(long.length, 'file')} on disk ${are} longer than tar-split records`;
    return bad('content-mismatch', `${why}; docker push/save would fail`, long, computed);
  }

  const mismatch = `rebuilt stream hashes to ${computed}, not ${expected}`;
  const files = await crcPass(t.tarSplitPath, roots, pass.damaged, opts.signal);
  if (files.length > 0) return bad('content-mismatch', `${mismatch}: ${plural(files.length, 'damaged file')}`, files, computed);
  if (pass.sparse.length > 0) {
    const some = pass.sparse.slice(0, 3).join(', ') + (pass.sparse.length > 3 ? ', …' : '');
    const entries = pass.sparse.length === 1 ? 'entry' : 'entries';
    const why = `every file matches its tar-split CRC-64, but the layer holds GNU sparse ${entries} (${some})`;
    return bad('sparse-unverifiable', `${why} that tar-split cannot rebuild`, files, computed);
  }
  const why = `${mismatch}, yet every file matches its tar-split CRC-64`;
  return bad('content-mismatch', `${why}: the tar-split's own header data does not belong to this DiffID`, files, computed);
}
