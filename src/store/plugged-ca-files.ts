/** Reads an Istio-style `cacerts` directory for `rampart ca --plugged-ca DIR`. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../core/errors.js';
import type { PluggedCaFiles } from '../core/ca/plugged.js';

const FILES = { caCertPem: 'ca-cert.pem', caKeyPem: 'ca-key.pem', certChainPem: 'cert-chain.pem', rootCertPem: 'root-cert.pem' } as const;

export function readPluggedCaFiles(dir: string): PluggedCaFiles {
  const read = (name: string, optional = false): string => {
    try {
      return readFileSync(join(dir, name), 'utf8');
    } catch (err) {
      if (optional) return '';
      throw new ConfigError('RAMPART_ERR_PLUGGED_CA_INVALID', `plugged-in CA refused: cannot read ${join(dir, name)} (${(err as NodeJS.ErrnoException).code ?? 'error'}); the directory needs ${Object.values(FILES).join(', ')}`);
    }
  };
  return {
    caCertPem: read(FILES.caCertPem),
    caKeyPem: read(FILES.caKeyPem),
    certChainPem: read(FILES.certChainPem, true),
    rootCertPem: read(FILES.rootCertPem),
  };
}
