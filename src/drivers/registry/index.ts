// The adapter registry: one file per storage driver, chosen by the driver's name.
import type { DriverAdapter } from '../types.js';
import { Overlay2Driver } from '../overlay2/index.js';
import { VfsDriver } from '../vfs.js';
import { BtrfsDriver } from '../btrfs.js';
import { AufsDriver } from '../aufs.js';
import { ZfsDriver } from '../zfs.js';
import { DevicemapperDriver } from '../devicemapper.js';
import { WindowsfilterDriver } from '../windowsfilter.js';

export const KNOWN_DRIVERS: readonly string[] = ['overlay2', 'fuse-overlayfs', 'vfs', 'btrfs', 'aufs', 'zfs', 'devicemapper', 'windowsfilter'];

export function createDriver(name: string, home: string): DriverAdapter {
  switch (name) {
    case 'overlay2':
    case 'fuse-overlayfs':
      return new Overlay2Driver(name, home);
    case 'vfs':
      return new VfsDriver(home);
    case 'btrfs':
      return new BtrfsDriver(home);
    case 'aufs':
      return new AufsDriver(home);
    case 'zfs':
      return new ZfsDriver(home);
    case 'devicemapper':
      return new DevicemapperDriver(home);
    case 'windowsfilter':
      return new WindowsfilterDriver(home);
    default:
      throw new Error(`no adapter for storage driver ${name}`);
  }
}
