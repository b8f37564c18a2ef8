/**
 * Closing the state store of a `rampart ca` start that failed (a port in use, a bad JWKS file, a
 * worker that could not start). A file store that this start found without state is put back as
 * it was: otherwise the root this start generated would stay behind, and the next start would
 * sign under a root that no admin had ever seen served.
 *
 * The rollback undoes what this start created, after the fact, rather than binding the listeners
 * before the state exists: the API's serving certificate is a leaf of the state's own intermediate,
 * cluster workers bind only after the primary has sent them the state, and a start can fail after
 * the listeners too (a worker, the monitoring port), so no ordering would cover every failure.
 *
 * The Kubernetes store is only closed. Its Secret is shared: another replica may already have
 * adopted the state this replica created, serve it, and have published it as ConfigMaps; deleting
 * it would pull the root from under a running CA (and the CA's RBAC grants no delete on Secrets).
 */
import type { Logger } from 'pino';
import type { StateStore } from '../core/ports.js';
import { FileStateStore } from '../store/file-store.js';

/**
 * Closes `store` after a failed start, rolling a file store back as above and logging what was
 * removed (file names only: some hold private keys). `root` is the fingerprint of the active
 * root this start held, if any, so the log can name the root that was never served.
 */
export async function closeStoreAfterFailedStart(store: StateStore, logger: Logger, root: string | undefined): Promise<void> {
  if (!(store instanceof FileStateStore)) {
    await store.close();
    return;
  }
  const report = await store.abandon();
  if (report === null) return;
  const fields = {
    stateDir: store.dir,
    ...(root === undefined ? {} : { rootFingerprint: root }),
    removedFiles: report.removed,
    restoredFiles: report.restored,
    removedDirectories: report.removedDirectories,
  };
  if (report.failed.length > 0) {
    logger.error(
      { event: 'failed-start-rollback-incomplete', ...fields, failed: report.failed },
      `the CA did not start, and what it created in ${store.dir} could not all be put back (see failed); unless another CA now uses that directory, delete its state.json before the next start, or that start will use a root nobody saw served`,
    );
    return;
  }
  if (report.removed.length === 0 && report.restored.length === 0 && report.removedDirectories.length === 0) return;
  logger.warn(
    { event: 'failed-start-rolled-back', ...fields },
    `the CA did not start: removed what this start created in ${store.dir}${root === undefined ? '' : ` (root ${root}, never served)`}, so the directory is as it was found and the next start creates its own root`,
  );
}
