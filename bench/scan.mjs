// Benchmark: `layergc scan` sizing a leaked overlay2 dir of N files, against `du -s -B1 -x` of the
// same dir, in the same run; and layergc's peak memory (GNU time). Whole processes, best of
// LAYERGC_BENCH_ROUNDS (default 3). N: LAYERGC_BENCH_FILES (default 1,000,000). It passes when the
// bytes agree with du exactly; the time ratio is reported (layergc also reads the layer store,
// images and BuildKit, and starts Node).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { makeRoot } from './root.mjs';

const N = Number(process.env.LAYERGC_BENCH_FILES ?? 1_000_000);
const ROUNDS = Number(process.env.LAYERGC_BENCH_ROUNDS ?? 3);
const bin = new URL('../bin/layergc.js', import.meta.url).pathname;
const base = mkdtempSync('/var/tmp/layergc-bench-scan-');
const gnuTime = existsSync('/usr/bin/time') ? '/usr/bin/time' : null;

function time(cmd, args, okCodes = [0]) {
  const t = process.hrtime.bigint();
  const r = gnuTime ? spawnSync(gnuTime, ['-f', '%M', cmd, ...args], { encoding: 'utf8' }) : spawnSync(cmd, args, { encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (!okCodes.includes(r.status)) throw new Error(`${cmd} exited ${r.status}: ${r.stderr}`);
  const rssKb = gnuTime ? Number(r.stderr.trim().split('\n').pop()) : NaN;
  return { ms, rssKb, stdout: r.stdout };
}

try {
  console.error(`making a data root with a leaked dir of ${N} files under ${base} ...`);
  const leaked = makeRoot(`${base}/root`, N);
  execFileSync('sync');
  let du = Infinity;
  let lg = Infinity;
  let rss = 0;
  let bytesDu = 0;
  let bytesLg = 0;
  for (let i = 0; i < ROUNDS; i++) {
    const d = time('du', ['-s', '-B1', '-x', leaked]);
    du = Math.min(du, d.ms);
    bytesDu = Number(d.stdout.split('\t')[0]);
    const l = time(process.execPath, [bin, 'scan', '--json', '--data-root', `${base}/root`], [1]);
    lg = Math.min(lg, l.ms);
    rss = Math.max(rss, l.rssKb);
    bytesLg = JSON.parse(l.stdout).findings.filter((f) => f.kind === 'unreferenced-driver-dir').reduce((s, f) => s + f.bytes, 0);
  }
  const ratio = lg / du;
  console.log(`files        ${N}`);
  console.log(`du -s -x     ${(du / 1000).toFixed(2)} s   ${bytesDu} bytes`);
  console.log(`layergc scan ${(lg / 1000).toFixed(2)} s   ${bytesLg} bytes (the dir and its l/ link)   peak RSS ${(rss / 1024).toFixed(0)} MiB`);
  console.log(`ratio        ${ratio.toFixed(2)}x  (reported, no bar)   bytes agree with du: ${bytesDu === bytesLg}`);
  console.log(JSON.stringify({ bench: 'scan', files: N, duMs: du, layergcMs: lg, ratio, peakRssKb: rss, duBytes: bytesDu, layergcBytes: bytesLg, pass: bytesDu === bytesLg }));
  process.exitCode = bytesDu === bytesLg ? 0 : 1;
} finally {
  rmSync(base, { recursive: true, force: true });
}
