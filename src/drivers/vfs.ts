// vfs: home/dir/<id>/ is a full copy of the parent plus the layer (CopyDir); there is no other
// metadata. Layout facts: daemon/graphdriver/vfs/driver.go.
import { DirPerLayerDriver } from './base.js';

/** A vfs dir is the whole filesystem of the layer (its parents' files too): what driver.Get returns. */
export class VfsDriver extends DirPerLayerDriver {
  readonly name = 'vfs';
  readonly removal = 'files' as const;

  constructor(home: string) {
    super(home, { layersDir: `${home}/dir`, label: 'dir/' });
  }
}
