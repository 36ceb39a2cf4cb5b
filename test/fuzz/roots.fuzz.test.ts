// The mutation fuzzer (test/fuzz/mutate.ts) as a test: a fixed set of seeds in CI (about a minute),
// more with `npm run fuzz` (LAYERGC_FUZZ_ITERATIONS, LAYERGC_FUZZ_FIRST, LAYERGC_FUZZ_CONCURRENCY).
// A failure prints the seed and its mutations; the iteration's root is kept under the work dir.
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { expect, it } from 'vitest';
import { fuzz, type IterationResult } from './mutate.js';

const count = Number(process.env.LAYERGC_FUZZ_ITERATIONS ?? 24);
const first = Number(process.env.LAYERGC_FUZZ_FIRST ?? 1);
const concurrency = Number(process.env.LAYERGC_FUZZ_CONCURRENCY ?? 4);
const log = process.env.LAYERGC_FUZZ_LOG;
// LAYERGC_FUZZ_SERVER=1: commands run in a kept-loaded CLI per lane (npm run fuzz), not a process each
const servers = process.env.LAYERGC_FUZZ_SERVER === '1';

it(
  `${count} mutated roots${servers ? ' (kept-loaded CLI)' : ''} (seeds ${first}..${first + count - 1}): scan, scan --deep, verify and explain never hang, crash or blow up`,
  async () => {
    const work = fs.mkdtempSync(path.join(tmpdir(), 'layergc-fuzz-'));
    const started = Date.now();
    let done = 0;
    const onResult = (r: IterationResult) => {
      done++;
      if (log) fs.appendFileSync(log, `${JSON.stringify(r)}\n`);
      if (r.failures.length) console.error(`seed ${r.seed} FAILED (${r.mutations.join('; ')}):\n  ${r.failures.join('\n  ')}`);
      else if (log && done % 50 === 0) console.error(`${done}/${count} iterations, ${((Date.now() - started) / 1000).toFixed(0)} s`);
    };
    const results = await fuzz({ first, count, concurrency, work, servers, timeoutMs: 60_000, peakMiB: 400, onResult });
    const failed = results.filter((r) => r.failures.length);
    if (!failed.length) fs.rmSync(work, { recursive: true, force: true });
    const peak = Math.max(...results.flatMap((r) => r.runs.map((x) => x.peakMiB)));
    const slowest = Math.max(...results.flatMap((r) => r.runs.map((x) => x.ms)));
    console.error(
      `fuzz: ${results.length} iterations, ${results.length * 4} runs in ${((Date.now() - started) / 1000).toFixed(0)} s; peak RSS ${peak.toFixed(0)} MiB; slowest run ${slowest} ms; ${failed.length} failed`,
    );
    expect(failed.map((r) => ({ seed: r.seed, mutations: r.mutations, failures: r.failures }))).toEqual([]);
  },
  3_600_000 * 4,
);
