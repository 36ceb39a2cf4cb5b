/**
 * Finding the store: data root (flag, daemon config), userns-remap subdir, driver (flag, config,
 * detection) and whether the layout is one layergc handles — through the real CLI's exit codes and
 * its one-line reasons on stderr.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { rootMaker, runCliAsync, type SyntheticRoot, type CliResult } from '../helpers/synthetic.js';

const root = rootMaker({ populate: true });

/** exit code `code`, nothing on stdout, and exactly one line on stderr: `layergc: <reason>` */
function expectRefusal(r: CliResult, code: number, ...reason: string[]): void {
  expect(r.stdout).toBe('');
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^layergc: /);
  for (const part of reason) expect(lines[0]).toContain(part);
  expect(r.code).toBe(code);
}

const scanAt = (dataRoot: string, extra: string[] = []) => runCliAsync(['scan', '--data-root', dataRoot, '--json', ...extra]);

function writeConfig(s: SyntheticRoot, config: unknown, name = 'daemon.json'): string {
  const p = path.join(s.base, name);
  fs.writeFileSync(p, typeof config === 'string' ? config : JSON.stringify(config));
  return p;
}

describe('not a Docker data root: exit 2 with a one-line reason', () => {
  it.concurrent('/etc', async () => {
    expectRefusal(await scanAt('/etc'), 2, '/etc is not a Docker data root: it has no image/<driver>/layerdb');
  });

  it.concurrent('a path that does not exist', async () => {
    const s = root();
    const missing = path.join(s.base, 'no-such-dir');
    expectRefusal(await scanAt(missing), 2, `${missing} does not exist: not a Docker data root`);
  });

  it.concurrent('a plain file', async () => {
    const s = root();
    const file = path.join(s.base, 'file');
    fs.writeFileSync(file, 'not a dir');
    expectRefusal(await scanAt(file), 2, `${file} is not a directory: not a Docker data root`);
  });

  it.concurrent('/', async () => {
    expectRefusal(await scanAt('/'), 2, '/ is not a Docker data root');
  });

  it.concurrent('an empty directory; a relative path is taken from the current directory', async () => {
    const s = root();
    const empty = path.join(s.base, 'empty');
    fs.mkdirSync(empty);
    expectRefusal(await runCliAsync(['scan', '--data-root', 'empty', '--json'], { cwd: s.base }), 2, `${empty} is not a Docker data root`);
  });
});

describe('a layout layergc does not handle: exit 4', () => {
  it.concurrent('the containerd image store (containerd/daemon, no image/<driver>/layerdb)', async () => {
    const s = root();
    const d = path.join(s.base, 'containerd-root');
    fs.mkdirSync(path.join(d, 'containerd/daemon/io.containerd.snapshotter.v1.overlayfs'), { recursive: true });
    fs.mkdirSync(path.join(d, 'image'), { recursive: true });
    expectRefusal(await scanAt(d), 4, `${d} uses the containerd image store`);
  });

  it.concurrent('daemon.json turning on features.containerd-snapshotter: the containerd root is read, and one without meta.db is refused', async () => {
    const s = root();
    const cfg = writeConfig(s, { features: { 'containerd-snapshotter': true } });
    const ctrd = path.join(s.base, 'ctrd');
    fs.mkdirSync(ctrd);
    expectRefusal(await scanAt(s.root, ['--daemon-config', cfg, '--containerd-root', ctrd]), 4, `${s.root} uses the containerd image store but ${ctrd} has no io.containerd.metadata.v1.bolt/meta.db`);
  });

  it.concurrent('a storage driver layergc does not know', async () => {
    const s = root();
    expectRefusal(await scanAt(s.root, ['--driver', 'overlay']), 4, 'storage driver "overlay" is not one layergc knows');
  });

  it.concurrent('a graph-driver store next to a containerd/daemon dir is read (the graph driver is what the daemon found first)', async () => {
    const s = root();
    fs.mkdirSync(path.join(s.root, 'containerd/daemon'), { recursive: true });
    const r = await scanAt(s.root);
    expect(r.code).toBe(0);
    expect(r.json.findings).toEqual([]);
  });
});

describe('the daemon config', () => {
  it.concurrent('gives the data root and the driver', async () => {
    const s = root();
    const cfg = writeConfig(s, { 'data-root': s.root, 'storage-driver': 'overlay2', 'log-level': 'warn' });
    const r = await runCliAsync(['scan', '--daemon-config', cfg, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.json).toMatchObject({ dataRoot: s.root, driver: 'overlay2', findings: [] });
  });

  it.concurrent('picks the driver when the root has layer stores for several', async () => {
    const s = root();
    fs.mkdirSync(path.join(s.root, 'image/vfs/layerdb/sha256'), { recursive: true });
    fs.mkdirSync(path.join(s.root, 'vfs/dir'), { recursive: true });
    for (const [driver, cfg] of [
      ['overlay2', writeConfig(s, { 'data-root': s.root, 'storage-driver': 'overlay2' }, 'o.json')],
      ['vfs', writeConfig(s, { 'data-root': s.root, 'storage-driver': 'vfs' }, 'v.json')],
    ]) {
      const r = await runCliAsync(['scan', '--daemon-config', cfg, '--json']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.json.driver).toBe(driver);
    }
  });

  it.concurrent('several drivers and none chosen: exit 2 listing them', async () => {
    const s = root();
    fs.mkdirSync(path.join(s.root, 'image/vfs/layerdb'), { recursive: true });
    fs.mkdirSync(path.join(s.root, 'image/btrfs/layerdb'), { recursive: true });
    expectRefusal(await scanAt(s.root), 2, `${s.root} has layer stores for several drivers (btrfs, overlay2, vfs); pass --driver`);
  });

  it.concurrent('--data-root and --driver win over the config', async () => {
    const s = root();
    const other = root();
    fs.mkdirSync(path.join(s.root, 'image/vfs/layerdb'), { recursive: true });
    const cfg = writeConfig(s, { 'data-root': other.root, 'storage-driver': 'vfs' });
    const r = await runCliAsync(['scan', '--daemon-config', cfg, '--data-root', s.root, '--driver', 'overlay2', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json).toMatchObject({ dataRoot: s.root, driver: 'overlay2' });
  });

  it.concurrent('userns-remap: the data root is <root>/<uid>.<gid>', async () => {
    const s = root();
    const parent = path.join(s.base, 'remapped');
    fs.mkdirSync(parent);
    const sub = path.join(parent, '100000.100000');
    fs.renameSync(s.root, sub);
    const cfg = writeConfig(s, { 'data-root': parent, 'userns-remap': 'default' });
    const r = await runCliAsync(['scan', '--daemon-config', cfg, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.json).toMatchObject({ dataRoot: sub, driver: 'overlay2', findings: [] });
    fs.renameSync(sub, s.root);
  });

  it.concurrent('userns-remap with several <uid>.<gid> roots and none named by /etc/subuid: exit 2', async () => {
    const s = root();
    const parent = path.join(s.base, 'remapped');
    fs.mkdirSync(path.join(parent, '200000.200000'), { recursive: true });
    fs.mkdirSync(path.join(parent, '300000.300000'), { recursive: true });
    const cfg = writeConfig(s, { 'data-root': parent, 'userns-remap': 'nosuchuser-layergc' });
    expectRefusal(await runCliAsync(['scan', '--daemon-config', cfg, '--json']), 2, 'userns-remap is set', 'found: 200000.200000, 300000.300000', 'pass --data-root');
  });

  it.concurrent('a config that is missing or not JSON: exit 2', async () => {
    const s = root();
    const missing = path.join(s.base, 'missing.json');
    expectRefusal(await scanAt(s.root, ['--daemon-config', missing]), 2, `cannot read daemon config ${missing}`);
    const bad = writeConfig(s, '{"data-root": ', 'bad.json');
    expectRefusal(await scanAt(s.root, ['--daemon-config', bad]), 2, `daemon config ${bad} is not valid JSON`);
  });
});

describe('symlinks', () => {
  it.concurrent('a data root that is itself a symlink to a real root works, and is reported by its real path', async () => {
    const s = root();
    const link = path.join(s.base, 'docker-link');
    fs.symlinkSync(s.root, link);
    const r = await scanAt(link);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.json).toMatchObject({ dataRoot: s.root, findings: [] });
    s.makeLeakedDriverDir();
    const dirty = await scanAt(link);
    expect(dirty.code).toBe(1);
    expect(dirty.json.findings[0].paths[0].startsWith(`${s.root}/overlay2/`)).toBe(true);
  });
});
