// Benchmark: `layergc scan --json` over generated roots of 1,000 and 10,000 layers (10 and 100 of
// every kind of damage), against `find ROOT -printf ''` over the same root, hot cache, best of
// LAYERGC_BENCH_ROUNDS interleaved rounds; peak RSS through GNU time. Every round's findings must
// match the generator's manifest exactly: all damage found, nothing healthy flagged. Beside them,
// bench/scan-floor.mjs: the least a Node process reads for such a scan, checking nothing; `node -e ''`;
// and bench/scan-phases.mjs: where the scan's own time goes (import, reading, checks, output).
// Goals: 10,000 layers <= 1.0x find (aim 0.5x); peak RSS < 300 MB; 10x layers <= 12x time.
// LAYERGC_BENCH_LAYERS=1000,10000 picks the sizes.
import { spawnSync } from 'node:child_process';
import { best, cachedRoot, countMismatches, kindCounts, layergc, log, median, ROUNDS, sec, timeProcess } from './lib.mjs';
import { everyDamage } from '../test/helpers/generate-root.mjs';

const FLOOR = new URL('./scan-floor.mjs', import.meta.url).pathname;
const PHASES = new URL('./scan-phases.mjs', import.meta.url).pathname;

const sizes = (process.env.LAYERGC_BENCH_LAYERS ?? '1000,10000').split(',').map(Number);
const rows = [];
for (const layers of sizes) {
  const m = cachedRoot(`scan${layers}`, { seed: 1, layers, containers: layers / 100, damage: everyDamage(layers / 100) });
  const entries = Number(spawnSync('sh', ['-c', `find '${m.root}' | wc -l`], { encoding: 'utf8' }).stdout);
  timeProcess('find', [m.root, '-printf', '']); // warm the cache
  const find = [];
  const scan = [];
  const floor = [];
  const findCpu = [];
  const scanCpu = [];
  const floorCpu = [];
  const node = [];
  const phases = [];
  let rssKb = 0;
  let wrong = [];
  for (let i = 0; i < ROUNDS; i++) {
    const f = timeProcess('find', [m.root, '-printf', '']);
    find.push(f.ms);
    findCpu.push(f.cpuMs);
    const fl = timeProcess(process.execPath, [FLOOR, m.root]);
    floor.push(fl.ms);
    floorCpu.push(fl.cpuMs);
    node.push(timeProcess(process.execPath, ['-e', '']).ms);
    const ph = spawnSync(process.execPath, [PHASES, m.root], { encoding: 'utf8' });
    if (ph.status === 0) phases.push(JSON.parse(ph.stdout));
    const s = layergc(['scan', '--json', '--data-root', m.root], { okCodes: [1] });
    scan.push(s.ms);
    scanCpu.push(s.cpuMs);
    rssKb = Math.max(rssKb, s.rssKb);
    const miss = countMismatches(kindCounts(JSON.parse(s.stdout).findings), m.expected);
    if (miss.length) wrong = miss;
  }
  const row = {
    layers,
    entries,
    findMs: best(find),
    scanMs: best(scan),
    scanMedianMs: median(scan),
    ratio: best(scan) / best(find),
    findCpuMs: best(findCpu),
    scanCpuMs: best(scanCpu),
    cpuRatio: best(scanCpu) / best(findCpu),
    // the least a Node process reads for such a scan (bench/scan-floor.mjs), against find
    floorMs: best(floor),
    floorRatio: best(floor) / best(find),
    floorCpuRatio: best(floorCpu) / best(findCpu),
    nodeMs: best(node),
    // each phase's best over the rounds, in process (bench/scan-phases.mjs)
    phases: phases.length ? Object.fromEntries(['importMs', 'readMs', 'checkMs', 'outputMs'].map((k) => [k, best(phases.map((p) => p[k]))])) : undefined,
    peakRssMiB: rssKb / 1024,
    findingsExact: wrong.length === 0,
    mismatches: wrong,
  };
  log(
    `${layers} layers, ${entries} entries: find ${sec(row.findMs)}, scan ${sec(row.scanMs)} (${row.ratio.toFixed(2)}x; CPU ${sec(row.scanCpuMs)} vs ${sec(row.findCpuMs)}, ${row.cpuRatio.toFixed(2)}x), Node's floor ${sec(row.floorMs)} (${row.floorRatio.toFixed(2)}x, CPU ${row.floorCpuRatio.toFixed(2)}x), node -e '' ${sec(row.nodeMs)}${row.phases ? `; in process: import ${sec(row.phases.importMs)}, reading ${sec(row.phases.readMs)}, checks ${sec(row.phases.checkMs)}, output ${sec(row.phases.outputMs)}` : ''}; peak RSS ${row.peakRssMiB.toFixed(0)} MiB, findings ${wrong.length ? `WRONG: ${wrong.join('; ')}` : 'exact'}`,
  );
  rows.push(row);
}
const small = rows.find((r) => r.layers === 1000);
const large = rows.find((r) => r.layers === 10000);
const growth = small && large ? large.scanMs / small.scanMs : undefined;
const goals = {
  ratio10k: large ? { value: large.ratio, goal: '<= 1.0 (aim 0.5)', met: large.ratio <= 1.0 } : undefined,
  peakRss: { value: Math.max(...rows.map((r) => r.peakRssMiB)), goal: '< 300 MiB', met: rows.every((r) => r.peakRssMiB < 300) },
  growth: growth === undefined ? undefined : { value: growth, goal: '<= 12x for 10x layers', met: growth <= 12 },
  findings: { value: rows.every((r) => r.findingsExact), goal: 'every damage found, nothing healthy flagged', met: rows.every((r) => r.findingsExact) },
};
if (growth !== undefined) log(`growth 1,000 -> 10,000 layers: ${growth.toFixed(2)}x time`);
console.log(JSON.stringify({ bench: 'scan', rounds: ROUNDS, rows, growth, goals, pass: Object.values(goals).every((g) => !g || g.met) }));
