// syncfs(2) for one filesystem. Writing many objects, fsync per file costs one journal commit
// each; one syncfs after the batch makes all of them durable at once. Node has no binding for
// syncfs, so this runs coreutils' `sync --file-system`, which calls it (one process per batch).

import {run} from './exec.js'

/** Makes every written byte on the filesystem holding `path` durable (syncfs(2)). */
export async function syncFilesystem(path: string): Promise<void> {
  await run('sync', ['--file-system', path], {what: 'syncfs'})
}
