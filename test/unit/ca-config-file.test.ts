/** `rampart ca --config FILE`: every key is known or refused, values may be JSON-typed, and serving names are checked. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { loadCaConfig, type CaFlags } from '../../src/config/ca-config.js';
import { ConfigError } from '../../src/core/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'rampart-config-file-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function withFile(content: unknown, flags: CaFlags = {}) {
  const path = join(dir, `c${n++}.json`);
  writeFileSync(path, JSON.stringify(content));
  return loadCaConfig({ ...flags, config: path }, {});
}

function refused(run: () => unknown, message: RegExp): void {
  assert.throws(run, (err: unknown) => err instanceof ConfigError && err.code === 'RAMPART_ERR_CONFIG_INVALID' && message.test(err.message), String(message));
}

test('a misspelt key is refused by name, at the top level and inside sections', () => {
  refused(() => withFile({ trustdomain: 'example.org' }), /config "trustdomain" is not a known key; top-level keys are .*trustDomain/);
  refused(() => withFile({ admin: { identity: [] } }), /config "admin\.identity" is not a known key; "admin" keys are identities/);
  refused(() => withFile({ jwks: { issuer: 'https://i', File: 'x' } }), /config "jwks\.File" is not a known key/);
  refused(() => withFile({ kubernetes: { leaseDurationSeconds: 15 } }), /config "kubernetes\.leaseDurationSeconds" is not a known key/);
});

test('numbers, booleans and lists are taken in their JSON types', () => {
  const c = withFile({ maxInFlight: 10, workers: 2, autoRotate: false, authn: ['dev', 'svid'], trustDomain: 'example.org', servingNames: ['ca.example.org', '10.0.0.7'], kubernetes: { tokenReviewRatePerSecond: 20 } });
  assert.equal(c.maxInFlight, 10);
  assert.equal(c.workers, 2);
  assert.equal(c.autoRotate, false);
  assert.deepEqual(c.authn, ['dev', 'svid']);
  assert.equal(c.trustDomain, 'example.org');
  assert.deepEqual(c.servingNames, ['ca.example.org', '10.0.0.7']);
  assert.equal(c.kubernetes.tokenReviewRatePerSecond, 20);
  // Flags still win over the file.
  assert.equal(withFile({ maxInFlight: 10 }, { 'max-in-flight': '7' }).maxInFlight, 7);
});

test('values of the wrong shape are refused, never cast or ignored', () => {
  refused(() => withFile({ servingNames: [1, 2] }), /config "servingNames" must be a list of strings/);
  refused(() => withFile({ servingNames: 'ca.example' }), /config "servingNames" must be a list of strings/);
  refused(() => withFile({ kubernetes: { tokenReviewRatePerSecond: 'fast' } }), /config "kubernetes\.tokenReviewRatePerSecond" must be a positive number/);
  refused(() => withFile({ maxInFlight: { n: 1 } }), /config "maxInFlight" must be a whole number, got \{"n":1\}/);
  refused(() => withFile({ workers: 0 }), /config "workers" must be a positive whole number/);
  // Each value takes its JSON type: a bare number is no duration, a string is no boolean.
  refused(() => withFile({ defaultTtl: 3600 }), /^config "defaultTtl" must be a duration string such as "90s", "5m", "1h" or "30d", got 3600$/);
  refused(() => withFile({ kubernetes: { retryPeriod: 2 } }), /^config "kubernetes\.retryPeriod" must be a duration string/);
  refused(() => withFile({ autoRotate: 'false' }), /^config "autoRotate" must be true or false \(a JSON boolean, not a string\), got "false"$/);
  refused(() => withFile({ maxInFlight: '10' }), /^config "maxInFlight" must be a whole number, got "10"$/);
  refused(() => withFile({ workers: 'two' }), /^config "workers" must be a whole number or "auto", got "two"$/);
  refused(() => withFile({ trustDomain: 7 }), /^config "trustDomain" must be a string, got 7$/);
  refused(() => withFile({ kubernetes: { namespace: true } }), /^config "kubernetes\.namespace" must be a string, got true$/);
});

test('--serving-name must be a DNS name (wildcard only as the first label) or an IP address', () => {
  const ok = loadCaConfig({ 'serving-name': ['rampart-ca.rampart-system.svc', '*.ca.example', '::1', '192.0.2.4'] }, {});
  assert.deepEqual(ok.servingNames, ['rampart-ca.rampart-system.svc', '*.ca.example', '::1', '192.0.2.4']);
  for (const bad of ['bad name!', '', 'a.*.example', '-lead.example', 'x'.repeat(64) + '.example']) {
    refused(() => loadCaConfig({ 'serving-name': [bad] }, {}), /--serving-name ".*" is neither a DNS name/);
  }
});

test('jwks flags without the jwks authenticator are refused rather than ignored', () => {
  refused(() => loadCaConfig({ 'jwks-file': '/tmp/keys.json' }, {}), /--jwks-file only applies to the jwks authenticator/);
  assert.equal(loadCaConfig({ authn: 'jwks', 'jwks-issuer': 'https://issuer.example', 'jwks-file': '/tmp/keys.json' }, {}).jwks?.file, '/tmp/keys.json');
});

test('a JWKS file and a JWKS URL together are refused, from flags, the file or both, rather than the URL ignored', () => {
  const jwks = { authn: 'jwks', 'jwks-issuer': 'https://issuer.example' } as const;
  refused(() => loadCaConfig({ ...jwks, 'jwks-file': '/tmp/keys.json', 'jwks-url': 'https://issuer.example/keys' }, {}), /^--jwks-file and --jwks-url both say where the jwks keys come from; give one of them/);
  refused(() => withFile({ authn: 'jwks', jwks: { issuer: 'https://issuer.example', file: '/tmp/keys.json', url: 'https://issuer.example/keys' } }), /^config "jwks\.file" and config "jwks\.url" both say/);
  refused(() => withFile({ authn: 'jwks', jwks: { issuer: 'https://issuer.example', file: '/tmp/keys.json' } }, { 'jwks-url': 'https://issuer.example/keys' }), /^config "jwks\.file" and --jwks-url both say/);
  assert.equal(loadCaConfig({ ...jwks, 'jwks-url': 'https://issuer.example/keys' }, {}).jwks?.url, 'https://issuer.example/keys');
  assert.equal(loadCaConfig(jwks, {}).jwks?.discovery, true);
});

test('jwks.caFile with a JWKS file is refused: it only applies to an HTTPS fetch, and was silently ignored', () => {
  refused(() => withFile({ authn: 'jwks', jwks: { issuer: 'https://issuer.example', file: '/tmp/keys.json', caFile: '/tmp/ca.pem' } }), /^jwks\.caFile only applies to a JWKS URL or OIDC discovery, not to config "jwks\.file"/);
  refused(() => withFile({ authn: 'jwks', jwks: { issuer: 'https://issuer.example', caFile: '/tmp/ca.pem' } }, { 'jwks-file': '/tmp/keys.json' }), /not to --jwks-file; drop one of them/);
  assert.equal(withFile({ authn: 'jwks', jwks: { issuer: 'https://issuer.example', url: 'https://issuer.example/keys', caFile: '/tmp/ca.pem' } }).jwks?.caFile, '/tmp/ca.pem');
});

test('jwks settings that would do nothing or fall through are refused: a "jwks" section without the jwks authenticator, empty or non-string values', () => {
  const issuer = 'https://issuer.example';
  refused(() => withFile({ jwks: { file: '/tmp/keys.json', url: 'https://issuer.example/keys' } }), /^config "jwks" only applies to the jwks authenticator; add jwks to --authn or remove the "jwks" section/);
  refused(() => withFile({ authn: 'dev', jwks: { issuer } }), /^config "jwks" only applies to the jwks authenticator; add jwks to config "authn"/);
  refused(() => withFile({ jwks: { issuer } }, { authn: 'dev' }), /add jwks to --authn/);
  refused(() => loadCaConfig({ authn: 'jwks', 'jwks-issuer': issuer, 'jwks-file': '', 'jwks-url': 'https://issuer.example/keys' }, {}), /^--jwks-file must not be empty/);
  refused(() => loadCaConfig({ authn: 'jwks', 'jwks-issuer': issuer, 'jwks-url': '' }, {}), /^--jwks-url must not be empty/);
  refused(() => withFile({ authn: 'jwks', jwks: { issuer, file: '' } }), /^config "jwks\.file" must be a non-empty string/);
  refused(() => withFile({ authn: 'jwks', jwks: { issuer, file: null } }), /^config "jwks\.file" must be a non-empty string/);
  refused(() => withFile({ authn: 'jwks', jwks: { issuer: 5 } }), /^config "jwks\.issuer" must be a non-empty string/);
  assert.equal(withFile({ authn: 'jwks', jwks: { issuer, url: 'https://issuer.example/keys' } }).jwks?.issuer, issuer);
});

test('--root-ttl below 1h is refused: the rotation schedule could not keep a valid signer', () => {
  refused(() => loadCaConfig({ 'root-ttl': '6m', 'intermediate-ttl': '6m' }, {}), /--root-ttl must be at least 1h/);
  assert.equal(loadCaConfig({ 'root-ttl': '1h', 'intermediate-ttl': '20m' }, {}).lifetimes.rootTtlMs, 3_600_000);
});

test('a bad value from the file is named by its config key, and --serving-name replaces the file\'s list', () => {
  refused(() => withFile({ workers: 1.5 }), /^config "workers" must be a whole number or "auto", got 1\.5$/);
  refused(() => withFile({ defaultTtl: 'soon' }), /^config "defaultTtl" "soon" is not a duration/);
  refused(() => withFile({ listen: 'nowhere' }), /^config "listen" "nowhere" must be HOST:PORT/);
  refused(() => withFile({ servingNames: ['bad name!'] }), /^config "servingNames" "bad name!" is neither a DNS name/);
  refused(() => withFile({ kubernetes: { leaseDuration: 'long' } }), /^config "kubernetes\.leaseDuration" "long" is not a duration/);
  refused(() => withFile({ workers: 'two' }, { workers: 'three' }), /^--workers must be a positive whole number or "auto", got "three"$/);
  assert.deepEqual(withFile({ servingNames: ['from-file.example'] }, { 'serving-name': ['from-flag.example'] }).servingNames, ['from-flag.example']);
  assert.deepEqual(withFile({ servingNames: ['from-file.example'] }).servingNames, ['from-file.example']);
});

test('a config file that is not JSON says so', () => {
  const path = join(dir, 'broken.json');
  writeFileSync(path, '{bad');
  refused(() => loadCaConfig({ config: path }, {}), /is not valid JSON$/);
  writeFileSync(path, '[1]');
  refused(() => loadCaConfig({ config: path }, {}), /is not a JSON object$/);
});

test('a duration over 100 years is refused where it is given, instead of failing start-up later (fuzz finding)', () => {
  // Seeded config campaign (seed 0xc0f): "999999999999999999999d" was taken as 8.6e28 ms and 400
  // nines as Infinity. As --root-ttl that made a root with no valid dates (start-up died with a
  // DerError); as --max-ttl the first state write failed with STATE_CORRUPT advising to remove
  // the state.
  refused(() => loadCaConfig({ 'root-ttl': '999999999999999999999d' }, {}), /^--root-ttl "999999999999999999999d" is longer than 36500d \(100 years\)/);
  refused(() => loadCaConfig({ 'max-ttl': `${'9'.repeat(400)}ms` }, {}), /^--max-ttl "9{40}…" is longer than 36500d/);
  refused(() => withFile({ bundleRefreshInterval: '36501d' }), /^config "bundleRefreshInterval" "36501d" is longer than 36500d/);
  refused(() => withFile({ kubernetes: { leaseDuration: '1e400d' } }), /is not a duration/);
  assert.equal(loadCaConfig({ 'root-ttl': '36500d' }, {}).lifetimes.rootTtlMs, 36_500 * 86_400_000);
});

test('the API and monitoring listeners on one address, an empty state dir and an unknown log level are refused before anything starts (outside QA)', () => {
  // Found at bind time, this read "already in use; stop the process listening there": the CA itself.
  refused(() => loadCaConfig({ listen: '127.0.0.1:47070', 'monitoring-listen': '127.0.0.1:47070' }, {}), /^--listen "127\.0\.0\.1:47070" and --monitoring-listen "127\.0\.0\.1:47070" both listen on 127\.0\.0\.1:47070; give each listener its own address$/);
  refused(() => withFile({ monitoringListen: '0.0.0.0:8443' }), /^--listen "127\.0\.0\.1:8443" and config "monitoringListen" "0\.0\.0\.0:8443" would listen on overlapping addresses/);
  assert.equal(loadCaConfig({ listen: '127.0.0.1:0', 'monitoring-listen': '127.0.0.1:0' }, {}).listen.port, 0, 'port 0 twice is two free ports');
  refused(() => loadCaConfig({ 'state-dir': '' }, {}), /^--state-dir is empty; name the directory for the CA's keys and state \(default certs\)$/);
  refused(() => loadCaConfig({ 'log-level': 'bogus' }, {}), /^--log-level "bogus" is not a log level; use fatal, error, warn, info, debug, trace or silent$/);
});

test('TTLs out of order are refused with the values as read, so a bare number read as seconds shows (outside QA)', () => {
  refused(() => loadCaConfig({ 'default-ttl': '10' }, {}), /^TTLs must satisfy --min-ttl <= --default-ttl <= --max-ttl .*, but they read 5m <= 10s <= 1d \(a number without a unit is seconds\)$/);
});
