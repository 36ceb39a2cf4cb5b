// Names from a damaged or hostile disk are printed safely: never raw control characters (a newline
// or an escape sequence could forge report lines), never raw invalid UTF-8, and a command printed
// for pasting is quoted so that no name can run shell code.

/** Bytes as text: valid UTF-8 as is, each byte of an invalid sequence as \xNN (and a backslash as \\). */
export function bytesToDisplay(b: Buffer): string {
  const s = b.toString('utf8');
  if (!s.includes('\uFFFD') && !s.includes('\\')) return s;
  let out = '';
  let i = 0;
  while (i < b.length) {
    const n = utf8Length(b, i);
    if (n === 0) {
      out += `\\x${b[i].toString(16).padStart(2, '0')}`;
      i++;
    } else {
      const ch = b.subarray(i, i + n).toString('utf8');
      out += ch === '\\' ? '\\\\' : ch;
      i += n;
    }
  }
  return out;
}

/** Length of the well-formed UTF-8 sequence at `i`, or 0 when there is none. */
function utf8Length(b: Buffer, i: number): number {
  const c = b[i];
  if (c < 0x80) return 1;
  const n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
  if (!n || i + n > b.length) return 0;
  for (let k = 1; k < n; k++) if ((b[i + k] & 0xc0) !== 0x80) return 0;
  const cp = b
    .subarray(i, i + n)
    .toString('utf8')
    .codePointAt(0)!;
  if ((n === 3 && cp < 0x800) || (n === 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return n;
}

// C0 controls, DEL, C1 controls, and the Unicode line/paragraph separators and bidi controls that
// reorder or break a terminal line
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufffd]/g;
const HAS_UNSAFE = new RegExp(UNSAFE.source);

/** One line of text safe for a terminal or a log: control characters as \xNN or \u{N}. */
export function escapeText(s: string): string {
  return s.replace(UNSAFE, (ch) => {
    const cp = ch.codePointAt(0)!;
    return cp < 0x100 ? `\\x${cp.toString(16).padStart(2, '0')}` : `\\u{${cp.toString(16)}}`;
  });
}

/**
 * One POSIX shell word that stands for exactly these bytes. Plain names are single-quoted; a name
 * with control characters or invalid UTF-8 is spelled with printf's octal escapes; null when no
 * word can carry it (a trailing newline, which command substitution strips).
 */
export function shellQuote(name: string | Buffer): string | null {
  const b = Buffer.isBuffer(name) ? name : Buffer.from(name, 'utf8');
  const s = b.toString('utf8');
  if (!HAS_UNSAFE.test(s)) return `'${s.replace(/'/g, `'\\''`)}'`;
  if (b[b.length - 1] === 0x0a) return null;
  let fmt = '';
  for (const c of b) {
    if (c >= 0x20 && c < 0x7f && c !== 0x27 && c !== 0x5c && c !== 0x25) fmt += String.fromCharCode(c);
    else fmt += `\\${c.toString(8).padStart(3, '0')}`;
  }
  return `"$(printf '${fmt}')"`;
}

/** A shell word for a flag's value: bare when plain, else quoted as shellQuote does. */
export function shellWord(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : (shellQuote(s) ?? `'${s.replace(/'/g, `'\\''`)}'`);
}

/** The flags that located a data root, for a command printed to be copied: it acts on the same root. */
export function locatingFlags(opts: { dataRoot?: string; driver?: string; daemonConfig?: string; containerdRoot?: string }): string[] {
  const flags: string[] = [];
  if (opts.dataRoot !== undefined) flags.push('--data-root', shellWord(opts.dataRoot));
  if (opts.driver !== undefined) flags.push('--driver', shellWord(opts.driver));
  if (opts.daemonConfig !== undefined) flags.push('--daemon-config', shellWord(opts.daemonConfig));
  if (opts.containerdRoot !== undefined) flags.push('--containerd-root', shellWord(opts.containerdRoot));
  return flags;
}
