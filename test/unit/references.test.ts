/**
 * What a Docker user has in hand, through the real CLI: `explain` and `verify` take image tags
 * (`app:1`, `busybox` for :latest, `docker.io/library/…`), `repo@sha256:…` references, image IDs,
 * container names and IDs, chain IDs and cache IDs, full or as a unique prefix (the 12 characters
 * scan prints); an ambiguous prefix lists the candidates and exits 2. Both commands also write
 * Prometheus metrics (--format prometheus, --metrics-file) and explain --json follows
 * docs/explain.schema.json.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { rootMaker, runCliAsync, type SyntheticRoot } from '../helpers/synthetic.js';
import { familiar } from '../../src/store/resolve.js';

const root = rootMaker();
const hex = (id: string) => id.replace(/^sha256:/, '');

/** A populated root whose repositories.json also holds a digest reference for app:1. */
function withDigestRef(s: SyntheticRoot, imageId: string): string {
  const file = path.join(s.root, 'image/overlay2/repositories.json');
  const j = JSON.parse(fs.readFileSync(file, 'utf8'));
  const digest = `sha256:${'d'.repeat(64)}`;
  j.Repositories.app[`app@${digest}`] = imageId;
  fs.writeFileSync(file, JSON.stringify(j));
  return `app@${digest}`;
}

describe('familiar names, as repositories.json keeps them', () => {
  it.each([
    ['nginx', 'nginx:latest'],
    ['docker.io/library/nginx:1.27', 'nginx:1.27'],
    ['docker.io/library/nginx', 'nginx:latest'],
    ['docker.io/grafana/grafana:10', 'grafana/grafana:10'],
    ['localhost:5000/app', 'localhost:5000/app:latest'],
    ['ghcr.io/a/b:2', 'ghcr.io/a/b:2'],
  ])('%s -> %s', (typed, stored) => expect(familiar(typed)).toBe(stored));
});

describe('explain', () => {
  it('an image by tag, bare name, docker.io name, repo@digest, full and short ID: the same image, live, its layers', async () => {
    const s = root();
    const { base, app, web } = s.populate();
    const ref = withDigestRef(s, app.id);
    for (const what of ['app:1', ref, app.id, hex(app.id), hex(app.id).slice(0, 12), 'docker.io/library/app:1']) {
      const r = await runCliAsync(['explain', what, '--json', '--data-root', s.root]);
      expect(r.code, what).toBe(0);
      expect(r.json, what).toMatchObject({ target: what, type: 'image', status: 'live', subject: `image app:1 (${hex(app.id).slice(0, 12)})` });
      expect(r.json.because).toEqual([
        expect.stringMatching(new RegExp(`^layer 1 of 3: ${hex(app.chainIds[0]).slice(0, 12)}, driver dir /`)),
        expect.stringMatching(/^layer 2 of 3: /),
        expect.stringMatching(/^layer 3 of 3: /),
        `container ${web.name} runs on it`,
      ]);
    }
    const bare = await runCliAsync(['explain', 'busybox', '--json', '--data-root', s.root]);
    expect(bare.json).toMatchObject({ type: 'image', subject: `image busybox:latest (${hex(base.id).slice(0, 12)})` });
    const human = await runCliAsync(['explain', 'app:1', '--data-root', s.root]);
    expect(human.stdout).toMatch(/^image app:1 \([0-9a-f]{12}\): live\n {2}layer 1 of 3: /);
  });

  it('a container by name, /name, full and short ID', async () => {
    const s = root();
    const { app, web } = s.populate();
    for (const what of ['web', '/web', web.id, web.id.slice(0, 12)]) {
      const r = await runCliAsync(['explain', what, '--json', '--data-root', s.root]);
      expect(r.code, what).toBe(0);
      expect(r.json, what).toMatchObject({ type: 'container', status: 'live', subject: `container web (${web.id.slice(0, 12)})` });
      expect(r.json.because).toEqual([
        `it runs image app:1 (${hex(app.id).slice(0, 12)})`,
        expect.stringMatching(new RegExp(`^its writable layer is driver dir .*/${web.mountId} \\(mount-id\\)$`)),
        expect.stringMatching(new RegExp(`^its init layer is driver dir .*/${web.initId} \\(init-id\\)$`)),
        `they sit on layer ${hex(app.chainIds[2]).slice(0, 12)}`,
      ]);
    }
  });

  it("the 12-character IDs scan prints: a leaked dir, a broken image's layer", async () => {
    const s = root();
    s.populate();
    const leak = s.makeLeakedDriverDir();
    const broken = s.addImage(['broken:1'], [{ files: { f: 'x\n' } }]);
    s.removeDriverDir(broken.layers[0].cacheId, { withLink: true });
    const scan = await runCliAsync(['scan', '--data-root', s.root]);
    const shortLeak = leak.id.slice(0, 12);
    const shortLayer = hex(broken.layers[0].chainId).slice(0, 12);
    expect(scan.stdout).toContain(`dir ${shortLeak}`);
    expect(scan.stdout).toContain(`layer ${shortLayer}`);
    const g = await runCliAsync(['explain', shortLeak, '--json', '--data-root', s.root]);
    expect(g).toMatchObject({ code: 1, json: { type: 'driver-dir', status: 'garbage', findings: [{ kind: 'unreferenced-driver-dir' }] } });
    const b = await runCliAsync(['explain', shortLayer, '--json', '--data-root', s.root]);
    expect(b).toMatchObject({ code: 1, json: { type: 'layer', status: 'broken', findings: [{ kind: 'missing-driver-data' }] } });
    const img = await runCliAsync(['explain', 'broken:1', '--json', '--data-root', s.root]);
    expect(img.json).toMatchObject({ type: 'image', status: 'broken' });
    expect(img.json.findings.map((f: { kind: string }) => f.kind)).toEqual(['missing-driver-data']);
  });

  it('an ambiguous prefix lists every candidate, exit 2; an unknown name says what it accepts', async () => {
    const s = root();
    s.populate();
    // two leaked dirs whose IDs share their first 5 characters
    const a = s.makeLeakedDriverDir({ id: `abcde${'1'.repeat(59)}` });
    const b = s.makeLeakedDriverDir({ id: `abcde${'2'.repeat(59)}` });
    for (const cmd of ['explain', 'verify']) {
      const r = await runCliAsync([cmd, 'abcde', '--data-root', s.root]);
      expect(r.code, cmd).toBe(2);
      expect(r.stderr, cmd).toBe(`layergc: abcde is ambiguous; it could be any of: driver dir ${a.id}; driver dir ${b.id}. Give more of the ID, or a tag or name.\n`);
    }
    const ok = await runCliAsync(['explain', 'abcde1', '--json', '--data-root', s.root]);
    expect(ok.json.subject).toContain(a.id);
    const none = await runCliAsync(['explain', 'nosuch:tag', '--data-root', s.root]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/^layergc: nosuch:tag is not an image, container, layer, driver dir or path that layergc knows in /);
  });
});

describe('verify', () => {
  it('verifies what an image tag, a container name, a short image ID or a layer prefix names', async () => {
    const s = root();
    const { base, app, web } = s.populate();
    const layersOf = async (...what: string[]) => {
      const r = await runCliAsync(['verify', ...what, '--json', '--data-root', s.root]);
      expect(r.code, what.join(' ')).toBe(0);
      return r.json.summary.layersVerified;
    };
    expect(await layersOf('app:1')).toBe(3);
    expect(await layersOf('web')).toBe(3);
    expect(await layersOf(web.id.slice(0, 12))).toBe(3);
    expect(await layersOf('busybox')).toBe(1);
    expect(await layersOf(hex(base.id).slice(0, 12), 'app:latest')).toBe(3); // the shared base once
    expect(await layersOf(hex(app.chainIds[1]).slice(0, 12))).toBe(1);
    const bad = await runCliAsync(['verify', 'nosuch', '--data-root', s.root]);
    expect(bad).toMatchObject({ code: 2, stderr: expect.stringMatching(/^layergc: nosuch is not an image, container, layer or driver dir in /) });
  });
});

describe('--format prometheus and --metrics-file for verify and explain', () => {
  it('verify: layers by outcome and bytes; explain: the scan it ran, command="explain"', async () => {
    const s = root();
    const { app } = s.populate();
    fs.writeFileSync(path.join(app.layers[2].driverDir, 'diff/app/data.bin'), 'changed');
    const file = path.join(s.base, 'verify.prom');
    const v = await runCliAsync(['verify', '--format', 'prometheus', '--metrics-file', file, '--data-root', s.root]);
    expect(v.code).toBe(1);
    const strip = (t: string) => t.replace(/^layergc_last_run_(timestamp|duration)_seconds.*$/gm, '');
    expect(strip(v.stdout)).toBe(strip(fs.readFileSync(file, 'utf8')));
    const root_ = `data_root="${s.root}"`;
    expect(v.stdout).toContain(`layergc_verify_layers{${root_},status="ok"} 2\n`);
    expect(v.stdout).toContain(`layergc_verify_layers{${root_},status="failed"} 1\n`);
    expect(v.stdout).toContain(`layergc_findings{${root_},kind="content-mismatch"} 1\n`);
    expect(v.stdout).toMatch(new RegExp(`^layergc_verified_bytes\\{${root_}\\} [1-9]\\d*$`, 'm'));
    expect(v.stdout).toMatch(/^layergc_info\{[^}]*command="verify"\} 1$/m);

    s.makeLeakedDriverDir();
    const efile = path.join(s.base, 'explain.prom');
    const e = await runCliAsync(['explain', 'app:1', '--format', 'prometheus', '--metrics-file', efile, '--data-root', s.root]);
    expect(e.code).toBe(0);
    expect(e.stdout).toMatch(/^layergc_info\{[^}]*command="explain"\} 1$/m);
    expect(e.stdout).toContain(`layergc_findings{${root_},kind="unreferenced-driver-dir"} 1\n`);
    expect(fs.readFileSync(efile, 'utf8')).toContain('layergc_reclaimable_bytes');
  });
});
