/**
 * Whose daemon (issue 8): a real dockerd 20.10 in a mount namespace of its own (`unshare --mount
 * --net`, as Docker-in-Docker and CI runners run it). Inside, its config is the default
 * /etc/docker/daemon.json (a tmpfs there, not the host's file) and its data root is a bind mount of
 * the root at a path that exists only inside. From outside, layergc reads its config and data root
 * through /proc/<pid>/root, finds the same directory by device and inode, and acts as beside a
 * local running daemon: a young leaked dir kept, unreferenced-layer refused (exit 3).
 * Skipped without dockerd, containerd and runc (see .ci/install-deps.sh).
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { runCliAsync, snapshotTree } from '../helpers/synthetic.js';
import { DOCKER_CLIENT, DOCKERD_2010, dockerAvailable, runCommand } from '../helpers/dockerd.js';

const canRun = dockerAvailable('20.10') && fs.existsSync('/etc/docker');

describe.skipIf(!canRun)('a real dockerd in its own mount namespace (unshare --mount --net)', () => {
  it('its data root, a bind mount at another path inside, named only by its own /etc/docker/daemon.json: recognised as the daemon of the root', async () => {
    const work = fs.mkdtempSync('/tmp/lgc-ns-');
    const root = path.join(work, 'r');
    const inner = path.join(work, 'inner');
    for (const d of [root, inner, path.join(work, 'e')]) fs.mkdirSync(d, { mode: 0o710 });
    const sock = path.join(work, 's');
    const log = fs.openSync(path.join(work, 'log'), 'a');
    // inside: a tmpfs over inner/ and over /etc/docker; the root bind-mounted at inner/dind; a config naming it
    const setup = [
      `mount -t tmpfs tmpfs ${inner}`,
      `mkdir ${inner}/dind`,
      `mount --bind ${root} ${inner}/dind`,
      'mount -t tmpfs tmpfs /etc/docker',
      `printf '{"data-root": "${inner}/dind", "storage-driver": "overlay2"}' > /etc/docker/daemon.json`,
    ].join(' && ');
    const child = spawn(
      'unshare',
      [
        '--mount',
        '--propagation',
        'private',
        '--net',
        'sh',
        '-c',
        `${setup} && exec "$@"`,
        'sh',
        DOCKERD_2010,
        '--exec-root',
        path.join(work, 'e'),
        '--pidfile',
        path.join(work, 'p'),
        '-H',
        `unix://${sock}`,
        '--iptables=false',
        '--ip-masq=false',
        '--bridge=none',
      ],
      { stdio: ['ignore', log, log] },
    );
    const exited = new Promise((r) => child.once('exit', r));
    try {
      let up = false;
      for (let i = 0; i < 300 && !up; i++) {
        await sleep(200);
        up = fs.existsSync(sock) && (await runCommand(DOCKER_CLIENT, ['-H', `unix://${sock}`, 'info', '--format', '{{.DockerRootDir}}'], { timeoutMs: 10_000 })).stdout.trim() === `${inner}/dind`;
      }
      expect(up, fs.readFileSync(path.join(work, 'log'), 'utf8').slice(-2000)).toBe(true);
      expect(fs.readdirSync(inner)).toEqual([]); // its mounts are not seen here
      expect(fs.existsSync(path.join(root, 'image/overlay2/layerdb'))).toBe(true); // it writes the root
      const dockerd = Number(fs.readFileSync(path.join(work, 'p'), 'utf8'));
      // one image (docker import of a one-file tar: no registry), so the store has layers
      fs.mkdirSync(path.join(work, 'img'));
      fs.writeFileSync(path.join(work, 'img/hello'), 'hello\n');
      const tar = spawnSync('tar', ['-c', '-C', path.join(work, 'img'), '.']).stdout;
      const imp = await runCommand(DOCKER_CLIENT, ['-H', `unix://${sock}`, 'import', '-', 'tiny:1'], { input: tar, timeoutMs: 60_000 });
      expect(imp.code, imp.stderr).toBe(0);
      // a leaked driver dir, just written: a pull of this daemon's may be writing it
      const leak = path.join(root, 'overlay2', randomBytes(32).toString('hex'));
      fs.mkdirSync(path.join(leak, 'diff'), { recursive: true });
      fs.writeFileSync(path.join(leak, 'diff/f'), 'in flight\n');
      const before = snapshotTree(root, { exclude: ['layergc'] });

      const r = await runCliAsync(['purge', '--data-root', root, '--yes', '--json']);
      expect(r.code).toBe(0);
      expect(r.json.daemonRunning).toBe(true);
      expect(r.json.actions.map((a: { paths: string[]; status: string; reason: string }) => [a.paths[0], a.status, a.reason])).toEqual([
        [leak, 'skipped', expect.stringContaining('younger than --min-age')],
      ]);
      const u = await runCliAsync(['purge', '--data-root', root, '--yes', '--include', 'unreferenced-layer']);
      expect(u.code).toBe(3);
      expect(u.stderr).toContain(`a dockerd (pid ${dockerd}) runs on ${root}`);
      expect(snapshotTree(root, { exclude: ['layergc'] })).toEqual(before);
    } finally {
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(30_000)]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      fs.closeSync(log);
      // the managed containerd lived in the namespace too; its mounts went with it
      for (let i = 0; i < 100 && spawnSync('pgrep', ['-f', path.join(work, 'e')]).status === 0; i++) await sleep(100);
      fs.rmSync(work, { recursive: true, force: true });
    }
  }, 180_000);
});
