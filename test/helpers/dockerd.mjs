/**
 * Real-dockerd test harness for layergc: the one private-dockerd launcher, used by the e2e tests
 * (through dockerd.ts, which adds the TypeScript types) and by the benches (bench/lib.mjs). Plain
 * JavaScript so that both can load it.
 *
 * Starts a private Docker daemon (Debian's 20.10.24, or Debian sid's 28.5.2 from a debootstrap'd
 * chroot at /opt/sid-docker) with its own data root, exec root, pidfile and unix socket, all under
 * /tmp/lgc-XXXXXX/. Every daemon runs in a network namespace of its own (`unshare --net`), so it
 * can never reach a registry; containers run with `--pull never --network none`.
 *
 * Notes from running it here (see also test/e2e/harness.test.ts):
 * - `unshare --net dockerd …` execs dockerd in place, so the spawned pid IS dockerd's pid.
 * - dockerd starts its own "managed" containerd (state under <exec-root>/containerd) unless a
 *   system containerd is listening on /run/containerd/containerd.sock; then every test daemon
 *   would share that containerd. We only warn about it.
 * - SIGKILL leaves the daemon's bind mount of the data root onto itself (root propagation setup:
 *   `<root> on <root>` shared) and, per running container, <root>/overlay2/<id>/merged and
 *   <exec-root>/netns/<id>. kill() removes them with unmountUnder().
 * - The managed containerd dies by itself after dockerd is SIGKILLed, but not instantly: a restart
 *   racing with it logs "containerd is still running" and then times out dialing the dead socket.
 *   kill() therefore waits for it (and for shims / container processes of this exec root).
 * - Drivers: overlay2 and vfs work on the ext4 /tmp; btrfs runs on a 2 GiB sparse image
 *   loop-mounted at <workDir>/r (kept mounted across stop/kill/restart, unmounted by destroy());
 *   fuse-overlayfs needs the fuse-overlayfs binary and /dev/fuse (.ci/install-deps.sh installs it; start() throws without it).
 * - /usr/bin/docker (the 20.10 client, API 1.41) talks to the 28.5 daemon (API 1.51, min 1.24)
 *   without DOCKER_API_VERSION; BuildKit builds work from that client too (its built-in BuildKit
 *   session; no buildx needed). /usr/local/bin/docker (28.2 client) would need buildx for BuildKit;
 *   we never use it.
 * - Both versions run the graph-driver image store (`containerd-snapshotter=false` in the log).
 */
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseMountinfo } from '../../dist/fsx/mounts.js';

/** @typedef {'20.10' | '28.5'} DockerVersion */
/** @typedef {'overlay2' | 'vfs' | 'fuse-overlayfs' | 'btrfs'} DriverName */
/**
 * @typedef {object} DaemonOptions
 * @property {DockerVersion} [version]
 * @property {DriverName} [driver]
 * @property {string} [dataRoot] reuse an existing data root (it is never deleted by destroy(); only unmounted)
 * @property {boolean} [debug]
 * @property {boolean} [containerdStore] 28.5: the containerd image store (daemon.json features.containerd-snapshotter; snapshotter overlayfs)
 */
/** @typedef {{ stdout: string; stderr: string; code: number }} DockerResult */
/** @typedef {{ input?: string | Buffer; allowFail?: boolean; env?: Record<string, string>; timeoutMs?: number }} DockerCallOptions */

/** The Debian 20.10 client. /usr/local/bin/docker (28.2) shadows it on PATH: never use that one. */
export const DOCKER_CLIENT = '/usr/bin/docker';
export const DOCKERD_2010 = '/usr/sbin/dockerd';
export const SID_ROOT = process.env.LAYERGC_SID_ROOT || '/opt/sid-docker';
export const DOCKERD_285 = path.join(SID_ROOT, 'usr/sbin/dockerd');
const UNSHARE = '/usr/bin/unshare';
const SYSTEM_PATH = ['/usr/local/sbin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

const availCache = new Map();

function which(bin, extra = []) {
  const dirs = [...extra, ...SYSTEM_PATH, ...(process.env.PATH ?? '').split(':')].filter(Boolean);
  for (const dir of dirs) {
    const p = path.join(dir, bin);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

function isRoot() {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** Binaries present (and runnable) and we are root. Cached per version. LAYERGC_NO_DOCKER=1 forces false. */
export function dockerAvailable(version = '20.10') {
  if (process.env.LAYERGC_NO_DOCKER === '1') return false;
  const cached = availCache.get(version);
  if (cached !== undefined) return cached;
  let ok = isRoot() && process.platform === 'linux';
  const dockerd = version === '28.5' ? DOCKERD_285 : DOCKERD_2010;
  for (const f of [dockerd, DOCKER_CLIENT, UNSHARE]) {
    if (!ok) break;
    try {
      fs.accessSync(f, fs.constants.X_OK);
    } catch {
      ok = false;
    }
  }
  // dockerd needs containerd and runc from the host PATH (the sid ones need a newer glibc).
  if (ok && (!which('containerd') || !which('runc'))) ok = false;
  if (ok) {
    const r = spawnSync(dockerd, ['--version'], { timeout: 20_000, encoding: 'utf8' });
    const want = version === '28.5' ? /Docker version 28\.5\./ : /Docker version 20\.10\./;
    ok = r.status === 0 && want.test(r.stdout ?? '');
  }
  availCache.set(version, ok);
  return ok;
}

export function chattr(p, flag) {
  execFileSync('chattr', [flag, p], { stdio: ['ignore', 'ignore', 'pipe'] });
}

/**
 * chattr -i (and -a) on every regular file and directory under dir (symlinks and device nodes do
 * not support attributes, so plain `chattr -R` would complain about every busybox symlink).
 */
export function clearImmutable(dir) {
  if (!fs.existsSync(dir)) return;
  spawnSync('find', [dir, '-xdev', '(', '-type', 'f', '-o', '-type', 'd', ')', '-exec', 'chattr', '-i', '-a', '{}', '+'], {
    stdio: 'ignore',
  });
}

/** /proc/self/mountinfo through layergc's own parser (src/fsx/mounts.ts, as built: the e2e tests and the benches run after `npm run build`), in table order. */
export function readMountinfo() {
  return parseMountinfo(fs.readFileSync('/proc/self/mountinfo', 'utf8')).map((m, order) => ({ id: m.id, parent: m.parent, mountPoint: m.point, order }));
}

function realDir(dir) {
  try {
    return fs.realpathSync(dir);
  } catch {
    return path.resolve(dir);
  }
}

/** Mounts at dir or below it, as listed in /proc/self/mountinfo. */
export function mountsUnder(dir) {
  const d = realDir(dir).replace(/\/+$/, '');
  return readMountinfo().filter((m) => m.mountPoint === d || m.mountPoint.startsWith(d + '/'));
}

/**
 * Lazily unmount everything mounted at or below dir, deepest first (and, at one mount point, the
 * most recent first), re-reading /proc/self/mountinfo until nothing is left.
 * keepBase: keep the lowest mount exactly at dir (our own loop-mounted btrfs data root).
 */
export function unmountUnder(dir, opts = {}) {
  const d = realDir(dir).replace(/\/+$/, '');
  for (let pass = 0; pass < 20; pass++) {
    let ms = mountsUnder(d);
    if (opts.keepBase) {
      const ids = new Set(ms.map((m) => m.id));
      const base = ms.find((m) => m.mountPoint === d && !ids.has(m.parent));
      if (base) ms = ms.filter((m) => m !== base);
    }
    if (ms.length === 0) return;
    ms.sort((a, b) => b.mountPoint.split('/').length - a.mountPoint.split('/').length || b.order - a.order);
    for (const m of ms) {
      spawnSync('umount', ['-l', m.mountPoint], { stdio: 'ignore' });
    }
  }
}

function tailFile(file, lines = 40) {
  try {
    const t = fs.readFileSync(file, 'utf8').trimEnd().split('\n');
    return t.slice(-lines).join('\n');
  } catch {
    return '(no daemon log)';
  }
}

function clientEnv(workDir, extra) {
  const env = { ...process.env };
  for (const k of ['DOCKER_HOST', 'DOCKER_CONTEXT', 'DOCKER_API_VERSION', 'DOCKER_TLS_VERIFY', 'DOCKER_CERT_PATH', 'DOCKER_BUILDKIT', 'BUILDKIT_PROGRESS', 'DOCKER_DEFAULT_PLATFORM']) {
    delete env[k];
  }
  env.DOCKER_CONFIG = path.join(workDir, 'cfg');
  env.PATH = [...SYSTEM_PATH, env.PATH ?? ''].join(':');
  return { ...env, ...(extra ?? {}) };
}

/** Run a command, collect output; never throws except on spawn failure. code -1 on timeout. */
export function runCommand(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const out = [];
    const err = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 180_000);
    child.stdout.on('data', (b) => out.push(b));
    child.stderr.on('data', (b) => err.push(b));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      let stderr = Buffer.concat(err).toString('utf8');
      if (timedOut) stderr += `\n(timed out after ${opts.timeoutMs ?? 180_000} ms)`;
      resolve({ stdout: Buffer.concat(out).toString('utf8'), stderr, code: timedOut ? -1 : (code ?? -1) });
    });
    child.stdin.on('error', () => {
      /* EPIPE if the command exits before reading */
    });
    if (opts.input !== undefined) child.stdin.end(opts.input);
    else child.stdin.end();
  });
}

const live = new Set();
let exitHookInstalled = false;

function installExitHook() {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Best effort if a test run dies without destroy(): kill our daemons and clean their dirs.
  process.once('exit', () => {
    for (const d of live) {
      try {
        d.destroySync();
      } catch {
        /* ignore */
      }
    }
  });
}

let busyboxTarCache;

export class TestDaemon {
  _pid = 0;
  exited = Promise.resolve();
  _running = false;

  constructor(opts, workDir) {
    this.version = opts.version;
    this.driver = opts.driver;
    this.workDir = workDir;
    this.externalRoot = !!opts.dataRoot;
    this.dataRoot = opts.dataRoot ? path.resolve(opts.dataRoot) : path.join(workDir, 'r');
    this.execRoot = path.join(workDir, 'e');
    this.socket = path.join(workDir, 's');
    this.pidFile = path.join(workDir, 'p');
    this.logFile = path.join(workDir, 'log');
    this.debug = !!opts.debug;
    this.containerdStore = !!opts.containerdStore;
  }

  get pid() {
    return this._pid;
  }

  get running() {
    return this._running;
  }

  /** <root>/<driver> */
  get driverHome() {
    return path.join(this.dataRoot, this.driver);
  }

  /** <root>/image/<driver>/layerdb */
  get layerdb() {
    return path.join(this.dataRoot, 'image', this.driver, 'layerdb');
  }

  static async start(opts = {}) {
    const version = opts.version ?? '20.10';
    const driver = opts.driver ?? 'overlay2';
    if (!dockerAvailable(version)) {
      throw new Error(`dockerd ${version} not available (need root, ${version === '28.5' ? DOCKERD_285 : DOCKERD_2010}, ${DOCKER_CLIENT}, containerd, runc)`);
    }
    if (driver === 'fuse-overlayfs' && !which('fuse-overlayfs')) {
      throw new Error('storage driver fuse-overlayfs needs the fuse-overlayfs binary (apt-get install fuse-overlayfs)');
    }
    if (fs.existsSync('/run/containerd/containerd.sock')) {
      console.warn('[dockerd helper] a system containerd is running: test daemons will share it instead of starting their own');
    }
    const workDir = fs.mkdtempSync('/tmp/lgc-');
    const d = new TestDaemon({ ...opts, version, driver }, workDir);
    live.add(d);
    installExitHook();
    try {
      fs.mkdirSync(d.execRoot, { recursive: true, mode: 0o700 });
      fs.mkdirSync(path.join(workDir, 'cfg'), { recursive: true });
      fs.writeFileSync(path.join(workDir, 'cfg', 'config.json'), '{}\n');
      // own (empty) config file: never read /etc/docker/daemon.json of the host
      fs.writeFileSync(path.join(workDir, 'daemon.json'), opts.containerdStore ? '{"features": {"containerd-snapshotter": true}}\n' : '{}\n');
      if (version === '28.5') {
        fs.mkdirSync(path.join(workDir, 'bin'));
        fs.symlinkSync(DOCKERD_285, path.join(workDir, 'bin', 'dockerd'));
      }
      if (!opts.dataRoot) {
        fs.mkdirSync(d.dataRoot, { recursive: true, mode: 0o710 });
        if (driver === 'btrfs') d.setupBtrfs();
      }
      await d.launch();
      return d;
    } catch (e) {
      await d.destroy().catch(() => undefined);
      throw e;
    }
  }

  setupBtrfs() {
    this.btrfsImage = path.join(this.workDir, 'btrfs.img');
    execFileSync('truncate', ['-s', '2G', this.btrfsImage]);
    execFileSync('mkfs.btrfs', ['-q', this.btrfsImage], { stdio: 'ignore' });
    execFileSync('mount', ['-o', 'loop', this.btrfsImage, this.dataRoot]);
  }

  dockerdPath() {
    // For 28.5: a folder holding only a link to the sid dockerd, first on PATH (the host's
    // containerd and runc stay in use: the sid ones need a newer glibc).
    return this.version === '28.5' ? path.join(this.workDir, 'bin', 'dockerd') : DOCKERD_2010;
  }

  daemonEnv() {
    const env = { ...process.env };
    for (const k of Object.keys(env)) {
      if (k.startsWith('DOCKER_') || k === 'BUILDKIT_PROGRESS' || k === 'NOTIFY_SOCKET') delete env[k];
    }
    const pathDirs = [...SYSTEM_PATH, ...(process.env.PATH ?? '').split(':').filter(Boolean)];
    if (this.version === '28.5') pathDirs.unshift(path.join(this.workDir, 'bin'));
    env.PATH = pathDirs.join(':');
    return env;
  }

  async launch() {
    if (this._running) throw new Error('daemon already running');
    // a stale pidfile of our own dead daemon would make dockerd refuse to start
    try {
      fs.unlinkSync(this.pidFile);
    } catch {
      /* none */
    }
    const args = [
      '--net',
      this.dockerdPath(),
      '--config-file',
      path.join(this.workDir, 'daemon.json'),
      '--data-root',
      this.dataRoot,
      '--exec-root',
      this.execRoot,
      '--pidfile',
      this.pidFile,
      '-H',
      `unix://${this.socket}`,
      '--iptables=false',
      '--ip-masq=false',
      '--bridge=none',
      ...(this.containerdStore ? [] : ['--storage-driver', this.driver]),
    ];
    if (this.debug) args.push('--debug');
    const logFd = fs.openSync(this.logFile, 'a');
    fs.writeSync(logFd, `\n===== [harness] ${new Date().toISOString()} starting: ${UNSHARE} ${args.join(' ')}\n`);
    const child = spawn(UNSHARE, args, { env: this.daemonEnv(), stdio: ['ignore', logFd, logFd], detached: true });
    fs.closeSync(logFd);
    await new Promise((resolve, reject) => {
      child.once('spawn', () => resolve());
      child.once('error', reject);
    });
    child.unref();
    this._pid = child.pid;
    this._running = true;
    this.exited = new Promise((resolve) => {
      child.once('exit', () => {
        this._running = false;
        resolve();
      });
    });

    const deadline = Date.now() + 60_000;
    let last;
    while (Date.now() < deadline) {
      if (!this._running) {
        throw new Error(`dockerd ${this.version} exited before answering; log tail:\n${tailFile(this.logFile)}`);
      }
      if (fs.existsSync(this.socket)) {
        last = await this.docker(['info', '--format', '{{.ServerVersion}}|{{.Driver}}'], { allowFail: true, timeoutMs: 10_000 });
        if (last.code === 0) {
          const [, drv] = last.stdout.trim().split('|');
          if (drv !== (this.containerdStore ? 'overlayfs' : this.driver)) {
            await this.kill();
            throw new Error(`dockerd runs storage driver ${drv}, wanted ${this.driver}; log tail:\n${tailFile(this.logFile)}`);
          }
          return;
        }
      }
      await sleep(200);
    }
    await this.kill().catch(() => undefined);
    throw new Error(`dockerd ${this.version} did not answer \`docker info\` within 60s (last: ${last?.stderr.trim() ?? 'no socket'}); log tail:\n${tailFile(this.logFile)}`);
  }

  async docker(args, opts = {}) {
    const r = await runCommand(DOCKER_CLIENT, ['-H', `unix://${this.socket}`, ...args], {
      input: opts.input,
      env: clientEnv(this.workDir, opts.env),
      timeoutMs: opts.timeoutMs ?? 180_000,
    });
    if (r.code !== 0 && !opts.allowFail) {
      throw new Error(`docker ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim()}`);
    }
    return r;
  }

  /** docker import of a tar of a busybox-static rootfs (bin/busybox + one symlink per applet). Returns the image ID. */
  async importBusybox(tag = 'busybox:base') {
    const tar = busyboxTar(this.workDir);
    const r = await this.docker(['import', '-c', 'CMD ["/bin/sh"]', tar, tag]);
    return r.stdout.trim().split('\n').pop().trim();
  }

  /**
   * Build from an own small context dir. Legacy builder by default (DOCKER_BUILDKIT=0);
   * buildkit: true uses the 20.10 client's built-in BuildKit (works against 20.10 and 28.5).
   * Both run with --network=none. Returns the image ID (from --iidfile).
   */
  async build(tag, dockerfile, opts = {}) {
    const ctx = fs.mkdtempSync(path.join(this.workDir, 'ctx-'));
    const iid = `${ctx}.iid`;
    try {
      fs.writeFileSync(path.join(ctx, 'Dockerfile'), dockerfile);
      for (const [name, content] of Object.entries(opts.files ?? {})) {
        const p = path.join(ctx, name);
        fs.mkdirSync(path.dirname(p), { recursive: true });
        fs.writeFileSync(p, content);
      }
      const args = ['build', '--network=none', '-t', tag, '--iidfile', iid];
      if (opts.buildkit) args.push('--progress=plain');
      else args.push('-q');
      args.push(ctx);
      await this.docker(args, { env: { DOCKER_BUILDKIT: opts.buildkit ? '1' : '0' }, timeoutMs: 300_000 });
      return fs.readFileSync(iid, 'utf8').trim();
    } finally {
      fs.rmSync(ctx, { recursive: true, force: true });
      fs.rmSync(iid, { force: true });
    }
  }

  /** docker run --rm --pull never --network none IMAGE CMD…; returns stdout. */
  async run(image, cmd) {
    const r = await this.docker(['run', '--rm', '--pull', 'never', '--network', 'none', image, ...cmd]);
    return r.stdout;
  }

  async waitExit(ms) {
    if (!this._running) return true;
    let t;
    const res = await Promise.race([
      this.exited.then(() => true),
      new Promise((r) => {
        t = setTimeout(() => r(false), ms);
      }),
    ]);
    clearTimeout(t);
    return res;
  }

  unmountOwn() {
    unmountUnder(this.execRoot);
    unmountUnder(this.dataRoot, { keepBase: !!this.btrfsImage });
  }

  /** SIGTERM and wait for exit: a clean shutdown runs moby's layer-store Cleanup (orphan GC). */
  async stop() {
    if (this._running) {
      process.kill(this._pid, 'SIGTERM');
      if (!(await this.waitExit(90_000))) {
        await this.kill();
        throw new Error(`dockerd ${this._pid} did not stop within 90s after SIGTERM; killed it. log tail:\n${tailFile(this.logFile)}`);
      }
    }
    this.killStrays();
    this.unmountOwn();
  }

  /** SIGKILL the daemon, wait for it, kill our leftover containerd/shims, unmount leftovers. */
  async kill() {
    if (this._running) {
      try {
        process.kill(this._pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
      await this.waitExit(30_000);
    }
    this.killStrays();
    this.unmountOwn();
  }

  /**
   * containerd / shims started for our exec root that outlived dockerd (matched by our unique
   * exec-root path, or the pid in <exec-root>/containerd/containerd.pid). After a SIGKILL of
   * dockerd its managed containerd dies on its own, but not instantly: a restart racing with it
   * finds "containerd is still running" and then times out dialing its socket. So: SIGKILL, wait
   * until gone, and drop the stale pidfile.
   */
  killStrays() {
    const needle = `${this.execRoot}/`;
    const victims = new Set();
    const ctrPidFile = path.join(this.execRoot, 'containerd', 'containerd.pid');
    try {
      const p = Number(fs.readFileSync(ctrPidFile, 'utf8').trim());
      const cmd = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      if (p > 1 && cmd.some((a) => a.startsWith(needle))) victims.add(p);
    } catch {
      /* no pidfile or no such process */
    }
    let pids = [];
    try {
      pids = fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p));
    } catch {
      /* no /proc */
    }
    for (const p of pids) {
      if (Number(p) === process.pid) continue;
      try {
        const cmd = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
        if (!/containerd/.test(path.basename(cmd[0] ?? ''))) continue;
        if (cmd.some((a) => a.startsWith(needle))) victims.add(Number(p));
      } catch {
        /* raced */
      }
    }
    // container init processes are children of their shim; they would outlive it (reparented to
    // pid 1), so they go first. Killing a pid namespace's init kills the rest of the container.
    const ppidOf = (p) => {
      try {
        const st = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
        return Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]);
      } catch {
        return -1;
      }
    };
    if (victims.size > 0) {
      for (const p of pids) {
        if (victims.has(ppidOf(p))) {
          try {
            process.kill(Number(p), 'SIGKILL');
            victims.add(Number(p));
          } catch {
            /* gone */
          }
        }
      }
    }
    for (const p of victims) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    const gone = (p) => {
      try {
        return /^\d+ \(.*\) [ZX]/.test(fs.readFileSync(`/proc/${p}/stat`, 'utf8'));
      } catch {
        return true;
      }
    };
    const end = Date.now() + 15_000;
    while ([...victims].some((p) => !gone(p)) && Date.now() < end) spawnSync('sleep', ['0.05']);
    try {
      fs.unlinkSync(ctrPidFile);
    } catch {
      /* none */
    }
  }

  /** Start again on the same data root (same version and driver); new pid. Stops first if running. */
  async restart() {
    if (this._running) await this.stop();
    await this.launch();
  }

  /** Stop if running, unmount, chattr -i on the tree, rm -rf workDir. */
  async destroy() {
    if (this._running) {
      try {
        await this.stop();
      } catch {
        await this.kill().catch(() => undefined);
      }
    }
    this.cleanupFiles();
  }

  /** Synchronous variant for process exit hooks. */
  destroySync() {
    if (this._running) {
      try {
        process.kill(this._pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      // wait a little for the process to die (cannot await here)
      for (let i = 0; i < 50; i++) {
        try {
          process.kill(this._pid, 0);
          const st = fs.readFileSync(`/proc/${this._pid}/stat`, 'utf8');
          if (/^\d+ \(.*\) Z/.test(st)) break;
        } catch {
          break;
        }
        spawnSync('sleep', ['0.1']);
      }
      this._running = false;
    }
    this.killStrays();
    this.cleanupFiles();
  }

  cleanupFiles() {
    unmountUnder(this.execRoot);
    if (this.externalRoot) unmountUnder(this.dataRoot);
    unmountUnder(this.workDir);
    live.delete(this);
    if (process.env.LAYERGC_KEEP_TMP === '1') return;
    if (this.externalRoot) clearImmutable(this.dataRoot);
    clearImmutable(this.workDir);
    try {
      fs.rmSync(this.workDir, { recursive: true, force: true });
    } catch {
      spawnSync('chattr', ['-R', '-i', this.workDir], { stdio: 'ignore' });
      fs.rmSync(this.workDir, { recursive: true, force: true });
    }
  }
}

/** Build (once per process) a deterministic tar of a busybox-static rootfs; copied into workDir. */
function busyboxTar(workDir) {
  const dest = path.join(workDir, 'busybox.tar');
  if (fs.existsSync(dest)) return dest;
  if (!busyboxTarCache || !fs.existsSync(busyboxTarCache)) {
    const bb = ['/bin/busybox', '/usr/bin/busybox'].find((p) => fs.existsSync(p));
    if (!bb) throw new Error('busybox not found (apt-get install busybox-static)');
    const root = path.join(workDir, 'bbroot');
    fs.rmSync(root, { recursive: true, force: true });
    for (const dir of ['bin', 'etc', 'root', 'tmp']) fs.mkdirSync(path.join(root, dir), { recursive: true });
    fs.chmodSync(path.join(root, 'tmp'), 0o1777);
    fs.copyFileSync(bb, path.join(root, 'bin', 'busybox'));
    fs.chmodSync(path.join(root, 'bin', 'busybox'), 0o755);
    const applets = execFileSync(bb, ['--list'], { encoding: 'utf8' })
      .split('\n')
      .map((s) => s.trim())
      .filter(Boolean);
    for (const a of applets) {
      if (a === 'busybox' || a.includes('/')) continue;
      fs.symlinkSync('busybox', path.join(root, 'bin', a));
    }
    fs.writeFileSync(path.join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
    fs.writeFileSync(path.join(root, 'etc', 'group'), 'root:x:0:\n');
    const tar = path.join(workDir, 'busybox.tar');
    execFileSync('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '-C', root, '-cf', tar, '.']);
    fs.rmSync(root, { recursive: true, force: true });
    busyboxTarCache = tar;
    return tar;
  }
  fs.copyFileSync(busyboxTarCache, dest);
  return dest;
}
