/**
 * `layergc verify` through the real CLI, for what its start-up changes: the sha256 worker it starts
 * before the CLI and the store are loaded never keeps a failed or finished run alive, and the images and
 * containers a finding affects are still named, now that they are worked out only when a layer fails.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO, rootMaker, runCliAsync } from '../helpers/synthetic.js';
import * as hasher from '../../src/verify/hasher.js';

const root = rootMaker();

describe('verify, whole process', () => {
  it('a layer that is not there: exit 2 with one line, although the hashing worker was already started', async () => {
    const s = root();
    s.populate();
    const absent = `sha256:${'0'.repeat(64)}`;
    const r = await runCliAsync(['verify', '--data-root', s.root, absent]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^layergc: sha256:0{64} is not an image, container, layer or driver dir in /);
    expect(r.stdout).toBe('');
  });

  it('one layer by chain ID, clean: exit 0, that layer alone', async () => {
    const s = root();
    const { app } = s.populate();
    const r = await runCliAsync(['verify', '--data-root', s.root, '--json', app.chainIds[2]]);
    expect(r.code).toBe(0);
    expect(r.json.findings).toEqual([]);
    expect(r.json.summary).toEqual({ findings: 0, reclaimableBytes: 0, layersVerified: 1, layersOk: 1, bytesVerified: expect.any(Number) });
  });

  it('a damaged layer: its finding names every image and container that runs on it', async () => {
    const s = root();
    const { app, base } = s.populate();
    fs.writeFileSync(path.join(app.layers[2].driverDir, 'diff/app/data.bin'), 'changed');
    const r = await runCliAsync(['verify', '--data-root', s.root, '--json']);
    expect(r.code).toBe(1);
    const findings = r.json.findings as { kind: string; layer: string; affects: { images: string[]; containers: string[] } }[];
    expect(findings.map((f) => [f.kind, f.layer])).toEqual([['content-mismatch', app.chainIds[2]]]);
    expect(findings[0].affects.images).toEqual(['app:1']);
    expect(findings[0].affects.containers).toEqual(['web']);
    // the shared base layer is clean: the same run names nothing for it
    expect(findings.some((f) => f.layer === base.chainIds[0])).toBe(false);
  });
});

describe('the hashing worker bin/layergc.js starts before the bundle loads', () => {
  it('is the one the bundle hashes with: two copies of the module share one pool of idle workers', async () => {
    const pool = () => (globalThis as Record<symbol, unknown[] | undefined>)[Symbol.for('layergc.verify.idleHashers')] ?? [];
    const tsc = (await import(path.join(REPO, 'dist/verify/hasher.js'))) as typeof hasher; // the copy bin loads
    expect(pool()).toEqual([]);
    tsc.prestartHasher();
    expect(pool().length).toBe(1);
    const started = pool()[0];
    hasher.prestartHasher(); // the other copy (here: the sources) sees it and starts none
    expect(pool()).toEqual([started]);
    const h = hasher.acquireHasher();
    expect(h).toBe(started);
    expect(pool()).toEqual([]);
    const data = Buffer.alloc(3 << 20, 7);
    await h.write(data);
    expect(await h.digest()).toBe(`sha256:${createHash('sha256').update(data).digest('hex')}`);
    h.release();
  });
});
