import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Crc64, crc64 } from '../../src/verify/crc64.js';

// Bit-at-a-time BigInt reference, straight from the definition (reflected ISO polynomial, init/xorout ^0).
const POLY = 0xd800000000000000n;
const MASK = 0xffffffffffffffffn;
function reference(data: Uint8Array): string {
  let c = MASK;
  for (const b of data) {
    c ^= BigInt(b);
    for (let k = 0; k < 8; k++) c = c & 1n ? (c >> 1n) ^ POLY : c >> 1n;
  }
  return (~c & MASK).toString(16).padStart(16, '0');
}

describe('crc64 (CRC-64/GO-ISO)', () => {
  it.each([
    ['123456789', 'b90956c775a41001'],
    ['foo', '3c3c303000000000'],
    ['bar', '2dc416f000000000'],
    ['baz', '204416f000000000'],
    ['bif', '300996f000000000'],
    ['', '0000000000000000'],
  ])('%j -> %s', (input, want) => {
    expect(crc64(Buffer.from(input)).toString('hex')).toBe(want);
    expect(new Crc64().update(Buffer.from(input)).hex()).toBe(want);
  });

  it('sum is 8 bytes, big-endian, as tar-split stores it', () => {
    const sum = crc64(Buffer.from('123456789'));
    expect(sum.length).toBe(8);
    expect(sum[0]).toBe(0xb9);
    expect(sum[7]).toBe(0x01);
  });

  it('matches the bit-wise reference on random data at every alignment and length', () => {
    const data = randomBytes(777);
    for (let off = 0; off < 8; off++) {
      for (const len of [0, 1, 3, 4, 5, 7, 8, 9, 31, 64, 255, 600]) {
        const slice = data.subarray(off, off + len);
        expect(crc64(slice).toString('hex'), `off ${off} len ${len}`).toBe(reference(slice));
      }
    }
  });

  it('streams: any split into updates gives the one-shot sum', () => {
    const data = randomBytes(100_003);
    const whole = crc64(data).toString('hex');
    for (let trial = 0; trial < 20; trial++) {
      const c = new Crc64();
      let i = 0;
      while (i < data.length) {
        const n = Math.min(data.length - i, 1 + Math.floor(Math.random() * 9000));
        c.update(data.subarray(i, i + n));
        i += n;
      }
      expect(c.hex()).toBe(whole);
    }
    expect(whole).toBe(reference(data));
  });

  it('works on plain Uint8Arrays and offsets into a shared ArrayBuffer', () => {
    const ab = new ArrayBuffer(64);
    const u8 = new Uint8Array(ab, 3, 40);
    u8.set(Buffer.from('123456789'));
    expect(crc64(u8.subarray(0, 9)).toString('hex')).toBe('b90956c775a41001');
  });
});
