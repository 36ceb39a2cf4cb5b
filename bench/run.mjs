// npm run bench: every benchmark, each against a standard tool on the same data in the same run.
//   scan   layergc scan vs du -s -x          (LAYERGC_BENCH_FILES files; informational)
//   purge  layergc purge --yes vs rm -rf      (LAYERGC_BENCH_FILES files; bar <= 1.3x)
//   verify layergc verify vs openssl dgst     (a real 128 MiB layer; bars >= 0.8x in-process, >= 0.6x whole)
// Pick some with: npm run bench -- purge verify
import { spawnSync } from 'node:child_process';

const all = ['scan', 'purge', 'verify'];
const pick = process.argv.slice(2).filter((a) => all.includes(a));
const results = [];
let failed = false;
for (const name of pick.length ? pick : all) {
  console.log(`\n== ${name} ==`);
  const r = spawnSync(process.execPath, [new URL(`./${name}.mjs`, import.meta.url).pathname], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  process.stdout.write(r.stdout);
  const last = r.stdout.trim().split('\n').pop();
  try { results.push(JSON.parse(last)); } catch { results.push({ bench: name, error: `exit ${r.status}` }); }
  if (r.status !== 0) failed = true;
}
console.log('\n== summary ==');
console.log(JSON.stringify(results, null, 2));
process.exitCode = failed ? 1 : 0;
