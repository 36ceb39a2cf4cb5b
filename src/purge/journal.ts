// The purge journal, <root>/layergc/journal.jsonl: an intent line before an item's first change and
// an outcome line after, each fsynced, so an interrupted run is visible and auditable.
import { constants } from 'node:fs';
import { fs, errCode } from '../fsx/fs.js';
import { journalPath } from '../layout.js';

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

const EVENTS = ['intent', 'removed', 'failed', 'finished-interrupted'];
function wellFormed(e: unknown): e is JournalEntry {
  const j = e as JournalEntry;
  return (
    typeof j === 'object' &&
    j !== null &&
    !Array.isArray(j) &&
    EVENTS.includes(j.event) &&
    typeof j.kind === 'string' &&
    Array.isArray(j.paths) &&
    j.paths.length > 0 &&
    j.paths.every((p) => typeof p === 'string' && p.startsWith('/'))
  );
}

export class Journal {
  readonly path: string;
  /** Journal lines of the wrong shape, skipped: never trusted, never fatal. */
  readonly skippedLines: string[] = [];
  constructor(
    root: string,
    readonly run: string,
    private readonly dryRun: boolean,
  ) {
    this.path = journalPath(root);
  }

  async write(e: Omit<JournalEntry, 'time' | 'run'>): Promise<void> {
    if (this.dryRun) return;
    const line = `${JSON.stringify({ time: new Date().toISOString(), run: this.run, ...e })}\n`;
    const fh = await fs.open(this.path, constants.O_RDWR | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o600);
    try {
      // a line torn by a full disk or a crash ends here, so the next line is whole and parses
      const { size } = await fh.stat();
      const last = Buffer.alloc(1);
      if (size > 0 && (await fh.read(last, 0, 1, size - 1)).bytesRead === 1 && last[0] !== 0x0a) await fh.write('\n');
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
    } catch {
      /* no journal yet */
    }
  }

  /** Items an earlier run began and never finished: intent lines without an outcome. */
  async unfinished(): Promise<JournalEntry[]> {
    let text = '';
    try {
      // never through a link, never blocking on a FIFO, only a regular file, and only its last part
      const fh = await fs.open(this.path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
      try {
        const st = await fh.stat();
        if (!st.isFile()) throw new Error('not a regular file');
        const len = Math.min(st.size, 2 * MAX_BYTES);
        const buf = Buffer.alloc(len);
        await fh.read(buf, 0, len, st.size - len);
        text = buf.toString('utf8');
      } finally {
        await fh.close();
      }
    } catch (err) {
      if (errCode(err) !== 'ENOENT') this.skippedLines.push(`the journal cannot be read (${errCode(err) ?? (err as Error).message}); it is not trusted`);
      return [];
    }
    const open = new Map<string, JournalEntry>();
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      let e: JournalEntry;
      try {
        e = JSON.parse(line) as JournalEntry;
      } catch {
        continue;
      } // a torn last line from a crash
      if (!wellFormed(e)) {
        this.skippedLines.push(line.length > 80 ? `${line.slice(0, 80)}...` : line);
        continue;
      }
      const key = `${e.kind}\0${e.paths[0]}`;
      if (e.event === 'intent') open.set(key, e);
      else open.delete(key);
    }
    return [...open.values()];
  }
}
