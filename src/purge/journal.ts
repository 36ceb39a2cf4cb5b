// The purge journal, <root>/layergc/journal.jsonl: an intent line before an item's first change and
// an outcome line after, each fsynced, so an interrupted run is visible and auditable.
import { constants } from 'node:fs';
import { fs } from '../fsx/fs.js';
import { stateDir } from './lock.js';

export interface JournalEntry {
  time: string;
  run: string;
  event: 'intent' | 'removed' | 'failed' | 'finished-interrupted';
  kind: string;
  paths: string[];
  bytes?: number;
  reason?: string;
}

const MAX_BYTES = 4 << 20;

export class Journal {
  readonly path: string;
  constructor(root: string, readonly run: string, private readonly dryRun: boolean) {
    this.path = `${stateDir(root)}/journal.jsonl`;
  }

  async write(e: Omit<JournalEntry, 'time' | 'run'>): Promise<void> {
    if (this.dryRun) return;
    const line = `${JSON.stringify({ time: new Date().toISOString(), run: this.run, ...e })}\n`;
    const fh = await fs.open(this.path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
    try {
      await fh.write(line);
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  /** Keep one old generation; a busy host's journal never grows without bound. */
  async rotate(): Promise<void> {
    if (this.dryRun) return;
    try {
      if ((await fs.lstat(this.path)).size > MAX_BYTES) await fs.rename(this.path, `${this.path}.1`);
    } catch { /* no journal yet */ }
  }

  /** Items an earlier run began and never finished: intent lines without an outcome. */
  async unfinished(): Promise<JournalEntry[]> {
    let text = '';
    try {
      text = (await fs.readFile(this.path)).toString('utf8');
    } catch {
      return [];
    }
    const open = new Map<string, JournalEntry>();
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      let e: JournalEntry;
      try { e = JSON.parse(line) as JournalEntry; } catch { continue; } // a torn last line from a crash
      const key = `${e.kind}\0${e.paths[0]}`;
      if (e.event === 'intent') open.set(key, e);
      else open.delete(key);
    }
    return [...open.values()];
  }
}
