/**
 * The house rules of src/, checked over its import graph (type imports and dynamic imports
 * included): no import cycle between files, none between the top-level folders of src/, none
 * between any two folders (a folder and its subfolder included),
 * src/cli/commands reaches no filesystem or driver internals, and only src/cli writes to the
 * terminal. The scanner is tested first on sources where the answer is known.
 */
import { describe, expect, it } from 'vitest';
import * as path from 'node:path';
import { cycles, groupEdges, readImportGraph, scanSource, terminalWrites, topFolder } from '../helpers/import-graph.js';
import { REPO } from '../helpers/synthetic.js';

const graph = readImportGraph(REPO);

describe('the import scanner', () => {
  it('reads static, type, re-export, side-effect and dynamic imports, and nothing in comments or strings', () => {
    const src = [
      "import * as fs from 'node:fs';",
      "import type { A,\n  B } from './a.js';",
      'export { c } from "./c.js";',
      "export * from './d.js';",
      "import './e.js';",
      "const f = await import('./f.js');",
      "let g: import('./g.js').G;",
      "// import { x } from './comment.js';",
      "/* export * from './block.js'; */",
      'const s = "import { y } from \'./string.js\'";',
      "const t = `export * from './template.js' $" + "{await import('./h.js')}`;",
      "const re = /['\"]/; import { i } from './i.js';",
      'const ratio = a / b; const other = c / d;',
    ].join('\n');
    expect(scanSource(src).specifiers.sort()).toEqual(['node:fs', './a.js', './c.js', './d.js', './e.js', './f.js', './g.js', './h.js', './i.js'].sort());
  });

  it('finds a cycle through three files and a self-import, and none in a chain', () => {
    const e = (pairs: [string, string][]) => {
      const m = new Map<string, Set<string>>();
      for (const [a, b] of pairs) {
        if (!m.has(a)) m.set(a, new Set());
        if (!m.has(b)) m.set(b, new Set());
        m.get(a)!.add(b);
      }
      return m;
    };
    expect(
      cycles(
        e([
          ['a', 'b'],
          ['b', 'c'],
          ['c', 'a'],
          ['c', 'd'],
          ['s', 's'],
        ]),
      ),
    ).toEqual([['a', 'b', 'c'], ['s']]);
    expect(
      cycles(
        e([
          ['a', 'b'],
          ['b', 'c'],
          ['a', 'c'],
        ]),
      ),
    ).toEqual([]);
  });

  it('groups files by top-level folder of src, a file directly in src/ being its own group', () => {
    expect(['src/cli/commands/scan.ts', 'src/cli/program/main.ts', 'src/errors.ts'].map(topFolder)).toEqual(['src/cli', 'src/cli', 'src/errors.ts']);
  });

  it('sees every way of writing to the terminal, and not a mention in a comment or string', () => {
    const code = scanSource(
      [
        'process.stdout.write(x);',
        'process . stderr.write(y);',
        'console.log(z);',
        'const { stderr } = process;',
        'fs.writeSync(2, "boom");',
        '// process.stdout.write(comment)',
        'const s = "console.log(in a string)";',
      ].join('\n'),
    ).code;
    expect(terminalWrites(code)).toEqual(['process.stdout', 'process . stderr', 'console.log', '{ stderr } = process', 'writeSync(2,']);
  });
});

describe('the architecture of src/', () => {
  it('reads the whole of src: many files, every relative import resolves to a file', () => {
    expect(graph.files.length).toBeGreaterThan(50);
    expect(graph.edges.get('src/cli/program/main.ts')?.size).toBeGreaterThan(0);
    expect(graph.unresolved).toEqual([]);
  });

  it('has no import cycle between files', () => {
    expect(cycles(graph.edges)).toEqual([]);
  });

  it('has no import cycle between the top-level folders of src', () => {
    expect(cycles(groupEdges(graph.edges, topFolder))).toEqual([]);
  });

  it('has no import cycle between any two folders of src, a folder and its own subfolder included', () => {
    // a file directly in src/ is its own group; else its folder (src/cli/commands, src/drivers/overlay2, ...)
    const folderOf = (file: string) => (path.dirname(file) === 'src' ? file : path.dirname(file));
    expect(cycles(groupEdges(graph.edges, folderOf))).toEqual([]);
  });

  it('src/cli/commands imports nothing from src/fsx or src/drivers', () => {
    const found: string[] = [];
    for (const [from, tos] of graph.edges) {
      if (!from.startsWith('src/cli/commands/')) continue;
      for (const to of tos) if (/^src\/(?:fsx|drivers)\//.test(to)) found.push(`${from} -> ${to}`);
    }
    expect(found).toEqual([]);
  });

  it('nothing outside src/cli writes to the terminal (process.stdout/stderr, console, fd 1/2)', () => {
    const found: string[] = [];
    for (const [file, code] of graph.code) {
      if (file.startsWith('src/cli/')) continue;
      for (const w of terminalWrites(code)) found.push(`${file}: ${w}`);
    }
    expect(found).toEqual([]);
  });
});
