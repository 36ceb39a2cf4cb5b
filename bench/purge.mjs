// Benchmark: `layergc purge --yes` removing an unreferenced overlay2 dir of N files, against
// `rm -rf` of an identical copy, in the same run. Whole processes, wall clock.
// N: LAYERGC_BENCH_FILES (default 1,000,000). Bar: layergc <= 1.3x rm -rf.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { makeRoot } from './root.mjs';

const N = Number(process.env.LAYERGC_BENCH_FILES ?? 1_000_000);
const bin = new URL('../bin/layergc.js', import.meta.url).pathname;
const base = mkdtempSync('/var/tmp/layergc-bench-purge-');

function time(cmd, args) {
  execFileSync('sync');
  const t = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return ms;
}

const ROUNDS = Number(process.env.LAYERGC_BENCH_ROUNDS ?? 2);
try {
  let rmMs = 0;
  let lgMs = 0;
  let clean = true;
  for (let round = 0; round < ROUNDS; round++) {
    console.error(`round ${round + 1}/${ROUNDS}: making two identical trees of ${N} files under ${base} ...`);
    const rootA = `${base}/a${round}`;
    const rootB = `${base}/b${round}`;
    const leakedA = makeRoot(rootA, N);
    makeRoot(rootB, N);
    // alternate which goes first, so neither always meets the warmer cache
    const runs = [() => (rmMs += time('rm', ['-rf', leakedA])), () => (lgMs += time(process.execPath, [bin, 'purge', '--yes', '--quiet', '--data-root', rootB]))];
    if (round % 2) runs.reverse();
    for (const r of runs) r();
    const left = spawnSync(process.execPath, [bin, 'scan', '--json', '--data-root', rootB], { encoding: 'utf8' });
    clean &&= JSON.parse(left.stdout).findings.length === 0;
    rmSync(rootA, { recursive: true, force: true });
    rmSync(rootB, { recursive: true, force: true });
  }
  const ratio = lgMs / rmMs;
  console.log(`files      ${N} per tree, ${ROUNDS} rounds, order alternating`);
  console.log(`rm -rf     ${(rmMs / 1000).toFixed(2)} s in all`);
  console.log(`layergc    ${(lgMs / 1000).toFixed(2)} s in all  (whole purge --yes process: locate, scan, plan, removal, check)`);
  console.log(`ratio      ${ratio.toFixed(2)}x  (bar: <= 1.30x)  clean after: ${clean}`);
  console.log(JSON.stringify({ bench: 'purge', files: N, rounds: ROUNDS, rmMs, layergcMs: lgMs, ratio, pass: ratio <= 1.3 && clean }));
  process.exitCode = ratio <= 1.3 && clean ? 0 : 1;
} finally {
  rmSync(base, { recursive: true, force: true });
}
