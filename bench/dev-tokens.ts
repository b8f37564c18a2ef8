/** Dev tokens for bench identities, minted against a CA's state dir (its dev issuer key). */
import { writeFileSync } from 'node:fs';
import { mintDevToken } from '../src/authn/dev.js';

/** `count` tokens for service accounts `<prefix>-0..count-1` in namespace `bench`. */
export async function mintBenchTokens(stateDir: string, count: number, prefix = 'load'): Promise<string[]> {
  const tokens: string[] = [];
  for (let i = 0; i < count; i++) tokens.push(await mintDevToken({ stateDir, namespace: 'bench', serviceAccount: `${prefix}-${i}`, ttlSeconds: 3600 }));
  return tokens;
}

export function writeJson(path: string, value: unknown): string {
  writeFileSync(path, JSON.stringify(value));
  return path;
}
