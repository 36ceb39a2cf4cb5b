// Benchmark: CLI load time. `layergc --version` and `layergc scan --help` (the whole CLI loaded) against
// a bare `node -e ''`, best of LAYERGC_BENCH_LOAD_ROUNDS (default 15) interleaved rounds.
// Goal: --version <= 1.3x bare node.
import { spawnSync } from 'node:child_process';
import { best, BIN, log, median } from './lib.mjs';

const ROUNDS = Number(process.env.LAYERGC_BENCH_LOAD_ROUNDS ?? 15);
const cases = { node: ['-e', ''], version: [BIN, '--version'], help: [BIN, 'scan', '--help'] };
const ms = { node: [], version: [], help: [] };
for (let i = 0; i < ROUNDS; i++) {
  for (const [k, args] of Object.entries(cases)) {
    const t0 = process.hrtime.bigint();
    const r = spawnSync(process.execPath, args, { stdio: 'ignore' });
    ms[k].push(Number(process.hrtime.bigint() - t0) / 1e6);
    if (r.status !== 0) throw new Error(`${args.join(' ')} exited ${r.status}`);
  }
}
const b = Object.fromEntries(Object.entries(ms).map(([k, v]) => [k, best(v)]));
const ratio = b.version / b.node;
log(`node -e '' ${b.node.toFixed(0)} ms; layergc --version ${b.version.toFixed(0)} ms (${ratio.toFixed(2)}x); layergc scan --help ${b.help.toFixed(0)} ms (${(b.help / b.node).toFixed(2)}x)`);
const goals = { version: { value: ratio, goal: '<= 1.3x node -e', met: ratio <= 1.3 } };
console.log(
  JSON.stringify({
    bench: 'load',
    rounds: ROUNDS,
    nodeMs: b.node,
    versionMs: b.version,
    helpMs: b.help,
    medians: Object.fromEntries(Object.entries(ms).map(([k, v]) => [k, median(v)])),
    ratio,
    helpRatio: b.help / b.node,
    goals,
    pass: ratio <= 1.3,
  }),
);
