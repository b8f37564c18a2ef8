/**
 * Leaf profile cross-check (DESIGN section 3): certificates issued over real HTTPS are read back
 * with @peculiar/x509 and with `openssl x509 -text`, and the chain is verified by
 * `openssl verify -x509_strict` for both TLS purposes.
 */
import 'reflect-metadata';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate as NodeX509 } from 'node:crypto';
import { connect as tlsConnect } from 'node:tls';
import * as x509 from '@peculiar/x509';
import { startTestCa, type TestCa } from '../helpers/ca.js';
import { httpsJson } from '../helpers/https.js';
import { OpenSsl, type KeySpec } from '../helpers/openssl.js';

const ID = 'spiffe://cluster.local/ns/shop/sa/cart';
const OID_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const OID_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

let ca: TestCa;
let ssl: OpenSsl;
let token: string;

before(async () => {
  ca = await startTestCa();
  ssl = await OpenSsl.create('rampart-leaf-');
  token = await ca.token('shop', 'cart');
});

after(async () => {
  await ca?.close();
  await ssl?.close();
});

interface Issued {
  status: number;
  body: { spiffeId: string; certChain: string[]; trustBundle: string[]; bundleSequence: number; expiresAt: string; ttlSeconds: number; serial: string; notBefore: string };
  requestedAt: number;
  answeredAt: number;
}

async function issue(target: TestCa, csrPem: string, bearer: string, ttlSeconds?: number): Promise<Issued> {
  const requestedAt = Date.now();
  const res = await httpsJson(`${target.apiUrl}/v1/certificates`, { ca: target.rootCertPem(), token: bearer, body: { csr: csrPem, ...(ttlSeconds !== undefined ? { ttlSeconds } : {}) } });
  return { status: res.status, body: res.body, requestedAt, answeredAt: Date.now() };
}

function ext<T extends x509.Extension>(cert: x509.X509Certificate, type: new (raw: ArrayBuffer) => T): T {
  const found = cert.getExtension(type);
  assert.ok(found, `extension ${type.name} present`);
  return found;
}

/** Checks every field of the leaf profile with @peculiar/x509. */
async function checkLeafWithPeculiar(leafPem: string, interPem: string, isRsa: boolean, issued: Issued): Promise<void> {
  const leaf = new x509.X509Certificate(leafPem);
  const inter = new x509.X509Certificate(interPem);
  assert.equal(leaf.subject, '', 'empty subject');
  assert.equal(leaf.subjectName.toJSON().length, 0);

  const san = ext(leaf, x509.SubjectAlternativeNameExtension);
  assert.equal(san.critical, true, 'SAN critical (empty subject)');
  assert.deepEqual(san.names.items.map((n) => [n.type, n.value]), [['url', ID]], 'exactly one URI SAN: the caller');

  const ku = ext(leaf, x509.KeyUsagesExtension);
  assert.equal(ku.critical, true, 'keyUsage critical');
  const expectedKu = x509.KeyUsageFlags.digitalSignature | (isRsa ? x509.KeyUsageFlags.keyEncipherment : 0);
  assert.equal(ku.usages, expectedKu, 'keyUsage digitalSignature (+keyEncipherment for RSA)');

  const eku = ext(leaf, x509.ExtendedKeyUsageExtension);
  assert.deepEqual([...eku.usages].sort(), [OID_SERVER_AUTH, OID_CLIENT_AUTH].sort());

  const bc = ext(leaf, x509.BasicConstraintsExtension);
  assert.equal(bc.critical, true);
  assert.equal(bc.ca, false);
  assert.equal(bc.pathLength, undefined);

  const ski = ext(leaf, x509.SubjectKeyIdentifierExtension);
  const aki = ext(leaf, x509.AuthorityKeyIdentifierExtension);
  const interSki = ext(inter, x509.SubjectKeyIdentifierExtension);
  assert.match(ski.keyId, /^[0-9a-f]{40}$/);
  assert.equal(aki.keyId, interSki.keyId, 'AKI = intermediate SKI');
  assert.notEqual(ski.keyId, interSki.keyId);
  // SKI is computed from the leaf's own key (RFC 5280 method 1), not copied from anywhere else.
  const spkiKeyId = Buffer.from(await leaf.publicKey.getKeyIdentifier('SHA-1')).toString('hex');
  assert.equal(ski.keyId, spkiKeyId);
  assert.equal(leaf.extensions.length, 6, 'SAN, KU, EKU, BC, AKI, SKI and nothing else');

  // Serial: positive, at least 64 bits (the CA uses 128), unique.
  const serialHex = leaf.serialNumber.toLowerCase();
  assert.equal(serialHex, issued.body.serial);
  assert.ok(BigInt(`0x${serialHex}`) >= 1n << 63n, `serial ${serialHex} has at least 64 bits`);
  assert.ok(parseInt(serialHex.slice(0, 2), 16) < 0x80, 'serial is positive (no high bit)');

  // Validity: backdated 60 s, default TTL 1 h, matching the response.
  const nb = leaf.notBefore.getTime();
  const na = leaf.notAfter.getTime();
  assert.ok(nb >= issued.requestedAt - 65_000 && nb <= issued.answeredAt - 55_000, `notBefore ${leaf.notBefore.toISOString()} = now - 60 s`);
  assert.equal(na, Date.parse(issued.body.expiresAt), 'expiresAt is the certificate notAfter');
  assert.equal(nb, Date.parse(issued.body.notBefore));
  assert.ok(na >= issued.requestedAt + 3_600_000 - 5_000 && na <= issued.answeredAt + 3_600_000 + 5_000, 'notAfter = now + 1 h');
  assert.ok(Math.abs(issued.body.ttlSeconds - 3600) <= 5, `granted ttlSeconds ${issued.body.ttlSeconds}`);

  // Issued by the intermediate: issuer name and signature.
  assert.equal(leaf.issuer, inter.subject);
  assert.equal(await leaf.verify({ publicKey: inter.publicKey, signatureOnly: true }), true, 'signature verifies with the intermediate key');
}

/** Checks the signing intermediate (and that it chains to the bundle's root). */
async function checkIntermediate(interPem: string, rootsPem: readonly string[]): Promise<void> {
  const inter = new x509.X509Certificate(interPem);
  const alg = inter.publicKey.algorithm as { name: string; namedCurve?: string };
  assert.equal(alg.name, 'ECDSA');
  assert.equal(alg.namedCurve, 'P-256');
  const san = ext(inter, x509.SubjectAlternativeNameExtension);
  assert.deepEqual(san.names.items.map((n) => [n.type, n.value]), [['url', 'spiffe://cluster.local']], 'URI SAN of the trust domain, no path');
  const ku = ext(inter, x509.KeyUsagesExtension);
  assert.equal(ku.critical, true);
  assert.equal(ku.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
  const bc = ext(inter, x509.BasicConstraintsExtension);
  assert.equal(bc.critical, true);
  assert.equal(bc.ca, true);
  assert.equal(bc.pathLength, 0);
  ext(inter, x509.SubjectKeyIdentifierExtension);
  const aki = ext(inter, x509.AuthorityKeyIdentifierExtension);
  const roots = rootsPem.map((p) => new x509.X509Certificate(p));
  const issuer = roots.find((r) => r.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId === aki.keyId);
  assert.ok(issuer, 'the intermediate AKI names a root of the bundle');
  assert.equal(await inter.verify({ publicKey: issuer.publicKey, signatureOnly: true }), true);
  assert.ok(inter.notAfter.getTime() <= issuer.notAfter.getTime(), 'intermediate never outlives its root');
  const rootBc = ext(issuer, x509.BasicConstraintsExtension);
  assert.equal(rootBc.ca, true);
  assert.equal(issuer.subject, issuer.issuer, 'root is self-signed');
  assert.match(issuer.subject, /O=cluster\.local/, 'root subject carries the trust domain');
}

/** Checks the same fields as openssl prints them. */
function checkLeafWithOpenSslText(text: string, isRsa: boolean, keyLine: RegExp): void {
  assert.match(text, /^\s*Version: 3 \(0x2\)$/m);
  assert.match(text, /^\s*Subject:\s*$/m, 'empty subject');
  assert.match(text, /X509v3 Subject Alternative Name: critical\n\s*URI:spiffe:\/\/cluster\.local\/ns\/shop\/sa\/cart\n/);
  assert.match(text, isRsa ? /X509v3 Key Usage: critical\n\s*Digital Signature, Key Encipherment\n/ : /X509v3 Key Usage: critical\n\s*Digital Signature\n/);
  assert.match(text, /X509v3 Extended Key Usage: ?\n\s*TLS Web Server Authentication, TLS Web Client Authentication\n/);
  assert.match(text, /X509v3 Basic Constraints: critical\n\s*CA:FALSE\n/);
  assert.match(text, /X509v3 Subject Key Identifier: ?\n\s*([0-9A-F]{2}:){19}[0-9A-F]{2}\n/);
  assert.match(text, /X509v3 Authority Key Identifier: ?\n\s*(keyid:)?([0-9A-F]{2}:){19}[0-9A-F]{2}\n/);
  assert.match(text, /Signature Algorithm: ecdsa-with-SHA256/);
  assert.match(text, keyLine);
  assert.doesNotMatch(text, /DNS:|IP Address:|email:/);
}

const KEYS: Array<{ key: KeySpec; rsa: boolean; keyLine: RegExp }> = [
  { key: 'P-256', rsa: false, keyLine: /NIST CURVE: P-256/ },
  { key: 'P-384', rsa: false, keyLine: /NIST CURVE: P-384/ },
  { key: 'RSA-2048', rsa: true, keyLine: /Public-Key: \(2048 bit\)/ },
  { key: 'RSA-3072', rsa: true, keyLine: /Public-Key: \(3072 bit\)/ },
  { key: 'RSA-4096', rsa: true, keyLine: /Public-Key: \(4096 bit\)/ },
];

for (const { key, rsa, keyLine } of KEYS) {
  test(`${key} CSR from openssl: leaf profile per DESIGN section 3, chain accepted by openssl verify -x509_strict`, async () => {
    const { csrPem } = await ssl.keyAndCsr({ key });
    const issued = await issue(ca, csrPem, token);
    assert.equal(issued.status, 200, JSON.stringify(issued.body));
    assert.equal(issued.body.spiffeId, ID);
    assert.equal(issued.body.certChain.length, 2, 'leaf + intermediate');
    const [leafPem, interPem] = issued.body.certChain as [string, string];
    assert.deepEqual(issued.body.trustBundle, [ca.rootCertPem()]);
    assert.equal(issued.body.bundleSequence, 1);

    await checkLeafWithPeculiar(leafPem, interPem, rsa, issued);
    await checkIntermediate(interPem, issued.body.trustBundle);
    checkLeafWithOpenSslText(await ssl.x509Text(leafPem), rsa, keyLine);
    // The leaf certifies the CSR's key: openssl's view of both public keys is identical.
    const csrKey = (await ssl.run(['req', '-noout', '-pubkey', '-in', await ssl.write(`${key}.csr`, csrPem)])).stdout;
    assert.equal(await ssl.x509Field(leafPem, '-pubkey'), csrKey.trim());

    for (const purpose of ['sslclient', 'sslserver'] as const) {
      const v = await ssl.verify({ rootsPem: issued.body.trustBundle.join(''), untrustedPems: [interPem], leafPem, purpose });
      assert.equal(v.code, 0, `openssl verify -purpose ${purpose}: ${v.stdout}${v.stderr}`);
      assert.match(v.stdout, /: OK/);
    }
  });
}

test('openssl verify refuses the leaf without the intermediate or against a foreign root (the check can fail)', async () => {
  const { csrPem } = await ssl.keyAndCsr();
  const issued = await issue(ca, csrPem, token);
  assert.equal(issued.status, 200);
  const [leafPem] = issued.body.certChain as [string, string];
  const noInter = await ssl.verify({ rootsPem: ca.rootCertPem(), leafPem, purpose: 'sslclient' });
  assert.notEqual(noInter.code, 0);
  assert.match(noInter.stdout + noInter.stderr, /unable to get local issuer certificate/);
  const other = await startTestCa();
  try {
    const foreign = await ssl.verify({ rootsPem: other.rootCertPem(), untrustedPems: [issued.body.certChain[1] as string], leafPem, purpose: 'sslclient' });
    assert.notEqual(foreign.code, 0);
  } finally {
    await other.close();
  }
});

test('serials are distinct across issuances, and the intermediate and root are what the state says', async () => {
  const serials = new Set<string>();
  const { csrPem } = await ssl.keyAndCsr();
  for (let i = 0; i < 5; i++) {
    const issued = await issue(ca, csrPem, token);
    assert.equal(issued.status, 200);
    serials.add(issued.body.serial);
    const fp = new NodeX509(issued.body.trustBundle[0] as string).fingerprint256.replace(/:/g, '').toLowerCase();
    assert.equal(fp, ca.runtime.current().activeRootFingerprint);
  }
  assert.equal(serials.size, 5);
});

test('a leaf never outlives its signer: NotAfter is clamped to the intermediate NotAfter', async () => {
  const short = await startTestCa({ 'intermediate-ttl': '30m' });
  try {
    const bearer = await short.token('shop', 'cart');
    const { csrPem } = await ssl.keyAndCsr();
    const issued = await issue(short, csrPem, bearer, 7200);
    assert.equal(issued.status, 200, JSON.stringify(issued.body));
    const [leafPem, interPem] = issued.body.certChain as [string, string];
    const leaf = new x509.X509Certificate(leafPem);
    const inter = new x509.X509Certificate(interPem);
    assert.equal(leaf.notAfter.getTime(), inter.notAfter.getTime(), 'leaf ends with the intermediate');
    assert.equal(Date.parse(issued.body.expiresAt), inter.notAfter.getTime());
    assert.ok(issued.body.ttlSeconds <= 1800 && issued.body.ttlSeconds >= 1790, `response says what was granted: ${issued.body.ttlSeconds}`);
    const v = await ssl.verify({ rootsPem: short.rootCertPem(), untrustedPems: [interPem], leafPem, purpose: 'sslserver' });
    assert.equal(v.code, 0, v.stderr);
  } finally {
    await short.close();
  }
});

test('the CA serving certificate is a leaf like the others: never longer than --max-ttl', async () => {
  const short = await startTestCa({ 'min-ttl': '5m', 'default-ttl': '5m', 'max-ttl': '10m' });
  try {
    const url = new URL(short.apiUrl);
    const served = await new Promise<NodeX509>((resolve, reject) => {
      const socket = tlsConnect({ host: url.hostname, port: Number(url.port), ca: short.rootCertPem(), servername: 'localhost' }, () => {
        resolve(new NodeX509(socket.getPeerX509Certificate()!.raw));
        socket.destroy();
      });
      socket.on('error', reject);
    });
    const lifetimeMs = Date.parse(served.validTo) - Date.now();
    assert.ok(lifetimeMs <= 10 * 60_000 && lifetimeMs > 8 * 60_000, `serving certificate valid for ${Math.round(lifetimeMs / 1000)} s more`);
  } finally {
    await short.close();
  }
});
