/**
 * `layergc --version` answers before the CLI is loaded (a probe costs one Node start-up), and says
 * exactly what commander's --version of the full CLI says.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN, REPO, runCli } from '../helpers/synthetic.js';

const lone = fs.mkdtempSync(path.join(tmpdir(), 'layergc-bin-'));
afterAll(() => fs.rmSync(lone, { recursive: true, force: true }));

describe('layergc --version', () => {
  it('prints the package version, as the full CLI does, for --version and -V', () => {
    const version = (JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
    const full = spawnSync(process.execPath, [path.join(REPO, 'dist/cli/program/main.js'), '--version'], { encoding: 'utf8' });
    expect(full.stdout).toBe(`${version}\n`);
    for (const flag of ['--version', '-V']) {
      const r = runCli([flag]);
      expect([r.code, r.stdout, r.stderr]).toEqual([0, full.stdout, '']);
    }
  });

  it('loads nothing of the CLI: it runs from a copy of bin/ and package.json with no dist/', () => {
    fs.mkdirSync(path.join(lone, 'bin'));
    fs.copyFileSync(BIN, path.join(lone, 'bin/layergc.js'));
    fs.copyFileSync(path.join(REPO, 'package.json'), path.join(lone, 'package.json'));
    const v = spawnSync(process.execPath, [path.join(lone, 'bin/layergc.js'), '--version'], { encoding: 'utf8' });
    expect([v.status, v.stdout]).toEqual([0, runCli(['--version']).stdout]);
    // anything else needs the CLI, which this copy does not have
    const h = spawnSync(process.execPath, [path.join(lone, 'bin/layergc.js'), '--version', 'scan'], { encoding: 'utf8' });
    expect(h.status).not.toBe(0);
    expect(h.stderr).toMatch(/ERR_MODULE_NOT_FOUND/);
  });
});

describe('bin/layergc.js loads the bundle only when it is newer than tsc output', () => {
  const stubs = fs.mkdtempSync(path.join(tmpdir(), 'layergc-bundle-'));
  afterAll(() => fs.rmSync(stubs, { recursive: true, force: true }));
  const stub = (rel: string, says: string, mtimeS: number) => {
    fs.mkdirSync(path.dirname(path.join(stubs, rel)), { recursive: true });
    fs.writeFileSync(path.join(stubs, rel), `process.stdout.write(${JSON.stringify(says)});\n`);
    fs.utimesSync(path.join(stubs, rel), mtimeS, mtimeS);
  };
  const run = () => spawnSync(process.execPath, [path.join(stubs, 'bin/layergc.js'), 'scan'], { encoding: 'utf8' });

  it('runs dist/bundle when built after dist/cli, else dist/cli (a bare tsc never runs a stale bundle)', () => {
    fs.mkdirSync(path.join(stubs, 'bin'));
    fs.copyFileSync(BIN, path.join(stubs, 'bin/layergc.js'));
    stub('dist/cli/program/main.js', 'tsc', 1000);
    stub('dist/bundle/layergc.js', 'bundle', 2000);
    expect(run().stdout).toBe('bundle');
    stub('dist/cli/program/main.js', 'tsc', 3000);
    expect(run().stdout).toBe('tsc');
    fs.rmSync(path.join(stubs, 'dist/bundle'), { recursive: true });
    expect(run().stdout).toBe('tsc');
  });

  it('the bundle says what tsc output says: help of every command, the same bytes', () => {
    const bundle = path.join(REPO, 'dist/bundle/layergc.js');
    for (const cmd of [[], ['scan'], ['purge'], ['verify'], ['explain'], ['df'], ['restore']]) {
      const a = spawnSync(process.execPath, [bundle, ...cmd, '--help'], { encoding: 'utf8' });
      const b = spawnSync(process.execPath, [path.join(REPO, 'dist/cli/program/main.js'), ...cmd, '--help'], { encoding: 'utf8' });
      expect([a.status, a.stdout]).toEqual([b.status, b.stdout]);
      expect(a.stdout).toMatch(/^Usage: layergc/);
    }
  });
});
