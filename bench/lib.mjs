// Shared by the benches: generated roots cached by their parameters, timing of whole processes
// (wall clock, and peak RSS through GNU time), and what machine the numbers came from.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TestDaemon } from '../test/helpers/dockerd.mjs';
import { generateRoot } from '../test/helpers/generate-root.mjs';

export const REPO = new URL('..', import.meta.url).pathname;
export const BIN = path.join(REPO, 'bin/layergc.js');
export const CACHE = process.env.LAYERGC_BENCH_DIR ?? '/var/tmp/layergc-bench';
export const ROUNDS = Number(process.env.LAYERGC_BENCH_ROUNDS ?? 3);
const GNU_TIME = fs.existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;
const GENERATOR = new URL('../test/helpers/generate-root.mjs', import.meta.url).pathname;

export const log = (s) => console.error(s);
export const best = (xs) => Math.min(...xs);
export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
export const sec = (ms) => `${(ms / 1000).toFixed(2)} s`;

/** The key of a generated root: its options and the generator's own source. */
function rootKey(opts) {
  return createHash('sha256').update(fs.readFileSync(GENERATOR)).update(JSON.stringify(opts)).digest('hex').slice(0, 16);
}

/**
 * A root generated with `opts`, reused from the cache when one with the same key is complete
 * (its manifest is written last). `fresh` makes a new one under `fresh` instead (for purge).
 */
export function cachedRoot(name, opts, { fresh } = {}) {
  const dir = fresh ?? path.join(CACHE, `${name}-${rootKey(opts)}`);
  const manifest = path.join(dir, 'manifest.json');
  if (!fresh && fs.existsSync(manifest)) return JSON.parse(fs.readFileSync(manifest, 'utf8'));
  fs.rmSync(dir, { recursive: true, force: true });
  log(`generating ${name} (${JSON.stringify(opts)}) in ${dir} ...`);
  const m = generateRoot(dir, opts);
  log(`  ${m.layers} layers, ${m.images} images, ${m.containers} containers, ${m.files} layer files in ${sec(m.generateMs)}`);
  return m;
}

/**
 * A data root a real dockerd 20.10 wrote: the private daemon of the e2e tests (test/helpers/dockerd.mjs,
 * no network) imports the tar at `tarPath` as one image and stops. Cached under CACHE like the roots above.
 */
export async function realRoot(name, tarPath) {
  const dir = path.join(CACHE, `${name}-real`);
  const root = path.join(dir, 'root');
  if (fs.existsSync(path.join(dir, 'imported'))) return root;
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(root, { recursive: true, mode: 0o710 });
  log(`importing ${tarPath} with a private dockerd 20.10 into ${root} ...`);
  const d = await TestDaemon.start({ dataRoot: root });
  try {
    await d.docker(['import', tarPath, `bench-${name}:1`], { timeoutMs: 600_000 });
  } finally {
    await d.destroy();
  }
  fs.writeFileSync(path.join(dir, 'imported'), '');
  return root;
}

/**
 * Wall time (ms), and through GNU time peak RSS (KiB) and CPU time (user + system, ms) of a whole
 * process; throws on an unexpected exit code. CPU time is what a loaded machine distorts least.
 */
export function timeProcess(cmd, args, { okCodes = [0], stdout = 'pipe' } = {}) {
  const argv = GNU_TIME ? [GNU_TIME, ['-f', '%M %U %S', cmd, ...args]] : [cmd, args];
  const t0 = process.hrtime.bigint();
  const r = spawnSync(argv[0], argv[1], { stdio: ['ignore', stdout, 'pipe'], encoding: 'utf8', maxBuffer: 1 << 30 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (!okCodes.includes(r.status)) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr?.slice(-2000)}`);
  const [rssKb, user, sys] = GNU_TIME ? r.stderr.trim().split('\n').pop().split(' ').map(Number) : [NaN, NaN, NaN];
  return { ms, rssKb, cpuMs: (user + sys) * 1000, stdout: r.stdout, stderr: r.stderr };
}

export const layergc = (args, opts = {}) => timeProcess(process.execPath, [BIN, ...args], opts);

/** Findings per kind, from `scan --json` output. */
export function kindCounts(findings) {
  const c = {};
  for (const f of findings) c[f.kind] = (c[f.kind] ?? 0) + 1;
  return c;
}

/** Kinds whose count differs from the manifest's, as "kind: got N, want M". */
export function countMismatches(got, want) {
  const out = [];
  for (const k of new Set([...Object.keys(got), ...Object.keys(want)])) if ((got[k] ?? 0) !== (want[k] ?? 0)) out.push(`${k}: got ${got[k] ?? 0}, want ${want[k] ?? 0}`);
  return out;
}

export function dropCaches() {
  execFileSync('sync');
}

/** The scheduling policy the bench runs under (inherited by every timed process): `chrt -f 10 npm run bench` gives SCHED_FIFO. */
function schedPolicy() {
  try {
    const stat = fs.readFileSync('/proc/self/stat', 'utf8');
    const policy = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[38]);
    return ['SCHED_OTHER', 'SCHED_FIFO', 'SCHED_RR', 'SCHED_BATCH', '?', 'SCHED_IDLE', 'SCHED_DEADLINE'][policy] ?? String(policy);
  } catch {
    return '?';
  }
}

export function machine() {
  const cpu = os.cpus()[0]?.model ?? '?';
  let fsType = '?';
  try {
    fsType = execFileSync('df', ['--output=fstype', CACHE], { encoding: 'utf8' }).trim().split('\n').pop();
  } catch {
    /* cache dir not made yet */
  }
  return {
    cpu,
    cpus: os.availableParallelism(),
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    fs: fsType,
    node: process.version,
    loadavg: os.loadavg().map((x) => Number(x.toFixed(2))),
    sched: schedPolicy(),
  };
}
