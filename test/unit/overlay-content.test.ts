/**
 * The overlayfs content rules verify follows (src/drivers/overlay2/content.ts), on values overlayfs
 * writes and on values it never writes. Through real files: test/unit/verify.test.ts (redirect_dir,
 * metacopy) and test/e2e/verify-real.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { isMetacopyCandidate, redirectTarget } from '../../src/drivers/overlay2/content.js';

describe('overlay redirect targets', () => {
  it('an absolute redirect is a path from the layer root, whatever the directory was called', () => {
    expect(redirectTarget(['usr', 'lib'], '/usr/old')).toEqual(['usr', 'old']);
    expect(redirectTarget(['a', 'b', 'c'], '/x')).toEqual(['x']);
  });

  it('a relative redirect is one name in the same parent', () => {
    expect(redirectTarget(['usr', 'lib'], 'old')).toEqual(['usr', 'old']);
    expect(redirectTarget(['top'], 'was')).toEqual(['was']);
  });

  it('values overlayfs never writes lead nowhere: a relative path, dot parts, the layer root', () => {
    expect(redirectTarget(['usr', 'lib'], 'a/b')).toBeNull();
    expect(redirectTarget(['usr', 'lib'], '..')).toBeNull();
    expect(redirectTarget(['usr', 'lib'], '/usr/../../etc')).toBeNull();
    expect(redirectTarget(['usr', 'lib'], '/./x')).toBeNull();
    expect(redirectTarget(['usr', 'lib'], '/')).toBeNull();
  });
});

describe('metacopy candidates', () => {
  it('a file with a size and no data blocks may be a metacopy; an empty or allocated file is not', () => {
    expect(isMetacopyCandidate({ size: 4096, blocks: 0 })).toBe(true);
    expect(isMetacopyCandidate({ size: 0, blocks: 0 })).toBe(false);
    expect(isMetacopyCandidate({ size: 4096, blocks: 8 })).toBe(false);
  });
});
