#!/usr/bin/env node
// `--version` alone is answered before anything is loaded: a monitoring probe or an install check
// costs one Node start-up, not the whole CLI (commander, node:child_process, the store, ...).
const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  const { readFileSync } = await import('node:fs');
  process.stdout.write(`${JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version}\n`);
} else {
  await import('../dist/cli/main.js');
}
