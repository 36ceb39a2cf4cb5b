// Benchmark: `layergc verify` on a 128 MiB layer (64 x 1 MiB, 512 x 64 KiB, 2,048 x 16 KiB random files;
// made by the generator, real tar-split), against `openssl dgst -sha256` over the same file contents.
//
//   (a) in-process: verifyLayer() time (process start-up excluded) vs `openssl dgst -sha256 <file>` on a
//       temp file holding the concatenation of the layer's file contents (openssl's own start-up, measured
//       on /dev/null, subtracted). Throughputs compared: bytes hashed / second.      Goal: >= 0.80x
//   (b) whole processes: `node bin/layergc.js verify --data-root D <chain>` vs the whole pipeline
//       `xargs -0 cat <files> | openssl dgst -sha256`.                               Goal: >= 0.70x
//       Split in two: the start-up, timed as `layergc verify` of a chain ID that is not there (Node's start,
//       loading the CLI, opening the store, starting the hashing worker; exits 2 before any hashing), and the
//       rest, the hashing of a process that has just started (cold code), to set against (a).
//
// LAYERGC_BENCH_ROOT=<data root> uses the largest layer of an existing, stopped root instead;
// LAYERGC_BENCH_REAL=1 the same files as a layer a private dockerd 20.10 imported (test/helpers/dockerd.mjs).
// LAYERGC_BENCH_VERIFY_ROUNDS (default 9): interleaved rounds; the best of each side is compared, the
// median is printed too (other work on the machine makes single rounds noisy).
// The last line of stdout is the result as JSON.

import { spawnSync } from 'node:child_process';
import { cachedRoot, realRoot } from './lib.mjs';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROUNDS = Number(process.env.LAYERGC_BENCH_VERIFY_ROUNDS ?? 9);
const repo = new URL('..', import.meta.url).pathname;
const distIndex = join(repo, 'dist/verify/index.js');
const bin = join(repo, 'bin/layergc.js');

function fail(msg, code = 2) {
  console.error(`bench/verify: ${msg}`);
  process.exit(code);
}

if (!fs.existsSync(distIndex)) fail('dist/verify/index.js is missing: run `npm run build` first');
const { verifyLayer, readTarSplit } = await import(distIndex);

const log = (s) => console.error(s);
const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;

const TIME = fs.existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;

/** CPU time (user + system) of a whole process, ms, via /usr/bin/time; undefined without it. */
function cpuOfProcess(cmd, args) {
  if (!TIME) return undefined;
  const r = spawnSync(TIME, ['-f', '%U %S', cmd, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  const [u, s] = r.stderr.toString().trim().split('\n').pop().split(' ').map(Number);
  return (u + s) * 1000;
}

const loadavg = () => fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

/** Wall time of a whole process, ms. */
function timeProcess(cmd, args, opts = {}) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { stdio: ['ignore', opts.stdout ?? 'pipe', 'pipe'], maxBuffer: 64 << 20, ...opts });
  const t = ms(t0);
  if (r.status !== 0 && !(opts.okCodes ?? [0]).includes(r.status)) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr?.toString().slice(-2000)}`);
  }
  return t;
}

const best = (xs) => Math.min(...xs);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// ---------------------------------------------------------------------------------------------------------
// The layer as a verify target

function detectDriver(root) {
  for (const d of ['overlay2', 'vfs']) if (fs.existsSync(join(root, 'image', d, 'layerdb')) && fs.existsSync(join(root, d))) return d;
  fail(`no overlay2 or vfs layer store under ${root}`);
}

/** The layer with the largest `size`, with its content roots as the driver reads them. */
function largestLayer(root, driver) {
  const ldb = join(root, 'image', driver, 'layerdb', 'sha256');
  let pick;
  for (const hex of fs.readdirSync(ldb)) {
    if (!/^[0-9a-f]{64}$/.test(hex)) continue;
    const size = Number(fs.readFileSync(join(ldb, hex, 'size'), 'utf8'));
    if (!pick || size > pick.size) pick = { hex, size };
  }
  if (!pick) fail(`no layers in ${ldb}`);
  const dir = join(ldb, pick.hex);
  const cacheId = fs.readFileSync(join(dir, 'cache-id'), 'utf8').trim();
  const home = join(root, driver);
  const contentRoots = driver === 'vfs' ? [join(home, 'dir', cacheId)] : [join(home, cacheId, 'diff')];
  if (driver === 'overlay2') {
    let lower = '';
    try {
      lower = fs.readFileSync(join(home, cacheId, 'lower'), 'utf8').trim();
    } catch {}
    for (const l of lower ? lower.split(':') : []) contentRoots.push(join(home, 'l', fs.readlinkSync(join(home, l))));
  }
  return {
    size: pick.size,
    target: { chainId: `sha256:${pick.hex}`, diffId: fs.readFileSync(join(dir, 'diff'), 'utf8').trim(), tarSplitPath: join(dir, 'tar-split.json.gz'), contentRoots },
  };
}

/** The layer's file contents, in stream order: a NUL-separated list and one concatenated temp file. */
async function concatenation(target, work) {
  const names = [];
  for await (const e of readTarSplit(target.tarSplitPath)) {
    if (e.type !== 1 || e.size === 0) continue;
    const rel = e.nameBytes.toString('latin1').replace(/^\.?\/+/, '');
    names.push(Buffer.from(join(target.contentRoots[0], rel), 'latin1'));
  }
  const list = join(work, 'files.nul');
  fs.writeFileSync(list, Buffer.concat(names.flatMap((n) => [n, Buffer.from([0])])));
  const concat = join(work, 'concat.bin');
  const out = fs.openSync(concat, 'w');
  const buf = Buffer.allocUnsafe(1 << 20);
  let bytes = 0;
  for (const n of names) {
    const fd = fs.openSync(n, 'r');
    let k;
    while ((k = fs.readSync(fd, buf)) > 0) {
      fs.writeSync(out, buf, 0, k);
      bytes += k;
    }
    fs.closeSync(fd);
  }
  fs.closeSync(out);
  return { list, concat, files: names.length, bytes };
}

// ---------------------------------------------------------------------------------------------------------

const work = fs.mkdtempSync(join(tmpdir(), 'lgc-vf-bench-'));
let exitCode = 2;
try {
  const generated = () => cachedRoot('verify128m', { seed: 4, layers: 0, containers: 0, bigLayerBytes: 128 << 20 }).root;
  // LAYERGC_BENCH_REAL=1: the same files, as a layer a real dockerd wrote (docker import of their tar)
  const real = async () => {
    const tar = join(work, 'layer.tar');
    spawnSync('tar', ['-C', largestLayer(generated(), 'overlay2').target.contentRoots[0], '-cf', tar, '.'], { stdio: 'inherit' });
    return realRoot('verify128m', tar);
  };
  const dataRoot = process.env.LAYERGC_BENCH_ROOT ?? (process.env.LAYERGC_BENCH_REAL === '1' ? await real() : generated());
  const driver = detectDriver(dataRoot);
  const { target, size } = largestLayer(dataRoot, driver);
  const c = await concatenation(target, work);
  log(`layer ${target.chainId} (${driver}): ${c.files} files, ${(c.bytes / 2 ** 20).toFixed(1)} MiB of content, size ${size}`);

  // (b) setup: the CLI if it can verify this root, else a fresh node process calling verifyLayer
  let procCmd = [bin, 'verify', '--data-root', dataRoot, '--quiet', target.chainId];
  let procWhat = 'node bin/layergc.js verify --data-root D --quiet <chain>';
  // the same command for a layer that is not there: everything up to the first byte hashed, then exit 2
  let startCmd = [bin, 'verify', '--data-root', dataRoot, '--quiet', `sha256:${'0'.repeat(64)}`];
  const probe = spawnSync(process.execPath, procCmd, { stdio: ['ignore', 'pipe', 'pipe'] });
  if (probe.status !== 0) {
    startCmd = null;
    log(`the CLI cannot be used (exit ${probe.status}: ${probe.stderr.toString().trim().split('\n').pop()}); timing a node script calling verifyLayer instead`);
    const script = join(work, 'verify-one.mjs');
    fs.writeFileSync(
      script,
      `const { verifyLayer } = await import(${JSON.stringify(distIndex)});
const r = await verifyLayer(JSON.parse(process.argv[2]));
process.exitCode = r.ok ? 0 : 1;\n`,
    );
    procCmd = [script, JSON.stringify(target)];
    procWhat = 'node <script calling verifyLayer> (fresh process)';
  }

  // CRC-64 (the mismatch pass's per-file check) over 64 MiB in memory, after 8 MiB of warm-up
  const { Crc64 } = await import(join(repo, 'dist/verify/crc64.js'));
  const mib = Buffer.alloc(1 << 20, 0x5a);
  const crc = new Crc64();
  for (let i = 0; i < 8; i++) crc.update(mib);
  const crcT0 = process.hrtime.bigint();
  for (let i = 0; i < 64; i++) crc.update(mib);
  const crcMBs = (64 * 1.048576) / (ms(crcT0) / 1e3);

  const loadBefore = loadavg();
  const first = process.hrtime.bigint();
  const r0 = await verifyLayer(target); // warm: page cache, JIT, the hashing worker
  const firstMs = ms(first);
  if (!r0.ok) fail(`the layer does not verify: ${r0.kind} ${r0.reason}`);
  const inproc = [];
  const inprocCpu = [];
  const osslCpu = [];
  const ossl = [];
  const osslStart = [];
  const layergcProc = [];
  // NODE_EXTRA_CA_CERTS makes every Node process parse that CA bundle at start-up (tens of ms), before any
  // of its own code runs; layergc makes no TLS connection. When it is set, the whole process is also timed
  // without it, to show what part of (b) is the environment's.
  const caEnv = process.env.NODE_EXTRA_CA_CERTS ? Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_EXTRA_CA_CERTS')) : null;
  const layergcProcNoCa = [];
  const nodeStart = [];
  const nodeStartNoCa = [];
  const cliStart = [];
  const cliStartNoCa = [];
  const layergcCpu = [];
  const pipelineCpu = [];
  const pipeline = [];
  const osslProc = [];
  for (let i = 0; i < ROUNDS; i++) {
    const c0 = process.cpuUsage(); // this thread and the hashing worker
    const t0 = process.hrtime.bigint();
    const r = await verifyLayer(target);
    inproc.push(ms(t0));
    const cu = process.cpuUsage(c0);
    inprocCpu.push((cu.user + cu.system) / 1000);
    const oc = cpuOfProcess('openssl', ['dgst', '-sha256', c.concat]);
    if (oc !== undefined) osslCpu.push(oc);
    if (!r.ok) fail(`round ${i}: ${r.kind} ${r.reason}`);
    osslStart.push(timeProcess('openssl', ['dgst', '-sha256', '/dev/null']));
    osslProc.push(timeProcess('openssl', ['dgst', '-sha256', c.concat]));
    layergcProc.push(timeProcess(process.execPath, procCmd));
    nodeStart.push(timeProcess(process.execPath, ['-e', '']));
    if (startCmd) cliStart.push(timeProcess(process.execPath, startCmd, { okCodes: [2] }));
    if (caEnv) {
      layergcProcNoCa.push(timeProcess(process.execPath, procCmd, { env: caEnv }));
      nodeStartNoCa.push(timeProcess(process.execPath, ['-e', ''], { env: caEnv }));
      if (startCmd) cliStartNoCa.push(timeProcess(process.execPath, startCmd, { env: caEnv, okCodes: [2] }));
    }
    pipeline.push(timeProcess('sh', ['-c', `xargs -0 cat < '${c.list}' | openssl dgst -sha256`]));
    const lc = cpuOfProcess(process.execPath, procCmd);
    if (lc !== undefined) layergcCpu.push(lc);
    const pc = cpuOfProcess('sh', ['-c', `xargs -0 cat < '${c.list}' | openssl dgst -sha256`]);
    if (pc !== undefined) pipelineCpu.push(pc);
  }
  const startup = best(osslStart);
  for (const t of osslProc) ossl.push(Math.max(0.001, t - startup));
  const MBs = (bytes, t) => bytes / 1e6 / (t / 1e3);
  const a = { layergc: MBs(r0.bytes, best(inproc)), openssl: MBs(c.bytes, best(ossl)) };
  const aMed = { layergc: MBs(r0.bytes, median(inproc)), openssl: MBs(c.bytes, median(ossl)) };
  const ratioA = a.layergc / a.openssl;
  const ratioAMedian = aMed.layergc / aMed.openssl;
  const ratioB = best(pipeline) / best(layergcProc);
  const ratioBMedian = median(pipeline) / median(layergcProc);
  const ratioBFile = best(osslProc) / best(layergcProc);
  const loadAfter = loadavg();
  const cpuRatio = osslCpu.length ? MBs(r0.bytes, median(inprocCpu)) / MBs(c.bytes, median(osslCpu)) : undefined;

  const row = (what, t, mbs) => `${what.padEnd(62)} ${t.toFixed(1).padStart(8)} ms ${mbs === undefined ? '' : `${mbs.toFixed(0).padStart(6)} MB/s`}`;
  console.log(`layer ${target.chainId}: ${c.files} files, ${(c.bytes / 2 ** 20).toFixed(1)} MiB content, ${r0.bytes} bytes of tar stream`);
  console.log(`best of ${ROUNDS} interleaved rounds (median in brackets)\n`);
  console.log(row('(a) layergc verifyLayer, in process', best(inproc), a.layergc) + `   [${median(inproc).toFixed(1)} ms]`);
  console.log(row('    first call in this process (cold worker)', firstMs, MBs(r0.bytes, firstMs)));
  console.log(row('(a) openssl dgst -sha256 concat-file, start-up subtracted', best(ossl), a.openssl) + `   [${median(ossl).toFixed(1)} ms]`);
  console.log(row('    openssl start-up (dgst /dev/null)', startup));
  console.log(row(`(b) ${procWhat.slice(0, 58)}`, best(layergcProc), MBs(r0.bytes, best(layergcProc))) + `   [${median(layergcProc).toFixed(1)} ms]`);
  console.log(row('(b) xargs -0 cat <files> | openssl dgst -sha256, whole', best(pipeline), MBs(c.bytes, best(pipeline))) + `   [${median(pipeline).toFixed(1)} ms]`);
  console.log(row('    openssl dgst -sha256 concat-file, whole process', best(osslProc), MBs(c.bytes, best(osslProc))));
  console.log(row("    node -e '' (Node's own start-up, in (b))", best(nodeStart)));
  if (startCmd) {
    console.log(row('    (b) start-up: layergc verify <absent chain> (exit 2)', best(cliStart)) + `   [${median(cliStart).toFixed(1)} ms]`);
    console.log(row('    (b) hashing: whole process minus its start-up (cold code)', best(layergcProc) - best(cliStart)));
  }
  if (caEnv) {
    console.log(row('    (b) without NODE_EXTRA_CA_CERTS in its environment', best(layergcProcNoCa), MBs(r0.bytes, best(layergcProcNoCa))) + `   [${median(layergcProcNoCa).toFixed(1)} ms]`);
    console.log(row("    node -e '' without NODE_EXTRA_CA_CERTS", best(nodeStartNoCa)));
    if (startCmd) console.log(row('    (b) start-up without NODE_EXTRA_CA_CERTS', best(cliStartNoCa)));
  }
  if (layergcCpu.length) console.log(row('    (b) CPU time of layergc, all its threads (median)', median(layergcCpu)));
  if (pipelineCpu.length) console.log(row('    (b) CPU time of the pipeline, cat and openssl (median)', median(pipelineCpu)));
  // what (b) needs: the pipeline's time / 0.7, against the start-up alone
  const budget = best(pipeline) / 0.7;
  console.log(`CRC-64/GO-ISO in memory: ${crcMBs.toFixed(0)} MB/s (informational; the mismatch pass runs it per file)`);
  console.log(`load average before/after: ${loadBefore} / ${loadAfter} on ${os.availableParallelism()} CPUs (other work on the machine slows the two-thread pipeline first)`);
  if (cpuRatio !== undefined) {
    console.log(
      `CPU time per round (median): layergc ${median(inprocCpu).toFixed(0)} ms (both threads), openssl ${median(osslCpu).toFixed(0)} ms; bytes per CPU-second ratio ${cpuRatio.toFixed(2)}x (informational)`,
    );
  }
  // layergc overlaps reading (this thread) with sha256 (its worker); CPU time close to wall time means the
  // worker never had a core of its own during the rounds.
  const overlap = median(inprocCpu) / median(inproc);
  if (overlap < 1.2) console.log(`note: layergc used ${overlap.toFixed(2)} cores on average: another process held the second core, so (a) measured one core`);
  console.log('');
  console.log(`(a) throughput ratio layergc/openssl       ${ratioA.toFixed(2)}x  [median ${ratioAMedian.toFixed(2)}x]  goal >= 0.80`);
  console.log(`(b) whole-process ratio pipeline/layergc   ${ratioB.toFixed(2)}x  [median ${ratioBMedian.toFixed(2)}x]  goal >= 0.70  (vs openssl on the concat file: ${ratioBFile.toFixed(2)}x)`);
  if (startCmd) {
    console.log(
      `    0.70 needs layergc within ${budget.toFixed(0)} ms: Node's own start-up takes ${best(nodeStart).toFixed(0)} ms of it, layergc's whole start-up ${best(cliStart).toFixed(0)} ms, leaving ${(budget - best(cliStart)).toFixed(0)} ms for hashing that takes ${best(inproc).toFixed(0)} ms in a warm process and ${(best(layergcProc) - best(cliStart)).toFixed(0)} ms in a fresh one`,
    );
  }
  const pass = ratioA >= 0.8 && ratioB >= 0.7;
  exitCode = pass ? 0 : 1;
  console.log(
    JSON.stringify({
      bench: 'verify',
      layer: target.chainId,
      driver,
      files: c.files,
      contentBytes: c.bytes,
      streamBytes: r0.bytes,
      rounds: ROUNDS,
      a: {
        layergcMs: best(inproc),
        layergcMBs: a.layergc,
        opensslMs: best(ossl),
        opensslMBs: a.openssl,
        opensslStartupMs: startup,
        ratio: ratioA,
        ratioMedian: ratioAMedian,
        reference: 'openssl dgst -sha256 <concatenated temp file>, start-up subtracted',
      },
      b: {
        layergcMs: best(layergcProc),
        command: procWhat,
        pipelineMs: best(pipeline),
        ratio: ratioB,
        ratioMedian: ratioBMedian,
        opensslConcatFileMs: best(osslProc),
        nodeStartMs: best(nodeStart),
        withoutExtraCaCerts: caEnv
          ? { layergcMs: best(layergcProcNoCa), ratio: best(pipeline) / best(layergcProcNoCa), nodeStartMs: best(nodeStartNoCa), startupMs: startCmd ? best(cliStartNoCa) : null }
          : null,
        startupMs: startCmd ? best(cliStart) : null,
        hashingMs: startCmd ? best(layergcProc) - best(cliStart) : null,
        budgetMs: budget,
        cpuMs: layergcCpu.length ? { layergc: median(layergcCpu), pipeline: median(pipelineCpu) } : null,
        ratioVsConcatFile: ratioBFile,
        reference: 'xargs -0 cat <files> | openssl dgst -sha256',
      },
      firstCallMs: firstMs,
      crc64MBs: crcMBs,
      cpu: cpuRatio === undefined ? null : { layergcMs: median(inprocCpu), opensslMs: median(osslCpu), ratio: cpuRatio, layergcCores: overlap },
      loadavg: { before: loadBefore, after: loadAfter, cpus: os.availableParallelism() },
      pass,
    }),
  );
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
process.exitCode = exitCode;
