// npm run fuzz [-- ITERATIONS [FIRST_SEED [CONCURRENCY]]]: the mutation fuzzer, longer than in CI.
// Each iteration's JSON result is appended to $LAYERGC_FUZZ_LOG (default /tmp/layergc-fuzz.jsonl).
import { spawnSync } from 'node:child_process';

const [iterations = '2000', first = '1', concurrency = '6'] = process.argv.slice(2);
const env = {
  ...process.env,
  LAYERGC_FUZZ_ITERATIONS: process.env.LAYERGC_FUZZ_ITERATIONS ?? iterations,
  LAYERGC_FUZZ_FIRST: process.env.LAYERGC_FUZZ_FIRST ?? first,
  LAYERGC_FUZZ_CONCURRENCY: process.env.LAYERGC_FUZZ_CONCURRENCY ?? concurrency,
  LAYERGC_FUZZ_LOG: process.env.LAYERGC_FUZZ_LOG ?? '/tmp/layergc-fuzz.jsonl',
  // a Node start-up per run costs more than most runs: keep the CLI loaded (LAYERGC_FUZZ_SERVER=0: a process per run)
  LAYERGC_FUZZ_SERVER: process.env.LAYERGC_FUZZ_SERVER ?? '1',
};
const r = spawnSync('npx', ['vitest', 'run', 'test/fuzz/roots.fuzz.test.ts'], { stdio: 'inherit', env });
process.exit(r.status ?? 1);
