// Real layers from a private Docker 20.10 daemon (Debian's docker.io): build an image whose layers hold
// the awkward cases (./ names, hard links, symlinks, whiteouts, opaque dirs, a long name, a non-UTF-8
// name), stop the daemon, prove every layer, then damage files and check each one is named.
//
// The daemon runs in a network namespace of its own, on directories of its own under /tmp/lgc-vf-*, and
// only the daemon this file started is ever stopped.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/index.js';
import { readTarSplit } from '../../src/verify/tarsplit.js';
import { verifyLayer, verifyLayers, type VerifyResult, type VerifyTarget } from '../../src/verify/index.js';

const DOCKERD = '/usr/sbin/dockerd';
const DOCKER = '/usr/bin/docker'; // Debian's client; /usr/local/bin/docker is another one
const BUSYBOX = '/bin/busybox';
const canRun = process.getuid?.() === 0 && [DOCKERD, DOCKER, BUSYBOX].every((p) => fs.existsSync(p));

const RAW_NAME = Buffer.from('data/non-\xff\xfe-utf8.bin', 'latin1');
const LONG_DIR = 'data/' + 'x'.repeat(60) + '/' + 'y'.repeat(70);
const LONG_NAME = LONG_DIR + '/long-name-file.txt';

const DOCKERFILE = `FROM base:1
RUN mkdir -p /data/sub /data/keep && echo hello > /data/a.txt && head -c 300000 /dev/urandom > /data/sub/rand.bin \\
 && echo gone > /data/gone.txt && ln /data/a.txt /data/a.hardlink && ln -s a.txt /data/a.symlink && : > /data/empty \\
 && head -c 1048576 /dev/urandom > /data/keep/exact-mib.bin
RUN rm /data/gone.txt /bin/vi && echo changed >> /data/a.txt && mkdir -p /${LONG_DIR} && echo long > /${LONG_NAME} \\
 && printf 'raw name' > "/data/non-$(printf '\\377\\376')-utf8.bin"
COPY ctx.txt /data/ctx.txt
RUN rm -rf /data/sub && mkdir /data/sub && echo opaque > /data/sub/new.txt && head -c 3000000 /dev/urandom > /data/big.bin \\
 && head -c 70000 /dev/urandom > /data/mid.bin && echo small > /data/small.txt
`;

interface Daemon {
  dir: string;
  root: string;
  sock: string;
  proc: ChildProcess;
  exited: Promise<void>;
}

function sh(args: string[], opts: { input?: Buffer | string; env?: NodeJS.ProcessEnv; cwd?: string } = {}): string {
  return execFileSync(args[0], args.slice(1), { ...opts, maxBuffer: 64 << 20, stdio: ['pipe', 'pipe', 'pipe'] }).toString();
}

async function startDaemon(dir: string, driver: string): Promise<Daemon> {
  const root = join(dir, 'root');
  const sock = join(dir, 'docker.sock');
  fs.mkdirSync(root, { recursive: true });
  const log = fs.openSync(join(dir, 'dockerd.log'), 'a');
  // `unshare --net` execs dockerd, so proc.pid is the daemon's own pid.
  const proc = spawn(
    'unshare',
    [
      '--net',
      DOCKERD,
      '--data-root',
      root,
      '--exec-root',
      join(dir, 'exec'),
      '--pidfile',
      join(dir, 'docker.pid'),
      '-H',
      `unix://${sock}`,
      '--iptables=false',
      '--ip-masq=false',
      '--bridge=none',
      '--storage-driver',
      driver,
    ],
    { stdio: ['ignore', log, log] },
  );
  fs.closeSync(log);
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const d: Daemon = { dir, root, sock, proc, exited };
  for (let i = 0; ; i++) {
    try {
      sh([DOCKER, '-H', `unix://${sock}`, 'version']);
      return d;
    } catch {
      if (i > 300 || proc.exitCode !== null) {
        throw new Error(`dockerd did not come up:\n${fs.readFileSync(join(dir, 'dockerd.log'), 'utf8').slice(-3000)}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

async function stopDaemon(d: Daemon): Promise<void> {
  if (d.proc.exitCode === null && d.proc.signalCode === null) {
    d.proc.kill('SIGTERM');
    const t = setTimeout(() => d.proc.kill('SIGKILL'), 30_000);
    await d.exited;
    clearTimeout(t);
  }
  // containerd, started by this dockerd; normally gone with it
  try {
    const pid = Number(fs.readFileSync(join(d.dir, 'exec/containerd/containerd.pid'), 'utf8'));
    if (pid > 0 && fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(d.dir)) process.kill(pid, 'SIGKILL');
  } catch {
    /* not running */
  }
  unmountUnder(d.dir);
}

/** A daemon that died hard leaves mounts of its data root behind; deepest first. */
function unmountUnder(dir: string): void {
  const points = fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((p): p is string => !!p && (p === dir || p.startsWith(dir + '/')))
    .sort((a, b) => b.length - a.length);
  for (const p of points) {
    try {
      sh(['umount', p]);
    } catch {
      try {
        sh(['umount', '-l', p]);
      } catch {
        /* left for rm to report */
      }
    }
  }
}

function makeBase(d: Daemon): void {
  const rootfs = join(d.dir, 'rootfs');
  fs.mkdirSync(join(rootfs, 'bin'), { recursive: true });
  fs.copyFileSync(BUSYBOX, join(rootfs, 'bin/busybox'));
  fs.chmodSync(join(rootfs, 'bin/busybox'), 0o755);
  // inside a chroot, so that the links point at /bin/busybox and not at this host path
  sh(['chroot', rootfs, '/bin/busybox', '--install', '-s', '/bin']);
  fs.mkdirSync(join(rootfs, 'tmp'));
  const tar = execFileSync('tar', ['-C', rootfs, '-c', '.'], { maxBuffer: 64 << 20 });
  sh([DOCKER, '-H', `unix://${d.sock}`, 'import', '-', 'base:1'], { input: tar });
}

function build(d: Daemon): void {
  const ctx = join(d.dir, 'ctx');
  fs.mkdirSync(ctx);
  fs.writeFileSync(join(ctx, 'Dockerfile'), DOCKERFILE);
  fs.writeFileSync(join(ctx, 'ctx.txt'), 'from the build context\n');
  sh([DOCKER, '-H', `unix://${d.sock}`, 'build', '-q', '-t', 'lgc-verify:1', ctx], { env: { ...process.env, DOCKER_BUILDKIT: '0' } });
}

/** Every committed layer of a data root as verify targets, built the way `layergc verify` builds them. */
async function targetsOf(dataRoot: string, driver: string): Promise<VerifyTarget[]> {
  const store = await openStore({ dataRoot, driver });
  const out: VerifyTarget[] = [];
  for (const [chainId, l] of store.layerdb.layers) {
    out.push({
      chainId,
      diffId: l.diffId!,
      tarSplitPath: join(l.dir, 'tar-split.json.gz'),
      contentRoots: await store.driver.contentRoots(l.cacheId!),
    });
  }
  // as documented in the layer-store notes: overlay2 reads <cache-id>/diff then the lower chain; vfs dir/<cache-id>
  for (const t of out) {
    expect(t.contentRoots[0]).toMatch(driver === 'overlay2' ? /\/overlay2\/[0-9a-f]{64}\/diff$/ : /\/vfs\/dir\/[0-9a-f]{64}$/);
  }
  return out;
}

async function namesOf(t: VerifyTarget): Promise<Set<string>> {
  const names = new Set<string>();
  for await (const e of readTarSplit(t.tarSplitPath)) if (e.type === 1) names.add(e.nameBytes.toString('latin1'));
  return names;
}

async function layerWith(targets: VerifyTarget[], name: string): Promise<VerifyTarget> {
  for (const t of targets) if ((await namesOf(t)).has(name)) return t;
  throw new Error(`no layer has ${name}`);
}

function problems(r: VerifyResult): Record<string, string> {
  return Object.fromEntries(r.files.map((f) => [f.name, f.problem]));
}

describe.skipIf(!canRun)('verify on real layers from a private dockerd', () => {
  const dir = canRun ? fs.mkdtempSync('/tmp/lgc-vf-') : '';
  const daemons: Daemon[] = [];
  const roots: Record<string, string> = {};

  beforeAll(async () => {
    // Two drivers, one daemon each, started one after the other (each is stopped before verify runs).
    for (const driver of ['overlay2', 'vfs']) {
      const d = await startDaemon(join(dir, driver), driver);
      daemons.push(d);
      try {
        makeBase(d);
        build(d);
      } finally {
        await stopDaemon(d);
      }
      roots[driver] = d.root;
    }
  }, 110_000);

  afterAll(async () => {
    for (const d of daemons) await stopDaemon(d);
    unmountUnder(dir);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it.each(['overlay2', 'vfs'])('%s: every committed layer verifies OK', async (driver) => {
    const targets = await targetsOf(roots[driver], driver);
    expect(targets.length).toBeGreaterThanOrEqual(5); // base + 4 build steps
    const results = await verifyLayers(targets, { concurrency: 2 });
    for (const r of results) expect(r, r.chainId).toMatchObject({ ok: true, files: [] });
    for (const r of results) expect(r.computed).toBe(r.expected);
    // the awkward cases are really in there
    const all = new Set<string>();
    for (const t of targets) for (const n of await namesOf(t)) all.add(n);
    expect(all.has(RAW_NAME.toString('latin1'))).toBe(true);
    expect(all.has(LONG_NAME)).toBe(true);
    expect(all.has('data/.wh.gone.txt')).toBe(true);
    // overlay2 diffs the upper dir and writes an opaque marker; vfs's naive diff whites out each old file
    expect(all.has(driver === 'overlay2' ? 'data/sub/.wh..wh..opq' : 'data/sub/.wh.rand.bin')).toBe(true);
    expect(all.has('./bin/busybox')).toBe(true);
  });

  it('overlay2: the same layers verify on worker threads from the built module', async () => {
    // Worker threads load the compiled module; compile this module alone to a scratch dir.
    const out = join(dir, 'dist');
    const repo = join(import.meta.dirname, '../..');
    sh(
      [
        join(repo, 'node_modules/.bin/tsc'),
        '--ignoreConfig',
        '--outDir',
        out,
        '--rootDir',
        join(repo, 'src'),
        '--module',
        'nodenext',
        '--moduleResolution',
        'nodenext',
        '--target',
        'es2022',
        '--strict',
        '--skipLibCheck',
        '--types',
        'node',
        join(repo, 'src/verify/index.ts'),
      ],
      { cwd: repo },
    );
    const targets = await targetsOf(roots.overlay2, 'overlay2');
    const script = `
      const { verifyLayers } = await import(${JSON.stringify(join(out, 'verify/index.js'))});
      const rs = await verifyLayers(JSON.parse(process.env.TARGETS), { concurrency: 2 });
      console.log(JSON.stringify(rs));`;
    const rs = JSON.parse(sh(['node', '--input-type=module'], { input: script, env: { ...process.env, TARGETS: JSON.stringify(targets) } })) as VerifyResult[];
    expect(rs.map((r) => r.ok)).toEqual(targets.map(() => true));
  });

  it('overlay2: damaged files are each named (changed byte, truncated, removed, longer)', async () => {
    const targets = await targetsOf(roots.overlay2, 'overlay2');
    const top = await layerWith(targets, 'data/big.bin');
    const mid = await layerWith(targets, LONG_NAME);
    const own = top.contentRoots[0];
    // change one byte
    const fd = fs.openSync(join(own, 'data/big.bin'), 'r+');
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, 1_234_567);
    b[0] ^= 0x40;
    fs.writeSync(fd, b, 0, 1, 1_234_567);
    fs.closeSync(fd);
    fs.truncateSync(join(own, 'data/mid.bin'), 1000); // truncate
    fs.appendFileSync(join(own, 'data/small.txt'), 'extra'); // longer
    fs.rmSync(Buffer.concat([Buffer.from(mid.contentRoots[0] + '/'), RAW_NAME])); // removed, non-UTF-8 name
    fs.rmSync(join(mid.contentRoots[0], LONG_NAME)); // removed, long name

    const r1 = await verifyLayer(top);
    expect(r1).toMatchObject({ ok: false, kind: 'content-mismatch' });
    expect(problems(r1)).toEqual({ 'data/big.bin': 'modified', 'data/mid.bin': 'short', 'data/small.txt': 'long' });

    const r2 = await verifyLayer(mid);
    expect(r2).toMatchObject({ ok: false, kind: 'content-mismatch' });
    expect(problems(r2)).toEqual({ 'data/non-\\xff\\xfe-utf8.bin': 'missing', [LONG_NAME]: 'missing' });

    // the other layers are untouched
    const rest = await verifyLayers(targets.filter((t) => t !== top && t !== mid));
    expect(rest.every((r) => r.ok)).toBe(true);
  });

  it('vfs: a cut tar-split and a missing one are told apart', async () => {
    const targets = await targetsOf(roots.vfs, 'vfs');
    const [a, b] = targets;
    const gz = fs.readFileSync(a.tarSplitPath);
    fs.writeFileSync(a.tarSplitPath, gz.subarray(0, gz.length - 100));
    fs.rmSync(b.tarSplitPath);
    const [ra, rb] = await verifyLayers([a, b]);
    expect(ra).toMatchObject({ ok: false, kind: 'tar-split-corrupt' });
    expect(ra.reason).toMatch(/truncated/);
    expect(rb).toMatchObject({ ok: false, kind: 'tar-split-missing' });
  });
});
