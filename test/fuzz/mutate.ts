/**
 * A seeded mutation fuzzer over whole synthetic data roots: each iteration copies a base root (a
 * healthy store with garbage, damage, containers and real BuildKit databases), applies a few
 * random mutations of the kinds a damaged or hostile disk holds, and runs `scan`, `scan --deep`,
 * `verify` and `explain` through the real CLI under a time limit with the child's peak RSS
 * measured. Any internal error, hang (timeout), death by signal, undocumented exit code, JSON that
 * breaks its schema, or peak RSS above the limit is a failure, reported with its seed and the
 * mutations that made it, so that it can be replayed.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { CliServer, misbehaviour, runBounded, socketFile, type BoundedResult } from '../helpers/bounded.js';
import { schemaErrors } from '../helpers/schema.js';
import { SyntheticRoot } from '../helpers/synthetic.js';

/** mulberry32: a small seeded PRNG, so that an iteration replays from its seed alone. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rand = () => number;
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
const int = (r: Rand, lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));

/** The base root every iteration starts from. */
export function baseRoot(): SyntheticRoot {
  const s = new SyntheticRoot({ buildkit: 'fixture' });
  const { app } = s.populate();
  s.addImage(['deep:1'], [{ files: { 'a/b/c/d.txt': 'deep\n' } }, { files: { 'a/b/e.txt': 'e\n', 'x.bin': Buffer.alloc(70_000, 3) } }]);
  s.makeRemovingOrphan();
  s.makeWriteSet({ withDriverDir: true, cacheId: true });
  s.makeLeakedDriverDir();
  s.danglingLink();
  s.addDanglingLayer();
  s.addContainer('db', app.id);
  s.makeBuildkitDir();
  return s;
}

function walk(root: string): { files: string[]; dirs: string[] } {
  const files: string[] = [];
  const dirs: string[] = [];
  const rec = (p: string) => {
    const st = fs.lstatSync(p);
    if (st.isDirectory()) {
      dirs.push(p);
      for (const n of fs.readdirSync(p)) rec(path.join(p, n));
    } else files.push(p);
  };
  rec(root);
  return { files, dirs: dirs.slice(1) };
}

function replaceWith(p: string, make: () => void): void {
  fs.rmSync(p, { recursive: true, force: true });
  make();
}

/**
 * Writes `data` as the file at `p`: a FIFO, socket, directory or symlink there is replaced first,
 * so the fuzzer itself never blocks on a FIFO or writes through a link (out of the root).
 */
function writeFresh(p: string, data: string | Buffer): void {
  let st: fs.Stats | null = null;
  try {
    st = fs.lstatSync(p);
  } catch {
    /* nothing there */
  }
  if (st && !st.isFile()) fs.rmSync(p, { recursive: true, force: true });
  fs.writeFileSync(p, data);
}

function isRegular(p: string): boolean {
  try {
    return fs.lstatSync(p).isFile();
  } catch {
    return false;
  }
}

/** Small bombs: gzip members concatenated, each inflating to repeated bytes. */
function gzipBomb(r: Rand): Buffer {
  const piece = pick(r, [Buffer.alloc(1 << 20), Buffer.alloc(1 << 20, 0x0a), Buffer.from('{"type":2,"payload":""}\n'.repeat(40_000)), Buffer.from('{"type":1,"name":"a","size":0}\n'.repeat(30_000))]);
  const member = gzipSync(piece);
  return Buffer.concat(Array.from({ length: int(r, 1, 64) }, () => member));
}

const MUTATIONS: Record<string, (r: Rand, s: { root: string; outside: string }, files: string[], dirs: string[]) => string> = {
  'file->fifo': (r, _s, files) => {
    const p = pick(r, files);
    replaceWith(p, () => execFileSync('mkfifo', [p]));
    return p;
  },
  'file->socket': (r, _s, files) => {
    const p = pick(r, files);
    replaceWith(p, () => socketFile(p));
    return p;
  },
  'file->dir': (r, _s, files) => {
    const p = pick(r, files);
    replaceWith(p, () => fs.mkdirSync(p));
    return p;
  },
  'file->self-symlink': (r, _s, files) => {
    const p = pick(r, files);
    replaceWith(p, () => fs.symlinkSync(path.basename(p), p));
    return p;
  },
  'file->symlink-outside': (r, s, files) => {
    const p = pick(r, files);
    replaceWith(p, () => fs.symlinkSync(pick(r, [path.join(s.outside, 'precious.txt'), '/dev/zero', '/dev/urandom', '/proc/self/mem', path.join(s.outside, 'sub')]), p));
    return p;
  },
  'file->empty': (r, _s, files) => {
    const p = pick(r, files);
    writeFresh(p, '');
    return p;
  },
  'file->random': (r, _s, files) => {
    const p = pick(r, files);
    writeFresh(p, Buffer.from(Array.from({ length: int(r, 1, 600) }, () => int(r, 0, 255))));
    return p;
  },
  'file->truncated': (r, _s, files) => {
    const p = pick(r, files);
    const size = isRegular(p) ? fs.lstatSync(p).size : 0;
    const cut = Math.floor(size * r());
    if (isRegular(p)) fs.truncateSync(p, cut);
    return p;
  },
  'file->huge-sparse': (r, _s, files) => {
    const p = pick(r, files);
    const size = int(r, 2, 64) * 2 ** 30;
    if (isRegular(p)) fs.truncateSync(p, size);
    return p;
  },
  'file->bitflips': (r, _s, files) => {
    const p = pick(r, files);
    if (!isRegular(p) || fs.lstatSync(p).size > 16 << 20) return p;
    const b = fs.readFileSync(p);
    for (let i = 0; i < int(r, 1, 16) && b.length; i++) b[int(r, 0, b.length - 1)] = int(r, 0, 255);
    fs.writeFileSync(p, b);
    return p;
  },
  'file->long-text': (r, _s, files) => {
    const p = pick(r, files);
    writeFresh(p, pick(r, ['c', '/', '.', 'A', 'sha256:', '\n', '\0']).repeat(int(r, 255, 5000)));
    return p;
  },
  'file->hostile-id': (r, _s, files) => {
    const p = pick(
      r,
      files
        .filter((f) => /\/(cache-id|mount-id|init-id|parent|diff|link|lower|committed)$/.test(f))
        .concat(files)
        .slice(0, 200),
    );
    writeFresh(p, pick(r, ['../../..', '..', '.', '/etc', 'a/b', `l/${'A'.repeat(300)}`, 'l/../../..:l/x', 'sha256:../../x', 'x\0y', `${'f'.repeat(64)}\n\n`]));
    return p;
  },
  'tar-split->bomb': (r, _s, files) => {
    const p = pick(r, files.filter((f) => f.endsWith('tar-split.json.gz')).concat(files.slice(0, 1)));
    writeFresh(p, gzipBomb(r));
    return p;
  },
  'tar-split->json-damage': (r, _s, files) => {
    const p = pick(r, files.filter((f) => f.endsWith('tar-split.json.gz')).concat(files.slice(0, 1)));
    let text: string;
    try {
      text = isRegular(p) ? zlibText(p) : '';
    } catch {
      return p;
    }
    if (!text) return p;
    const lines = text.split('\n');
    const i = int(r, 0, Math.max(0, lines.length - 1));
    lines[i] = pick(r, [
      '{}',
      '{"type":1,"name":"../../etc/passwd","size":5,"payload":"AAAAAAAAAAA="}',
      '{"type":2,"payload":"!!!"}',
      '[]',
      'null',
      `{"type":1,"name":"${'x'.repeat(5000)}","size":1e300}`,
      '{"type":1,"name":"a","size":-1}',
      lines[i].slice(0, lines[i].length >> 1),
    ]);
    writeFresh(p, gzipSync(lines.join('\n')));
    return p;
  },
  'dir->file': (r, _s, _f, dirs) => {
    const p = pick(r, dirs);
    replaceWith(p, () => writeFresh(p, 'was a directory'));
    return p;
  },
  'dir->self-symlink': (r, _s, _f, dirs) => {
    const p = pick(r, dirs);
    replaceWith(p, () => fs.symlinkSync(path.basename(p), p));
    return p;
  },
  'dir->symlink-outside': (r, s, _f, dirs) => {
    const p = pick(r, dirs);
    replaceWith(p, () => fs.symlinkSync(pick(r, [s.outside, '/', '/proc', '/dev']), p));
    return p;
  },
  'dir->fifo': (r, _s, _f, dirs) => {
    const p = pick(r, dirs);
    replaceWith(p, () => execFileSync('mkfifo', [p]));
    return p;
  },
  'dir->long-name-entry': (r, _s, _f, dirs) => {
    const d = pick(r, dirs);
    const name = pick(r, ['a', 'f', 'A', '-']).repeat(int(r, 200, 255));
    try {
      fs.mkdirSync(path.join(d, name));
    } catch {
      /* a name past the limit: nothing made */
    }
    return path.join(d, name);
  },
  'dir->empty': (r, _s, _f, dirs) => {
    const p = pick(r, dirs);
    replaceWith(p, () => fs.mkdirSync(p));
    return p;
  },
  'dir->many-entries': (r, _s, _f, dirs) => {
    const d = pick(r, dirs);
    for (let i = 0; i < 300; i++) writeFresh(path.join(d, `junk-${i}`), '');
    return d;
  },
};

function zlibText(p: string): string {
  return execFileSync('gzip', ['-dc', p], { maxBuffer: 64 << 20, timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] }).toString('latin1');
}

export interface IterationResult {
  seed: number;
  mutations: string[];
  runs: { args: string; code: number | null; ms: number; peakMiB: number }[];
  failures: string[];
}

export interface FuzzOptions {
  timeoutMs: number;
  peakMiB: number;
  /** run the commands in a kept-loaded CLI (CliServer) instead of a Node process each */
  server?: CliServer;
}

/** One iteration: copy, mutate, run the four commands, judge each. */
export async function iteration(base: SyntheticRoot, seed: number, work: string, opts: FuzzOptions): Promise<IterationResult> {
  const r = prng(seed);
  const dir = path.join(work, `it-${seed}`);
  fs.mkdirSync(dir, { recursive: true });
  execFileSync('cp', ['-a', base.root, path.join(dir, 'docker')]);
  execFileSync('cp', ['-a', base.outside, path.join(dir, 'outside')]);
  const s = { root: path.join(dir, 'docker'), outside: path.join(dir, 'outside') };
  const mutations: string[] = [];
  const names = Object.keys(MUTATIONS);
  // most mutations land where layergc reads metadata, not deep in a layer's files, where there is
  // far more to pick from but one path much like another
  const structural = (p: string) => {
    const rel = path.relative(s.root, p);
    return !/(^|\/)diff\/./.test(rel) && !/^(network|plugins|runtimes|swarm|volumes|trust|tmp)(\/|$)/.test(rel);
  };
  for (let k = int(r, 1, 4); k > 0; k--) {
    const all = walk(s.root);
    const focus = r() < 0.7;
    const narrow = (xs: string[]) => (focus && xs.some(structural) ? xs.filter(structural) : xs);
    const files = narrow(all.files);
    const dirs = narrow(all.dirs);
    const name = pick(r, names);
    if ((name.startsWith('dir->') && !dirs.length) || (!name.startsWith('dir->') && !files.length)) continue;
    try {
      const p = MUTATIONS[name](r, s, files, dirs);
      mutations.push(`${name} ${path.relative(s.root, p)}`);
    } catch (err) {
      mutations.push(`${name} (not applied: ${(err as Error).message.split('\n')[0]})`);
    }
  }
  // explain something a person might ask about: a layer, a driver dir, a path that may be damaged
  const { files, dirs } = walk(s.root);
  const explainArg = pick(
    r,
    [...base.layers.values()]
      .map((l) => l.chainId)
      .concat(
        [...base.layers.values()].map((l) => path.join(s.root, path.relative(base.root, l.driverDir))),
        files.slice(0, 50),
        dirs.slice(0, 50),
      ),
  );
  // verify on one thread (scan --deep keeps the worker threads): half the CPU of a run goes to starting node
  const commands = [
    ['scan', '--json'],
    ['scan', '--deep', '--json'],
    ['verify', '--jobs', '1', '--json'],
    ['explain', explainArg],
  ];
  const results: BoundedResult[] = [];
  if (opts.server) for (const args of commands) results.push(await opts.server.run([...args, '--data-root', s.root], opts.timeoutMs));
  else results.push(...(await Promise.all(commands.map((args) => runBounded([...args, '--data-root', s.root], { timeoutMs: opts.timeoutMs })))));
  const failures: string[] = [];
  results.forEach((res: BoundedResult, i) => {
    const what = commands[i].join(' ');
    const bad = misbehaviour(res, { peakMiB: opts.peakMiB });
    if (bad) failures.push(`${what}: ${bad}`);
    if (commands[i].includes('--json') && (res.code === 0 || res.code === 1)) {
      if (!res.json) failures.push(`${what}: exit ${res.code} without JSON output`);
      else {
        const errs = schemaErrors('scan', res.json);
        if (errs) failures.push(`${what}: output breaks docs/scan.schema.json: ${errs}`);
      }
    }
  });
  if (!failures.length) fs.rmSync(dir, { recursive: true, force: true });
  return { seed, mutations, runs: results.map((res, i) => ({ args: commands[i].join(' '), code: res.code, ms: res.ms, peakMiB: res.peakMiB })), failures };
}

/** Iterations `first`..`first+count-1`, `concurrency` at a time. */
export async function fuzz(
  opts: Omit<FuzzOptions, 'server'> & { first: number; count: number; concurrency: number; work: string; servers?: boolean; onResult?: (r: IterationResult) => void },
): Promise<IterationResult[]> {
  const base = baseRoot();
  const out: IterationResult[] = [];
  try {
    let next = opts.first;
    const end = opts.first + opts.count;
    const lane = async () => {
      const server = opts.servers ? new CliServer({ peakMiB: opts.peakMiB }) : undefined;
      try {
        while (next < end) {
          const seed = next++;
          const res = await iteration(base, seed, opts.work, { ...opts, server });
          out.push(res);
          opts.onResult?.(res);
        }
      } finally {
        server?.stop();
      }
    };
    await Promise.all(Array.from({ length: opts.concurrency }, lane));
  } finally {
    base.cleanup();
  }
  return out.sort((a, b) => a.seed - b.seed);
}
