/** SPIFFE-ID parsing against the valid and invalid examples of the SPIFFE-ID specification. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RampartError } from '../../src/core/errors.js';
import {
  formatSpiffeId,
  identityFromSpiffeId,
  isValidSpiffeId,
  parseSpiffeId,
  spiffeIdMatches,
  trustDomainId,
  validateAllowPattern,
  validateTrustDomain,
  workloadSpiffeId,
} from '../../src/core/identity.js';

/** Asserts that parsing fails with RAMPART_ERR_SPIFFE_ID_INVALID and a message matching `why`. */
function assertInvalid(input: string, why: RegExp): void {
  assert.throws(
    () => parseSpiffeId(input),
    (err: unknown) => {
      assert.ok(err instanceof RampartError, `expected a RampartError for ${JSON.stringify(input.slice(0, 60))}`);
      assert.equal(err.code, 'RAMPART_ERR_SPIFFE_ID_INVALID');
      assert.equal(err.category, 'bad-request');
      assert.match(err.message, why);
      return true;
    },
  );
  assert.equal(isValidSpiffeId(input), false, input.slice(0, 60));
}

test('valid SPIFFE IDs from the spec parse into trust domain, path and segments', () => {
  assert.deepEqual(parseSpiffeId('spiffe://example.org'), { trustDomain: 'example.org', path: '', segments: [] });
  assert.deepEqual(parseSpiffeId('spiffe://example.org/ns/foo/sa/bar'), { trustDomain: 'example.org', path: '/ns/foo/sa/bar', segments: ['ns', 'foo', 'sa', 'bar'] });
  assert.deepEqual(parseSpiffeId('spiffe://trust-domain_1.example/Path.With-All_chars09'), {
    trustDomain: 'trust-domain_1.example',
    path: '/Path.With-All_chars09',
    segments: ['Path.With-All_chars09'],
  });
  // "." and ".." are only forbidden as whole segments; dots inside a segment are fine.
  assert.equal(isValidSpiffeId('spiffe://example.org/...'), true);
  assert.equal(isValidSpiffeId('spiffe://example.org/.hidden/a..b'), true);
  assert.equal(isValidSpiffeId('spiffe://1.2.3.4/x'), true);
});

test('scheme must be exactly lowercase "spiffe://"', () => {
  assertInvalid('SPIFFE://example.org/ns/a', /scheme must be lowercase/);
  assertInvalid('Spiffe://example.org/ns/a', /scheme must be lowercase/);
  assertInvalid('http://example.org/ns/a', /must start with "spiffe:\/\/"/);
  assertInvalid('spiffe:/example.org/ns/a', /must start with "spiffe:\/\/"/);
  assertInvalid('example.org/ns/a', /must start with/);
  assertInvalid('', /must start with/);
});

test('trust domain: present, lowercase [a-z0-9._-], no port, no userinfo', () => {
  assertInvalid('spiffe://', /trust domain is missing/);
  assertInvalid('spiffe:///ns/a', /trust domain is missing/);
  assertInvalid('spiffe://Example.org/ns/a', /trust domain may contain only lowercase/);
  assertInvalid('spiffe://EXAMPLE.ORG', /trust domain may contain only lowercase/);
  assertInvalid('spiffe://example.org:8080/ns/a', /port is not allowed/);
  assertInvalid('spiffe://example.org:/ns/a', /port is not allowed/);
  assertInvalid('spiffe://user@example.org/ns/a', /userinfo is not allowed/);
  assertInvalid('spiffe://user:pass@example.org/ns/a', /userinfo is not allowed/);
  assertInvalid('spiffe://exa%20mple.org/ns/a', /trust domain may contain only/);
  assertInvalid('spiffe://exämple.org', /trust domain may contain only/);
  assert.equal(validateTrustDomain('cluster.local'), 'cluster.local');
  assert.throws(() => validateTrustDomain(''), { code: 'RAMPART_ERR_SPIFFE_ID_INVALID' });
});

test('path: no empty, "." or ".." segments, no trailing slash, no percent-encoding or other characters', () => {
  assertInvalid('spiffe://example.org/', /must not end with "\/"/);
  assertInvalid('spiffe://example.org/ns/a/', /must not be empty/);
  assertInvalid('spiffe://example.org//ns', /must not be empty/);
  assertInvalid('spiffe://example.org/ns//a', /must not be empty/);
  assertInvalid('spiffe://example.org/./ns', /must not be "\." or "\.\."/);
  assertInvalid('spiffe://example.org/ns/..', /must not be "\." or "\.\."/);
  assertInvalid('spiffe://example.org/ns/../sa', /must not be "\." or "\.\."/);
  assertInvalid('spiffe://example.org/ns/a%20b', /may contain only letters, digits/);
  assertInvalid('spiffe://example.org/ns/%2e%2e', /may contain only letters, digits/);
  assertInvalid('spiffe://example.org/ns/a b', /may contain only letters, digits/);
  assertInvalid('spiffe://example.org/ns/ä', /may contain only letters, digits/);
  assertInvalid('spiffe://example.org/ns/a*', /may contain only letters, digits/);
  assertInvalid('spiffe://example.org/ns/a:b', /may contain only letters, digits/);
});

test('query and fragment are refused', () => {
  assertInvalid('spiffe://example.org/ns/a?x=1', /query is not allowed/);
  assertInvalid('spiffe://example.org?x', /query is not allowed/);
  assertInvalid('spiffe://example.org/ns/a#frag', /fragment is not allowed/);
  assertInvalid('spiffe://example.org#', /fragment is not allowed/);
});

test('at most 2048 bytes, counted in UTF-8 bytes', () => {
  const prefix = 'spiffe://example.org/';
  const exactly = prefix + 'a'.repeat(2048 - prefix.length);
  assert.equal(Buffer.byteLength(exactly), 2048);
  assert.equal(isValidSpiffeId(exactly), true);
  assertInvalid(exactly + 'a', /longer than 2048 bytes/);
  // The error echoes only a short prefix of a huge input.
  assert.throws(() => parseSpiffeId(exactly + 'a'), (err: Error) => err.message.length < 200);
  // 1100 two-byte characters are 2200 bytes though only 1100 UTF-16 units: still too long.
  assertInvalid(prefix + 'é'.repeat(1100), /longer than 2048 bytes/);
  // Formatting checks the whole ID as well as each segment.
  assert.throws(() => workloadSpiffeId({ trustDomain: 'cluster.local', namespace: 'a'.repeat(3000), serviceAccount: 'web' }), /longer than 2048 bytes/);
});

test('formatSpiffeId, workloadSpiffeId, trustDomainId and identityFromSpiffeId round-trip', () => {
  assert.equal(workloadSpiffeId({ trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'cart' }), 'spiffe://cluster.local/ns/shop/sa/cart');
  assert.equal(trustDomainId('cluster.local'), 'spiffe://cluster.local');
  assert.equal(formatSpiffeId('td', 'a', 'b'), 'spiffe://td/a/b');
  assert.throws(() => formatSpiffeId('td', 'a/b'), { code: 'RAMPART_ERR_SPIFFE_ID_INVALID' });
  assert.throws(() => formatSpiffeId('td', '..'), { code: 'RAMPART_ERR_SPIFFE_ID_INVALID' });
  assert.throws(() => workloadSpiffeId({ trustDomain: 'Cluster.local', namespace: 'shop', serviceAccount: 'cart' }), { code: 'RAMPART_ERR_SPIFFE_ID_INVALID' });
  assert.deepEqual(identityFromSpiffeId('spiffe://cluster.local/ns/shop/sa/cart'), { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'cart' });
  assert.equal(identityFromSpiffeId('spiffe://cluster.local'), null);
  assert.equal(identityFromSpiffeId('spiffe://cluster.local/ns/shop/sa/cart/extra'), null);
  assert.equal(identityFromSpiffeId('spiffe://cluster.local/ns/shop/xx/cart'), null);
  assert.throws(() => identityFromSpiffeId('spiffe://cluster.local/ns/shop/sa/'), { code: 'RAMPART_ERR_SPIFFE_ID_INVALID' });
});

test('spiffeIdMatches: exact IDs and "/*" prefix patterns with a segment boundary', () => {
  const p = 'spiffe://td/ns/shop/*';
  assert.equal(spiffeIdMatches(p, 'spiffe://td/ns/shop/sa/cart'), true);
  assert.equal(spiffeIdMatches(p, 'spiffe://td/ns/shop/x'), true);
  assert.equal(spiffeIdMatches(p, 'spiffe://td/ns/shop'), false, 'the pattern admits IDs below it, not its own prefix');
  assert.equal(spiffeIdMatches(p, 'spiffe://td/ns/shop/'), false);
  assert.equal(spiffeIdMatches(p, 'spiffe://td/ns/shopping/sa/cart'), false, 'prefix must end at a segment boundary');
  assert.equal(spiffeIdMatches(p, 'spiffe://other/ns/shop/sa/cart'), false);
  assert.equal(spiffeIdMatches(p, 'spiffe://td/ns/Shop/sa/cart'), false, 'paths are case-sensitive');
  assert.equal(spiffeIdMatches('spiffe://td/*', 'spiffe://td/ns/a/sa/b'), true);
  assert.equal(spiffeIdMatches('spiffe://td/*', 'spiffe://tdx/ns/a/sa/b'), false);
  const exact = 'spiffe://td/ns/shop/sa/cart';
  assert.equal(spiffeIdMatches(exact, exact), true);
  assert.equal(spiffeIdMatches(exact, `${exact}2`), false);
  assert.equal(spiffeIdMatches(exact, 'spiffe://td/ns/shop/sa/Cart'), false);
  assert.equal(spiffeIdMatches(exact, `${exact}/x`), false, 'an exact entry is not a prefix');
});

test('validateAllowPattern errors quote the pattern as written, not what is left once "/*" is cut off', () => {
  assert.throws(() => validateAllowPattern('spiffe://*'), { code: 'RAMPART_ERR_SPIFFE_ID_INVALID', message: 'invalid allow pattern "spiffe://*": the trust domain is missing before "/*"' });
  assert.throws(() => validateAllowPattern('spiffe://TD/*'), { message: 'invalid allow pattern "spiffe://TD/*": trust domain may contain only lowercase letters, digits, ".", "-" and "_"' });
});

test('validateAllowPattern accepts exact IDs and "/*" prefixes, refuses anything else', () => {
  assert.equal(validateAllowPattern('spiffe://td/ns/shop/*'), 'spiffe://td/ns/shop/*');
  assert.equal(validateAllowPattern('spiffe://td/*'), 'spiffe://td/*');
  assert.equal(validateAllowPattern('spiffe://td/ns/shop/sa/cart'), 'spiffe://td/ns/shop/sa/cart');
  for (const bad of ['spiffe://td/ns/*/sa/cart', 'spiffe://td/ns/shop*', '*', 'spiffe://TD/*', 'spiffe://td/ns//*']) {
    assert.throws(() => validateAllowPattern(bad), { code: 'RAMPART_ERR_SPIFFE_ID_INVALID' }, bad);
  }
});
