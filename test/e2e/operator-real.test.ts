/**
 * The operator's path beside a running real dockerd (20.10, overlay2, its own data root, no
 * network): the systemd unit's command line with nothing new to do prints nothing, run after run,
 * while what it skips (a dangling link, skipped while a daemon runs) is counted in the metrics;
 * and explain and verify take what `docker` itself prints: tags, container names, short IDs.
 * Skipped without dockerd, containerd and runc (see .ci/install-deps.sh).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO, runCliAsync } from '../helpers/synthetic.js';
import { dockerAvailable, TestDaemon } from '../helpers/dockerd.js';

const version = '20.10';
const unit = fs.readFileSync(path.join(REPO, 'contrib/systemd/layergc.service'), 'utf8');

/** The unit's ExecStart as layergc arguments, its metrics file moved into `dir`. */
function unitArgs(dir: string): string[] {
  const exec = /^ExecStart=\/usr\/local\/bin\/layergc (.*)$/m.exec(unit)![1].split(/\s+/);
  const i = exec.indexOf('--metrics-file');
  exec[i + 1] = path.join(dir, path.basename(exec[i + 1]));
  return exec;
}

describe.skipIf(!dockerAvailable(version))(`beside a running dockerd ${version}`, () => {
  let d: TestDaemon;
  let work: string;
  beforeAll(async () => {
    d = await TestDaemon.start({ version });
    work = fs.mkdtempSync(path.join(d.workDir, 'op-'));
    await d.importBusybox('busybox:base');
    await d.build('app:1', 'FROM busybox:base\nRUN echo hi > /hi.txt\n');
    await d.docker(['run', '-d', '--name', 'idle', '--pull', 'never', '--network', 'none', 'app:1', 'sleep', '3600']);
  }, 300_000);
  afterAll(async () => {
    await d?.destroy();
  });

  it("the systemd unit's command line, with nothing new to do, prints nothing, run after run; the skip is in the metrics", async () => {
    // a dangling l/ link: purge leaves it while a daemon runs, so every daily run skips it
    const link = path.join(d.driverHome, 'l', 'LAYERGCDANGLINGLINK0000000');
    fs.symlinkSync(`../${'f'.repeat(64)}/diff`, link);
    const args = [...unitArgs(work), '--data-root', d.dataRoot];
    expect(args.slice(0, 3)).toEqual(['purge', '--yes', '--quiet']);
    for (let run = 0; run < 2; run++) {
      const r = await runCliAsync(args);
      expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }, `run ${run + 1}`).toEqual({ code: 0, stdout: '', stderr: '' });
    }
    expect(fs.lstatSync(link).isSymbolicLink()).toBe(true);
    const metrics = fs.readFileSync(path.join(work, 'layergc.prom'), 'utf8');
    expect(metrics).toMatch(/^layergc_daemon_running\{[^}]*\} 1$/m);
    expect(metrics).toMatch(/^layergc_purge_items\{[^}]*status="skipped"\} 1$/m);
    expect(metrics).toMatch(/^layergc_purge_items\{[^}]*status="removed"\} 0$/m);
    // the same run without --quiet does say what it skipped, and why
    const loud = await runCliAsync(['purge', '--yes', '--data-root', d.dataRoot]);
    expect(loud.stdout).toMatch(/^skipped {2}dangling-link/m);
    fs.unlinkSync(link);
  });

  it('explain and verify take what docker prints: a tag, a name, short image and container IDs', async () => {
    const imageId = (await d.docker(['image', 'inspect', '--format', '{{.Id}}', 'app:1'])).stdout.trim();
    const containerId = (await d.docker(['inspect', '--format', '{{.Id}}', 'idle'])).stdout.trim();
    const shortImage = (await d.docker(['images', '-q', 'app:1'])).stdout.trim();
    const shortContainer = (await d.docker(['ps', '-q', '--filter', 'name=idle'])).stdout.trim();
    expect(shortImage).toBe(imageId.slice(7, 19));
    expect(shortContainer).toBe(containerId.slice(0, 12));
    for (const [what, type] of [
      ['app:1', 'image'],
      ['docker.io/library/app:1', 'image'],
      [shortImage, 'image'],
      [imageId, 'image'],
      ['idle', 'container'],
      [shortContainer, 'container'],
    ] as const) {
      const r = await runCliAsync(['explain', what, '--json', '--data-root', d.dataRoot]);
      expect(r.code, what).toBe(0);
      expect(r.json, what).toMatchObject({ type, status: 'live' });
    }
    for (const what of ['app:1', 'idle', shortContainer]) {
      const v = await runCliAsync(['verify', what, '--json', '--data-root', d.dataRoot]);
      expect(v.code, what).toBe(0);
      expect(v.json.summary, what).toMatchObject({ layersVerified: 2, layersOk: 2 });
    }
  });
});
