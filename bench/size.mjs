// Benchmark: sizing a leaked driver dir of LAYERGC_BENCH_FILES files (default 300,000), as scan
// does (src/fsx/size.ts, in process, best of LAYERGC_BENCH_ROUNDS), against `du -s -B1 -x` of the
// same dir (a whole process: du starts in about a millisecond). The bytes must agree exactly.
// Also reported: the whole `layergc scan` process on that root. Goal: sizing <= 1.2x du.
import { best, BIN, cachedRoot, layergc, log, REPO, ROUNDS, sec, timeProcess } from './lib.mjs';

const N = Number(process.env.LAYERGC_BENCH_FILES ?? 300_000);
const { SizeAccounting } = await import(`${REPO}dist/fsx/size.js`);
const { MountTable } = await import(`${REPO}dist/fsx/mounts.js`);

const m = cachedRoot(`size${N}`, { seed: 2, layers: 20, containers: 1, leakedFiles: N });
const dir = m.leakedDir;
timeProcess('du', ['-s', '-B1', '-x', dir]); // warm the cache
const du = [];
const lg = [];
const duCpu = [];
const lgCpu = [];
const scan = [];
let duBytes = 0;
let lgBytes = 0;
let rssKb = 0;
for (let i = 0; i < ROUNDS; i++) {
  const d = timeProcess('du', ['-s', '-B1', '-x', dir]);
  du.push(d.ms);
  duCpu.push(d.cpuMs);
  duBytes = Number(d.stdout.split('\t')[0]);
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  lgBytes = new SizeAccounting(MountTable.read()).measure(dir).bytes;
  lg.push(Number(process.hrtime.bigint() - t0) / 1e6);
  const c = process.cpuUsage(c0);
  lgCpu.push((c.user + c.system) / 1000);
  const s = layergc(['scan', '--json', '--data-root', m.root], { okCodes: [1] });
  scan.push(s.ms);
  rssKb = Math.max(rssKb, s.rssKb);
}
const ratio = best(lg) / best(du);
const cpuRatio = best(lgCpu) / best(duCpu);
log(
  `${N} files: du ${sec(best(du))} ${duBytes} bytes; layergc sizing ${sec(best(lg))} ${lgBytes} bytes (${ratio.toFixed(2)}x; CPU time ${cpuRatio.toFixed(2)}x); whole scan process ${sec(best(scan))}, peak RSS ${(rssKb / 1024).toFixed(0)} MiB`,
);
const goals = {
  ratio: { value: ratio, goal: '<= 1.2x du', met: ratio <= 1.2 },
  bytes: { value: lgBytes === duBytes, goal: 'bytes agree with du', met: lgBytes === duBytes },
};
console.log(
  JSON.stringify({
    bench: 'size',
    files: N,
    rounds: ROUNDS,
    duMs: best(du),
    sizingMs: best(lg),
    ratio,
    duCpuMs: best(duCpu),
    sizingCpuMs: best(lgCpu),
    cpuRatio,
    scanProcessMs: best(scan),
    scanRatio: best(scan) / best(du),
    peakRssMiB: rssKb / 1024,
    duBytes,
    layergcBytes: lgBytes,
    bin: BIN,
    goals,
    pass: Object.values(goals).every((g) => g.met),
  }),
);
