// The one daemon.json reader: strict for the config layergc is pointed at (dockerd refuses a broken
// one, and so does layergc), lenient for the config a running dockerd names (it started with it).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { daemonDataRoot } from '../../src/store/daemon.js';
import { readDaemonConfig, runningDaemonConfig } from '../../src/store/daemon-config.js';

const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'layergc-daemon-config-')));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const p = path.join(dir, name);
  fs.writeFileSync(p, text);
  return p;
};

describe('daemon config', () => {
  it('refuses a config whose data-root is not a string for layergc, and still reads the rest of it for a running dockerd', () => {
    const p = file('typed.json', '{"data-root": 5, "userns-remap": "default", "storage-driver": "vfs"}');
    expect(() => readDaemonConfig(p)).toThrow(`daemon config ${p}: "data-root" is not a string`);
    expect(runningDaemonConfig(p)).toEqual({ 'data-root': 5, 'userns-remap': 'default', 'storage-driver': 'vfs' });
    expect(daemonDataRoot(['--config-file', p])).toEqual({ dataRoot: '/var/lib/docker', userns: true });
  });

  it('takes the data root of a running dockerd from its flag before its config, and from data-root before graph', () => {
    const p = file('both.json', '{"data-root": "/srv/docker", "graph": "/old"}');
    expect(daemonDataRoot(['--config-file', p]).dataRoot).toBe('/srv/docker');
    expect(daemonDataRoot(['--config-file', p, '--data-root', dir])).toEqual({ dataRoot: dir, userns: false });
    expect(daemonDataRoot(['--config-file', file('graph.json', '{"graph": "/old"}')]).dataRoot).toBe('/old');
  });

  it('treats a running dockerd config that is missing, not JSON or not an object as no config', () => {
    expect(runningDaemonConfig(path.join(dir, 'absent.json'))).toBeUndefined();
    expect(runningDaemonConfig(file('bad.json', '{"data-root": '))).toBeUndefined();
    expect(runningDaemonConfig(file('list.json', '["/srv"]'))).toBeUndefined();
    expect(() => readDaemonConfig(path.join(dir, 'list.json'))).toThrow(`daemon config ${path.join(dir, 'list.json')} is not valid JSON: not a JSON object`);
  });
});
