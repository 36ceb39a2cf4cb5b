/**
 * docs/scan.schema.json and docs/purge.schema.json describe exactly what `scan --json`,
 * `verify --json` and `purge --json` print. Every JSON output of the CLI tests goes through
 * `expectValid` (test/helpers/synthetic.ts runCli does it), and this file adds a corpus that holds
 * every finding kind, verify's extra fields, and every purge status, plus the schema's own checks:
 * the kind enum is FINDING_KINDS, fixed shapes reject unknown fields, and outputs that break the
 * documented rules are rejected.
 */
import { REPAIR_ACTION_KINDS } from '../../src/repair/plan.js';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONTAINERD_GARBAGE } from '../../src/findings/containerd-kinds.js';
import { FINDING_KINDS } from '../../src/findings/types.js';
import { INCLUDABLE_KINDS } from '../../src/purge/plan.js';
import { KNOWN_DRIVERS } from '../../src/drivers/registry/index.js';
import { expectValid, loadSchema, schemaErrors } from '../helpers/schema.js';
import { rootMaker, runCliAsync, scan, type SyntheticRoot } from '../helpers/synthetic.js';

const root = rootMaker();

describe('the schemas themselves', () => {
  it('compile as JSON Schema draft 2020-12 in ajv strict mode', () => {
    for (const kind of ['scan', 'purge', 'df'] as const) {
      const s = loadSchema(kind);
      expect(s.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
      expect(s.additionalProperties).toBe(false);
      expect(schemaErrors(kind, {})).not.toBe('');
    }
  });

  it('list exactly the finding kinds, drivers and purgeable kinds of the code', () => {
    const scanSchema = loadSchema('scan');
    const purgeSchema = loadSchema('purge');
    expect(scanSchema.$defs.kind.enum).toEqual([...FINDING_KINDS]);
    expect(scanSchema.properties.driver.enum).toEqual([...KNOWN_DRIVERS, 'overlayfs']); // overlayfs: the containerd image store's snapshotter
    expect(purgeSchema.properties.driver.enum).toEqual([...KNOWN_DRIVERS, 'overlayfs']);
    expect(purgeSchema.properties.actions.items.properties.kind.enum).toEqual([...INCLUDABLE_KINDS, ...REPAIR_ACTION_KINDS, ...CONTAINERD_GARBAGE]);
  });

  it('every object of a fixed shape refuses unknown fields', () => {
    const walk = (node: unknown, at: string, out: string[]) => {
      if (!node || typeof node !== 'object') return;
      const n = node as Record<string, unknown>;
      if (n.properties && n.type === 'object' && n.additionalProperties !== false) out.push(at);
      for (const [k, v] of Object.entries(n)) walk(v, `${at}/${k}`, out);
    };
    for (const kind of ['scan', 'purge', 'df'] as const) {
      const open: string[] = [];
      walk(loadSchema(kind), '#', open);
      // the only open objects are the if/then/else refinements of properties already closed
      expect(open.filter((p) => !/\/(if|then|else|allOf)\b/.test(p))).toEqual([]);
    }
  });

  const finding = { kind: 'dangling-link', severity: 'warning', paths: ['/r/overlay2/l/X'], bytes: 0, reclaimable: true, reason: 'r', affects: { images: [], containers: [] } };
  const scanOut = { schemaVersion: 1, dataRoot: '/r', driver: 'overlay2', daemonRunning: false, findings: [finding], summary: { findings: 1, reclaimableBytes: 0 } };
  const action = { kind: 'dangling-link', paths: ['/r/overlay2/l/X'], bytes: 0, status: 'removed' };
  const purgeOut = {
    schemaVersion: 1,
    dataRoot: '/r',
    driver: 'overlay2',
    dryRun: false,
    daemonRunning: false,
    actions: [action],
    summary: { removed: 1, failed: 0, skipped: 0, planned: 0, reclaimedBytes: 0, plannedBytes: 0, measuredFreedBytes: -4096 },
  };

  it.each([
    ['an unknown kind', { ...scanOut, findings: [{ ...finding, kind: 'orphan' }] }],
    ['an unknown field on a finding', { ...scanOut, findings: [{ ...finding, removal: { type: 'link' } }] }],
    ['a finding without affects', { ...scanOut, findings: [{ ...finding, affects: undefined }] }],
    ['a relative path', { ...scanOut, findings: [{ ...finding, paths: ['overlay2/l/X'] }] }],
    ['a layer that is not a digest', { ...scanOut, findings: [{ ...finding, layer: 'abc' }] }],
    ['no paths', { ...scanOut, findings: [{ ...finding, paths: [] }] }],
    ['verify counters without skipped', { ...scanOut, summary: { ...scanOut.summary, layersVerified: 1, layersOk: 1, bytesVerified: 0 } }],
    ['skipped without verify counters', { ...scanOut, skipped: [] }],
    ['another schema version', { ...scanOut, schemaVersion: 2 }],
  ])('scan: rejects %s', (_what, json) => {
    expect(schemaErrors('scan', JSON.parse(JSON.stringify(json)))).not.toBe('');
  });

  it.each([
    ['a removed action in a dry run', { ...purgeOut, dryRun: true, summary: { ...purgeOut.summary, measuredFreedBytes: undefined } }],
    ['a planned action in a real run', { ...purgeOut, actions: [{ ...action, status: 'planned' }] }],
    ['a failed action without a reason', { ...purgeOut, actions: [{ ...action, status: 'failed' }] }],
    ['a kind purge never removes', { ...purgeOut, actions: [{ ...action, kind: 'invalid-image' }] }],
    ['measuredFreedBytes on a dry run', { ...purgeOut, dryRun: true, actions: [{ ...action, status: 'planned' }], summary: { ...purgeOut.summary, removed: 0 } }],
    ['an unknown summary field', { ...purgeOut, summary: { ...purgeOut.summary, freed: 1 } }],
  ])('purge: rejects %s', (_what, json) => {
    expect(schemaErrors('purge', JSON.parse(JSON.stringify(json)))).not.toBe('');
  });

  it('accepts the documented examples', () => {
    expectValid('scan', scanOut);
    expectValid('scan', {
      ...scanOut,
      findings: [{ ...finding, kind: 'content-mismatch', layer: `sha256:${'a'.repeat(64)}`, cacheId: 'c', files: [{ name: 'etc/x', problem: 'modified', detail: 'd' }] }],
      skipped: [{ chainId: `sha256:${'b'.repeat(64)}`, reason: 'r' }],
      summary: { ...scanOut.summary, layersVerified: 1, layersOk: 0, bytesVerified: 10 },
    });
    expectValid('purge', purgeOut);
    expectValid('purge', {
      ...purgeOut,
      dryRun: true,
      actions: [
        { ...action, status: 'planned' },
        { ...action, status: 'skipped', reason: 'r' },
      ],
      summary: { removed: 0, failed: 0, skipped: 1, planned: 1, reclaimedBytes: 0, plannedBytes: 0 },
    });
  });
});

describe('real outputs', () => {
  /** One root with every kind scan reports, each at least once. */
  function everything(): SyntheticRoot {
    const s = root();
    const { app } = s.populate();
    s.makeRemovingOrphan();
    s.makeWriteSet({ withDriverDir: true, cacheId: true });
    s.makeLeakedDriverDir();
    s.danglingLink();
    s.addDanglingLayer();
    const gone = s.addImage(['gone:1'], [{ files: { g: '1' } }]);
    s.removeDriverDir(gone.layers[0].cacheId, { withLink: true });
    s.emptyLayerDir();
    const deep = s.addImage(['deep:1'], [{ files: { d0: '0' } }, { files: { d1: '1' } }]);
    s.removeLayerDir(deep.chainIds[0]);
    s.removeDriverDir(deep.layers[0].cacheId, { withLink: true });
    fs.cpSync(app.layers[1].dir, path.join(s.layerdb, 'sha256', 'f'.repeat(64)), { recursive: true });
    const bad = s.addContainer('bad', app.id);
    s.writeMountFile(bad.id, 'mount-id', 'nonsense');
    s.writeImageConfig('{"architecture":"amd64","os":"linux"}'); // invalid-image with no layers; a corrupt config would leave every layer unknown
    s.driverSymlinkOutside();
    return s;
  }

  it.concurrent('scan --json with every scan finding kind', async () => {
    const s = everything();
    const r = await scan(s.root);
    expect(r.code).toBe(1);
    const kinds = new Set((r.json.findings as { kind: string }[]).map((f) => f.kind));
    // the graph-driver kinds (the containerd store's are in containerd.test.ts)
    expect([...kinds].sort()).toEqual(
      FINDING_KINDS.filter((k) => !k.startsWith('containerd-') && !['content-mismatch', 'tar-split-missing', 'tar-split-corrupt', 'sparse-unverifiable'].includes(k)).sort(),
    );
    // --format json prints the same document
    const same = await runCliAsync(['scan', '--data-root', s.root, '--format', 'json']);
    expect(same.json).toEqual(r.json);
  });

  it.concurrent('verify --json and scan --deep --json: clean, then with every verify kind', async () => {
    const s = root();
    const { app } = s.populate();
    const clean = await runCliAsync(['verify', '--data-root', s.root, '--json']);
    expect(clean.code).toBe(0);
    expect(clean.json.summary).toEqual({ findings: 0, reclaimableBytes: 0, layersVerified: 3, layersOk: 3, bytesVerified: expect.any(Number) });
    expect(clean.json.skipped).toEqual([]);

    const [l0, l1, l2] = app.layers;
    fs.writeFileSync(path.join(l2.driverDir, 'diff/app/data.bin'), 'changed');
    s.removeLayerFile(l1.chainId, 'tar-split.json.gz');
    const base = s.addImage(['x:1'], [{ files: { x: 'x'.repeat(100) } }]).layers[0];
    fs.writeFileSync(path.join(base.dir, 'tar-split.json.gz'), fs.readFileSync(path.join(base.dir, 'tar-split.json.gz')).subarray(0, 30));
    const broken = s.addImage(['y:1'], [{ files: { y: 'y' } }]).layers[0];
    s.writeLayerFile(broken.chainId, 'diff', 'not a digest');
    const r = await runCliAsync(['verify', '--data-root', s.root, '--json']);
    expect(r.code).toBe(1);
    const byLayer = new Map((r.json.findings as { layer: string; kind: string; files?: unknown }[]).map((f) => [f.layer, f]));
    expect(byLayer.get(l2.chainId)).toMatchObject({ kind: 'content-mismatch', files: [{ name: 'app/data.bin', problem: expect.any(String) }] });
    expect(byLayer.get(l1.chainId)).toMatchObject({ kind: 'tar-split-missing' });
    expect(byLayer.get(base.chainId)).toMatchObject({ kind: 'tar-split-corrupt' });
    expect(byLayer.has(l0.chainId)).toBe(false);
    expect(r.json.skipped).toEqual([{ chainId: broken.chainId, reason: expect.stringContaining('does not load') }]);

    const deep = await runCliAsync(['scan', '--deep', '--data-root', s.root, '--json']);
    expect(deep.code).toBe(1);
    expect((deep.json.findings as { kind: string }[]).map((f) => f.kind)).toEqual(expect.arrayContaining(['content-mismatch', 'tar-split-missing', 'tar-split-corrupt', 'invalid-layer-metadata']));
  });

  it.concurrent('purge --json: dry run, real run, nothing to do', async () => {
    const s = root();
    s.populate();
    s.makeRemovingOrphan();
    s.makeLeakedDriverDir();
    s.danglingLink();
    s.addDanglingLayer();
    const dry = await runCliAsync(['purge', '--data-root', s.root, '--dry-run', '--json', '--include', 'unreferenced-layer']);
    expect(dry.code).toBe(0);
    expect(dry.json.actions.map((a: { status: string }) => a.status)).toEqual(['planned', 'planned', 'planned', 'planned']);
    const real = await runCliAsync(['purge', '--data-root', s.root, '--yes', '--json', '--include', 'unreferenced-layer']);
    expect(real.code).toBe(0);
    expect(typeof real.json.summary.measuredFreedBytes).toBe('number');
    const none = await runCliAsync(['purge', '--data-root', s.root, '--yes', '--json']);
    expect(none.json.actions).toEqual([]);
  });

  it.concurrent('scan and purge --json while a dockerd runs on the data root', async () => {
    const s = root();
    s.populate();
    const orphan = s.makeRemovingOrphan();
    const leak = s.makeLeakedDriverDir();
    const link = s.danglingLink();
    s.addDanglingLayer();
    const d = await s.startFakeDockerd();
    try {
      const sc = await scan(s.root);
      expect(sc.json.daemonRunning).toBe(true);
      const dry = await runCliAsync(['purge', '--data-root', s.root, '--dry-run', '--json']);
      expect(dry.code).toBe(0);
      expect(dry.json.daemonRunning).toBe(true);
      const by = (j: { actions: { paths: string[]; status: string; reason?: string }[] }, p: string) => j.actions.find((a) => a.paths[0] === p);
      // only -removing entries are safe while it runs; young leaks wait for --min-age; the rest needs it stopped
      expect(by(dry.json, orphan.dir)).toMatchObject({ status: 'planned' });
      expect(by(dry.json, leak.dir)).toMatchObject({ status: 'skipped', reason: expect.stringContaining('younger than --min-age 24 h, and a dockerd runs') });
      expect(by(dry.json, link)).toMatchObject({ status: 'skipped', reason: 'a dockerd runs on this data root; this needs it stopped' });
      const aged = await runCliAsync(['purge', '--data-root', s.root, '--dry-run', '--json', '--min-age', '0']);
      expect(by(aged.json, leak.dir)).toMatchObject({ status: 'planned' });
      const refused = await runCliAsync(['purge', '--data-root', s.root, '--yes', '--json', '--include', 'unreferenced-layer']);
      expect(refused.code).toBe(3);
      expect(refused.stdout).toBe('');
      expect(refused.stderr).toContain(`a dockerd (pid ${d.pid}) runs on ${s.root}; removing unreferenced layers needs it stopped`);
    } finally {
      d.stop();
    }
  });

  const canMount = process.getuid?.() === 0 && spawnSync('mount', ['--help']).status === 0;

  it.skipIf(!canMount).concurrent('purge --json: a failed item (immutable file) and a skipped one (a mount point inside)', async () => {
    const s = root();
    s.populate();
    const stuck = s.makeLeakedDriverDir();
    const mounted = s.makeLeakedDriverDir();
    const file = path.join(stuck.dir, 'diff/leaked.bin');
    const mnt = path.join(mounted.dir, 'merged');
    fs.mkdirSync(mnt);
    expect(spawnSync('chattr', ['+i', file]).status).toBe(0);
    const m = spawnSync('mount', ['--bind', s.outside, mnt]);
    try {
      expect(m.status, m.stderr?.toString()).toBe(0);
      const dry = await runCliAsync(['purge', '--data-root', s.root, '--dry-run', '--json']);
      const real = await runCliAsync(['purge', '--data-root', s.root, '--yes', '--json']);
      expect(real.code).toBe(1);
      const status = (j: { actions: { paths: string[]; status: string }[] }, dir: string) => j.actions.find((a) => a.paths[0] === dir)?.status;
      expect(status(real.json, stuck.dir)).toBe('failed');
      expect(status(dry.json, mounted.dir)).toBe('skipped');
      expect(status(real.json, mounted.dir)).toBe('skipped');
      expect(real.json.actions.find((a: { paths: string[] }) => a.paths[0] === mounted.dir).reason).toContain(`a mount point is inside (${mnt})`);
      expect(fs.readFileSync(path.join(s.outside, 'precious.txt'), 'utf8')).toBe('not docker data\n');
    } finally {
      if (m.status === 0) spawnSync('umount', [mnt]);
      spawnSync('chattr', ['-R', '-i', s.root]);
    }
  });
});
