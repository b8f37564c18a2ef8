/** Reads the bootstrap trust anchors (the CA's root-cert.pem) that the agent and the CLI start from. */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../core/errors.js';

/** Returns the PEM text of `path`; a coded config error names `flag` when it is unreadable or holds no certificate. */
export function readTrustFile(path: string, flag: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', `cannot read ${flag} ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'}); start the CA first or point ${flag} at its root-cert.pem`);
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', `${flag} ${path} holds no PEM certificate; point it at the CA's root-cert.pem`);
  return text;
}
