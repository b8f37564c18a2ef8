import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { X509Certificate } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { ManualClock } from '../../src/core/clock.js';
import { AuthenticationError } from '../../src/core/errors.js';
import { createSvidAuthenticator, type SvidTrustAnchors } from '../../src/authn/svid.js';
import { tempDir } from '../unit/authn-jwt-helpers.js';

const run = promisify(execFile);
let dir: string;
let cleanup: () => Promise<void>;
const DAY = 86_400_000;

async function openssl(...args: string[]): Promise<void> {
  await run('openssl', args, { cwd: dir });
}

/** Makes a P-256 key and a CSR with the given subject. */
async function keyAndCsr(name: string, subject: string): Promise<void> {
  await openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject);
}

/** Signs `name`.csr with the issuer's key, extensions from `ext`, valid `days`. */
async function signCert(name: string, issuer: string, ext: string, days = 1): Promise<void> {
  await writeFile(join(dir, `${name}.ext`), ext);
  await openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${issuer}.crt`, '-CAkey', `${issuer}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', String(days), '-sha256', '-extfile', `${name}.ext`);
}

async function makeRoot(name: string): Promise<void> {
  await writeFile(join(dir, `${name}.cnf`), '[req]\ndistinguished_name=dn\n[dn]\n[v3]\nbasicConstraints=critical,CA:true\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n');
  await openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '365', '-subj', `/O=rampart-test/CN=${name}`, '-config', `${name}.cnf`, '-extensions', 'v3');
}

const INTERMEDIATE_EXT = 'basicConstraints=critical,CA:true,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectAltName=URI:spiffe://cluster.local\n';
function leafExt(sans: string, eku = 'serverAuth,clientAuth', ca = 'CA:false'): string {
  return `basicConstraints=critical,${ca}\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=${eku}\n${sans ? `subjectAltName=critical,${sans}\n` : ''}`;
}

async function makeLeaf(name: string, issuer: string, sans: string, eku?: string, ca?: string): Promise<void> {
  await keyAndCsr(name, '/');
  await signCert(name, issuer, leafExt(sans, eku, ca));
}

async function der(name: string): Promise<Buffer> {
  return new X509Certificate(await readFile(join(dir, `${name}.crt`))).raw;
}

async function pem(name: string): Promise<string> {
  return readFile(join(dir, `${name}.crt`), 'utf8');
}

before(async () => {
  ({ dir, cleanup } = await tempDir('rampart-authn-svid-'));
  for (const root of ['root', 'other-root']) {
    await makeRoot(root);
  }
  await keyAndCsr('int', '/O=rampart-test/CN=intermediate');
  await signCert('int', 'root', INTERMEDIATE_EXT, 30);
  await keyAndCsr('other-int', '/O=rampart-test/CN=other-intermediate');
  await signCert('other-int', 'other-root', INTERMEDIATE_EXT, 30);

  await makeLeaf('leaf', 'int', 'URI:spiffe://cluster.local/ns/shop/sa/cart');
  await makeLeaf('foreign-td', 'int', 'URI:spiffe://other.org/ns/shop/sa/cart');
  await makeLeaf('foreign-root', 'other-int', 'URI:spiffe://cluster.local/ns/shop/sa/cart');
  await makeLeaf('leaf-by-leaf', 'leaf', 'URI:spiffe://cluster.local/ns/kube-system/sa/admin');
  await makeLeaf('no-uri', 'int', 'DNS:cart.shop.svc');
  await makeLeaf('two-uris', 'int', 'URI:spiffe://cluster.local/ns/shop/sa/cart,URI:spiffe://cluster.local/ns/shop/sa/admin');
  await makeLeaf('server-only', 'int', 'URI:spiffe://cluster.local/ns/shop/sa/cart', 'serverAuth');
  await makeLeaf('ca-leaf', 'int', 'URI:spiffe://cluster.local/ns/shop/sa/cart', 'clientAuth', 'CA:true');
  await makeLeaf('td-only', 'int', 'URI:spiffe://cluster.local');
  await keyAndCsr('long-leaf', '/');
  await signCert('long-leaf', 'root', leafExt('URI:spiffe://cluster.local/ns/shop/sa/cart'), 500);
  await keyAndCsr('sub-int', '/O=rampart-test/CN=sub-intermediate');
  await signCert('sub-int', 'int', 'basicConstraints=critical,CA:true\nkeyUsage=critical,keyCertSign,cRLSign\n', 30);
  await makeLeaf('deep-leaf', 'sub-int', 'URI:spiffe://cluster.local/ns/shop/sa/cart');
  await makeLeaf('with-dns', 'int', 'DNS:cart.shop.svc,URI:spiffe://cluster.local/ns/shop/sa/cart');
  // A forger's chain: a CA of its own that copies the real root's name, one under it, and a leaf.
  await makeRoot('impostor-root');
  await keyAndCsr('impostor-named-root', '/O=rampart-test/CN=root');
  await signCert('impostor-named-root', 'impostor-root', 'basicConstraints=critical,CA:true\nkeyUsage=critical,keyCertSign,cRLSign\n', 30);
  await keyAndCsr('impostor-int', '/O=rampart-test/CN=impostor-int');
  await signCert('impostor-int', 'impostor-named-root', INTERMEDIATE_EXT, 30);
  await makeLeaf('impostor-leaf', 'impostor-int', 'URI:spiffe://cluster.local/ns/shop/sa/cart');
});
after(() => cleanup());

async function authenticator(anchors?: () => SvidTrustAnchors, clock = new ManualClock(Date.now())) {
  const rootPem = await pem('root');
  return createSvidAuthenticator({ trustAnchors: anchors ?? (() => ({ trustDomain: 'cluster.local', rootsPem: [rootPem] })), clock });
}

async function assertRefused(chain: Buffer[], detail: RegExp, auth?: Awaited<ReturnType<typeof authenticator>>): Promise<void> {
  const svid = auth ?? (await authenticator());
  await assert.rejects(svid.authenticate({ clientCertChain: chain }), (err: unknown) => {
    assert.ok(err instanceof AuthenticationError, `expected AuthenticationError, got ${String(err)}`);
    assert.equal(err.code, 'RAMPART_ERR_UNAUTHENTICATED');
    assert.match(err.detail, detail);
    return true;
  });
}

test('openssl itself accepts the test chain (sanity check of the fixtures)', async () => {
  const { stdout } = await run('openssl', ['verify', '-CAfile', 'root.crt', '-untrusted', 'int.crt', 'leaf.crt'], { cwd: dir });
  assert.match(stdout, /leaf\.crt: OK/);
});

test('accepts a valid SVID chained through its intermediate', async () => {
  const auth = await authenticator();
  assert.equal(auth.name, 'svid');
  const identity = await auth.authenticate({ clientCertChain: [await der('leaf'), await der('int')] });
  assert.deepEqual(identity, { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'cart' });
});

test('accepts an SVID that also carries a DNS SAN', async () => {
  const identity = await (await authenticator()).authenticate({ clientCertChain: [await der('with-dns'), await der('int')] });
  assert.equal(identity?.serviceAccount, 'cart');
});

test('returns null when no client certificate was presented', async () => {
  const auth = await authenticator();
  assert.equal(await auth.authenticate({}), null);
  assert.equal(await auth.authenticate({ clientCertChain: [] }), null);
});

test('refuses an expired leaf', async () => {
  const auth = await authenticator(undefined, new ManualClock(Date.now() + 2 * DAY));
  await assertRefused([await der('leaf'), await der('int')], /leaf is outside its validity/, auth);
});

test('refuses a leaf of another trust domain', async () => {
  await assertRefused([await der('foreign-td'), await der('int')], /not in trust domain cluster\.local/);
});

test('refuses a chain to an unknown root', async () => {
  await assertRefused([await der('foreign-root'), await der('other-int')], /does not lead to a root/);
});

test('refuses a leaf signed by a leaf', async () => {
  await assertRefused([await der('leaf-by-leaf'), await der('leaf'), await der('int')], /signed by a non-CA/);
});

test('refuses a leaf without a URI SAN', async () => {
  await assertRefused([await der('no-uri'), await der('int')], /0 URI SANs/);
});

test('refuses a leaf with two URI SANs', async () => {
  await assertRefused([await der('two-uris'), await der('int')], /2 URI SANs/);
});

test('refuses a leaf whose extended key usage lacks clientAuth', async () => {
  await assertRefused([await der('server-only'), await der('int')], /clientAuth/);
});

test('refuses a CA certificate as the leaf', async () => {
  await assertRefused([await der('ca-leaf'), await der('int')], /leaf is a CA/);
});

test('refuses a leaf naming only the trust domain', async () => {
  await assertRefused([await der('td-only'), await der('int')], /not a workload ID/);
});

test('refuses a chain that breaks an intermediate pathLen of 0, as openssl does', async () => {
  await assert.rejects(run('openssl', ['verify', '-CAfile', 'root.crt', '-untrusted', 'int.crt', '-untrusted', 'sub-int.crt', 'deep-leaf.crt'], { cwd: dir }));
  await assertRefused([await der('deep-leaf'), await der('sub-int'), await der('int')], /pathLen 0/);
});

test('refuses a leaf presented without its intermediate', async () => {
  await assertRefused([await der('leaf')], /does not lead to a root/);
});

test('refuses bytes that are not a certificate', async () => {
  await assertRefused([Buffer.from('not a certificate')], /not a well-formed X\.509 certificate/);
});

test('accepts a leaf signed directly by a root, and refuses it once the root has expired', async () => {
  const chain = [await der('long-leaf')];
  assert.equal((await (await authenticator()).authenticate({ clientCertChain: chain }))?.serviceAccount, 'cart');
  // The leaf (500 days) outlives its root (365 days): at day 400 only the root is expired.
  const auth = await authenticator(undefined, new ManualClock(Date.now() + 400 * DAY));
  await assertRefused(chain, /root outside its validity/, auth);
});

test('reads the trust anchors on every call, following root rotation', async () => {
  const anchors: SvidTrustAnchors[] = [{ trustDomain: 'cluster.local', rootsPem: [await pem('root')] }];
  const auth = await authenticator(() => anchors[0] as SvidTrustAnchors);
  const foreign = [await der('foreign-root'), await der('other-int')];
  await assertRefused(foreign, /does not lead to a root/, auth);
  anchors[0] = { trustDomain: 'cluster.local', rootsPem: [await pem('root'), await pem('other-root')] };
  assert.equal((await auth.authenticate({ clientCertChain: foreign }))?.namespace, 'shop');
  anchors[0] = { trustDomain: 'cluster.local', rootsPem: [await pem('other-root')] };
  await assertRefused([await der('leaf'), await der('int')], /does not lead to a root/, auth);
});

test('a chain that verified is reused, but never past a certificate\'s expiry or after the roots change', async () => {
  const clock = new ManualClock(Date.now());
  const anchors: SvidTrustAnchors[] = [{ trustDomain: 'cluster.local', rootsPem: [await pem('root')] }];
  const auth = await authenticator(() => anchors[0] as SvidTrustAnchors, clock);
  const chain = [await der('leaf'), await der('int')];
  assert.equal((await auth.authenticate({ clientCertChain: chain }))?.serviceAccount, 'cart');
  assert.equal((await auth.authenticate({ clientCertChain: chain }))?.serviceAccount, 'cart', 'served again (from the cache)');
  anchors[0] = { trustDomain: 'cluster.local', rootsPem: [await pem('other-root')] };
  await assertRefused(chain, /does not lead to a root/, auth);
  anchors[0] = { trustDomain: 'cluster.local', rootsPem: [await pem('root')] };
  assert.equal((await auth.authenticate({ clientCertChain: chain }))?.serviceAccount, 'cart');
  // A minute before the leaf expires it verifies; two minutes later (well inside the cache's
  // five) the cached entry must not outlive it.
  const nearExpiry = new ManualClock(Date.parse(new X509Certificate(chain[0] as Buffer).validTo) - 60_000);
  const late = await authenticator(() => anchors[0] as SvidTrustAnchors, nearExpiry);
  assert.equal((await late.authenticate({ clientCertChain: chain }))?.serviceAccount, 'cart');
  nearExpiry.advance(120_000);
  await assertRefused(chain, /leaf is outside its validity/, late);
});

/** Runs `body`, recording the public key (SPKI, base64) of every certificate signature check. */
async function keysUsedBy(body: () => Promise<unknown>): Promise<Set<string>> {
  const used = new Set<string>();
  const original = X509Certificate.prototype.verify;
  X509Certificate.prototype.verify = function (this: X509Certificate, key) {
    used.add(key.export({ format: 'der', type: 'spki' }).toString('base64'));
    return original.call(this, key);
  };
  try {
    await body();
  } finally {
    X509Certificate.prototype.verify = original;
  }
  return used;
}

const spkiOf = async (name: string): Promise<string> => new X509Certificate(await readFile(join(dir, `${name}.crt`))).publicKey.export({ format: 'der', type: 'spki' }).toString('base64');

test('signatures are checked from a trusted root down: a forged chain is refused without its own keys checking anything (outside QA: 32 ms a request)', async () => {
  const auth = await authenticator();
  const forged = [await der('impostor-leaf'), await der('impostor-int'), await der('impostor-named-root')];
  const used = await keysUsedBy(() => assertRefused(forged, /does not lead to a root/, auth));
  assert.deepEqual([...used], [await spkiOf('root')], 'only the trusted root checked a signature');
  // Refused again from memory: no signature is checked for the same chain within a short while.
  assert.equal((await keysUsedBy(() => assertRefused(forged, /does not lead to a root/, auth))).size, 0);
  // A genuine chain still verifies, its intermediate's key trusted only once the root vouched for it.
  const fresh = await authenticator();
  const genuine = await keysUsedBy(async () => assert.equal((await fresh.authenticate({ clientCertChain: [await der('leaf'), await der('int')] }))?.serviceAccount, 'cart'));
  assert.deepEqual(new Set(genuine), new Set([await spkiOf('root'), await spkiOf('int')]));
});

test('a refused chain is remembered for 10 s at most, and not once the roots change', async () => {
  const clock = new ManualClock(Date.now());
  const anchors: SvidTrustAnchors[] = [{ trustDomain: 'cluster.local', rootsPem: [await pem('root')] }];
  const auth = await authenticator(() => anchors[0] as SvidTrustAnchors, clock);
  const foreign = [await der('foreign-root'), await der('other-int')];
  await assertRefused(foreign, /does not lead to a root/, auth);
  anchors[0] = { trustDomain: 'cluster.local', rootsPem: [await pem('root'), await pem('other-root')] };
  assert.equal((await auth.authenticate({ clientCertChain: foreign }))?.namespace, 'shop', 'new roots: checked afresh');
  // A leaf 5 s before its notBefore: refused, still refused from memory once valid, checked again after 10 s.
  const chain = [await der('leaf'), await der('int')];
  const early = new ManualClock(Date.parse(new X509Certificate(chain[0] as Buffer).validFrom) - 5_000);
  const auth2 = await authenticator(undefined, early);
  await assertRefused(chain, /leaf is outside its validity/, auth2);
  early.advance(6_000);
  await assertRefused(chain, /leaf is outside its validity/, auth2);
  early.advance(5_000);
  assert.equal((await auth2.authenticate({ clientCertChain: chain }))?.serviceAccount, 'cart', 'after 10 s the chain is checked again');
});

test('authenticates the chain openssl s_client presents over a real TLS connection', async () => {
  const tls = await import('node:tls');
  const { spawn } = await import('node:child_process');
  const { peerChain } = await import('../../src/tls/peer-chain.js');
  const auth = await authenticator();
  // The server's own certificate: any will do, the client does not verify it here.
  await makeLeaf('server', 'int', 'URI:spiffe://cluster.local/ns/rampart-system/sa/rampart-ca');
  let authenticated: ((result: Promise<unknown>) => void) | undefined;
  const result = new Promise<Promise<unknown>>((resolve) => {
    authenticated = resolve;
  });
  const server = tls.createServer(
    { key: await readFile(join(dir, 'server.key')), cert: await readFile(join(dir, 'server.crt')), requestCert: true, rejectUnauthorized: false },
    (socket) => {
      // The chain as the CA's request path reads it (server/caller.ts).
      authenticated?.(auth.authenticate({ clientCertChain: peerChain(socket).certs }));
      socket.end();
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  try {
    const client = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-cert', 'leaf.crt', '-key', 'leaf.key', '-cert_chain', 'int.crt', '-quiet'], { cwd: dir, stdio: ['pipe', 'ignore', 'ignore'] });
    const exited = new Promise<void>((resolve) => client.on('exit', () => resolve()));
    client.stdin.end();
    assert.deepEqual(await (await result), { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'cart' });
    await exited;
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
