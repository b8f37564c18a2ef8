/**
 * Seeded property tests, one per family of parsers that take outside input: mutated CSRs, PEM
 * text, DER, certificates (svid authenticator, plugged-in CA files), tokens, stored CA state, the
 * agent's output directory and the CA config file. Each asserts the rule "bad input gets a coded
 * error": every case returns a value or throws a RampartError with a catalogued RAMPART_ERR_
 * code (DER readers: a DerError, which their callers translate). The inputs are fixed
 * (test/fixtures/fuzz) and case i of a seed is always the same bytes, so a failure names a case
 * that replays. The campaigns these come from ran tens of thousands of cases per parser; these
 * keep a few thousand (a few dozen for the directory cases, which write to disk) as a guard, in
 * about 2.5 s together. Against the code before the fuzz fixes, the certificate and stored-state
 * cases fail (an uncoded DerError from a plugged-in CA, an OpenSSL error from damaged state).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import 'reflect-metadata';
import { createJwksAuthenticator } from '../../src/authn/jwks.js';
import { createSvidAuthenticator } from '../../src/authn/svid.js';
import { loadCaConfig } from '../../src/config/ca-config.js';
import { signingContextFor } from '../../src/core/ca/authority.js';
import { validatePluggedCa } from '../../src/core/ca/plugged.js';
import { bundleToJwks, bundleToJson } from '../../src/core/ca/trust-bundle.js';
import { basicConstraints, extKeyUsages, keyIdFromExtension, keyUsageBits, parseCertificate, serialHex, uriSans } from '../../src/core/pki/certificate.js';
import { checkCsrIdentity, csrDerFromPem, parseCsr, parseCsrPem } from '../../src/core/pki/csr.js';
import { decodeOid, decodeTime, DerError, readChildren, readTlv, readWhole, TAG, type Tlv } from '../../src/core/pki/der.js';
import { inspectSpki } from '../../src/core/pki/keys.js';
import { certificatePem, decodeCertificates, decodePemBlocks, encodePem } from '../../src/core/pki/pem.js';
import { readCredentials } from '../../src/agent/output-reader.js';
import { writeCredentials } from '../../src/agent/output-writer.js';
import { decodeState } from '../../src/store/state-codec.js';
import { assertCoded, assertCodedOrValue, mutateDer, mutateText, Rng } from '../helpers/fuzz.js';

const SEED = 0x5eed_2026;
const FIXTURES = fileURLToPath(new URL('../fixtures/fuzz/', import.meta.url));
const fixture = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8');
/** The instant the fixtures were made for (make-fixtures.ts). */
const FIXTURE_NOW = Date.UTC(2026, 5, 1);
const CSRS = ['csr-p256-empty.pem', 'csr-p256-san.pem', 'csr-p256-challenge.pem', 'csr-p256-unsupported.pem', 'csr-p384-ku.pem', 'csr-rsa2048-dns.pem', 'csr-rsa3072-ca.pem'].map((f) => csrDerFromPem(fixture(f)));
const [ROOT, INTERMEDIATE, LEAF] = ['root.pem', 'intermediate.pem', 'leaf.pem'].map((f) => decodeCertificates(fixture(f))[0] as Buffer) as [Buffer, Buffer, Buffer];
const PEM_PIECES = ['-', '-----', '-----BEGIN ', '-----END ', 'CERTIFICATE REQUEST', 'CERTIFICATE', '\n', '\r\n', ' ', '=', 'A', '/', '\u0000', '\u00e9', '-----BEGIN CERTIFICATE-----\n'];

test('CSR: parseCsr and parseCsrPem return a request or a RAMPART_ERR_CSR_ code; an accepted one passes the identity check or gets a code', () => {
  for (let i = 0; i < 2500; i++) {
    const rng = Rng.forCase(SEED, i);
    const der = mutateDer(rng, rng.pick(CSRS));
    const viaPem = rng.chance(0.25);
    const what = `CSR case ${i} (seed ${SEED})`;
    let parsed: ReturnType<typeof parseCsr> | undefined;
    assertCodedOrValue(() => (parsed = viaPem ? parseCsrPem(encodePem('CERTIFICATE REQUEST', der)) : parseCsr(der)), what, (code) => code.startsWith('RAMPART_ERR_CSR_'));
    const csr = parsed;
    if (csr !== undefined) assertCodedOrValue(() => checkCsrIdentity(csr, 'spiffe://cluster.local/ns/shop/sa/web'), what);
  }
});

test('PEM: csrDerFromPem returns DER or a PEM code; decodePemBlocks and decodeCertificates never throw', () => {
  const texts = [...CSRS.map((d) => encodePem('CERTIFICATE REQUEST', d)), fixture('root.pem') + fixture('intermediate.pem'), `dump\n${fixture('csr-p256-san.pem')}trailer`];
  for (let i = 0; i < 4000; i++) {
    const rng = Rng.forCase(SEED + 1, i);
    const text = mutateText(rng, rng.pick(texts), PEM_PIECES);
    assertCodedOrValue(() => csrDerFromPem(text), `PEM case ${i}`, (code) => code === 'RAMPART_ERR_CSR_NOT_PEM' || code === 'RAMPART_ERR_CSR_WRONG_PEM_TYPE');
    assert.doesNotThrow(() => decodePemBlocks(text), `PEM case ${i}`);
    assert.doesNotThrow(() => decodeCertificates(text), `PEM case ${i}`);
  }
});

test('DER: the readers return consistent TLVs, OIDs and times, or throw a DerError', () => {
  const inputs = [...CSRS, ROOT, INTERMEDIATE, LEAF];
  const visit = (buf: Buffer, t: Tlv, limit: number, what: string): void => {
    assert.ok(t.start < t.contentStart && t.contentStart <= t.end && t.end <= limit, `${what}: TLV out of bounds`);
    const value = buf.subarray(t.contentStart, t.end);
    if (t.tag === TAG.OID) derOrValue(() => assert.match(decodeOid(value), /^\d+(\.\d+)+$/), what);
    if (t.tag === TAG.UTC_TIME || t.tag === TAG.GENERALIZED_TIME) derOrValue(() => assert.ok(Number.isFinite(new Date(decodeTime(buf, t)).getTime())), what);
    if (t.tag & 0x20) {
      let children: Tlv[] = [];
      derOrValue(() => (children = readChildren(buf, t)), what);
      for (const child of children) visit(buf, child, t.end, what);
    }
  };
  for (let i = 0; i < 3000; i++) {
    const rng = Rng.forCase(SEED + 2, i);
    const buf = rng.chance(0.1) ? rng.bytes(rng.range(0, 40)) : mutateDer(rng, rng.pick(inputs));
    const what = `DER case ${i}`;
    derOrValue(() => readWhole(buf, TAG.SEQUENCE), what);
    derOrValue(() => visit(buf, readTlv(buf, 0), buf.length, what), what);
  }
});

function derOrValue(run: () => unknown, what: string): void {
  try {
    run();
  } catch (err) {
    assert.ok(err instanceof DerError, `${what}: threw ${String(err)}, not a DerError`);
  }
}

test('certificates: the svid authenticator and plugged-in CA validation answer every mutated certificate with an identity, a CA or a code', async () => {
  const svid = createSvidAuthenticator({ trustAnchors: () => ({ trustDomain: 'cluster.local', rootsPem: [certificatePem(ROOT)] }), clock: { now: () => FIXTURE_NOW + 3_600_000 } });
  const keyPem = fixture('intermediate-key.test-fixture.pem');
  for (let i = 0; i < 800; i++) {
    const rng = Rng.forCase(SEED + 3, i);
    const which = rng.int(3);
    const der = mutateDer(rng, [LEAF, INTERMEDIATE, ROOT][which] as Buffer);
    const what = `certificate case ${i}`;
    // The light parser itself: a value or a DerError, whatever its field readers are asked.
    derOrValue(() => {
      const cert = parseCertificate(der);
      [basicConstraints(cert), keyUsageBits(cert), extKeyUsages(cert), uriSans(cert), keyIdFromExtension(cert, 'ski'), keyIdFromExtension(cert, 'aki'), serialHex(cert), inspectSpki(cert.spki)];
    }, what);
    if (which < 2) {
      const chain = which === 0 ? [der, INTERMEDIATE] : [LEAF, der];
      try {
        await svid.authenticate({ clientCertChain: chain });
      } catch (err) {
        assertCoded(err, what, (code) => code === 'RAMPART_ERR_UNAUTHENTICATED');
      }
    }
    if (which > 0) {
      const [ca, root] = which === 1 ? [der, ROOT] : [INTERMEDIATE, der];
      const files = { caCertPem: certificatePem(ca), caKeyPem: keyPem, certChainPem: certificatePem(ca) + certificatePem(root), rootCertPem: certificatePem(root) };
      assertCodedOrValue(() => validatePluggedCa(files, 'cluster.local', FIXTURE_NOW + 3_600_000), what, (code) => code === 'RAMPART_ERR_PLUGGED_CA_INVALID');
    }
  }
});

test('tokens: the jwks authenticator answers every mutated token with an identity or a 401/503 code', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-fuzz-jwks-'));
  try {
    writeFileSync(join(dir, 'jwks.json'), fixture('jwks.json'));
    const jwks = createJwksAuthenticator({ issuer: 'https://kubernetes.default.svc.cluster.local', trustDomain: 'cluster.local', source: { kind: 'file', path: join(dir, 'jwks.json') }, clock: { now: () => FIXTURE_NOW + 60_000 } });
    const token = fixture('token.txt').trim();
    assert.equal((await jwks.authenticate({ bearerToken: token }))?.serviceAccount, 'web');
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
    const odd: unknown[] = [null, true, 0, -1, 1.5, 1e308, 2 ** 53 + 2, '', 'x', [], {}, ['rampart-ca', 5], 'system:serviceaccount:a:b:c', 'system:serviceaccount:shop:web', 'https://kubernetes.default.svc.cluster.local'];
    for (let i = 0; i < 2000; i++) {
      const rng = Rng.forCase(SEED + 4, i);
      let candidate: string;
      if (rng.chance(0.5)) {
        candidate = mutateText(rng, token, ['.', '=', '+', '/', '-', '_', 'A', ' ', '..', 'eyJhbGciOiJub25lIn0']);
      } else {
        // Claims or header changed (the signature no longer matches): the claim checks run first.
        const c: Record<string, unknown> = { ...claims };
        const key = rng.pick([...Object.keys(c), 'kubernetes.io', 'crit']);
        if (rng.chance(0.2)) delete c[key];
        else c[key] = rng.pick(odd);
        const h = rng.chance(0.2) ? { alg: rng.pick(['none', 'HS256', 'RS256', 'ES384', 5]), kid: rng.pick(['fixture', null, 7]) } : JSON.parse(Buffer.from(header, 'base64url').toString('utf8'));
        candidate = `${Buffer.from(JSON.stringify(h)).toString('base64url')}.${Buffer.from(JSON.stringify(c)).toString('base64url')}.${signature}`;
      }
      try {
        await jwks.authenticate({ bearerToken: candidate });
      } catch (err) {
        assertCoded(err, `token case ${i}`, (code) => code === 'RAMPART_ERR_UNAUTHENTICATED' || code === 'RAMPART_ERR_AUTHN_BACKEND_UNAVAILABLE');
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('stored state: decodeState returns a state or STATE_CORRUPT, and an accepted state gives a signing context and bundle or a code', () => {
  const text = fixture('ca-state.test-fixture.json');
  const numbers = [-1, 1.5, 0, 9e15, Number.MAX_SAFE_INTEGER, 253_402_300_800_000, 1e21];
  for (let i = 0; i < 500; i++) {
    const rng = Rng.forCase(SEED + 5, i);
    let candidate: string;
    if (rng.chance(0.2)) {
      candidate = mutateText(rng, text, ['{', '}', '"', ',', '0', '-', 'A', '\n']);
    } else {
      const o = JSON.parse(text) as { roots: Array<Record<string, unknown> & { intermediate: Record<string, unknown> }> } & Record<string, unknown>;
      const root = rng.pick(o.roots);
      const target: Record<string, unknown> = rng.pick([o, root, root.intermediate]);
      const key = rng.pick(Object.keys(target));
      const value = target[key];
      if (typeof value === 'string' && value.includes('-----BEGIN')) {
        // PEM text damaged but still PEM-shaped: a line lost, or a base64 character changed.
        const lines = value.split('\n');
        const at = rng.range(1, Math.max(1, lines.length - 3));
        if (rng.chance(0.5)) lines.splice(at, 1);
        else lines[at] = `${(lines[at] ?? '').slice(0, 10)}${rng.pick(['A', 'z', '/'])}${(lines[at] ?? '').slice(11)}`;
        target[key] = lines.join('\n');
      } else {
        target[key] = rng.chance(0.7) ? rng.pick(numbers) : rng.pick([null, 'x', [], {}, true]);
      }
      candidate = JSON.stringify(o);
    }
    const what = `state case ${i}`;
    let decoded: ReturnType<typeof decodeState> | undefined;
    assertCodedOrValue(() => (decoded = decodeState(candidate)), what, (code) => code === 'RAMPART_ERR_STATE_CORRUPT');
    const state = decoded;
    if (state === undefined) continue;
    assertCodedOrValue(() => {
      const context = signingContextFor(state);
      bundleToJwks(context.bundle, 60);
      JSON.stringify(bundleToJson(context.bundle));
    }, what);
  }
});

test('agent output directory: readCredentials answers a damaged directory with credentials or a code', async () => {
  const base = mkdtempSync(join(tmpdir(), 'rampart-fuzz-out-'));
  const cert = fixture('leaf.pem');
  try {
    for (let i = 0; i < 40; i++) {
      const rng = Rng.forCase(SEED + 6, i);
      const dir = join(base, `d${i}`);
      const generation = await writeCredentials(dir, { certChainPem: cert, keyPem: fixture('intermediate-key.test-fixture.pem'), rootCertPem: cert }, { now: () => FIXTURE_NOW + i });
      const data = join(dir, '..data');
      const file = join(dir, generation, rng.pick(['cert-chain.pem', 'key.pem', 'root-cert.pem']));
      const damage = rng.int(6);
      if (damage === 0) unlinkSync(data);
      else if (damage === 1) { unlinkSync(data); symlinkSync(rng.pick(['..missing', '..data', '/', generation + '/x']), data); }
      else if (damage === 2) { unlinkSync(data); mkdirSync(data); }
      else if (damage === 3) unlinkSync(file);
      else if (damage === 4) { unlinkSync(file); mkdirSync(file); }
      else writeFileSync(file, rng.bytes(rng.range(0, 64)));
      try {
        await readCredentials(dir);
      } catch (err) {
        assertCoded(err, `output case ${i} (damage ${damage})`);
      }
    }
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('CA config file: loadCaConfig returns a config or RAMPART_ERR_CONFIG_INVALID', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-fuzz-config-'));
  const file = join(dir, 'ca.json');
  const good = { trustDomain: 'example.org', authn: ['dev', 'svid'], defaultTtl: '1h', minTtl: '5m', maxTtl: '24h', rootTtl: '365d', intermediateTtl: '30d', bundleRefreshInterval: '60s', maxInFlight: 100, workers: 1, admin: { identities: ['spiffe://example.org/ns/a/sa/b'] }, kubernetes: { leaseDuration: '15s', renewDeadline: '10s', retryPeriod: '2s' } };
  const durations = ['0s', '1.5h', '-5m', '', 'NaN', '999999999999999999999d', '36501d', '25d', '1ms', '1h1h', '5 m'];
  const odd: unknown[] = [null, true, 0, -1, 1.5, 1e21, 2 ** 53 + 2, 'x', '', [], {}, ['x'], 'auto'];
  try {
    for (let i = 0; i < 1000; i++) {
      const rng = Rng.forCase(SEED + 7, i);
      const o = JSON.parse(JSON.stringify(good)) as Record<string, unknown>;
      for (let k = rng.range(1, 3); k > 0; k--) {
        const section = o['kubernetes'];
        const inSection = rng.chance(0.3) && typeof section === 'object' && section !== null && !Array.isArray(section);
        const target = (inSection ? section : o) as Record<string, unknown>;
        const key = rng.pick([...Object.keys(target), 'unknownKey', '__proto__']);
        target[key] = typeof target[key] === 'string' && /\d[smhd]$/.test(target[key] as string) && rng.chance(0.7) ? rng.pick(durations) : rng.pick(odd);
      }
      const text = rng.chance(0.1) ? mutateText(rng, JSON.stringify(o), ['{', '}', '"', ',', ':']) : JSON.stringify(o);
      writeFileSync(file, text);
      assertCodedOrValue(() => loadCaConfig({ config: file }, {}), `config case ${i}`, (code) => code === 'RAMPART_ERR_CONFIG_INVALID' || code === 'RAMPART_ERR_USAGE');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
