/**
 * Red team: attacks that try to make layergc delete, rename or overwrite something live or outside
 * the data root, through the real CLI on synthetic roots. Each test states the attack and asserts
 * the promise (sha256 listings of the live tree and of a canary tree outside the root, before and
 * after). Tests named "regression: ..." broke before their fix; the others pin a promise that held.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, diffSnapshots, randomBuildkitId, randomId, rootMaker, runCliAsync, scan, sha256Hex, snapshotTree, type SyntheticRoot } from '../helpers/synthetic.js';

const root = rootMaker();
const STATE = ['layergc'];
const purge = (s: SyntheticRoot, args: string[], env?: Record<string, string>) => runCliAsync(['purge', '--data-root', s.root, ...args], { env });
const exists = (p: string) => !!fs.lstatSync(p, { throwIfNoEntry: false });
const same = (a: Map<string, string>, b: Map<string, string>) => expect(diffSnapshots(a, b)).toEqual({ onlyBefore: [], onlyAfter: [], changed: [] });
/** Listings of `dirs` (sha256 of every file), to prove that each is untouched. */
const listing = (dirs: string[]) => new Map(dirs.flatMap((d) => [...snapshotTree(d)].map(([k, v]) => [`${d}/${k}`, v] as [string, string])));

describe('the reference model: an image the daemon loads keeps its layers', () => {
  // Go's encoding/json matches object keys to struct fields case-insensitively (and folds the long
  // s, U+017F, to s): moby loads {"RootFS": {"Diff_IDs": [...]}} as an image with those layers.
  for (const [what, rootfs, diffIds] of [['RootFS / Diff_IDs', 'RootFS', 'Diff_IDs'], ['ROOTFS / DIFF_IDS', 'ROOTFS', 'DIFF_IDS'], ['rootf\u017f (long s)', 'rootf\u017f', 'diff_id\u017f']] as const) {
    it.concurrent(`regression: a config spelling its keys ${what}: its layers are live, not unreferenced`, async () => {
      const s = root();
      s.populate();
      const layer = s.addDanglingLayer({ 'odd/file': 'odd image data\n' });
      const cfg = JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, [rootfs]: { type: 'layers', [diffIds]: [layer.diffId] } });
      const img = s.writeImageConfig(cfg);
      s.writeRepositoriesRaw(JSON.stringify({ Repositories: { odd: { 'odd:1': img.id } } }));
      const live = listing([layer.dir, layer.driverDir]);
      const sc = await scan(s.root);
      expect(sc.json.findings.map((f: { kind: string }) => f.kind)).toEqual([]);
      const r = await purge(s, ['--yes', '--json', '--include', 'unreferenced-layer']);
      expect(r.code).toBe(0);
      same(live, listing([layer.dir, layer.driverDir]));
    });
  }
});
