// src/layout.ts against names and paths written out by hand from moby's own sources (layer/filestore.go,
// image/fs.go, daemon/graphdriver) and BuildKit's identity.NewID, not computed by layout.ts itself.
import { describe, expect, it } from 'vitest';
import {
  BUILDKIT_ID,
  HEX64,
  INIT_ID,
  MOUNT_ID,
  SHA256_DIGEST,
  STAGED_SUFFIX,
  containerDir,
  imageMetadataDir,
  isDockerLayerName,
  isRemovingName,
  journalPath,
  layerdbPaths,
  lockPath,
  mightBeBuildkit,
  mobyRemovingName,
  remapOf,
  removingChainHex,
  repositoriesJson,
  storePaths,
  unsafeDriverId,
  unstagedId,
} from '../../src/layout.js';

const hex = 'a'.repeat(63) + 'f';

describe('id rules', () => {
  it('tells a layer ID, an init ID, a BuildKit ID and a sha256 digest apart, and refuses upper case and other lengths', () => {
    expect(HEX64.test(hex)).toBe(true);
    expect(HEX64.test(hex.toUpperCase())).toBe(false);
    expect(HEX64.test(hex.slice(1))).toBe(false);
    expect(SHA256_DIGEST.test(`sha256:${hex}`)).toBe(true);
    expect(SHA256_DIGEST.test(hex)).toBe(false);
    expect([MOUNT_ID.test(hex), MOUNT_ID.test(`${hex}-init`), MOUNT_ID.test(`${hex}-initx`)]).toEqual([true, true, false]);
    expect([INIT_ID.test(hex), INIT_ID.test(`${hex}-init`)]).toEqual([false, true]);
    expect([BUILDKIT_ID.test('dd1e2das9q488ke81h5qyvkx5'), BUILDKIT_ID.test('dd1e2das9q488ke81h5qyvkx'), BUILDKIT_ID.test('DD1E2DAS9Q488KE81H5QYVKX5')]).toEqual([true, false, false]);
    expect([isDockerLayerName(hex), isDockerLayerName(`${hex}-init`), isDockerLayerName('dd1e2das9q488ke81h5qyvkx5'), isDockerLayerName('data')]).toEqual([true, true, true, false]);
    expect([mightBeBuildkit('dd1e2das9q488ke81h5qyvkx5'), mightBeBuildkit('anything'), mightBeBuildkit(hex), mightBeBuildkit(`${hex}-init`)]).toEqual([true, true, false, false]);
  });

  it('refuses a driver ID that is not one plain name under the driver home, and accepts moby and BuildKit IDs', () => {
    for (const bad of ['', '..', '.', 'a/b', 'a\0b', 'l', 'diff', 'mnt', `${hex}-removing`, `${hex}${STAGED_SUFFIX}`, 'caf\uFFFD']) expect(unsafeDriverId(bad), JSON.stringify(bad)).not.toBeNull();
    for (const good of [hex, `${hex}-init`, 'dd1e2das9q488ke81h5qyvkx5']) expect(unsafeDriverId(good)).toBeNull();
  });
});

describe('staging names', () => {
  it("builds moby's <chain hex>-<random>-removing name and reads the chain back as getOrphan does", () => {
    const dir = `/r/image/overlay2/layerdb/sha256/${hex}`;
    expect(mobyRemovingName(dir, 'b'.repeat(64))).toBe(`${dir}-${'b'.repeat(64)}-removing`);
    expect(removingChainHex(`${hex}-${'b'.repeat(64)}-removing`)).toBe(hex);
    expect(removingChainHex(`nothex-${'b'.repeat(64)}-removing`)).toBeUndefined();
    expect(removingChainHex(hex)).toBeUndefined();
    expect([isRemovingName(`${hex}-x-removing`), isRemovingName(hex)]).toEqual([true, false]);
  });

  it("takes layergc's own -layergc-removing suffix off a driver entry name, and nothing else", () => {
    expect(unstagedId(`${hex}-layergc-removing`)).toEqual({ id: hex, staged: true });
    expect(unstagedId(`${hex}-removing`)).toEqual({ id: `${hex}-removing`, staged: false });
    expect(unstagedId(hex)).toEqual({ id: hex, staged: false });
  });
});

describe('paths', () => {
  it('places the layer store, image store, containers and layergc state where dockerd and layergc keep them', () => {
    expect(storePaths('/var/lib/docker', 'overlay2')).toEqual({
      imageDir: '/var/lib/docker/image/overlay2',
      layerdb: '/var/lib/docker/image/overlay2/layerdb',
      driverHome: '/var/lib/docker/overlay2',
    });
    expect(layerdbPaths('/d/image/vfs/layerdb')).toEqual({ sha256: '/d/image/vfs/layerdb/sha256', mounts: '/d/image/vfs/layerdb/mounts', tmp: '/d/image/vfs/layerdb/tmp' });
    expect(imageMetadataDir('/d/image/vfs', `sha256:${hex}`)).toBe(`/d/image/vfs/imagedb/metadata/sha256/${hex}`);
    expect(repositoriesJson('/d/image/vfs')).toBe('/d/image/vfs/repositories.json');
    expect(containerDir('/d', hex)).toBe(`/d/containers/${hex}`);
    expect([lockPath('/d'), journalPath('/d')]).toEqual(['/d/layergc/lock', '/d/layergc/journal.jsonl']);
  });

  it('splits a userns-remapped data root into its root and <uid>.<gid>, and nothing else', () => {
    expect(remapOf('/var/lib/docker/100000.100000')).toEqual({ parent: '/var/lib/docker', subdir: '100000.100000' });
    expect([remapOf('/var/lib/docker'), remapOf('/var/lib/docker/100000'), remapOf('/srv/1.2.3')]).toEqual([undefined, undefined, undefined]);
  });
});
