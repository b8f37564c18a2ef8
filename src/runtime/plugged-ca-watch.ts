/**
 * Follows a plugged-in CA directory (Istio `cacerts`) while the CA runs, as istiod does: the
 * operator replaces the files (a Secret update, a new mount) and the CA picks them up without a
 * restart.
 */
import type { Logger } from 'pino';
import { validatePluggedCa, type PluggedCaFiles } from '../core/ca/plugged.js';
import type { PluggedCa } from '../core/ca/rotation.js';
import { isRampartError } from '../core/errors.js';
import { readPluggedCaFiles } from '../store/plugged-ca-files.js';

/** Returns the directory's current CA, or the last valid one while the files are being replaced. */
export type PluggedCaSource = (now: number) => PluggedCa | undefined;

export function watchPluggedCaDir(dir: string, trustDomain: string, logger: Logger, initial?: PluggedCa): PluggedCaSource {
  let lastFiles: PluggedCaFiles | undefined;
  let lastValid = initial;
  const same = (a: PluggedCaFiles, b: PluggedCaFiles): boolean =>
    a.caCertPem === b.caCertPem && a.caKeyPem === b.caKeyPem && a.certChainPem === b.certChainPem && a.rootCertPem === b.rootCertPem;
  return (now) => {
    let files: PluggedCaFiles;
    try {
      files = readPluggedCaFiles(dir);
    } catch (err) {
      // Mid-replacement (a file briefly missing): keep signing with what we have.
      if (lastFiles !== undefined) logger.warn({ reason: isRampartError(err) ? err.message : String(err) }, 'plugged-in CA files unreadable; keeping the current CA');
      lastFiles = undefined;
      return lastValid;
    }
    if (lastFiles !== undefined && same(files, lastFiles)) return lastValid;
    lastFiles = files;
    try {
      lastValid = validatePluggedCa(files, trustDomain, now);
    } catch (err) {
      // E.g. the new certificate was written before its key: wait for the next change. The
      // message names files and checks, never key material.
      logger.warn({ reason: isRampartError(err) ? err.message : 'unreadable files' }, 'plugged-in CA files changed but were refused; keeping the current CA');
    }
    return lastValid;
  };
}
