/**
 * The import graph of src/, read from the sources (type imports included), for the architecture
 * test. A small scanner, not a parser: it blanks comments and string contents so that only code is
 * matched, and keeps each string's text aside to read the module specifiers.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface Scanned {
  /** the source with comments removed and every string/template literal replaced by `"#N"` */
  code: string;
  /** module specifiers of `import … from`, `export … from`, `import '…'` and `import('…')` */
  specifiers: string[];
}

const REGEX_AFTER = new Set('(,=:[!&|?{};+-*%<>~^'.split(''));
const REGEX_AFTER_WORDS = /\b(?:return|typeof|case|do|else|in|of|new|delete|void|throw|yield|await)$/;

/** Blanks comments and string contents; a `/` starts a regex literal where an operand is expected. */
export function scanSource(src: string): Scanned {
  const strings: string[] = [];
  let out = '';
  let i = 0;
  const lastSignificant = (): string => out.trimEnd();
  const readQuoted = (q: string): string => {
    let s = '';
    i++;
    while (i < src.length && src[i] !== q) {
      if (src[i] === '\\') {
        s += src[i + 1] ?? '';
        i += 2;
        continue;
      }
      s += src[i++];
    }
    i++;
    return s;
  };
  // template literals: the text is blanked, the expressions inside ${} are scanned as code
  const braces: ('code' | 'template')[] = [];
  const readTemplateText = (): void => {
    while (i < src.length) {
      if (src[i] === '\\') i += 2;
      else if (src[i] === '`') {
        i++;
        out += `"#${strings.push('`') - 1}"`;
        return;
      } else if (src[i] === '$' && src[i + 1] === '{') {
        i += 2;
        braces.push('template');
        out += '(';
        return;
      } else i++;
    }
  };
  while (i < src.length) {
    const c = src[i];
    const n = src[i + 1];
    if (c === '/' && n === '/') {
      while (i < src.length && src[i] !== '\n') i++;
    } else if (c === '/' && n === '*') {
      const end = src.indexOf('*/', i + 2);
      const body = src.slice(i, end < 0 ? src.length : end + 2);
      out += body.includes('\n') ? '\n' : ' ';
      i = end < 0 ? src.length : end + 2;
    } else if (c === "'" || c === '"') {
      out += `"#${strings.push(readQuoted(c)) - 1}"`;
    } else if (c === '`') {
      i++;
      readTemplateText();
    } else if (c === '{') {
      braces.push('code');
      out += c;
      i++;
    } else if (c === '}') {
      i++;
      if (braces.pop() === 'template') {
        out += ')';
        readTemplateText();
      } else out += '}';
    } else if (c === '/') {
      const before = lastSignificant();
      const prev = before[before.length - 1];
      if (prev === undefined || REGEX_AFTER.has(prev) || REGEX_AFTER_WORDS.test(before)) {
        // a regex literal: skip it, classes included (a `/` inside [] does not end it)
        i++;
        let inClass = false;
        while (i < src.length && src[i] !== '\n') {
          if (src[i] === '\\') i++;
          else if (src[i] === '[') inClass = true;
          else if (src[i] === ']') inClass = false;
          else if (src[i] === '/' && !inClass) break;
          i++;
        }
        i++;
        while (/[a-z]/i.test(src[i] ?? '')) i++;
        out += '/re/';
      } else {
        out += c;
        i++;
      }
    } else {
      out += c;
      i++;
    }
  }
  const specifiers: string[] = [];
  const str = String.raw`"#(\d+)"`;
  const patterns = [
    // import x from '…', import type { … } from '…', export { … } from '…', export * from '…'
    new RegExp(String.raw`\b(?:import|export)\b[^;"]*?\bfrom\s*${str}`, 'g'),
    // import '…' (side effect only)
    new RegExp(String.raw`\bimport\s*${str}`, 'g'),
    // import('…'): dynamic imports and type references like import('chalk').ChalkInstance
    new RegExp(String.raw`\bimport\s*\(\s*${str}`, 'g'),
  ];
  for (const re of patterns) for (const m of out.matchAll(re)) specifiers.push(strings[Number(m[1])]);
  return { code: out, specifiers };
}

export interface ImportGraph {
  /** every .ts file below the root, as a path relative to the repository (`src/cli/program/main.ts`) */
  files: string[];
  /** file → the files it imports (relative specifiers, resolved) */
  edges: Map<string, Set<string>>;
  /** file → its scanned code */
  code: Map<string, string>;
  /** relative specifiers that resolve to no file: a sign the scanner misread something */
  unresolved: string[];
}

export function readImportGraph(repo: string, root = 'src'): ImportGraph {
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(path.join(repo, dir), { withFileTypes: true })) {
      const rel = path.posix.join(dir, e.name);
      if (e.isDirectory()) walk(rel);
      else if (e.name.endsWith('.ts')) files.push(rel);
    }
  };
  walk(root);
  files.sort();
  const known = new Set(files);
  const edges = new Map<string, Set<string>>();
  const code = new Map<string, string>();
  const unresolved: string[] = [];
  for (const f of files) {
    const scanned = scanSource(fs.readFileSync(path.join(repo, f), 'utf8'));
    code.set(f, scanned.code);
    const to = new Set<string>();
    for (const spec of scanned.specifiers) {
      if (!spec.startsWith('.')) continue;
      const target = path.posix.join(path.posix.dirname(f), spec).replace(/\.js$/, '.ts');
      if (known.has(target)) to.add(target);
      else unresolved.push(`${f}: ${spec}`);
    }
    edges.set(f, to);
  }
  return { files, edges, code, unresolved };
}

/** Strongly connected components with more than one member, or a member that imports itself. */
export function cycles(edges: Map<string, Set<string>>): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || edges.get(v)?.has(v)) found.push(scc.sort());
    }
  };
  for (const v of [...edges.keys()].sort()) if (!index.has(v)) visit(v);
  return found.sort((a, b) => a[0].localeCompare(b[0]));
}

/** The graph between groups of files (`group` names a file's group); edges inside a group dropped. */
export function groupEdges(edges: Map<string, Set<string>>, group: (file: string) => string): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const [from, tos] of edges) {
    const a = group(from);
    if (!out.has(a)) out.set(a, new Set());
    for (const to of tos) {
      const b = group(to);
      if (a !== b) out.get(a)!.add(b);
    }
  }
  return out;
}

/** `src/cli/commands/scan.ts` → `src/cli`; a file directly in src/ is a group of its own. */
export function topFolder(file: string): string {
  const parts = file.split('/');
  return parts.length > 2 ? `${parts[0]}/${parts[1]}` : file;
}

/** Places in scanned code that write to the terminal: process.stdout/stderr, console.*, fd 1 or 2. */
export function terminalWrites(code: string): string[] {
  const hits: string[] = [];
  const res = [/\bprocess\s*\.\s*(?:stdout|stderr)\b/g, /\bconsole\s*\.\s*\w+/g, /\{[^}]*\b(?:stdout|stderr)\b[^}]*\}\s*=\s*process\b/g, /\bwriteSync\s*\(\s*[12]\s*,/g];
  for (const re of res) for (const m of code.matchAll(re)) hits.push(m[0].replace(/\s+/g, ' '));
  return hits;
}
