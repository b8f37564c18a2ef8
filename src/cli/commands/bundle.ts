/** `rampart bundle`: fetch the CA's trust bundle. */
import { CaClient } from '../../client/ca-client.js';
import { readTrustFile } from '../../client/trust-file.js';
import { caUrlFlag, DEFAULT_CA_URL } from '../../config/values.js';
import { parseFlags, UsageError, type FlagSpec } from '../args.js';

export const BUNDLE_HELP = `Usage: rampart bundle [--ca-url URL] [--ca-bundle FILE] [--format pem|json|jwks]

Prints the trust bundle served by the CA.

Flags:
  --ca-url URL        CA API (default https://localhost:8443)
  --ca-bundle FILE    roots to trust for the CA's TLS (default certs/root-cert.pem)
  --format F          pem, json or jwks (default pem)
`;

const SPEC: FlagSpec = { 'ca-url': { type: 'string' }, 'ca-bundle': { type: 'string' }, format: { type: 'string' } };

export async function runBundle(argv: readonly string[]): Promise<number> {
  const { values } = parseFlags<{ 'ca-url'?: string; 'ca-bundle'?: string; format?: string; help?: boolean }>(argv, SPEC);
  if (values.help) {
    process.stdout.write(BUNDLE_HELP);
    return 0;
  }
  const format = values.format ?? 'pem';
  if (format !== 'pem' && format !== 'json' && format !== 'jwks') throw new UsageError(`--format must be pem, json or jwks, got "${format}"`);
  const url = caUrlFlag(values['ca-url'] ?? DEFAULT_CA_URL, '--ca-url');
  const trust = readTrustFile(values['ca-bundle'] ?? 'certs/root-cert.pem', '--ca-bundle');
  const client = new CaClient({ url, caBundle: () => trust });
  try {
    const body = await client.trustBundleRaw(format);
    process.stdout.write(format === 'pem' ? body : `${JSON.stringify(JSON.parse(body), null, 2)}\n`);
  } finally {
    client.close();
  }
  return 0;
}
