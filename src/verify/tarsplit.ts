// Streaming reader of a layer's tar-split.json.gz (vbatts/tar-split storage.Entry, one JSON object a line,
// gzipped), one decompressed chunk and one line at a time; a hostile file hits hard limits and is
// 'corrupt' as soon as it is seen (the limits and why: docs/verify-internals.md).

import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { closeQuietly, openRegularFile, smallFileProblem } from '../fsx/read.js';

const TAR_SPLIT_LIMITS = {
  MAX_LINE: 16 << 20,
  MAX_BETWEEN: 64,
  HEADER_BYTES: 512,
  SLACK_BYTES: 64 << 20,
  PER_ENTRY_BYTES: 16 << 10,
};

export type TarSplitErrorKind = 'missing' | 'truncated' | 'corrupt';

/** Why a tar-split could not be read to its end: absent, cut short (gzip ended early), or unreadable data. */
export class TarSplitError extends Error {
  override readonly name = 'TarSplitError';
  constructor(
    readonly kind: TarSplitErrorKind,
    readonly path: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Raw archive bytes that are not file content: headers, padding, the end-of-archive blocks and trailer. */
export interface SegmentEntry {
  type: 2;
  payload: Buffer;
  position: number;
}

/** One tar header as the reader returned it; its content is read from the storage driver by name. */
export interface FileEntry {
  readonly type: 1;
  /** The name as text; for a non-UTF-8 `name_raw` this is lossy, use `nameBytes`. */
  readonly name: string;
  /** The real name bytes: `name_raw` when present, else the UTF-8 of `name`. */
  readonly nameBytes: Buffer;
  /** The same bytes as a latin1 string (one char per byte), for path handling without Buffers. */
  readonly nameLatin1: string;
  /** True when the entry carried `name_raw` (a name that is not valid UTF-8). */
  readonly nameRaw: boolean;
  readonly size: number;
  /** 8-byte big-endian CRC-64/GO-ISO of the content when size > 0, else null. */
  readonly payload: Buffer | null;
  readonly position: number;
}

// Most of a layer's entries are only opened and hashed; the CRC and the name bytes are decoded when asked.
class LazyFileEntry implements FileEntry {
  readonly type = 1 as const;
  private crc: Buffer | null | undefined;
  private bytes: Buffer | undefined;
  constructor(
    readonly name: string,
    raw: Buffer | null,
    readonly size: number,
    private readonly crcBase64: string | null,
    readonly position: number,
  ) {
    this.bytes = raw ?? undefined;
    this.nameRaw = raw !== null;
  }
  readonly nameRaw: boolean;
  get nameBytes(): Buffer {
    return (this.bytes ??= Buffer.from(this.name, 'utf8'));
  }
  get nameLatin1(): string {
    // ASCII text is its own latin1 form
    return !this.nameRaw && ASCII.test(this.name) ? this.name : this.nameBytes.toString('latin1');
  }
  get payload(): Buffer | null {
    if (this.crc === undefined) this.crc = this.crcBase64 === null ? null : Buffer.from(this.crcBase64, 'base64');
    return this.crc;
  }
}

const ASCII = /^[\x00-\x7f]*$/;
const CRC_BASE64 = /^[A-Za-z0-9+/]{11}=$/; // 8 bytes

export type TarSplitEntry = SegmentEntry | FileEntry;

const NEWLINE = 0x0a;

/**
 * Yields the entries of a tar-split.json.gz in order. Throws TarSplitError: 'missing' when the file does not
 * exist, 'truncated' when the gzip stream ends early, 'corrupt' for anything else (bad gzip data or checksum,
 * a line that is not an entry, an I/O error). Entries before the point of failure are yielded first.
 */
export async function* readTarSplit(path: string, opts: { signal?: AbortSignal } = {}): AsyncGenerator<TarSplitEntry> {
  for await (const batch of readTarSplitBatches(path, opts)) yield* batch;
}

/**
 * The same entries in batches, one per decompressed chunk (a few hundred KiB of JSON), which spares the
 * caller an await per entry.
 */
export async function* readTarSplitBatches(path: string, opts: { signal?: AbortSignal } = {}): AsyncGenerator<TarSplitEntry[]> {
  const opened = openRegularFile(path);
  if (opened.state === 'missing') throw new TarSplitError('missing', path, `tar-split not found: ${path}`);
  if (opened.state !== 'ok') throw new TarSplitError('corrupt', path, `tar-split ${smallFileProblem(opened)}: ${path}`);
  let source;
  try {
    source = createReadStream(path, { fd: opened.fd, highWaterMark: 256 * 1024 });
  } catch (err) {
    closeQuietly(opened.fd);
    throw classify(err, path);
  }
  const gunzip = createGunzip({ chunkSize: 256 * 1024 });
  // pipe() does not forward source errors; route them through the gunzip stream we iterate.
  source.on('error', (err) => gunzip.destroy(err));
  source.pipe(gunzip);

  const L = TAR_SPLIT_LIMITS;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let lineNo = 0;
  let batch: TarSplitEntry[] = [];
  let inflated = 0;
  let files = 0;
  let between = 0; // lines since the last file entry
  let segmentBytes = 0; // segment payload since the last file entry
  const take = (line: Buffer, no: number) => {
    if (line.length === 0 || isBlank(line)) {
      if (++between > L.MAX_BETWEEN) throw corrupt(path, no, `more than ${L.MAX_BETWEEN} lines without a file entry (tar-split writes at most 3)`);
      return;
    }
    const e = parseEntry(line, path, no);
    if (e.type === 2) {
      if (++between > L.MAX_BETWEEN) throw corrupt(path, no, `more than ${L.MAX_BETWEEN} lines without a file entry (tar-split writes at most 3)`);
      segmentBytes += e.payload.length;
    } else {
      if (segmentBytes < L.HEADER_BYTES) throw corrupt(path, no, `file entry without the ${L.HEADER_BYTES}-byte tar header tar-split records before each one`);
      files++;
      between = 0;
      segmentBytes = 0;
    }
    batch.push(e);
  };
  try {
    for await (const chunk of gunzip as AsyncIterable<Buffer>) {
      opts.signal?.throwIfAborted();
      inflated += chunk.length;
      const budget = L.SLACK_BYTES + files * L.PER_ENTRY_BYTES;
      if (inflated > budget + L.MAX_LINE) {
        throw corrupt(path, lineNo + 1, `inflates to more than ${budget + L.MAX_LINE} bytes of JSON for ${files} file entries (tar-split writes about 1 KiB per entry)`);
      }
      let start = 0;
      for (;;) {
        const nl = chunk.indexOf(NEWLINE, start);
        if (nl < 0) break;
        let line = chunk.subarray(start, nl);
        if (pending.length > 0) {
          pending.push(line);
          line = Buffer.concat(pending);
          pending = [];
          pendingBytes = 0;
        }
        start = nl + 1;
        lineNo++;
        if (line.length > L.MAX_LINE) throw corrupt(path, lineNo, `line is longer than ${L.MAX_LINE} bytes, more than any tar-split entry`);
        take(line, lineNo);
      }
      if (start < chunk.length) {
        pending.push(chunk.subarray(start));
        pendingBytes += chunk.length - start;
        if (pendingBytes > L.MAX_LINE) throw corrupt(path, lineNo + 1, `line is longer than ${L.MAX_LINE} bytes, more than any tar-split entry`);
      }
      if (batch.length > 0) {
        const b = batch;
        batch = [];
        yield b;
      }
    }
    // json.Encoder ends every line with '\n'; a last line without one is still parsed, so that a whole
    // entry is not lost, but a partial one fails as corrupt.
    if (pending.length > 0) {
      const line = Buffer.concat(pending);
      if (!isBlank(line)) take(line, lineNo + 1);
    }
  } catch (err) {
    if (opts.signal?.aborted) throw err;
    if (batch.length > 0) yield batch;
    throw classify(err, path);
  } finally {
    source.destroy();
    gunzip.destroy();
  }
  if (batch.length > 0) yield batch;
}

/** Only the whitespace json.Decoder skips between values. */
function isBlank(line: Buffer): boolean {
  for (const b of line) if (b !== 0x20 && b !== 0x09 && b !== 0x0d && b !== 0x0a) return false;
  return true;
}

function classify(err: unknown, path: string): unknown {
  if (err instanceof TarSplitError) return err;
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'ENOENT' || e?.code === 'ENOTDIR') return new TarSplitError('missing', path, `tar-split not found: ${path}`, { cause: err });
  if (e?.code === 'Z_BUF_ERROR') {
    return new TarSplitError('truncated', path, `tar-split gzip stream ends early (${e.message}): ${path}`, { cause: err });
  }
  const what = e?.code?.startsWith('Z_') ? 'gzip data' : 'read';
  return new TarSplitError('corrupt', path, `tar-split ${what} error (${e?.code ?? ''} ${e?.message ?? String(err)}): ${path}`, {
    cause: err,
  });
}

function corrupt(path: string, lineNo: number, why: string): TarSplitError {
  return new TarSplitError('corrupt', path, `tar-split line ${lineNo}: ${why}: ${path}`);
}

/**
 * Go's encoding/json writes []byte as padded standard base64. Buffer.from skips characters outside the
 * alphabet instead of failing, so a decoded length that disagrees with the text's length is the check.
 */
function decodeBase64(v: string): Buffer | null {
  if (v.length % 4 !== 0) return null;
  const out = Buffer.from(v, 'base64');
  const pad = v.endsWith('==') ? 2 : v.endsWith('=') ? 1 : 0;
  return out.length === (v.length / 4) * 3 - pad ? out : null;
}

function decodeBytes(v: unknown, path: string, lineNo: number, field: string): Buffer | null {
  if (v === null || v === undefined) return null;
  const out = typeof v === 'string' ? decodeBase64(v) : null;
  if (out === null) throw corrupt(path, lineNo, `${field} is not base64`);
  return out;
}

function parseEntry(line: Buffer, path: string, lineNo: number): TarSplitEntry {
  let raw: unknown;
  try {
    raw = JSON.parse(line.toString('utf8'));
  } catch {
    throw corrupt(path, lineNo, 'not JSON');
  }
  if (typeof raw !== 'object' || raw === null) throw corrupt(path, lineNo, 'not an object');
  const o = raw as Record<string, unknown>;
  const position = typeof o.position === 'number' ? o.position : -1;
  if (o.type === 2) {
    const payload = decodeBytes(o.payload, path, lineNo, 'segment payload') ?? Buffer.alloc(0);
    return { type: 2, payload, position };
  }
  if (o.type === 1) {
    const size = o.size === undefined ? 0 : o.size;
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw corrupt(path, lineNo, 'bad size');
    const p = o.payload;
    const crc = typeof p === 'string' && CRC_BASE64.test(p) ? p : null;
    if (p !== null && p !== undefined && crc === null) decodeBytes(p, path, lineNo, 'payload'); // throws if not base64
    if (size > 0 && crc === null) throw corrupt(path, lineNo, 'file entry without an 8-byte CRC');
    // Go's GetName: an empty name_raw counts as absent
    const decoded = decodeBytes(o.name_raw, path, lineNo, 'name_raw');
    const rawName = decoded && decoded.length > 0 ? decoded : null;
    if (o.name !== undefined && typeof o.name !== 'string') throw corrupt(path, lineNo, 'name is not a string');
    const name = rawName ? rawName.toString('utf8') : ((o.name as string | undefined) ?? '');
    return new LazyFileEntry(name, rawName, size, crc, position);
  }
  throw corrupt(path, lineNo, `unknown entry type ${JSON.stringify(o.type)}`);
}
