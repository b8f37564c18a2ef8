/** Dev tokens for bench identities, minted against a CA's state dir (its dev issuer key). */
import { writeFileSync } from 'node:fs';
import { mintDevToken } from '../src/authn/dev.js';

/** The SPIFFE ID a bench token for `serviceAccount` is certified as (trust domain cluster.local). */
export function benchSpiffeId(serviceAccount: string): string {
  return `spiffe://cluster.local/ns/bench/sa/${serviceAccount}`;
}

/** `count` tokens for service accounts `<prefix>-0..count-1` in namespace `bench`. */
export async function mintBenchTokens(stateDir: string, count: number, prefix = 'load'): Promise<string[]> {
  const tokens: string[] = [];
  // mintDevToken re-reads the issuer files each time: batches overlap that I/O.
  for (let start = 0; start < count; start += 64) {
    const batch = Array.from({ length: Math.min(64, count - start) }, (_, j) => mintDevToken({ stateDir, namespace: 'bench', serviceAccount: `${prefix}-${start + j}`, ttlSeconds: 3600 }));
    tokens.push(...(await Promise.all(batch)));
  }
  return tokens;
}

export function writeJson(path: string, value: unknown): string {
  writeFileSync(path, JSON.stringify(value));
  return path;
}
