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
    const full = spawnSync(process.execPath, [path.join(REPO, 'dist/cli/main.js'), '--version'], { encoding: 'utf8' });
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
