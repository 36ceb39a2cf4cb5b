// Streaming reader of a layer's tar-split.json.gz (vbatts/tar-split storage.Entry, one JSON object a line,
// gzipped). It holds one decompressed chunk and one line at a time: a segment line is at most ~1.4 MB
// (tar-split cuts segments at 1 MiB of raw bytes), so memory does not grow with the layer.

import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';

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
  const source = createReadStream(path, { highWaterMark: 256 * 1024 });
  const gunzip = createGunzip({ chunkSize: 256 * 1024 });
  // pipe() does not forward source errors; route them through the gunzip stream we iterate.
  source.on('error', (err) => gunzip.destroy(err));
  source.pipe(gunzip);

  let pending: Buffer[] = [];
  let lineNo = 0;
  let batch: TarSplitEntry[] = [];
  try {
    for await (const chunk of gunzip as AsyncIterable<Buffer>) {
      opts.signal?.throwIfAborted();
      let start = 0;
      for (;;) {
        const nl = chunk.indexOf(NEWLINE, start);
        if (nl < 0) break;
        let line = chunk.subarray(start, nl);
        if (pending.length > 0) {
          pending.push(line);
          line = Buffer.concat(pending);
          pending = [];
        }
        start = nl + 1;
        lineNo++;
        if (line.length > 0) batch.push(parseEntry(line, path, lineNo));
      }
      if (start < chunk.length) pending.push(chunk.subarray(start));
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
      if (line.toString('latin1').trim().length > 0) batch.push(parseEntry(line, path, lineNo + 1));
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
