// External tools (btrfs, zfs): found once on PATH or in the usual sbin dirs, run with a time limit,
// their failure told in one line (stderr, without the tool's "ERROR: " prefix).
import { execFile } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { promisify } from 'node:util';
import { fs } from './fs.js';

const exec = promisify(execFile);

const SEARCH_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** The first executable `name` on PATH (then the usual sbin dirs), or null. */
export async function findTool(name: string): Promise<string | null> {
  const dirs = [...(process.env.PATH ?? '').split(':').filter((d) => d.startsWith('/')), ...SEARCH_PATH];
  for (const d of dirs) {
    try {
      const st = await fs.stat(`${d}/${name}`);
      if (st.isFile() && st.mode & 0o111) return `${d}/${name}`;
    } catch {
      /* not here */
    }
  }
  return null;
}

/** Whether an executable `name` is on PATH, where spawning `name` looks for it. */
export function onPath(name: string): boolean {
  for (const d of (process.env.PATH ?? '').split(':')) {
    if (!d.startsWith('/')) continue;
    try {
      accessSync(`${d}/${name}`, constants.X_OK);
      if (statSync(`${d}/${name}`).isFile()) return true;
    } catch {
      /* not here */
    }
  }
  return false;
}

export type ToolResult = { ok: true; stdout: string } | { ok: false; error: string };

/** Run `tool args`; never throws: a failure (exit status, timeout, spawn error) comes back as its message. */
export async function runTool(tool: string, args: string[], timeoutMs: number): Promise<ToolResult> {
  try {
    const { stdout } = await exec(tool, args, { timeout: timeoutMs, maxBuffer: 64 << 20 });
    return { ok: true, stdout };
  } catch (err) {
    const e = err as { stderr?: string; message?: string };
    return { ok: false, error: (e.stderr || e.message || String(err)).trim().replace(/^ERROR: /, '') };
  }
}
