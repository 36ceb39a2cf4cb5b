import { describe, it, expect } from 'vitest';
import { buildScenario } from './scenario.js';
import { runCli } from '../helpers/synthetic.js';
import * as fs from 'node:fs';
describe('probe', () => {
  it('probe', async () => {
    const times = {};
    const s = await buildScenario((process.env.V ?? '20.10') as any, times);
    console.log(JSON.stringify(times));
    const r = runCli(['scan', '--data-root', s.root, '--json']);
    fs.writeFileSync('/tmp/probe-scan.json', JSON.stringify({ s: { ...s, d: undefined }, out: r.json, stderr: r.stderr, code: r.code }, null, 2));
    const h = runCli(['scan', '--data-root', s.root]);
    fs.writeFileSync('/tmp/probe-scan.txt', h.stdout + h.stderr);
    fs.writeFileSync('/tmp/probe-root', s.root);
    process.env.LAYERGC_KEEP_TMP = '1';
  }, 300000);
});
