/**
 * fuse-overlayfs on real dockerds 20.10 and 28.5: the overlay2 adapter reads its home (same layout: l/,
 * <id>/{diff,link,lower,work}, AUFS-style .wh. whiteouts in diff/). Scan flags nothing healthy,
 * every layer verifies against its DiffID (a whiteout included), and a leaked dir is purged while
 * the images keep running.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerAvailable, TestDaemon } from '../helpers/dockerd.js';

const LONG = 180_000;
const fuse = fs.existsSync('/usr/bin/fuse-overlayfs') && fs.existsSync('/dev/fuse');

function cli(args: string[], root: string): { code: number; json: any } {
  try {
    return {
      code: 0,
      json: JSON.parse(execFileSync(process.execPath, [path.resolve('bin/layergc.js'), ...args, '--data-root', root, '--json'], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } })),
    };
  } catch (err) {
    const e = err as { status: number; stdout: string };
    return { code: e.status, json: JSON.parse(e.stdout) };
  }
}

describe.each(['20.10', '28.5'] as const)('fuse-overlayfs on a real dockerd %s', (version) => {
  describe.skipIf(!fuse || !dockerAvailable(version))('fuse-overlayfs', () => {
    let d: TestDaemon;

    beforeAll(async () => {
      d = await TestDaemon.start({ driver: 'fuse-overlayfs', version });
      await d.importBusybox('base:1');
      await d.build('app:1', 'FROM base:1\nRUN echo hi > /hi && rm /bin/ls\n');
      await d.docker(['create', '--name', 'keep', 'app:1', 'cat', '/hi']);
      await d.stop();
    }, LONG);

    afterAll(async () => {
      if (d) await d.destroy();
    }, LONG);

    it('scan flags nothing healthy, and every layer verifies (an AUFS-style whiteout included)', () => {
      const home = path.join(d.dataRoot, 'fuse-overlayfs');
      const whiteouts = execFileSync('find', [home, '-name', '.wh.*'], { encoding: 'utf8' });
      expect(whiteouts).toContain('.wh.ls');
      const scan = cli(['scan'], d.dataRoot);
      expect(scan.json.driver).toBe('fuse-overlayfs');
      expect(scan.json.findings).toEqual([]);
      expect(scan.code).toBe(0);
      const verify = cli(['verify'], d.dataRoot);
      expect(verify.json.findings).toEqual([]);
      expect(verify.json.summary.layersVerified).toBe(2);
      expect(verify.json.summary.layersOk).toBe(2);
    });

    it(
      'a leaked dir is found and purged; the daemon then runs the image and starts the container',
      async () => {
        const home = path.join(d.dataRoot, 'fuse-overlayfs');
        const leaked = path.join(home, randomBytes(32).toString('hex'));
        fs.mkdirSync(path.join(leaked, 'diff'), { recursive: true });
        fs.writeFileSync(path.join(leaked, 'diff', 'partial.bin'), randomBytes(1 << 20));
        const scan = cli(['scan'], d.dataRoot);
        expect(scan.json.findings.map((f: { kind: string; paths: string[] }) => [f.kind, f.paths])).toEqual([['unreferenced-driver-dir', [leaked]]]);
        const purge = cli(['purge', '--yes'], d.dataRoot);
        expect(purge.code).toBe(0);
        expect(purge.json.summary.removed).toBe(1);
        expect(fs.existsSync(leaked)).toBe(false);
        await d.restart();
        expect((await d.run('app:1', ['cat', '/hi'])).trim()).toBe('hi');
        expect((await d.docker(['start', '-a', 'keep'])).stdout.trim()).toBe('hi');
      },
      LONG,
    );
  });
});
