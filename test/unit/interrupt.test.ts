/**
 * SIGINT and SIGTERM reach the remover between files, and the repair purge (--include broken):
 * the file under way is finished, the rest of the tree keeps its staged name, nothing new is
 * begun, the report says what was done, the exit code is 130 / 143, and the next purge finishes it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { rootMaker, runCliAsync } from '../helpers/synthetic.js';
import { signalledAt } from '../helpers/signal.js';
import { expectValid } from '../helpers/schema.js';

const root = rootMaker();

const countFiles = (dir: string): number => (fs.existsSync(dir) ? fs.readdirSync(dir, { recursive: true }).length : 0);

describe('a signal in the middle of a tree', () => {
  it('stops between files: the rest keeps its staged name, the intent stays open, exit 143; the next purge finishes it', async () => {
    const s = root();
    s.populate();
    const leak = s.makeLeakedDriverDir();
    for (let d = 0; d < 8; d++) {
      fs.mkdirSync(path.join(leak.dir, 'diff', `d${d}`), { recursive: true });
      for (let f = 0; f < 300; f++) fs.writeFileSync(path.join(leak.dir, 'diff', `d${d}`, `f${f}`), 'x');
    }
    const total = countFiles(leak.dir);
    // paused on opening the second directory of the tree, well before its 2400 files are gone
    const r = await signalledAt(['purge', '--yes', '--json', '--data-root', s.root], 'walk:3', 'SIGTERM', s.base);
    expect(r.code).toBe(143);
    const json = JSON.parse(r.stdout);
    expectValid('purge', json);
    expect(json.interrupted).toBe('SIGTERM');
    const [a] = json.actions;
    expect(a).toMatchObject({ kind: 'unreferenced-driver-dir', status: 'skipped' });
    expect(a.reason).toMatch(/^interrupted part-way \(SIGTERM\): what is left of .*-layergc-removing keeps its name, and the next purge finishes it$/);
    const staged = `${leak.dir}-layergc-removing`;
    const left = countFiles(staged);
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThan(total - 300);
    expect(fs.existsSync(leak.dir)).toBe(false);
    const journal = fs
      .readFileSync(path.join(s.root, 'layergc/journal.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(journal.map((e) => e.event)).toEqual(['intent']);
    expect(fs.existsSync(path.join(s.root, 'layergc/lock'))).toBe(false);

    const next = await runCliAsync(['purge', '--yes', '--data-root', s.root]);
    expect(next.code).toBe(0);
    expect(next.stderr).toContain('finishing 1 item(s) an interrupted purge left');
    expect(fs.existsSync(staged)).toBe(false);
  });
});

describe('a signal during purge --include broken', () => {
  it('finishes the item under way, begins no other, reports them skipped, exit 130', async () => {
    const s = root();
    s.populate();
    const broken = s.addImage(['broken:1'], [{ files: { f: 'x\n' } }, { files: { g: 'y\n' } }]);
    s.removeDriverDir(broken.layers[0].cacheId, { withLink: true });
    const leak = s.makeLeakedDriverDir();
    const r = await signalledAt(['purge', '--include', 'broken', '--yes', '--json', '--data-root', s.root], 'after-intent', 'SIGINT', s.base);
    expect(r.code).toBe(130);
    const json = JSON.parse(r.stdout);
    expectValid('purge', json);
    expect(json.interrupted).toBe('SIGINT');
    const statuses = (json.actions as { status: string; reason?: string }[]).map((a) => a.status);
    expect(statuses[0]).toBe('removed');
    expect(statuses.slice(1).length).toBeGreaterThan(0);
    for (const a of json.actions.slice(1)) expect(a).toMatchObject({ status: 'skipped', reason: 'not begun: the run was interrupted (SIGINT)' });
    expect(fs.existsSync(leak.dir)).toBe(true);
    expect(r.stderr).toContain('layergc: SIGINT: finishing the item under way, then stopping');
  });
});
