/**
 * Chain IDs against known vectors: the layerdb directory names a real dockerd (20.10.24) wrote for
 * app:legacy in fixtures/sample-root.tar.gz (see fixtures/sample-root.md), each also checked by hand with
 *   printf '%s' 'sha256:<parent chain> sha256:<diff id>' | sha256sum
 * The expected values are hard-coded here, never computed with src's own function.
 */
import { describe, expect, it } from 'vitest';
import { chainIdOf, chainIds } from '../../src/store/digest.js';

// app:legacy's rootfs.diff_ids, bottom to top, and the chain IDs its layerdb holds them under
const DIFF_IDS = [
  'sha256:8b1fb61cc61941eb0b7c756bb3348e848548160b442b5ff245cd22f14522af41',
  'sha256:471dc3412751df37c8f3ad39bfe2d5b356905739252adfd6a0819332ad033f00',
  'sha256:4f36c9b89833d94c42b08a03ade72e04fc9dd9cf91bf5d251352a906a0e8b53b',
];
const CHAIN_IDS = [
  'sha256:8b1fb61cc61941eb0b7c756bb3348e848548160b442b5ff245cd22f14522af41',
  'sha256:5a4b73651a252f9afead6f2096b360d1ebc55612de64f7fadd6d38796958883f',
  'sha256:459a14f10db96cb8eb58538a016bc57abe3165b2408629477a558eff76747dc1',
];

describe('chain IDs', () => {
  it('match the layerdb names a real dockerd wrote for a three-layer image', () => {
    expect(chainIds(DIFF_IDS)).toEqual(CHAIN_IDS);
  });

  it("are the diff ID itself for a base layer, and sha256 of '<parent chain> <diff>' above it", () => {
    expect(chainIdOf(undefined, DIFF_IDS[0])).toBe(CHAIN_IDS[0]);
    expect(chainIdOf(CHAIN_IDS[0], DIFF_IDS[1])).toBe(CHAIN_IDS[1]);
    expect(chainIdOf(CHAIN_IDS[1], DIFF_IDS[2])).toBe(CHAIN_IDS[2]);
  });

  it('depend on the order of the layers: the same diff IDs reversed give other chain IDs', () => {
    const reversed = chainIds([...DIFF_IDS].reverse());
    expect(reversed[0]).toBe(DIFF_IDS[2]);
    expect(reversed.slice(1)).not.toContain(CHAIN_IDS[1]);
    expect(reversed.slice(1)).not.toContain(CHAIN_IDS[2]);
  });

  it('of an empty image are none', () => {
    expect(chainIds([])).toEqual([]);
  });
});
