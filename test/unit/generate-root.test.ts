/**
 * The large-root generator (test/helpers/generate-root.mjs) that `npm run bench` builds its roots
 * with: chain IDs as moby computes them, tar-splits that `layergc verify` rebuilds into each
 * DiffID, the same tree from the same seed, and exactly the findings its manifest promises.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { chainIdOf } from '../../src/store/digest.js';
import { HEX64 } from '../../src/layout.js';
import { FINDING_KINDS } from '../../src/findings/types.js';
import { DAMAGE_KINDS, everyDamage, generateRoot } from '../helpers/generate-root.mjs';
import { runCliAsync, scan } from '../helpers/synthetic.js';

const base = fs.mkdtempSync(path.join(tmpdir(), 'layergc-gen-'));
afterAll(() => fs.rmSync(base, { recursive: true, force: true }));
let n = 0;
const make = (opts: Parameters<typeof generateRoot>[1]) => generateRoot(path.join(base, String(n++)), opts);

const kindCounts = (findings: { kind: string }[]) => {
  const c: Record<string, number> = {};
  for (const f of findings) c[f.kind] = (c[f.kind] ?? 0) + 1;
  return c;
};

/** `find` over a tree: type, path, size, link target and content hash of every entry, sorted. */
function listing(root: string): string[] {
  const r = spawnSync('sh', ['-c', `cd '${root}' && find . -printf '%y %p %s %l\\n' | sort && find . -type f -print0 | sort -z | xargs -0 sha256sum`], { encoding: 'utf8', maxBuffer: 1 << 28 });
  expect(r.status).toBe(0);
  return r.stdout.split('\n');
}

describe('generateRoot', () => {
  it('names every layerdb entry by identity.ChainID of its parent and diff, and every image chain exists', () => {
    const m = make({ layers: 60, containers: 3, seed: 7 });
    const sha = path.join(m.root, 'image/overlay2/layerdb/sha256');
    const names = fs.readdirSync(sha);
    expect(names).toHaveLength(60);
    for (const hex of names) {
      expect(hex).toMatch(HEX64);
      const diff = fs.readFileSync(path.join(sha, hex, 'diff'), 'utf8');
      const parentFile = path.join(sha, hex, 'parent');
      const parent = fs.existsSync(parentFile) ? fs.readFileSync(parentFile, 'utf8') : undefined;
      if (parent) expect(names).toContain(parent.slice(7));
      expect(chainIdOf(parent, diff)).toBe(`sha256:${hex}`);
    }
    const content = path.join(m.root, 'image/overlay2/imagedb/content/sha256');
    const configs = fs.readdirSync(content);
    expect(configs).toHaveLength(m.images);
    for (const id of configs) {
      const diffIds = (JSON.parse(fs.readFileSync(path.join(content, id), 'utf8')) as { rootfs: { diff_ids: string[] } }).rootfs.diff_ids;
      let chain: string | undefined;
      for (const d of diffIds) expect(names).toContain((chain = chainIdOf(chain, d)).slice(7));
    }
  });

  it('writes tar-splits that layergc verify rebuilds into every DiffID, and the healthy root scans clean', async () => {
    const m = make({ layers: 40, containers: 4, seed: 3, maxFileBytes: 9000 });
    const v = await runCliAsync(['verify', '--data-root', m.root, '--json']);
    expect(v.stderr).toBe('');
    expect(v.json.findings).toEqual([]);
    expect(v.json.summary).toMatchObject({ findings: 0, layersVerified: 40, layersOk: 40 });
    expect(v.code).toBe(0);
    const s = await scan(m.root);
    expect(s.json.findings).toEqual([]);
    expect(s.code).toBe(0);
  });

  it('makes each kind of damage so that scan reports exactly the findings the manifest expects', async () => {
    const m = make({ layers: 80, containers: 5, seed: 11, damage: everyDamage(2) });
    // every kind a scan (not verify) reports, in the documented order
    expect(DAMAGE_KINDS).toEqual(FINDING_KINDS.slice(0, FINDING_KINDS.indexOf('content-mismatch')));
    expect(Object.keys(m.expected).sort()).toEqual([...DAMAGE_KINDS].sort());
    const s = await scan(m.root);
    expect(s.stderr).toBe('');
    expect(kindCounts(s.json.findings)).toEqual(m.expected);
    expect(s.code).toBe(1);
  });

  it('makes one damage kind alone with nothing else flagged, and a leaked dir of the files asked for', async () => {
    const m = make({ layers: 10, containers: 1, damage: { 'missing-parent': 3 }, leakedFiles: 2500 });
    expect(m.expected).toEqual({ 'missing-parent': 3, 'unreferenced-driver-dir': 1 });
    const s = await scan(m.root);
    expect(kindCounts(s.json.findings)).toEqual(m.expected);
    const leaked = s.json.findings.find((f: { kind: string }) => f.kind === 'unreferenced-driver-dir');
    const du = spawnSync('du', ['-s', '-B1', '-x', leaked.paths[0], leaked.paths[1]], { encoding: 'utf8' });
    expect(leaked.bytes).toBe(
      du.stdout
        .trim()
        .split('\n')
        .reduce((t, l) => t + Number(l.split('\t')[0]), 0),
    );
    expect(Number(spawnSync('sh', ['-c', `find '${leaked.paths[0]}/diff' -type f | wc -l`], { encoding: 'utf8' }).stdout)).toBe(2500);
  });

  it('is deterministic: the same seed gives the same tree, another seed another', () => {
    const opts = { layers: 25, containers: 2, damage: everyDamage(1), seed: 5 };
    const a = make(opts);
    const b = make(opts);
    const c = make({ ...opts, seed: 6 });
    const la = listing(a.root);
    expect(la.length).toBeGreaterThan(500);
    expect(listing(b.root)).toEqual(la);
    expect(listing(c.root)).not.toEqual(la);
    expect({ ...b, root: a.root, outside: a.outside, generateMs: 0 }).toEqual({ ...a, generateMs: 0 });
  });
});
