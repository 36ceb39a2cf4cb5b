import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { crc64 } from '../../src/verify/crc64.js';
import { readTarSplit, TarSplitError, type TarSplitEntry } from '../../src/verify/tarsplit.js';
import { cleanName, displayName } from '../../src/verify/tar-names.js';
import { verifyLayer, verifyLayers, type VerifyResult, type VerifyTarget } from '../../src/verify/index.js';

// ---------------------------------------------------------------------------------------------------------
// A Go-free tar-split disassembler: what vbatts/tar-split asm.NewInputTarStream writes for a tar stream, for
// the formats GNU tar writes (ustar, gnu with 'L'/'K' long names, PAX, and GNU sparse 'S' / PAX 0.1 / 1.0).
// Raw bytes that Go's tar reader consumes in Next() (padding of the previous entry, every header block,
// PAX/long-name data, sparse maps) become a segment; each header becomes a file entry whose payload is the
// CRC-64 of the content the reader returns (for a sparse file: the expanded content).

type JsonEntry = Record<string, unknown>;

const BLOCK = 512;
const isZero = (b: Buffer) => b.every((x) => x === 0);
const cstr = (b: Buffer, off: number, len: number) => {
  const s = b.subarray(off, off + len);
  const nul = s.indexOf(0);
  return nul < 0 ? s : s.subarray(0, nul);
};
function num(b: Buffer, off: number, len: number): number {
  if (b[off] & 0x80) {
    let v = b[off] & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + b[off + i];
    return v;
  }
  const s = cstr(b, off, len).toString('latin1').trim();
  return s ? parseInt(s, 8) : 0;
}
function paxRecords(data: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let i = 0;
  while (i < data.length && data[i] !== 0) {
    const sp = data.indexOf(0x20, i);
    const len = parseInt(data.toString('latin1', i, sp), 10);
    const rec = data.subarray(sp + 1, i + len - 1);
    const eq = rec.indexOf(0x3d);
    out.set(rec.toString('latin1', 0, eq), Buffer.from(rec.subarray(eq + 1)));
    i += len;
  }
  return out;
}
const roundUp = (n: number) => Math.ceil(n / BLOCK) * BLOCK;

function setName(e: JsonEntry, name: Buffer) {
  const text = name.toString('utf8');
  if (Buffer.from(text, 'utf8').equals(name)) e.name = text;
  else e.name_raw = name.toString('base64');
}

export function disassemble(tar: Buffer): JsonEntry[] {
  const out: JsonEntry[] = [];
  const add = (e: JsonEntry) => out.push({ ...e, position: out.length });
  let pos = 0;
  let raw: Buffer[] = [];
  const take = (n: number) => {
    const b = tar.subarray(pos, pos + n);
    raw.push(b);
    pos += n;
    return b;
  };
  const flush = () => {
    const b = Buffer.concat(raw);
    raw = [];
    if (b.length > 0) add({ type: 2, payload: b.toString('base64') });
  };
  let pendingPad = 0;
  for (;;) {
    take(pendingPad);
    pendingPad = 0;
    let longName: Buffer | undefined;
    let pax = new Map<string, Buffer>();
    let hdr = take(BLOCK);
    if (isZero(hdr)) {
      take(BLOCK); // the second zero block
      flush();
      break;
    }
    for (;;) {
      const flag = String.fromCharCode(hdr[156]);
      if (flag === 'x' || flag === 'L' || flag === 'K') {
        const size = num(hdr, 124, 12);
        const data = take(roundUp(size)).subarray(0, size);
        if (flag === 'x') pax = paxRecords(data);
        if (flag === 'L') longName = cstr(data, 0, data.length);
        hdr = take(BLOCK);
        continue;
      }
      break;
    }
    const flag = String.fromCharCode(hdr[156]);
    const isUstar = hdr.toString('latin1', 257, 263) === 'ustar\0';
    let name = cstr(hdr, 0, 100);
    if (isUstar && hdr[345] !== 0) name = Buffer.concat([cstr(hdr, 345, 155), Buffer.from('/'), name]);
    if (longName) name = longName;
    if (pax.has('path')) name = pax.get('path')!;
    if (pax.has('GNU.sparse.name')) name = pax.get('GNU.sparse.name')!;
    const stored = num(hdr, 124, 12); // bytes in the data region, for a sparse file the compact data
    let size = pax.has('size') ? Number(pax.get('size')!.toString()) : stored;
    const headerOnly = '123456'.includes(flag);
    const dataRegion = pos;
    const sparseMap: [number, number][] = [];
    if (flag === 'S') {
      for (let k = 0; k < 4; k++) {
        const off = num(hdr, 386 + k * 24, 12);
        const len = num(hdr, 398 + k * 24, 12);
        if (off || len) sparseMap.push([off, len]);
      }
      if (hdr[482]) throw new Error('test helper: extended GNU sparse headers not supported');
      size = num(hdr, 483, 12);
    } else if (pax.has('GNU.sparse.map')) {
      const v = pax.get('GNU.sparse.map')!.toString().split(',').map(Number);
      for (let k = 0; k < v.length; k += 2) sparseMap.push([v[k], v[k + 1]]);
      size = Number(pax.get('GNU.sparse.size')!.toString());
    } else if (pax.get('GNU.sparse.major')?.toString() === '1') {
      // PAX 1.0: the map is at the start of the data region, in whole blocks, read by Next()
      let text = '';
      let lines: string[];
      for (;;) {
        text += take(BLOCK).toString('latin1');
        lines = text.split('\n');
        if (lines.length - 1 >= 1 + 2 * Number(lines[0])) break;
      }
      for (let k = 0; k < Number(lines[0]); k++) sparseMap.push([Number(lines[1 + 2 * k]), Number(lines[2 + 2 * k])]);
      size = Number(pax.get('GNU.sparse.realsize')!.toString());
    }
    flush();
    let content: Buffer;
    let dataLeft: number; // archive bytes of this entry that Next() did not read: the data
    if (headerOnly) {
      content = Buffer.alloc(0);
      dataLeft = 0;
    } else if (sparseMap.length > 0) {
      content = Buffer.alloc(size);
      let p = pos;
      for (const [off, len] of sparseMap) {
        tar.copy(content, off, p, p + len);
        p += len;
      }
      dataLeft = stored - (pos - dataRegion);
    } else {
      content = tar.subarray(pos, pos + size);
      dataLeft = size;
    }
    pos += dataLeft;
    pendingPad = roundUp(pos) - pos;
    const e: JsonEntry = { type: 1 };
    setName(e, name);
    if (size > 0) e.size = size;
    e.payload = size > 0 ? crc64(content).toString('base64') : null;
    add(e);
  }
  // trailing bytes after the end-of-archive blocks, in chunks of at most 1 MiB
  while (pos < tar.length) {
    const n = Math.min(1 << 20, tar.length - pos);
    add({ type: 2, payload: tar.subarray(pos, pos + n).toString('base64') });
    pos += n;
  }
  return out;
}

function toJsonLines(entries: JsonEntry[]): Buffer {
  // Key order and escaping as Go's json.Encoder writes storage.Entry.
  const keys = ['type', 'name', 'name_raw', 'size', 'payload', 'position'];
  const lines = entries.map((e) => {
    const o: JsonEntry = {};
    for (const k of keys) if (k in e) o[k] = e[k];
    if (!('payload' in o)) o.payload = null;
    return JSON.stringify(o).replace(/[<>&\u2028\u2029]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0')) + '\n';
  });
  return Buffer.from(lines.join(''));
}

// ---------------------------------------------------------------------------------------------------------
// Synthetic layers: a content root, the tar GNU tar makes of it, that tar's DiffID and tar-split.

const scratch = fs.mkdtempSync(join(tmpdir(), 'lgc-verify-unit-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));
let layerNo = 0;

interface Layer {
  dir: string;
  root: string;
  tar: Buffer;
  entries: JsonEntry[];
  target: VerifyTarget;
}

function buildLayer(populate: (root: string) => void, opts: { tarArgs?: string[]; names?: string[]; trailer?: Buffer } = {}): Layer {
  const dir = join(scratch, `layer${++layerNo}`);
  const root = join(dir, 'diff');
  fs.mkdirSync(root, { recursive: true });
  populate(root);
  let tar = execFileSync('tar', [...(opts.tarArgs ?? ['--format=gnu']), '--sort=name', '-C', root, '-cf', '-', ...(opts.names ?? ['.'])], {
    maxBuffer: 1 << 30,
  });
  if (opts.trailer) tar = Buffer.concat([tar, opts.trailer]);
  const entries = disassemble(tar);
  const tarSplitPath = join(dir, 'tar-split.json.gz');
  fs.writeFileSync(tarSplitPath, gzipSync(toJsonLines(entries)));
  const diffId = 'sha256:' + createHash('sha256').update(tar).digest('hex');
  return { dir, root, tar, entries, target: { chainId: diffId, diffId, tarSplitPath, contentRoots: [root] } };
}

function write(root: string, name: string | Buffer, data: string | Buffer) {
  const p = typeof name === 'string' ? join(root, name) : Buffer.concat([Buffer.from(root + '/'), name]);
  fs.mkdirSync(join(root, typeof name === 'string' ? join(name, '..') : '.'), { recursive: true });
  fs.writeFileSync(p, data);
}

function pseudoRandom(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

const LONG_NAME = 'd'.repeat(70) + '/' + 'f'.repeat(90) + '.txt';
const RAW_NAME = Buffer.from([0x6e, 0x6f, 0x6e, 0x2d, 0xff, 0xfe, 0x2e, 0x62, 0x69, 0x6e]); // "non-\xff\xfe.bin"
const isRoot = process.getuid?.() === 0;

/** A layer with the kinds of entries real layers have. */
function richLayer(opts: { tarArgs?: string[]; names?: string[] } = {}): Layer {
  return buildLayer((root) => {
    write(root, 'etc/hostname', 'layergc\n');
    write(root, 'etc/empty', '');
    write(root, 'usr/lib/big.bin', pseudoRandom(3 * 1024 * 1024 + 123, 7)); // several read chunks
    write(root, 'usr/lib/exact.bin', pseudoRandom(1 << 20, 8)); // exactly one chunk
    write(root, LONG_NAME, 'long name\n');
    write(root, RAW_NAME, 'not utf-8 name\n');
    write(root, 'a<b>&c.txt', 'json-escaped name\n');
    fs.linkSync(join(root, 'etc/hostname'), join(root, 'etc/hostname.link'));
    fs.symlinkSync('hostname', join(root, 'etc/hostname.sym'));
    fs.symlinkSync('/etc/passwd', join(root, 'etc/abs.sym'));
    write(root, '.wh.gone', ''); // AUFS-style whiteout as it is in the layer tar
    write(root, 'opaque/.wh..wh..opq', '');
  }, opts);
}

/** verifyLayer, aborted with Error('stop') once `at` bytes have gone to the hasher. */
function verifyAbortedAt(t: VerifyTarget, at: number): Promise<VerifyResult> {
  const ac = new AbortController();
  let seen = 0;
  const onBytes = (n: number) => {
    seen += n;
    if (seen >= at) ac.abort(new Error('stop'));
  };
  return verifyLayer(t, { signal: ac.signal, onBytes });
}

function byName(r: VerifyResult) {
  return Object.fromEntries(r.files.map((f) => [f.name, f.problem]));
}

// ---------------------------------------------------------------------------------------------------------

const hasGetfattr = (() => {
  try {
    execFileSync('which', ['getfattr', 'setfattr'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe('test helper: tar-split disassembler', () => {
  it('reassembles to the exact tar (segments + file contents)', () => {
    const l = richLayer();
    const parts: Buffer[] = [];
    for (const e of l.entries) {
      if (e.type === 2) parts.push(Buffer.from(e.payload as string, 'base64'));
      else if ((e.size as number) > 0) {
        const name = e.name_raw ? Buffer.from(e.name_raw as string, 'base64') : Buffer.from(e.name as string);
        parts.push(fs.readFileSync(Buffer.concat([Buffer.from(l.root + '/'), name])));
      }
    }
    expect(Buffer.concat(parts).equals(l.tar)).toBe(true);
    expect(l.entries.some((e) => e.name_raw)).toBe(true);
    expect(toJsonLines(l.entries).toString()).toContain('a\\u003cb\\u003e\\u0026c.txt');
  });
});

describe('names', () => {
  it.each([
    ['etc/hosts', 'etc/hosts'],
    ['./etc/hosts', 'etc/hosts'],
    ['/etc/hosts', 'etc/hosts'],
    ['etc//hosts', 'etc/hosts'],
    ['etc/./hosts', 'etc/hosts'],
    ['etc/x/../hosts', 'etc/hosts'],
    ['etc/', 'etc'],
    ['./', ''],
    ['..', null],
    ['../etc/hosts', null],
    ['a/../../etc', null],
    ['/../etc', null],
    ['..hidden/x..y', '..hidden/x..y'],
  ])('cleanName(%j) = %j', (name, want) => {
    expect(cleanName(name)).toBe(want);
  });

  it('keeps non-UTF-8 bytes through cleaning and shows them escaped', () => {
    const raw = Buffer.from([0x2e, 0x2f, 0x61, 0xff, 0x2f, 0xc3, 0xa9, 0xfe]); // ./a\xff/é\xfe
    const clean = cleanName(raw.toString('latin1'))!;
    expect(Buffer.from(clean, 'latin1').equals(raw.subarray(2))).toBe(true);
    expect(displayName(Buffer.from(clean, 'latin1'))).toBe('a\\xff/é\\xfe');
    expect(displayName(Buffer.from('plain/ünïcode', 'utf8'))).toBe('plain/ünïcode');
  });
});

describe('readTarSplit', () => {
  it('streams entries with names, raw names, sizes, CRCs and positions', async () => {
    const l = richLayer();
    const seen: TarSplitEntry[] = [];
    for await (const e of readTarSplit(l.target.tarSplitPath)) seen.push(e);
    expect(seen.length).toBe(l.entries.length);
    expect(seen.map((e) => e.position)).toEqual(seen.map((_, i) => i));
    const raw = seen.find((e) => e.type === 1 && e.nameRaw);
    expect(raw && raw.type === 1 && raw.nameBytes.equals(Buffer.concat([Buffer.from('./'), RAW_NAME]))).toBe(true);
    const host = seen.find((e) => e.type === 1 && e.name === './etc/hostname');
    expect(host && host.type === 1 && host.size).toBe(8);
    expect(host && host.type === 1 && host.payload!.equals(crc64(Buffer.from('layergc\n')))).toBe(true);
    const link = seen.find((e) => e.type === 1 && e.name === './etc/hostname.link');
    expect(link && link.type === 1 && link.size === 0 && link.payload === null).toBe(true);
  });

  async function kindOf(path: string): Promise<string> {
    try {
      for await (const _ of readTarSplit(path));
      return 'ok';
    } catch (err) {
      expect(err).toBeInstanceOf(TarSplitError);
      return (err as TarSplitError).kind;
    }
  }

  it('tells missing, truncated and corrupt apart', async () => {
    const l = richLayer();
    const gz = fs.readFileSync(l.target.tarSplitPath);
    const p = (n: string) => join(l.dir, n);
    fs.writeFileSync(p('cut.gz'), gz.subarray(0, Math.floor(gz.length / 2)));
    fs.writeFileSync(p('empty.gz'), '');
    const badCrc = Buffer.from(gz);
    badCrc[badCrc.length - 6] ^= 0xff;
    fs.writeFileSync(p('badcrc.gz'), badCrc);
    fs.writeFileSync(p('notgz.gz'), 'hello');
    fs.writeFileSync(p('badjson.gz'), gzipSync('{"type":2,"payload":"","position":0}\n{"type":1,"name":\n'));
    fs.writeFileSync(p('badtype.gz'), gzipSync('{"type":7,"position":0}\n'));
    fs.writeFileSync(p('badb64.gz'), gzipSync('{"type":2,"payload":"@@@@","position":0}\n'));
    fs.writeFileSync(p('nocrc.gz'), gzipSync('{"type":1,"name":"x","size":3,"payload":null,"position":0}\n'));
    expect(await kindOf(p('nope.gz'))).toBe('missing');
    expect(await kindOf(p('cut.gz'))).toBe('truncated');
    expect(await kindOf(p('empty.gz'))).toBe('truncated');
    expect(await kindOf(p('badcrc.gz'))).toBe('corrupt');
    expect(await kindOf(p('notgz.gz'))).toBe('corrupt');
    expect(await kindOf(p('badjson.gz'))).toBe('corrupt');
    expect(await kindOf(p('badtype.gz'))).toBe('corrupt');
    expect(await kindOf(p('badb64.gz'))).toBe('corrupt');
    expect(await kindOf(p('nocrc.gz'))).toBe('corrupt');
    expect(await kindOf(l.target.tarSplitPath)).toBe('ok');
  });
});

describe('verifyLayer', () => {
  it('proves an intact layer (./ names, long and non-UTF-8 names, hard links, symlinks, whiteouts, empty files)', async () => {
    const l = richLayer();
    let reported = 0;
    const r = await verifyLayer(l.target, { onBytes: (n) => (reported += n) });
    expect(r).toEqual({ chainId: l.target.chainId, ok: true, expected: l.target.diffId, computed: l.target.diffId, bytes: l.tar.length, files: [] });
    expect(reported).toBe(l.tar.length);
  });

  it.each([
    ['posix (PAX)', ['--format=posix']],
    ['ustar', ['--format=ustar']],
  ])('proves a %s tar', async (_, tarArgs) => {
    const l = buildLayer(
      (root) => {
        write(root, 'x/y.txt', 'hello');
        write(root, 'big', pseudoRandom(70_000, 3));
        if (tarArgs[0] === '--format=posix') write(root, LONG_NAME, 'pax path');
      },
      { tarArgs },
    );
    expect((await verifyLayer(l.target)).ok).toBe(true);
  });

  it('proves names without a ./ prefix and trailing bytes after the end-of-archive blocks', async () => {
    const l = buildLayer(
      (root) => {
        write(root, 'a/b', 'b');
        write(root, 'c', pseudoRandom(5000, 1));
      },
      { names: ['a', 'c'], trailer: Buffer.alloc(3 * 1024 * 1024 + 17, 0x5a) },
    );
    expect(l.entries.filter((e) => e.type === 2).length).toBeGreaterThan(3);
    expect(l.entries.some((e) => typeof e.name === 'string' && e.name.startsWith('./'))).toBe(false);
    const r = await verifyLayer(l.target);
    expect(r.ok).toBe(true);
    expect(r.bytes).toBe(l.tar.length);
  });

  it('names every damaged file in one run: modified, short, missing, long', async () => {
    const l = richLayer();
    const big = join(l.root, 'usr/lib/big.bin');
    const fd = fs.openSync(big, 'r+');
    fs.writeSync(fd, Buffer.from([0x00]), 0, 1, 2 * 1024 * 1024 + 5); // one byte changed
    fs.closeSync(fd);
    fs.truncateSync(join(l.root, 'usr/lib/exact.bin'), 1000); // truncated
    fs.rmSync(join(l.root, LONG_NAME)); // removed
    fs.appendFileSync(join(l.root, 'a<b>&c.txt'), 'more'); // longer
    const r = await verifyLayer(l.target);
    expect(r.ok).toBe(false);
    expect(r.kind).toBe('content-mismatch');
    expect(r.computed).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(r.computed).not.toBe(r.expected);
    expect(byName(r)).toEqual({
      'usr/lib/big.bin': 'modified',
      'usr/lib/exact.bin': 'short',
      [LONG_NAME]: 'missing',
      'a<b>&c.txt': 'long',
    });
    expect(r.files.find((f) => f.problem === 'short')!.detail).toBe('1000 bytes on disk, tar-split says 1048576');
    // in stream order, whichever pass found them
    expect(r.files.map((f) => f.name)).toEqual(['a<b>&c.txt', LONG_NAME, 'usr/lib/big.bin', 'usr/lib/exact.bin']);
  });

  it('one byte changed in a small file', async () => {
    const l = richLayer();
    fs.writeFileSync(join(l.root, 'etc/hostname'), 'layergC\n');
    const r = await verifyLayer(l.target);
    // the hard link shares the inode; it is a size-0 entry and never read
    expect(r.files).toEqual([{ name: 'etc/hostname', problem: 'modified', detail: expect.stringContaining('CRC-64 differs') }]);
  });

  it('a file longer on disk whose first bytes still match: the DiffID matches but push/save would fail', async () => {
    const l = richLayer();
    fs.appendFileSync(join(l.root, 'etc/hostname'), 'x');
    const r = await verifyLayer(l.target);
    expect(r.ok).toBe(false);
    expect(r.kind).toBe('content-mismatch');
    expect(r.computed).toBe(r.expected);
    expect(r.files).toEqual([{ name: 'etc/hostname', problem: 'long', detail: '9 bytes on disk, tar-split says 8' }]);
  });

  it('a longer file whose first bytes differ too is reported as modified', async () => {
    const l = richLayer();
    fs.writeFileSync(join(l.root, 'etc/hostname'), 'something else entirely');
    const r = await verifyLayer(l.target);
    expect(r.files).toEqual([{ name: 'etc/hostname', problem: 'modified', detail: expect.stringContaining('23 bytes on disk, tar-split says 8') }]);
  });

  it('names a damaged non-UTF-8 file, with its raw bytes', async () => {
    const l = richLayer();
    fs.writeFileSync(Buffer.concat([Buffer.from(l.root + '/'), RAW_NAME]), 'NOT utf-8 name\n');
    const r = await verifyLayer(l.target);
    expect(r.files).toEqual([{ name: 'non-\\xff\\xfe.bin', problem: 'modified', detail: expect.stringContaining(`name_raw ${Buffer.concat([Buffer.from('./'), RAW_NAME]).toString('base64')}`) }]);
  });

  it('a tar-split gzip cut short is tar-split-corrupt, and damage in the readable part is still named', async () => {
    const l = richLayer();
    const gz = fs.readFileSync(l.target.tarSplitPath);
    fs.writeFileSync(l.target.tarSplitPath, gz.subarray(0, gz.length - 40));
    fs.writeFileSync(join(l.root, 'a<b>&c.txt'), 'json-escaped NAME\n'); // sorted first: in the readable part
    const r = await verifyLayer(l.target);
    expect(r.ok).toBe(false);
    expect(r.kind).toBe('tar-split-corrupt');
    expect(r.reason).toMatch(/truncated/);
    expect(r.computed).toBeUndefined();
    expect(byName(r)).toEqual({ 'a<b>&c.txt': 'modified' });
  });

  it('a missing tar-split is tar-split-missing', async () => {
    const l = richLayer();
    fs.rmSync(l.target.tarSplitPath);
    const r = await verifyLayer(l.target);
    expect(r).toMatchObject({ ok: false, kind: 'tar-split-missing', bytes: 0, files: [] });
  });

  it('a tar-split with a bad line is tar-split-corrupt', async () => {
    const l = richLayer();
    const lines = toJsonLines(l.entries).toString().split('\n');
    lines[3] = '{"type":1,"name":';
    fs.writeFileSync(l.target.tarSplitPath, gzipSync(lines.join('\n')));
    const r = await verifyLayer(l.target);
    expect(r).toMatchObject({ ok: false, kind: 'tar-split-corrupt' });
    expect(r.reason).toMatch(/line 4: not JSON/);
  });

  it('header bytes that do not belong to the DiffID: every file is fine, the mismatch is in tar-split', async () => {
    const l = richLayer();
    const entries = l.entries.map((e) => ({ ...e }));
    const seg = entries.find((e) => e.type === 2)!;
    const b = Buffer.from(seg.payload as string, 'base64');
    b[300] ^= 1; // mode/uid field bytes of the first header
    seg.payload = b.toString('base64');
    fs.writeFileSync(l.target.tarSplitPath, gzipSync(toJsonLines(entries)));
    const r = await verifyLayer(l.target);
    expect(r).toMatchObject({ ok: false, kind: 'content-mismatch', files: [] });
    expect(r.reason).toMatch(/every file matches its tar-split CRC-64/);
  });

  // mknod needs root
  it.skipIf(!isRoot)('an overlay2 whiteout device in place of a .wh. entry is never read', async () => {
    const l = richLayer();
    fs.rmSync(join(l.root, '.wh.gone'));
    execFileSync('mknod', [join(l.root, 'gone'), 'c', '0', '0']);
    expect((await verifyLayer(l.target)).ok).toBe(true);
  });

  it('reads a file from a lower root when the own root lacks it (overlay2 lower chain)', async () => {
    const l = richLayer();
    const lower = join(l.dir, 'lower');
    fs.mkdirSync(join(lower, 'usr/lib'), { recursive: true });
    fs.renameSync(join(l.root, 'usr/lib/big.bin'), join(lower, 'usr/lib/big.bin'));
    const empty = join(l.dir, 'empty-lower');
    fs.mkdirSync(empty);
    expect((await verifyLayer(l.target)).files).toEqual([{ name: 'usr/lib/big.bin', problem: 'missing' }]);
    const r = await verifyLayer({ ...l.target, contentRoots: [l.root, empty, join(l.dir, 'no-such-root'), lower] });
    expect(r.ok).toBe(true);
  });

  // trusted.* xattrs need root, and reading them needs getfattr
  it.skipIf(!isRoot || !hasGetfattr)('follows an overlay redirect_dir rename: a dir renamed in this layer finds its files under the old name in the lower', async () => {
    const l = richLayer();
    const lower = join(l.dir, 'lower');
    // the layer's tar has usr/lib/big.bin; through the overlay mount, usr/lib was a rename of usr/old
    // (absolute redirect) whose unchanged file stayed in the lower layer
    fs.mkdirSync(join(lower, 'usr/old'), { recursive: true });
    fs.renameSync(join(l.root, 'usr/lib/big.bin'), join(lower, 'usr/old/big.bin'));
    expect(byName(await verifyLayer({ ...l.target, contentRoots: [l.root, lower] }))).toEqual({ 'usr/lib/big.bin': 'missing' });
    execFileSync('setfattr', ['-n', 'trusted.overlay.redirect', '-v', '/usr/old', join(l.root, 'usr/lib')]);
    expect((await verifyLayer({ ...l.target, contentRoots: [l.root, lower] })).ok).toBe(true);
    // a relative redirect names the old dir in the same parent
    execFileSync('setfattr', ['-n', 'trusted.overlay.redirect', '-v', 'old', join(l.root, 'usr/lib')]);
    expect((await verifyLayer({ ...l.target, contentRoots: [l.root, lower] })).ok).toBe(true);
    // a redirect never leads out of the layer
    execFileSync('setfattr', ['-n', 'trusted.overlay.redirect', '-v', '../../..', join(l.root, 'usr/lib')]);
    expect(byName(await verifyLayer({ ...l.target, contentRoots: [l.root, lower] }))).toEqual({ 'usr/lib/big.bin': 'missing' });
  });

  it('a hole-only file in the own root (overlay metacopy) takes its data from the lower root that matches', async () => {
    const l = richLayer();
    const lower = join(l.dir, 'lower');
    fs.mkdirSync(join(lower, 'usr/lib'), { recursive: true });
    const big = join(l.root, 'usr/lib/big.bin');
    const size = fs.statSync(big).size;
    fs.renameSync(big, join(lower, 'usr/lib/big.bin'));
    fs.writeFileSync(big, '');
    fs.truncateSync(big, size); // same size, no data blocks: what a metacopy upper file looks like
    expect(fs.statSync(big).blocks).toBe(0);
    const r = await verifyLayer({ ...l.target, contentRoots: [l.root, lower] });
    expect(r.ok).toBe(true);
    // without the lower root the hole-only file is what there is, and it is wrong
    expect(byName(await verifyLayer(l.target))).toEqual({ 'usr/lib/big.bin': 'modified' });
  });

  it('stays inside the root: symlinked final component, directory symlink leading outside, .. names', async () => {
    const l = richLayer();
    const outside = join(l.dir, 'outside');
    fs.mkdirSync(outside);
    fs.writeFileSync(join(outside, 'hostname'), 'layergc\n'); // same content: only the containment fails
    fs.writeFileSync(join(outside, 'exact.bin'), pseudoRandom(1 << 20, 8));
    // etc/hostname becomes a symlink to a file with the right content, outside
    fs.rmSync(join(l.root, 'etc/hostname'));
    fs.symlinkSync(join(outside, 'hostname'), join(l.root, 'etc/hostname'));
    // usr/lib becomes a symlink to a directory outside
    fs.mkdirSync(join(l.dir, 'moved'));
    fs.renameSync(join(l.root, 'usr/lib'), join(l.dir, 'moved/lib'));
    fs.symlinkSync(outside, join(l.root, 'usr/lib'));
    const r = await verifyLayer(l.target);
    expect(byName(r)).toEqual({ 'etc/hostname': 'unsafe', 'usr/lib/big.bin': 'unsafe', 'usr/lib/exact.bin': 'unsafe' });
    expect(r.files.find((f) => f.name === 'etc/hostname')!.detail).toMatch(/symlink/);
    expect(r.files.find((f) => f.name === 'usr/lib/exact.bin')!.detail).toMatch(/leads outside/);
  });

  it('follows a directory symlink that stays inside the root, as os.Open does', async () => {
    const l = richLayer();
    fs.renameSync(join(l.root, 'usr/lib'), join(l.root, 'usr/lib64'));
    fs.symlinkSync('lib64', join(l.root, 'usr/lib'));
    expect((await verifyLayer(l.target)).ok).toBe(true);
  });

  it('refuses names that climb out of the root', async () => {
    const l = richLayer();
    fs.writeFileSync(join(l.dir, 'escape'), 'x');
    const entries = [
      ...l.entries.slice(0, -1),
      // each file entry follows its tar header, as tar-split writes it (the reader insists)
      { type: 2, payload: Buffer.alloc(512).toString('base64') },
      { type: 1, name: '../escape', size: 1, payload: crc64(Buffer.from('x')).toString('base64') },
      { type: 2, payload: Buffer.alloc(512).toString('base64') },
      { type: 1, name: 'a/../../escape', size: 1, payload: crc64(Buffer.from('x')).toString('base64') },
      l.entries[l.entries.length - 1],
    ];
    fs.writeFileSync(l.target.tarSplitPath, gzipSync(toJsonLines(entries)));
    const r = await verifyLayer(l.target);
    expect(r.files.map((f) => [f.name, f.problem])).toEqual([
      ['../escape', 'unsafe'],
      ['a/../../escape', 'unsafe'],
    ]);
  });

  it('does not hang on a FIFO or read a directory in place of a file', async () => {
    const l = richLayer();
    fs.rmSync(join(l.root, 'etc/hostname'));
    execFileSync('mkfifo', [join(l.root, 'etc/hostname')]);
    fs.rmSync(join(l.root, LONG_NAME));
    fs.mkdirSync(join(l.root, LONG_NAME));
    const r = await verifyLayer(l.target);
    expect(byName(r)).toEqual({ 'etc/hostname': 'unreadable', [LONG_NAME]: 'unreadable' });
    expect(r.files.find((f) => f.name === 'etc/hostname')!.detail).toMatch(/fifo/);
    expect(r.files.find((f) => f.name === LONG_NAME)!.detail).toMatch(/directory/);
  });

  // root reads anything
  it.skipIf(isRoot)('a file the process cannot read is unreadable, not missing', async () => {
    const l = richLayer();
    fs.chmodSync(join(l.root, 'etc/hostname'), 0);
    expect(byName(await verifyLayer(l.target))).toEqual({ 'etc/hostname': 'unreadable' });
  });

  describe('GNU sparse entries', () => {
    function sparseLayer(tarArgs: string[]): Layer {
      return buildLayer(
        (root) => {
          write(root, 'plain', 'plain');
          const fd = fs.openSync(join(root, 'sparse.img'), 'w');
          fs.writeSync(fd, Buffer.from('hello'), 0, 5, 1 << 20);
          fs.writeSync(fd, Buffer.from('world'), 0, 5, 3 << 20);
          fs.ftruncateSync(fd, 4 << 20);
          fs.closeSync(fd);
        },
        { tarArgs: [...tarArgs, '--sparse'] },
      );
    }
    it.each([
      ['GNU old sparse (S)', ['--format=gnu']],
      ['PAX 0.1', ['--format=posix', '--sparse-version=0.1']],
      ['PAX 1.0', ['--format=posix', '--sparse-version=1.0']],
    ])('%s: sparse-unverifiable, not damage', async (_, args) => {
      const l = sparseLayer(args);
      const r = await verifyLayer(l.target);
      expect(r).toMatchObject({ ok: false, kind: 'sparse-unverifiable', files: [] });
      expect(r.reason).toContain('sparse.img');
      // damage in a sparse layer is still damage
      fs.writeFileSync(join(l.root, 'plain'), 'PLAIN');
      expect(await verifyLayer(l.target)).toMatchObject({ kind: 'content-mismatch', files: [{ name: 'plain', problem: 'modified' }] });
    });
  });

  it('keeps memory flat: a 96 MiB file does not grow the heap or buffers', async () => {
    const l = buildLayer((root) => {
      const fd = fs.openSync(join(root, 'huge.bin'), 'w');
      const chunk = pseudoRandom(1 << 20, 11);
      for (let i = 0; i < 96; i++) fs.writeSync(fd, chunk);
      fs.closeSync(fd);
    });
    (l as { tar?: Buffer }).tar = undefined;
    const base = process.memoryUsage();
    let peakBuffers = 0;
    let peakHeap = 0;
    const r = await verifyLayer(l.target, {
      onBytes: () => {
        const m = process.memoryUsage();
        peakBuffers = Math.max(peakBuffers, m.arrayBuffers - base.arrayBuffers);
        peakHeap = Math.max(peakHeap, m.heapUsed - base.heapUsed);
      },
    });
    expect(r.ok).toBe(true);
    expect(peakBuffers).toBeLessThan(16 << 20);
    expect(peakHeap).toBeLessThan(32 << 20);
  });

  describe('tar-split parsed ahead while the hasher is full', () => {
    // 24 MiB first (the hasher's ring fills: the next batches are parsed meanwhile), then 1,500 small
    // files spanning several batches of tar-split
    const fds = () => fs.readdirSync('/proc/self/fd').length;
    function aheadLayer(): Layer {
      return buildLayer((root) => {
        write(root, 'a-big.bin', pseudoRandom(24 << 20, 21));
        for (let i = 0; i < 1500; i++) write(root, `z/${String(i).padStart(4, '0')}`, pseudoRandom(700 + (i % 50), i + 1));
      });
    }

    it('proves the layer, in stream order', async () => {
      const l = aheadLayer();
      const r = await verifyLayer(l.target);
      expect(r).toMatchObject({ ok: true, computed: l.target.diffId, bytes: l.tar.length });
    });

    it('a bad line past the batches read ahead: tar-split-corrupt at that line, damage before it still named', async () => {
      const l = aheadLayer();
      const lines = toJsonLines(l.entries).toString().split('\n');
      const bad = lines.length - 12;
      lines[bad] = '{"type":1,"name":';
      fs.writeFileSync(l.target.tarSplitPath, gzipSync(lines.join('\n')));
      fs.writeFileSync(join(l.root, 'z/1200'), 'changed');
      const r = await verifyLayer(l.target);
      expect(r).toMatchObject({ ok: false, kind: 'tar-split-corrupt' });
      expect(r.reason).toMatch(new RegExp(`line ${bad + 1}: not JSON`));
      expect(byName(r)).toEqual({ 'z/1200': 'short' });
    });

    it('segments of megabytes after a large file (a line, a batch each, read ahead by size): proven', async () => {
      const dir = join(scratch, `layer${++layerNo}`);
      const root = join(dir, 'diff');
      fs.mkdirSync(root, { recursive: true });
      const big = pseudoRandom(24 << 20, 31);
      fs.writeFileSync(join(root, 'big.bin'), big);
      const head = pseudoRandom(512, 32);
      const tail = Array.from({ length: 20 }, (_, i) => pseudoRandom(2 << 20, 40 + i));
      const entries: JsonEntry[] = [
        { type: 2, payload: head.toString('base64'), position: 0 },
        { type: 1, name: 'big.bin', size: big.length, payload: crc64(big).toString('base64'), position: 1 },
        ...tail.map((t, i) => ({ type: 2, payload: t.toString('base64'), position: 2 + i })),
      ];
      const tarSplitPath = join(dir, 'tar-split.json.gz');
      fs.writeFileSync(tarSplitPath, gzipSync(toJsonLines(entries)));
      const h = createHash('sha256').update(head).update(big);
      for (const t of tail) h.update(t);
      const diffId = `sha256:${h.digest('hex')}`;
      const target: VerifyTarget = { chainId: diffId, diffId, tarSplitPath, contentRoots: [root] };
      expect(await verifyLayer(target)).toMatchObject({ ok: true, computed: diffId, bytes: 512 + (24 << 20) + (40 << 20) });
      fs.writeFileSync(tarSplitPath, gzipSync(toJsonLines([...entries.slice(0, 3), ...entries.slice(4)]))); // one segment dropped
      expect(await verifyLayer(target)).toMatchObject({ ok: false, kind: 'content-mismatch' });
    });

    it('an abort while batches are read ahead leaves no file open', async () => {
      const l = aheadLayer();
      expect((await verifyLayer(l.target)).ok).toBe(true); // the hashing worker is pooled: counted in `before`
      const before = fds();
      await expect(verifyAbortedAt(l.target, 20 << 20)).rejects.toThrow('stop');
      await new Promise((r) => setTimeout(r, 100)); // the stream's close is asynchronous
      expect(fds()).toBe(before);
    });
  });

  it('honours an abort signal, at any point', async () => {
    const l = richLayer();
    for (const at of [1, 1000, 100_000, 3_000_000]) await expect(verifyAbortedAt(l.target, at)).rejects.toThrow('stop');
    const ac = new AbortController();
    ac.abort(new Error('before'));
    await expect(verifyLayer(l.target, { signal: ac.signal })).rejects.toThrow('before');
    // the pooled hashing worker is still usable afterwards
    expect((await verifyLayer(l.target)).ok).toBe(true);
  });
});

describe('verifyLayers', () => {
  it('verifies many layers concurrently, results in input order, with progress', async () => {
    const good = richLayer();
    const bad = richLayer();
    fs.rmSync(join(bad.root, 'etc/hostname'));
    const gone = richLayer();
    fs.rmSync(gone.target.tarSplitPath);
    const targets = [good.target, bad.target, gone.target, good.target];
    const progress: { layersDone: number; layersTotal: number; bytes: number }[] = [];
    const rs = await verifyLayers(targets, { concurrency: 3, onProgress: (p) => progress.push(p) });
    expect(rs.map((r) => [r.ok, r.kind])).toEqual([
      [true, undefined],
      [false, 'content-mismatch'],
      [false, 'tar-split-missing'],
      [true, undefined],
    ]);
    expect(rs[1].files).toEqual([{ name: 'etc/hostname', problem: 'missing' }]);
    const last = progress[progress.length - 1];
    expect(last.layersDone).toBe(4);
    expect(last.layersTotal).toBe(4);
    expect(last.bytes).toBe(rs.reduce((s, r) => s + r.bytes, 0));
    expect(await verifyLayers([])).toEqual([]);
  });
});
