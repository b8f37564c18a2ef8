/** Loads the CA's config from flags alone, on ports that cannot clash, for config tests. */
import assert from 'node:assert/strict';
import { loadCaConfig, type CaConfig, type CaFlags } from '../../src/config/ca-config.js';

const base = { listen: '127.0.0.1:0', 'monitoring-listen': '127.0.0.1:0' };

export function loadWithFlags(flags: CaFlags): CaConfig {
  return loadCaConfig({ ...base, ...flags }, {});
}

/** Asserts the flags are refused with RAMPART_ERR_CONFIG_INVALID and a message matching `message`. */
export function assertFlagsRefused(flags: CaFlags, message: RegExp): void {
  assert.throws(() => loadWithFlags(flags), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'RAMPART_ERR_CONFIG_INVALID');
    assert.match(e.message, message);
    return true;
  });
}
