// npm run bench: every benchmark against a standard tool on the same data in the same run; prints a
// table and writes it as JSON (LAYERGC_BENCH_OUT, default bench/results.json) with the machine.
//   scan    layergc scan of 1,000- and 10,000-layer roots vs find -printf ''; peak RSS; growth
//   size    sizing a leaked dir of 300,000 files vs du -s -B1 -x
//   purge   purge --yes of a leaked dir of 300,000 files vs rm -rf (1,000,000 with LAYERGC_BENCH_PURGE_1M=1)
//   verify  a 128 MiB layer vs openssl dgst -sha256, in process and whole process
//   load    layergc --version vs node -e ''
// Pick some with: npm run bench -- scan verify. Generated roots are kept in LAYERGC_BENCH_DIR
// (default /var/tmp/layergc-bench), keyed by their parameters and the generator's source.
// Exit 1 when a goal is missed (the table says which and by how much).
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { machine, REPO } from './lib.mjs';

const all = ['load', 'scan', 'size', 'purge', 'verify'];
const pick = process.argv.slice(2).filter((a) => all.includes(a));
const out = process.env.LAYERGC_BENCH_OUT ?? `${REPO}bench/results.json`;
const started = new Date();
const loadAtStart = machine().loadavg;
const results = {};
for (const name of pick.length ? pick : all) {
  console.error(`\n== ${name} ==`);
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [new URL(`./${name}.mjs`, import.meta.url).pathname], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  const lines = r.stdout.trim().split('\n');
  process.stderr.write(
    lines
      .slice(0, -1)
      .map((l) => `${l}\n`)
      .join(''),
  );
  try {
    results[name] = { ...JSON.parse(lines.at(-1)), seconds: (Date.now() - t0) / 1000 };
  } catch {
    results[name] = { bench: name, error: `exit ${r.status}`, pass: false };
  }
}

const s = (ms) => `${(ms / 1000).toFixed(2)} s`;
const x = (v) => `${v.toFixed(2)}x`;
const rows = [];
const row = (bench, layergc, reference, result, goal, met) => rows.push({ bench, layergc, reference, result, goal, met });
const { load, scan, size, purge, verify } = results;
if (load && !load.error)
  row(
    'CLI load: layergc --version',
    `${load.versionMs.toFixed(0)} ms`,
    `node -e '' ${load.nodeMs.toFixed(0)} ms`,
    `${x(load.ratio)} (scan --help, the whole CLI: ${x(load.helpRatio)})`,
    '<= 1.3x',
    load.pass,
  );
for (const r of scan?.rows ?? []) {
  row(
    `scan, ${r.layers.toLocaleString('en')} layers (${r.entries.toLocaleString('en')} entries)`,
    `${s(r.scanMs)}, peak RSS ${r.peakRssMiB.toFixed(0)} MiB`,
    `find -printf '' ${s(r.findMs)}`,
    `${x(r.ratio)} (CPU time ${x(r.cpuRatio)}; Node's floor ${r.floorRatio === undefined ? '?' : `${x(r.floorRatio)}, ${s(r.floorMs)}`}${r.nodeMs === undefined ? '' : `, of which node -e '' ${s(r.nodeMs)}`}${
      r.phases ? `; the scan in process: import ${s(r.phases.importMs)}, reading ${s(r.phases.readMs)}, checks ${s(r.phases.checkMs)}, output ${s(r.phases.outputMs)}` : ''
    }); findings ${r.findingsExact ? 'exact' : `WRONG (${r.mismatches.join('; ')})`}`,
    r.layers === 10000 ? '<= 1.0x (aim 0.5x), < 300 MiB' : '< 300 MiB',
    (r.layers !== 10000 || r.ratio <= 1) && r.peakRssMiB < 300 && r.findingsExact,
  );
}
if (scan?.growth !== undefined) row('scan growth, 1,000 -> 10,000 layers', x(scan.growth), '10x layers', x(scan.growth), '<= 12x', scan.growth <= 12);
if (size && !size.error)
  row(
    `sizing a leaked dir of ${size.files.toLocaleString('en')} files (in process)`,
    s(size.sizingMs),
    `du -s -B1 -x ${s(size.duMs)}`,
    `${x(size.ratio)} (CPU time ${x(size.cpuRatio)}); bytes ${size.goals.bytes.met ? 'agree' : 'DIFFER'} (whole scan process ${s(size.scanProcessMs)})`,
    '<= 1.2x',
    size.pass,
  );
for (const r of purge?.rows ?? [])
  row(
    `purge --yes, leaked dir of ${r.files.toLocaleString('en')} files (${r.rounds} rounds, whole process)`,
    `${s(r.layergcMs)}, peak RSS ${r.peakRssMiB.toFixed(0)} MiB`,
    `rm -rf ${s(r.rmMs)}`,
    `${x(r.ratio)} (CPU time ${x(r.cpuRatio)}); clean after: ${r.clean}`,
    '<= 1.1x, < 300 MiB',
    r.ratio <= 1.1 && r.clean && r.peakRssMiB < 300,
  );
if (verify && !verify.error) {
  row(
    'verify a 128 MiB layer, in process',
    `${verify.a.layergcMs.toFixed(0)} ms, ${verify.a.layergcMBs.toFixed(0)} MB/s`,
    `openssl dgst -sha256 ${verify.a.opensslMs.toFixed(0)} ms, ${verify.a.opensslMBs.toFixed(0)} MB/s`,
    `${x(verify.a.ratio)} throughput`,
    '>= 0.8x',
    verify.a.ratio >= 0.8,
  );
  row(
    'verify a 128 MiB layer, whole process',
    `${verify.b.layergcMs.toFixed(0)} ms`,
    `xargs cat | openssl dgst -sha256 ${verify.b.pipelineMs.toFixed(0)} ms`,
    `${x(verify.b.ratio)} (0.7x needs ${verify.b.budgetMs.toFixed(0)} ms; node -e '' alone ${verify.b.nodeStartMs.toFixed(0)} ms${
      verify.b.startupMs != null
        ? `; layergc's start-up (verify of an absent layer: Node, the CLI, the store, the worker) ${verify.b.startupMs.toFixed(0)} ms, then hashing ${verify.b.hashingMs.toFixed(0)} ms (${verify.a.layergcMs.toFixed(0)} ms in a warm process)`
        : ''
    }${
      verify.b.withoutExtraCaCerts
        ? `; without NODE_EXTRA_CA_CERTS: ${verify.b.withoutExtraCaCerts.layergcMs.toFixed(0)} ms, ${x(verify.b.withoutExtraCaCerts.ratio)}, node -e '' ${verify.b.withoutExtraCaCerts.nodeStartMs.toFixed(0)} ms${
            verify.b.withoutExtraCaCerts.startupMs != null ? `, start-up ${verify.b.withoutExtraCaCerts.startupMs.toFixed(0)} ms` : ''
          }`
        : ''
    })`,
    '>= 0.7x',
    verify.b.ratio >= 0.7,
  );
}
for (const [name, r] of Object.entries(results)) if (r.error) row(name, '-', '-', r.error, '-', false);

const m = machine();
const md = [
  '| bench | layergc | standard tool | result | goal | met |',
  '|---|---|---|---|---|---|',
  ...rows.map((r) => `| ${[r.bench, r.layergc, r.reference, r.result, r.goal].map((c) => c.replaceAll('|', '\\|')).join(' | ')} | ${r.met ? 'yes' : '**no**'} |`),
].join('\n');
console.log(
  `\n${md}\n\nmachine: ${m.cpus} x ${m.cpu}, ${m.memGiB} GiB, ${m.fs}, Linux ${m.kernel}, Node ${m.node}; ${m.sched}; load average at the start ${loadAtStart.join(' ')}, at the end ${m.loadavg.join(' ')}; ${started.toISOString()}`,
);
writeFileSync(out, `${JSON.stringify({ started: started.toISOString(), machine: { ...m, loadavgAtStart: loadAtStart }, table: rows, results }, null, 2)}\n`);
console.log(`written to ${out}`);
process.exitCode = rows.every((r) => r.met) ? 0 : 1;
