// Digests and chain IDs, parsed and computed exactly as moby does (go-digest, image-spec identity).
import * as crypto from 'node:crypto';
import { HEX64 } from '../layout.js';

const ALGO_HEX_LEN: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };
const SHA256_DIGEST = /^sha256:[a-f0-9]{64}$/;

/** go-digest's Parse: "<algo>:<lowercase hex of the algo's length>". Returns null when invalid. */
export function parseDigest(s: string): string | null {
  if (s.length === 71 && SHA256_DIGEST.test(s)) return s; // nearly every digest: one test, no slices
  const i = s.indexOf(':');
  if (i <= 0) return null;
  const algo = s.slice(0, i);
  const hex = s.slice(i + 1);
  const len = ALGO_HEX_LEN[algo];
  if (len === undefined || hex.length !== len || !/^[a-f0-9]+$/.test(hex)) return null;
  return s;
}

/** Go's strings.TrimSpace for the ASCII whitespace moby's files can carry. */
export function trimSpace(s: string): string {
  // most files hold nothing to trim: printable ASCII at both ends needs no regex
  const first = s.charCodeAt(0);
  const last = s.charCodeAt(s.length - 1);
  if (first > 0x20 && first < 0x7f && last > 0x20 && last < 0x7f) return s;
  return s.replace(/^[\s\u0085\u00a0]+|[\s\u0085\u00a0]+$/g, '');
}

// crypto.hash (Node 20.12+): a one-shot digest without a Hash object, half the cost for the
// 10,000 chain steps and 5,000 configs of a big store
const oneShot = (crypto as { hash?: (algo: string, data: string | Buffer, enc: 'hex') => string }).hash;

export function sha256Hex(data: string | Buffer): string {
  return oneShot ? oneShot('sha256', data, 'hex') : crypto.createHash('sha256').update(data).digest('hex');
}

/**
 * Chain steps hashed so far, parent -> diff -> chain: images share their lower layers, so a scan
 * computes most chains many times over (5,000 images of 10,000 layers: ~20x). Keyed by the two
 * strings as they are (their hashes are cached), not by a 140-character join made per lookup.
 * Cleared when large; it only saves work.
 */
const chainSteps = new Map<string, Map<string, string>>();
let chainStepCount = 0;
const MAX_CHAIN_STEPS = 200_000;

/** identity.ChainID step: sha256(parent + " " + diff) as "sha256:<hex>". */
export function chainIdOf(parent: string | undefined, diffId: string): string {
  if (!parent) return diffId;
  let byDiff = chainSteps.get(parent);
  let id = byDiff?.get(diffId);
  if (id === undefined) {
    if (chainStepCount >= MAX_CHAIN_STEPS) {
      chainSteps.clear();
      chainStepCount = 0;
      byDiff = undefined;
    }
    id = `sha256:${sha256Hex(`${parent} ${diffId}`)}`;
    if (!byDiff) chainSteps.set(parent, (byDiff = new Map()));
    byDiff.set(diffId, id);
    chainStepCount++;
  }
  return id;
}

/** Every prefix chain ID of an ordered list of diff IDs, bottom to top. */
export function chainIds(diffIds: readonly string[]): string[] {
  const out: string[] = [];
  let parent: string | undefined;
  for (const d of diffIds) {
    parent = chainIdOf(parent, d);
    out.push(parent);
  }
  return out;
}

export function hexOf(digest: string): string {
  const i = digest.indexOf(':');
  return i < 0 ? digest : digest.slice(i + 1);
}

export function short(id: string): string {
  return hexOf(id).slice(0, 12);
}

/** Accept a chain ID with or without "sha256:"; null when neither form is valid. */
export function normalizeChainId(s: string): string | null {
  if (HEX64.test(s)) return `sha256:${s}`;
  return s.startsWith('sha256:') && HEX64.test(s.slice(7)) ? s : null;
}
