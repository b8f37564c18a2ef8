import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { parseCsrPem } from '../../src/core/pki/csr.js';
import { makeCsrPool } from '../../bench/csr-pool.js';

test('bench CSRs are distinct P-256 requests that Rampart parses and accepts', () => {
  const pool = makeCsrPool(3);
  assert.equal(new Set(pool).size, 3);
  for (const pem of pool) {
    const csr = parseCsrPem(pem);
    assert.ok(csr.spki.length > 0);
  }
});
