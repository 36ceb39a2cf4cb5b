// Human names for owners and claims, shared by findings and explain.
import { imageLabel } from '../store/images.js';
import { short } from '../store/digest.js';
import type { DriverClaim, LayerOwner } from '../store/references.js';
import type { ScanContext } from './types.js';

export function describeOwner(o: LayerOwner): string {
  switch (o.kind) {
    case 'image':
      return `image ${imageLabel(o.image)}`;
    case 'mount':
      return o.container ? `container ${o.container.name}` : `mount ${o.mount.name}`;
    case 'buildkit':
      return 'the BuildKit cache';
  }
}

export function describeClaim(ctx: Pick<ScanContext, 'refs'>, c: DriverClaim): string {
  switch (c.kind) {
    case 'layer': {
      const owners = ctx.refs.live.get(c.chainId);
      return `layer ${short(c.chainId)}${owners?.length ? ` (${describeOwner(owners[0])})` : c.live ? '' : ' (unreferenced)'}`;
    }
    case 'mount':
      return `${c.container ? `container ${c.container.name}` : `mount ${c.mount.name}`} (${c.role})`;
    case 'buildkit':
      return 'a BuildKit snapshot';
    case 'removing':
      return `the -removing entry ${c.dir}`;
    case 'write-set':
      return `the write-set ${c.dir}`;
  }
}
