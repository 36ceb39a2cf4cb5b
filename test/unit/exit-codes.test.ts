/**
 * The documented exit codes, each produced by a real run of the CLI (bin/layergc.js, built):
 *
 *   0  nothing found (scan, verify), or everything planned was removed (purge)
 *   1  findings (scan, verify), or some items could not be removed (purge)
 *   2  could not run: bad arguments, not a Docker data root, unreadable
 *   3  refused: a dockerd runs on this data root and the request needs it stopped
 *   4  a layout layergc does not handle (containerd image store, unknown driver)
 *   5  another layergc holds this data root
 *
 * 3 needs a real dockerd whose data root is the one purged: Debian's docker.io dockerd, started
 * in its own network namespace with its own data root, exec root, pidfile and socket under
 * /tmp/lgc-un-<random>/, and stopped (and everything under it unmounted) afterwards. Skipped
 * when not root or without dockerd, containerd and runc.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { hostname } from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { REPO, SyntheticRoot, runCli } from '../helpers/synthetic.js';
import { ExitCode } from '../../src/errors.js';

const roots: SyntheticRoot[] = [];
const cleanups: (() => void | Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  for (const s of roots) s.cleanup();
});
function root(populate = true): SyntheticRoot {
  const s = new SyntheticRoot();
  roots.push(s);
  if (populate) s.populate();
  return s;
}

/** code -> what it means, as main.ts's --help, the README and docs/fleet.md say it */
const TABLE: [number, keyof typeof ExitCode, RegExp][] = [
  [0, 'OK', /nothing found .*everything planned was removed/],
  [1, 'FOUND', /findings .*could not be removed/],
  [2, 'USAGE', /could not run: bad arguments, not a Docker data root, unreadable/],
  [3, 'DAEMON_RUNNING', /refused: a dockerd runs on this data root/],
  [4, 'UNSUPPORTED', /a layout layergc does not handle/],
  [5, 'LOCKED', /another layergc holds this data root/],
];

describe('the exit-code table', () => {
  it('matches src/errors.ts, --help of every command, and docs/fleet.md', () => {
    expect(Object.fromEntries(TABLE.map(([code, name]) => [name, code]))).toEqual(ExitCode);
    const fleet = fs.readFileSync(path.join(REPO, 'docs/fleet.md'), 'utf8');
    for (const cmd of [[], ['scan'], ['purge'], ['verify'], ['explain']]) {
      const r = runCli([...cmd, '--help']);
      expect(r.code).toBe(0);
      for (const [code, , meaning] of TABLE) expect(r.stdout).toMatch(new RegExp(`^\\s+${code}\\s+${meaning.source}`, 'm'));
    }
    for (const [code] of TABLE) expect(fleet).toMatch(new RegExp(`^\\| ${code} \\|`, 'm'));
  });
});

describe('exit 0', () => {
  it('scan of a clean data root; purge --yes with nothing to do; purge that removes everything', () => {
    const s = root();
    expect(runCli(['scan', '--data-root', s.root]).code).toBe(0);
    expect(runCli(['purge', '--yes', '--data-root', s.root]).code).toBe(0);
    s.makeLeakedDriverDir();
    const r = runCli(['purge', '--yes', '--data-root', s.root, '--json']);
    expect(r.code).toBe(0);
    expect(r.json.summary).toMatchObject({ removed: 1, failed: 0 });
    // a dry run that plans removals is a success too
    s.makeLeakedDriverDir();
    expect(runCli(['purge', '--dry-run', '--data-root', s.root]).code).toBe(0);
  });
});

describe('exit 1', () => {
  it('scan that finds garbage, listing it', () => {
    const s = root();
    s.makeRemovingOrphan();
    const r = runCli(['scan', '--data-root', s.root, '--json']);
    expect(r.code).toBe(1);
    expect(r.json.findings.map((f: { kind: string }) => f.kind)).toEqual(['removing-orphan']);
  });

  const root0 = typeof process.getuid === 'function' && process.getuid() === 0;
  // chattr +i needs root, and a filesystem that has the flag: the test says it skipped when either lacks
  it.skipIf(!root0)('purge that could not remove an item (chattr +i, as moby#38488)', (ctx) => {
    const s = root();
    const leaked = s.makeLeakedDriverDir();
    const file = path.join(leaked.dir, 'diff', 'leaked.bin');
    const chattr = spawnSync('chattr', ['+i', file], { encoding: 'utf8' });
    if (chattr.status !== 0) return ctx.skip(`chattr +i not supported here: ${chattr.stderr}`);
    try {
      const r = runCli(['purge', '--yes', '--data-root', s.root, '--json']);
      expect(r.code).toBe(1);
      expect(r.json.summary).toMatchObject({ removed: 0, failed: 1 });
      expect(JSON.stringify(r.json.actions)).toContain('leaked.bin');
    } finally {
      spawnSync('chattr', ['-i', file]);
    }
  });
});

describe('exit 2', () => {
  it.each([
    ['an unknown --format', (s: SyntheticRoot) => ['scan', '--data-root', s.root, '--format', 'xml'], /argument 'xml' is invalid|Allowed choices/],
    ['an unknown option', (s: SyntheticRoot) => ['scan', '--data-root', s.root, '--no-such-flag'], /unknown option/],
    ['--dry-run with --yes', (s: SyntheticRoot) => ['purge', '--dry-run', '--yes', '--data-root', s.root], /contradict/],
    ['a bad --min-age', (s: SyntheticRoot) => ['purge', '--yes', '--min-age', 'soon', '--data-root', s.root], /not a duration/],
    ['purge without --yes and no terminal', (s: SyntheticRoot) => ['purge', '--data-root', s.root], /without --yes/],
    ['a data root that does not exist', (s: SyntheticRoot) => ['scan', '--data-root', path.join(s.base, 'missing')], /does not exist/],
    ['a directory that is not a data root', (s: SyntheticRoot) => ['scan', '--data-root', s.outside], /not a Docker data root/],
    [
      'a daemon config that is not JSON',
      (s: SyntheticRoot) => {
        fs.writeFileSync(path.join(s.base, 'bad.json'), '{ "data-root": ');
        return ['scan', '--daemon-config', path.join(s.base, 'bad.json')];
      },
      /not valid JSON/,
    ],
  ])('%s', (_name, args, message) => {
    const s = root();
    const r = runCli(args(s));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/internal error/);
  });
});

describe('exit 4', () => {
  it('the containerd image store (daemon.json features.containerd-snapshotter) in a containerd root without meta.db', () => {
    const s = root();
    const cfg = path.join(s.base, 'daemon.json');
    fs.writeFileSync(cfg, JSON.stringify({ 'data-root': s.root, features: { 'containerd-snapshotter': true } }));
    fs.mkdirSync(path.join(s.base, 'ctrd'));
    const r = runCli(['scan', '--daemon-config', cfg, '--containerd-root', path.join(s.base, 'ctrd')]);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/uses the containerd image store but .* has no io.containerd.metadata.v1.bolt\/meta.db/);
  });

  it('the containerd image store layout (containerd/daemon, no image/<driver>/layerdb)', () => {
    const s = root(false);
    fs.rmSync(path.join(s.root, 'image'), { recursive: true });
    fs.mkdirSync(path.join(s.root, 'containerd', 'daemon', 'io.containerd.snapshotter.v1.overlayfs'), { recursive: true });
    const r = runCli(['purge', '--yes', '--data-root', s.root]);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/containerd image store/);
  });

  it('a storage driver layergc does not know', () => {
    const s = root();
    const r = runCli(['scan', '--data-root', s.root, '--driver', 'quantumfs']);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/storage driver "quantumfs" is not one layergc knows/);
  });
});

describe('exit 5', () => {
  it('another layergc (a live process) holds the data root', () => {
    const s = root();
    s.makeLeakedDriverDir();
    const holder = spawn('sleep', ['30'], { stdio: 'ignore' });
    cleanups.push(() => void holder.kill('SIGKILL'));
    const stat = fs.readFileSync(`/proc/${holder.pid}/stat`, 'utf8');
    const startTime = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    fs.mkdirSync(path.join(s.root, 'layergc'), { mode: 0o700 });
    fs.writeFileSync(path.join(s.root, 'layergc', 'lock'), JSON.stringify({ pid: holder.pid, host: hostname(), since: '2026-01-01T00:00:00.000Z', startTime }));
    const r = runCli(['purge', '--yes', '--data-root', s.root]);
    expect(r.code).toBe(5);
    expect(r.stderr).toContain(`pid ${holder.pid} on ${hostname()}, since 2026-01-01T00:00:00.000Z`);
    // scan and dry runs read only: they do not take the lock
    expect(runCli(['scan', '--data-root', s.root]).code).toBe(1);
    expect(runCli(['purge', '--dry-run', '--data-root', s.root]).code).toBe(0);
  });
});

// ------------------------------------------------------------------------------------------------
// exit 3: a real dockerd on the data root

const DOCKERD = '/usr/sbin/dockerd';
const UNSHARE = '/usr/bin/unshare';
const onPath = (bin: string) => ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'].some((d) => fs.existsSync(path.join(d, bin)));
const CAN_RUN_DOCKERD =
  process.platform === 'linux' && process.getuid?.() === 0 && fs.existsSync(DOCKERD) && fs.existsSync(UNSHARE) && onPath('containerd') && onPath('runc') && process.env.LAYERGC_NO_DOCKER !== '1';

interface Dockerd {
  pid: number;
  base: string;
  dataRoot: string;
  log: string;
  child: ChildProcess;
  stop(opts?: { keepDirs?: boolean }): Promise<void>;
}

function mountsUnder(dir: string): string[] {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ')[4].replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((m) => m === dir || m.startsWith(`${dir}/`));
}

async function startDockerd(): Promise<Dockerd> {
  const base = fs.mkdtempSync('/tmp/lgc-un-');
  const dataRoot = path.join(base, 'd');
  const execRoot = path.join(base, 'e');
  const socket = path.join(base, 's');
  const log = path.join(base, 'log');
  fs.mkdirSync(dataRoot, { mode: 0o710 });
  fs.mkdirSync(execRoot, { mode: 0o700 });
  // its own (empty) config, never the host's /etc/docker/daemon.json
  fs.writeFileSync(path.join(base, 'daemon.json'), '{}\n');
  const fd = fs.openSync(log, 'a');
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DOCKER_') && k !== 'NOTIFY_SOCKET'));
  env.PATH = `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:${process.env.PATH ?? ''}`;
  // unshare execs dockerd in place: the child's pid is dockerd's
  const child = spawn(
    UNSHARE,
    [
      '--net',
      DOCKERD,
      '--config-file',
      path.join(base, 'daemon.json'),
      '--data-root',
      dataRoot,
      '--exec-root',
      execRoot,
      '--pidfile',
      path.join(base, 'p'),
      '-H',
      `unix://${socket}`,
      '--iptables=false',
      '--ip-masq=false',
      '--bridge=none',
      '--storage-driver',
      'overlay2',
    ],
    { stdio: ['ignore', fd, fd], env, detached: true },
  );
  fs.closeSync(fd);
  let exited = child.exitCode !== null;
  const gone = new Promise<void>((res) =>
    child.once('exit', () => {
      exited = true;
      res();
    }),
  );
  const d: Dockerd = {
    pid: child.pid!,
    base,
    dataRoot,
    log,
    child,
    async stop({ keepDirs = false } = {}) {
      // only the daemon this test started, by its pid
      if (!exited) {
        child.kill('SIGTERM');
        await Promise.race([gone, sleep(30_000)]);
        if (!exited) {
          child.kill('SIGKILL');
          await Promise.race([gone, sleep(10_000)]);
        }
      }
      for (let pass = 0; pass < 10; pass++) {
        const ms = mountsUnder(base).sort((a, b) => b.length - a.length);
        if (!ms.length) break;
        for (const m of ms) spawnSync('umount', ['-l', m], { stdio: 'ignore' });
      }
      if (!keepDirs && !mountsUnder(base).length) fs.rmSync(base, { recursive: true, force: true });
    },
  };
  cleanups.push(() => d.stop());
  // ready once the API socket exists and the layer store is laid out
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (exited) throw new Error(`dockerd exited early:\n${fs.readFileSync(log, 'utf8').slice(-3000)}`);
    if (fs.existsSync(socket) && fs.existsSync(path.join(dataRoot, 'image', 'overlay2', 'layerdb'))) return d;
    await sleep(200);
  }
  throw new Error(`dockerd did not come up in 60 s:\n${fs.readFileSync(log, 'utf8').slice(-3000)}`);
}

describe('exit 3', () => {
  it.skipIf(!CAN_RUN_DOCKERD)(
    'purge --yes --include unreferenced-layer while a dockerd runs on the data root',
    async () => {
      const d = await startDockerd();
      expect(fs.readFileSync(`/proc/${d.pid}/comm`, 'utf8').trim()).toBe('dockerd');
      const r = runCli(['purge', '--yes', '--include', 'unreferenced-layer', '--data-root', d.dataRoot]);
      expect(r.code, r.stderr).toBe(3);
      expect(r.stderr).toContain(`a dockerd (pid ${d.pid}) runs on ${d.dataRoot}; removing unreferenced layers needs it stopped`);
      // the same data root is fine for what a running daemon allows, and scan says a daemon runs
      expect(runCli(['purge', '--yes', '--data-root', d.dataRoot]).code).toBe(0);
      const scan = runCli(['scan', '--data-root', d.dataRoot, '--json']);
      expect(scan.json.daemonRunning).toBe(true);
      await d.stop({ keepDirs: true });
      // once it has stopped, the same request runs
      const after = runCli(['purge', '--yes', '--include', 'unreferenced-layer', '--data-root', d.dataRoot]);
      expect(after.code, after.stderr).toBe(0);
    },
    120_000,
  );
});
