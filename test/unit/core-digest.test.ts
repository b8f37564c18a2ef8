/** The one-shot digests behind key identifiers and token cache keys give what createHash gives. */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { digest, digestText } from '../../src/core/digest.js';

const INPUTS: ReadonlyArray<string | Buffer> = ['', 'eyJhbGciOiJFUzI1NiJ9.e30.sig', 'naïve ünïcode ✓', Buffer.alloc(0), randomBytes(65), randomBytes(4096)];

test('digest and digestText equal createHash for sha1 and sha256, text in UTF-8', () => {
  for (const algorithm of ['sha1', 'sha256'] as const) {
    for (const input of INPUTS) {
      assert.deepEqual(digest(algorithm, input), createHash(algorithm).update(input).digest());
      for (const encoding of ['hex', 'base64'] as const) {
        assert.equal(digestText(algorithm, input, encoding), createHash(algorithm).update(input).digest(encoding));
      }
    }
  }
  assert.equal(digestText('sha1', 'abc', 'hex'), 'a9993e364706816aba3e25717850c26c9cd0d89d');
});
