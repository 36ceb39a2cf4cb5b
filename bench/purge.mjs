// Benchmark: the whole `layergc purge --yes` process removing a leaked driver dir of N files, against
// `rm -rf` of an identical copy (both generated from the same seed), LAYERGC_BENCH_PURGE_ROUNDS rounds
// (default 2) with the order alternating; after each, the purged root must scan clean.
// N: 300,000, and 1,000,000 too with LAYERGC_BENCH_PURGE_1M=1 (or LAYERGC_BENCH_PURGE_FILES=a,b).
// Goal: <= 1.1x rm -rf.
import { mkdtempSync, rmSync } from 'node:fs';
import { CACHE, cachedRoot, dropCaches, layergc, log, sec, timeProcess } from './lib.mjs';
import { mkdirSync } from 'node:fs';

const ROUNDS = Number(process.env.LAYERGC_BENCH_PURGE_ROUNDS ?? 2);
const sizes = (process.env.LAYERGC_BENCH_PURGE_FILES ?? (process.env.LAYERGC_BENCH_PURGE_1M ? '300000,1000000' : '300000')).split(',').map(Number);
mkdirSync(CACHE, { recursive: true });
const rows = [];
for (const N of sizes) {
  const base = mkdtempSync(`${CACHE}/purge-`);
  let rmMs = 0;
  let lgMs = 0;
  let rmCpu = 0;
  let lgCpu = 0;
  let rssKb = 0;
  let clean = true;
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const opts = { seed: 3, layers: 20, containers: 1, leakedFiles: N };
      const a = cachedRoot(`purge${N}`, opts, { fresh: `${base}/a${round}` });
      const b = cachedRoot(`purge${N}`, opts, { fresh: `${base}/b${round}` });
      const runs = [
        () => {
          const t = timeProcess('rm', ['-rf', a.leakedDir]);
          rmMs += t.ms;
          rmCpu += t.cpuMs;
        },
        () => {
          const t = layergc(['purge', '--yes', '--quiet', '--data-root', b.root]);
          lgMs += t.ms;
          lgCpu += t.cpuMs;
          rssKb = Math.max(rssKb, t.rssKb);
        },
      ];
      if (round % 2) runs.reverse();
      // written back before each timed run: neither side pays for the other's (or the generator's) dirty pages
      for (const run of runs) {
        dropCaches();
        run();
      }
      clean &&= JSON.parse(layergc(['scan', '--json', '--data-root', b.root]).stdout).findings.length === 0;
      rmSync(`${base}/a${round}`, { recursive: true, force: true });
      rmSync(`${base}/b${round}`, { recursive: true, force: true });
    }
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
  const ratio = lgMs / rmMs;
  log(
    `${N} files, ${ROUNDS} rounds: rm -rf ${sec(rmMs)}, layergc purge --yes ${sec(lgMs)} (${ratio.toFixed(2)}x; CPU time ${(lgCpu / rmCpu).toFixed(2)}x), peak RSS ${(rssKb / 1024).toFixed(0)} MiB, clean after: ${clean}`,
  );
  rows.push({ files: N, rounds: ROUNDS, rmMs, layergcMs: lgMs, ratio, rmCpuMs: rmCpu, layergcCpuMs: lgCpu, cpuRatio: lgCpu / rmCpu, peakRssMiB: rssKb / 1024, clean });
}
const goals = Object.fromEntries(
  rows.flatMap((r) => [
    [`ratio${r.files}`, { value: r.ratio, goal: '<= 1.1x rm -rf, clean after', met: r.ratio <= 1.1 && r.clean }],
    [`rss${r.files}`, { value: r.peakRssMiB, goal: '< 300 MiB', met: r.peakRssMiB < 300 }],
  ]),
);
console.log(JSON.stringify({ bench: 'purge', rows, goals, pass: Object.values(goals).every((g) => g.met) }));
