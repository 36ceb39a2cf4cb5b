/**
 * `layergc explain` through the real CLI on synthetic roots: for each thing a user can name by path or
 * ID (layer, driver dir and a file in it, a container's -init dir, a layer mount, a short link, an
 * image config, layerdb entries, any other path) the exact chain of ownership or the finding that
 * makes it garbage, the exit code (0 live, 1 otherwise, 2 unknown to layergc) and every output
 * format. Names, tags and ID prefixes are in references.test.ts. Each test builds its own root.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { hexOf, rootMaker, runCliAsync, type SyntheticRoot } from '../helpers/synthetic.js';

const root = rootMaker();
const short = (id: string) => hexOf(id).slice(0, 12);

function explain(s: SyntheticRoot, what: string, extra: string[] = ['--json']) {
  return runCliAsync(['explain', what, ...extra, '--data-root', s.root]);
}

describe('explain: live things say what keeps them (exit 0)', () => {
  it('a layer by chain ID: the image that uses it at its position, the container on top, its driver dir', async () => {
    const s = root();
    const { app } = s.populate();
    const r = await explain(s, app.chainIds[1]);
    expect(r.code).toBe(0);
    expect(r.json).toMatchObject({ dataRoot: s.root, driver: 'overlay2', target: app.chainIds[1], type: 'layer', subject: `layer ${app.chainIds[1]}`, status: 'live', findings: [] });
    expect(r.json.because).toEqual(['image app:1 uses it as layer 2 of 3', 'container web runs on it (its mount parent chain)', `its data is driver dir ${app.layers[1].driverDir} (cache-id)`]);
  });

  it('a shared base layer dir by path: the layer it holds, each image and container keeping that, the dir stacked on it', async () => {
    const s = root();
    const { base, app, web } = s.populate();
    const dir = app.layers[0].driverDir;
    expect(dir).toBe(base.layers[0].driverDir);
    const r = await explain(s, dir);
    expect(r).toMatchObject({ code: 0, json: { type: 'driver-dir', subject: `driver dir ${dir}`, status: 'live', findings: [] } });
    const [claim, ...rest] = r.json.because as string[];
    // the layer is named by the first image that uses it; the images come in the store's read order
    expect(claim).toMatch(new RegExp(`^it is the cache-id of layer ${short(base.chainIds[0])} \\(image (busybox:latest|app:1)\\)$`));
    expect(rest.slice(0, 3).sort()).toEqual(['  which container web keeps', '  which image app:1 keeps', '  which image busybox:latest keeps']);
    // kept by one in-use dir stacked on it, directly or higher up; which one comes first is read order
    const above = [app.layers[1].cacheId, app.layers[2].cacheId, web.initId, web.mountId].join('|');
    expect(rest.slice(3)).toEqual([expect.stringMatching(new RegExp(`^it is kept: driver dir (${above}), which is in use, stacks on it$`))]);
  });

  it("a file inside a container's writable dir: that driver dir, named by the container's mount-id", async () => {
    const s = root();
    const { web } = s.populate();
    const r = await explain(s, path.join(web.mountDriverDir, 'diff/written-by-container'));
    expect(r).toMatchObject({ code: 0, json: { type: 'driver-dir', subject: `driver dir ${web.mountDriverDir}`, status: 'live' } });
    expect(r.json.because).toEqual(['it is named by container web (mount-id)']);
  });

  it("a container's -init dir: named by its init-id, and the writable dir stacks on it", async () => {
    const s = root();
    const { web } = s.populate();
    const r = await explain(s, web.initDriverDir);
    expect(r).toMatchObject({ code: 0, json: { type: 'driver-dir', status: 'live' } });
    expect(r.json.because).toEqual(['it is named by container web (init-id)', `it is kept: driver dir ${web.mountId}, which is in use, stacks on it`]);
  });

  it("a layer mount in layerdb/mounts: the container's, sitting on its image's top layer", async () => {
    const s = root();
    const { app, web } = s.populate();
    const r = await explain(s, web.mountDir);
    expect(r).toMatchObject({ code: 0, json: { type: 'mount', subject: `mount ${web.id}`, status: 'live', findings: [] } });
    expect(r.json.because).toEqual(['it is the layer mount of container web', `it sits on layer ${short(app.chainIds[2])}`]);
  });

  it("an overlay2 short link of a layer, and an image's config file", async () => {
    const s = root();
    const { app } = s.populate();
    const link = await explain(s, app.layers[1].linkPath);
    expect(link).toMatchObject({ code: 0, json: { type: 'path', subject: app.layers[1].linkPath, status: 'live', because: ['it is an overlay2 short link'], findings: [] } });
    const config = await explain(s, app.configPath);
    expect(config).toMatchObject({ code: 0, json: { type: 'path', subject: app.configPath, status: 'live', because: ['it is the config of image app:1'], findings: [] } });
  });
});

describe('explain: garbage names its finding (exit 1)', () => {
  it('a leaked driver dir: nothing keeps it, its unreferenced-driver-dir finding lists the dir and its link', async () => {
    const s = root();
    s.populate();
    const leak = s.makeLeakedDriverDir();
    const r = await explain(s, leak.dir);
    expect(r).toMatchObject({ code: 1, json: { type: 'driver-dir', subject: `driver dir ${leak.dir}`, status: 'garbage', because: [] } });
    expect(r.json.findings).toMatchObject([{ kind: 'unreferenced-driver-dir', cacheId: leak.id, paths: [leak.dir, leak.linkPath] }]);
  });

  it('a layer no image or container uses: its unreferenced-layer finding, and where its data is', async () => {
    const s = root();
    s.populate();
    const l = s.addDanglingLayer();
    const r = await explain(s, l.chainId);
    expect(r).toMatchObject({ code: 1, json: { type: 'layer', status: 'garbage', because: [`its data is driver dir ${l.driverDir} (cache-id)`] } });
    expect(r.json.findings).toMatchObject([{ kind: 'unreferenced-layer', layer: l.chainId, cacheId: l.cacheId }]);
  });

  it('a -removing layerdb entry: the layer being removed, its removing-orphan finding', async () => {
    const s = root();
    s.populate();
    const o = s.makeRemovingOrphan();
    const r = await explain(s, o.dir);
    expect(r).toMatchObject({ code: 1, json: { type: 'path', subject: o.dir, status: 'garbage', because: [`it is the layer store entry of ${short(o.chainId)} being removed`] } });
    expect(r.json.findings).toMatchObject([{ kind: 'removing-orphan', layer: o.chainId, cacheId: o.cacheId, paths: [o.dir, o.driverDir] }]);
  });

  it('a short link that points at no dir: its dangling-link finding', async () => {
    const s = root();
    s.populate();
    const link = s.danglingLink();
    const r = await explain(s, link);
    expect(r).toMatchObject({ code: 1, json: { type: 'path', subject: link, status: 'garbage', because: ['it is an overlay2 short link'] } });
    expect(r.json.findings).toMatchObject([{ kind: 'dangling-link', paths: [link] }]);
  });
});

describe('explain: what layergc does not know', () => {
  it('a path in the data root that nothing names is unknown, exit 1', async () => {
    const s = root();
    s.populate();
    const volumes = path.join(s.root, 'volumes');
    const r = await explain(s, volumes);
    expect(r).toMatchObject({ code: 1, json: { type: 'path', subject: volumes, status: 'unknown', because: [], findings: [] } });
  });

  it('a path outside the data root is refused with exit 2 and one line on stderr, nothing on stdout', async () => {
    const s = root();
    s.populate();
    const r = await explain(s, path.join(s.outside, 'precious.txt'), []);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`layergc: ${path.join(s.outside, 'precious.txt')} is not an image, container, layer, driver dir or path that layergc knows in ${s.root}\n`);
  });
});

describe('explain: output formats', () => {
  it('human: the subject and its status first, then every reason and finding the JSON holds', async () => {
    const s = root();
    s.populate();
    const leak = s.makeLeakedDriverDir();
    const json = (await explain(s, leak.dir)).json;
    const human = await explain(s, leak.dir, []);
    expect(human.code).toBe(1);
    // lines may wrap (at spaces): compare the text with runs of whitespace made one space
    const flat = human.stdout.replace(/\s+/g, ' ');
    expect(flat.startsWith(`driver dir ${leak.dir}: garbage `)).toBe(true);
    for (const f of json.findings) expect(flat).toContain(`${f.kind}: ${f.reason.replace(/\s+/g, ' ')}`);
  });

  it('--format prometheus and --metrics-file: the metrics of the scan explain ran, labelled command="explain"', async () => {
    const s = root();
    s.populate();
    const leak = s.makeLeakedDriverDir();
    s.makeLeakedDriverDir();
    const file = path.join(s.base, 'explain.prom');
    const r = await explain(s, leak.id, ['--format', 'prometheus', '--metrics-file', file]);
    expect(r.code).toBe(1);
    for (const text of [r.stdout, fs.readFileSync(file, 'utf8')]) {
      expect(text).toContain(`layergc_info{data_root="${s.root}",version=`);
      expect(text).toMatch(/command="explain"\} 1\n/);
      expect(text).toContain(`layergc_findings{data_root="${s.root}",kind="unreferenced-driver-dir"} 2\n`);
    }
  });
});
