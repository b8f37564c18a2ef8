/** The `rampart` CLI for the CA side: help, usage errors, token, cert inspect and bundle (DESIGN section 2). */
import { test, before, after } from 'node:test';
import { spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatStatus } from '../../src/cli/commands/root.js';
import { certificatePem, decodeCertificates } from '../../src/core/pki/pem.js';
import { startTestCa, type TestCa } from '../helpers/ca.js';
import { runCliSync, spawnCli } from '../helpers/cli.js';
import { httpsJson } from '../helpers/https.js';
import { OpenSsl } from '../helpers/openssl.js';
import { makeKey, writeJwks } from '../unit/authn-jwt-helpers.js';
import { buildCertificate } from '../helpers/pki-build.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI without blocking this process (the in-process CA must keep answering). */
function cli(args: string[]): Promise<Run> {
  const child = spawnCli(args);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

let ca: TestCa;
let ssl: OpenSsl;
let dir: string;

before(async () => {
  ca = await startTestCa();
  ssl = await OpenSsl.create('rampart-cli-');
  dir = await mkdtemp(join(tmpdir(), 'rampart-cli-state-'));
});

after(async () => {
  await ca?.close();
  await ssl?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('--help of ca, token, cert and bundle exits 0 and prints usage', async () => {
  const runs = await Promise.all(['ca', 'token', 'cert', 'bundle'].map((c) => cli([c, '--help']).then((r) => [c, r] as const)));
  for (const [command, r] of runs) {
    assert.equal(r.code, 0, `${command}: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`^Usage: rampart ${command}`), command);
    assert.equal(r.stderr.includes(' at '), false);
  }
  assert.match(runs[0]?.[1].stdout ?? '', /--state-dir DIR[\s\S]*--min-ttl[\s\S]*--max-ttl/);
});

test('usage errors exit 2 with one clear line and no stack trace', async () => {
  const [bogus, noNamespace, badFormat, twice, unknown] = await Promise.all([
    cli(['ca', '--bogus']),
    cli(['token', '--service-account', 'cart', '--state-dir', dir]),
    cli(['bundle', '--format', 'der', '--ca-bundle', `${ca.stateDir}/root-cert.pem`]),
    cli(['ca', '--listen', '127.0.0.1:1', '--listen', '127.0.0.1:2']),
    cli(['frobnicate']),
  ]);
  assert.equal(bogus.code, 2);
  const [first, ...rest] = bogus.stderr.trimEnd().split('\n');
  assert.match(first ?? '', /^rampart ca: .*--bogus.* \[RAMPART_ERR_USAGE\]$/);
  assert.ok(rest.length <= 1 && rest.every((l) => /rampart ca --help/.test(l)), bogus.stderr);
  assert.doesNotMatch(bogus.stderr, /\n\s+at /);
  assert.equal(noNamespace.code, 2);
  assert.match(noNamespace.stderr, /^rampart token: missing required flag --namespace \[RAMPART_ERR_USAGE\]$/m);
  assert.doesNotMatch(noNamespace.stderr, /\n\s+at /);
  assert.equal(noNamespace.stdout, '', 'no token printed');
  assert.equal(badFormat.code, 2);
  assert.match(badFormat.stderr, /--format must be pem, json or jwks/);
  // A flag given twice is refused rather than silently taking the last value.
  assert.equal(twice.code, 2);
  assert.match(twice.stderr, /^rampart ca: --listen is given more than once; give it once \[RAMPART_ERR_USAGE\]$/m);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /^rampart: unknown command "frobnicate" \[RAMPART_ERR_USAGE\]$/m);
});

test('a newcomer\'s slips get a way forward: --version, help COMMAND, a near-miss command or flag named, a flag missing its value said in one line (outside QA)', async () => {
  const [versionRun, helpCa, agnet, lsiten, valueless] = await Promise.all([
    cli(['--version']),
    cli(['help', 'ca']),
    cli(['agnet']),
    cli(['ca', '--lsiten', '127.0.0.1:0']),
    cli(['token', '--namespace', '--service-account', 'web', '--state-dir', dir]),
  ]);
  const pkg = JSON.parse(await readFile(join(fileURLToPath(new URL('../../', import.meta.url)), 'package.json'), 'utf8')) as { version: string };
  assert.equal(versionRun.code, 0);
  assert.equal(versionRun.stdout, `rampart ${pkg.version}\n`);
  assert.equal(helpCa.code, 0);
  assert.match(helpCa.stdout, /^Usage: rampart ca/);
  assert.equal(agnet.code, 2);
  assert.match(agnet.stderr, /^rampart: unknown command "agnet"; did you mean "agent"\? \[RAMPART_ERR_USAGE\]$/m);
  assert.equal(lsiten.code, 2);
  assert.match(lsiten.stderr, /^rampart ca: Unknown option '--lsiten'; did you mean --listen\? \[RAMPART_ERR_USAGE\]$/m);
  assert.equal(valueless.code, 2);
  assert.match(valueless.stderr, /^rampart token: --namespace needs a value, but the next word is another flag; for a value that starts with "-", write --namespace=-VALUE \[RAMPART_ERR_USAGE\]\nRun "rampart token --help" for usage\.\n$/);
  assert.equal(valueless.stdout, '', 'no token printed');
});

test('rampart ca with both --jwks-file and --jwks-url refuses to start (exit 2, config error naming both)', async () => {
  const r = await cli(['ca', '--state-dir', dir, '--listen', '127.0.0.1:0', '--monitoring-listen', '127.0.0.1:0', '--authn', 'jwks', '--jwks-issuer', 'https://issuer.example', '--jwks-file', join(dir, 'keys.json'), '--jwks-url', 'https://issuer.example/keys']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^rampart ca: --jwks-file and --jwks-url both say where the jwks keys come from; .* \[RAMPART_ERR_CONFIG_INVALID\]$/m);
  assert.doesNotMatch(r.stderr, /listening|\n\s+at /);
});

test('rampart ca with a --state-dir that cannot be created exits 2 at once, even on procfs', () => {
  // procfs refuses new entries with ENOENT, on which node's own recursive mkdir loops forever at full CPU.
  const r = runCliSync(['ca', '--state-dir', '/proc/rampart-nope/state', '--listen', '127.0.0.1:0', '--monitoring-listen', '127.0.0.1:0'], { timeoutMs: 20_000 });
  assert.equal(r.status, 2, `exit ${r.status} (signal ${r.signal}): ${r.stderr}`);
  assert.match(r.stderr, /\/proc\/rampart-nope\/state.*ENOENT.*\[RAMPART_ERR_CONFIG_INVALID\]/);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
});

/** Starts `rampart ca ARGS` on port 0, returns its start banner (stderr) and stops it with SIGTERM. */
async function startBanner(args: string[]): Promise<string> {
  const child = spawnCli(['ca', '--listen', '127.0.0.1:0', '--monitoring-listen', '127.0.0.1:0', ...args]);
  let stderr = '';
  child.stdout?.resume();
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no banner within 60 s: ${stderr}`)), 60_000);
      child.stderr?.on('data', (c: Buffer) => {
        stderr += c.toString();
        if (stderr.includes('Rampart CA listening') && stderr.endsWith('\n\n')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`rampart ca exited ${String(code)}: ${stderr}`));
      });
    });
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
  }
  return stderr;
}

test('rampart ca with an unreadable jwks.file from the config file names the config key, not --jwks-file (exit 2)', async () => {
  const config = join(dir, 'jwks-config.json');
  const missing = join(dir, 'no-such-keys.json');
  await writeFile(config, JSON.stringify({ authn: 'dev,jwks', jwks: { issuer: 'https://issuer.example', file: missing } }));
  const r = await cli(['ca', '--config', config, '--state-dir', join(dir, 'jwks-config-state'), '--listen', '127.0.0.1:0', '--monitoring-listen', '127.0.0.1:0']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, new RegExp(`^rampart ca: config "jwks\\.file" ${missing.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} cannot be read \\(ENOENT\\) \\[RAMPART_ERR_CONFIG_INVALID\\]$`, 'm'));
  const flag = await cli(['ca', '--state-dir', join(dir, 'jwks-flag-state'), '--listen', '127.0.0.1:0', '--monitoring-listen', '127.0.0.1:0', '--authn', 'jwks', '--jwks-issuer', 'https://issuer.example', '--jwks-file', missing]);
  assert.equal(flag.code, 2, flag.stderr);
  assert.match(flag.stderr, /^rampart ca: --jwks-file \S+ cannot be read \(ENOENT\)/m);
});

test('the start banner suggests rampart token only when the dev issuer runs; under --authn jwks it names the accepted tokens', { timeout: 150_000 }, async () => {
  const key = makeKey('ES256', 'banner');
  const jwksFile = join(dir, 'banner-keys.json');
  await writeJwks(jwksFile, [key]);
  const [dev, jwks] = await Promise.all([
    startBanner(['--state-dir', join(dir, 'banner-dev')]),
    startBanner(['--state-dir', join(dir, 'banner-jwks'), '--authn', 'jwks,svid', '--jwks-issuer', 'https://issuer.banner.example', '--jwks-file', jwksFile]),
  ]);
  // The printed command works from any directory: the absolute bin, not `npx rampart` (which
  // outside the checkout asks the npm registry), and the absolute state dir (outside QA).
  const tokenCommand = /TOKEN=\$\((node \S+\/bin\/rampart\.js token --namespace default --service-account demo --state-dir \/\S*banner-dev)\)/.exec(dev)?.[1];
  assert.ok(tokenCommand !== undefined, dev);
  const elsewhere = await mkdtemp(join(tmpdir(), 'rampart-elsewhere-'));
  try {
    const minted = spawnSync('sh', ['-c', tokenCommand], { cwd: elsewhere, encoding: 'utf8' });
    assert.equal(minted.status, 0, minted.stderr);
    assert.equal(minted.stderr, '', 'the CA made the issuer: no new key, no note');
    const kid = (JSON.parse(Buffer.from(minted.stdout.split('.')[0] as string, 'base64url').toString()) as { kid: string }).kid;
    const jwksKids = (JSON.parse(await readFile(join(dir, 'banner-dev', 'dev-issuer.jwks.json'), 'utf8')) as { keys: Array<{ kid: string }> }).keys.map((k) => k.kid);
    assert.deepEqual(jwksKids, [kid], 'signed by the CA\'s dev issuer');
  } finally {
    await rm(elsewhere, { recursive: true, force: true });
  }
  assert.doesNotMatch(jwks, /rampart token/);
  assert.match(jwks, /Accepted callers \(--authn jwks,svid\):\n  jwks: .*issued by https:\/\/issuer\.banner\.example for audience rampart-ca\n  svid: /);
  assert.match(jwks, /TOKEN=\$\(cat \/path\/to\/service-account\.token\)\n  openssl req /);
});

test('rampart token --ttl out of range, too short or too long, is one usage error (exit 2); the bounds 1s and 366d mint', async () => {
  const base = ['token', '--namespace', 'shop', '--service-account', 'cart', '--state-dir', dir];
  const runs = await Promise.all(['0s', '400d', '500ms', 'soon', '1s', '366d'].map((ttl) => cli([...base, '--ttl', ttl])));
  const [zero, tooLong, subSecond, notDuration, shortest, longest] = runs as [Run, Run, Run, Run, Run, Run];
  for (const [r, ttl] of [[zero, '0s'], [tooLong, '400d'], [subSecond, '500ms']] as const) {
    assert.equal(r.code, 2, `${ttl}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^rampart token: --ttl "${ttl}" is out of range: a dev token lives from 1s to 366d \\[RAMPART_ERR_USAGE\\]$`, 'm'));
    assert.equal(r.stdout, '', 'no token printed');
  }
  assert.equal(notDuration.code, 2);
  assert.match(notDuration.stderr, /--ttl "soon" is not a duration such as 10m or 1h \[RAMPART_ERR_USAGE\]/);
  for (const r of [shortest, longest]) assert.equal(r.code, 0, r.stderr);
  const exp = (r: Run) => (JSON.parse(Buffer.from(r.stdout.trim().split('.')[1] as string, 'base64url').toString()) as { iat: number; exp: number });
  assert.equal(exp(shortest).exp - exp(shortest).iat, 1);
  assert.equal(exp(longest).exp - exp(longest).iat, 366 * 86_400);
});

test('rampart token refuses names over Kubernetes\' limits as a usage error (exit 2), like any name it cannot use; exactly 63 and 253 characters mint', async () => {
  const base = ['token', '--state-dir', dir];
  const [longNs, longSa, spaced, atLimit] = (await Promise.all([
    cli([...base, '--namespace', 'n'.repeat(64), '--service-account', 'cart']),
    cli([...base, '--namespace', 'shop', '--service-account', 's'.repeat(254)]),
    cli([...base, '--namespace', 'a b', '--service-account', 'cart']),
    cli([...base, '--namespace', 'n'.repeat(63), '--service-account', 's'.repeat(253)]),
  ])) as [Run, Run, Run, Run];
  assert.equal(longNs.code, 2, longNs.stderr);
  assert.match(longNs.stderr, /^rampart token: --namespace is 64 characters long; Kubernetes allows at most 63 \[RAMPART_ERR_USAGE\]$/m);
  assert.equal(longSa.code, 2, longSa.stderr);
  assert.match(longSa.stderr, /^rampart token: --service-account is 254 characters long; Kubernetes allows at most 253 \[RAMPART_ERR_USAGE\]$/m);
  assert.equal(spaced.code, 2, spaced.stderr);
  for (const r of [longNs, longSa, spaced]) assert.equal(r.stdout, '', 'no token printed');
  assert.equal(atLimit.code, 0, atLimit.stderr);
  // Names Kubernetes itself would refuse mint no token either (outside QA: "Default" minted one).
  const [upper, upperSa, dotted] = await Promise.all([
    cli([...base, '--namespace', 'Default', '--service-account', 'cart']),
    cli([...base, '--namespace', 'shop', '--service-account', 'My.SA']),
    cli([...base, '--namespace', 'shop', '--service-account', 'cart.v2']),
  ]);
  assert.equal(upper.code, 2);
  assert.match(upper.stderr, /^rampart token: --namespace "Default" is not a Kubernetes namespace name \(lowercase letters, digits and "-", .*\) \[RAMPART_ERR_USAGE\]$/m);
  assert.equal(upperSa.code, 2);
  assert.match(upperSa.stderr, /--service-account "My\.SA" is not a Kubernetes service account name/);
  for (const r of [upper, upperSa]) assert.equal(r.stdout, '', 'no token printed');
  assert.equal(dotted.code, 0, 'a service account name may hold dots');
  // The pod a token is bound to is named as Kubernetes names pods: a DNS subdomain and a UUID.
  const pod = [...base, '--namespace', 'shop', '--service-account', 'cart'];
  const uid = '0b3c6d0e-6f2a-4c1e-9b7d-2f1e8a9c4d5b';
  const [badPod, badUid, upperUid, goodPod] = await Promise.all([
    cli([...pod, '--pod-name', 'Web_1', '--pod-uid', uid]),
    cli([...pod, '--pod-name', 'web-1', '--pod-uid', 'not-a-uid']),
    cli([...pod, '--pod-name', 'web-1', '--pod-uid', uid.toUpperCase()]),
    cli([...pod, '--pod-name', 'web-7d9f.x', '--pod-uid', uid]),
  ]);
  assert.equal(badPod.code, 2);
  assert.match(badPod.stderr, /--pod-name "Web_1" is not a Kubernetes pod name/);
  assert.equal(badUid.code, 2);
  assert.match(badUid.stderr, /--pod-uid "not-a-uid" is not a Kubernetes UID \(a lowercase UUID/);
  assert.equal(upperUid.code, 2, 'the API server writes UIDs in lowercase');
  for (const r of [badPod, badUid, upperUid]) assert.equal(r.stdout, '', 'no token printed');
  assert.equal(goodPod.code, 0, goodPod.stderr);
  const claims = JSON.parse(Buffer.from(goodPod.stdout.split('.')[1] as string, 'base64url').toString()) as { 'kubernetes.io': { pod: { name: string; uid: string } } };
  assert.deepEqual(claims['kubernetes.io'].pod, { name: 'web-7d9f.x', uid });
});

test('rampart token says on stderr when it creates a new dev issuer key, and where, since no CA elsewhere accepts its token (outside QA)', async () => {
  const fresh = join(dir, 'fresh-issuer');
  const first = await cli(['token', '--namespace', 'shop', '--service-account', 'cart', '--state-dir', fresh]);
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /^[\w-]+\.[\w-]+\.[\w-]+\n$/, 'the token alone on stdout');
  assert.equal(first.stderr, `rampart token: created a new dev issuer key in ${fresh}; only a CA running with --state-dir ${fresh} accepts this token (one started elsewhere answers 401)\n`);
  const second = await cli(['token', '--namespace', 'shop', '--service-account', 'cart', '--state-dir', fresh]);
  assert.equal(second.code, 0, second.stderr);
  assert.equal(second.stderr, '', 'an existing issuer: nothing to say');
});

test('rampart token prints a JWT shaped like a projected service-account token, accepted by the CA', async () => {
  const r = await cli(['token', '--namespace', 'shop', '--service-account', 'cart', '--state-dir', ca.stateDir]);
  assert.equal(r.code, 0, r.stderr);
  const token = r.stdout.trim();
  const parts = token.split('.');
  assert.equal(parts.length, 3);
  for (const p of parts) assert.match(p, /^[A-Za-z0-9_-]+$/);
  const header = JSON.parse(Buffer.from(parts[0] as string, 'base64url').toString()) as { alg: string };
  const claims = JSON.parse(Buffer.from(parts[1] as string, 'base64url').toString()) as { sub: string; aud: string | string[]; exp: number };
  assert.notEqual(header.alg, 'none');
  assert.equal(claims.sub, 'system:serviceaccount:shop:cart');
  assert.ok((Array.isArray(claims.aud) ? claims.aud : [claims.aud]).includes('rampart-ca'));
  assert.ok(claims.exp * 1000 > Date.now());
  const { csrPem } = await ssl.keyAndCsr();
  const res = await httpsJson(`${ca.apiUrl}/v1/certificates`, { ca: ca.rootCertPem(), token, body: { csr: csrPem } });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.body.spiffeId, 'spiffe://cluster.local/ns/shop/sa/cart');
});

test('rampart cert inspect FILE prints SPIFFE ID, serial, validity, key type and chain', async () => {
  const { csrPem } = await ssl.keyAndCsr({ key: 'P-384' });
  const res = await httpsJson(`${ca.apiUrl}/v1/certificates`, { ca: ca.rootCertPem(), token: await ca.token('web', 'frontend'), body: { csr: csrPem } });
  assert.equal(res.status, 200);
  const file = join(dir, 'cert-chain.pem');
  await writeFile(file, (res.body.certChain as string[]).join(''));
  const r = await cli(['cert', 'inspect', file]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^SPIFFE ID:\s+spiffe:\/\/cluster\.local\/ns\/web\/sa\/frontend$/m);
  assert.match(r.stdout, new RegExp(`^Serial:\\s+${res.body.serial}$`, 'mi'));
  assert.match(r.stdout, new RegExp(`^Not after:\\s+${res.body.expiresAt.replace(/\./g, '\\.')}`, 'm'));
  assert.match(r.stdout, new RegExp(`^Not before:\\s+${res.body.notBefore.replace(/\./g, '\\.')}$`, 'm'), 'valid already: no NOT YET VALID mark');
  assert.match(r.stdout, /^Key:\s+ECDSA P-384$/m);
  assert.match(r.stdout, /^CA:\s+no$/m);
  assert.doesNotMatch(r.stdout, /^Warning:/m);
  assert.match(r.stdout, /^\s+\[1\] .*Rampart Intermediate CA G1.*spiffe:\/\/cluster\.local /m);
  // `-` reads standard input, so `curl ... | jq ... | rampart cert inspect -` works.
  const piped = runCliSync(['cert', 'inspect', '-'], { input: (res.body.certChain as string[]).join('') });
  assert.equal(piped.status, 0, piped.stderr);
  assert.equal(piped.stdout, r.stdout);
  const emptyStdin = runCliSync(['cert', 'inspect', '-'], { input: '' });
  assert.equal(emptyStdin.status, 2);
  assert.match(emptyStdin.stderr, /standard input holds no PEM CERTIFICATE block/);
  const missing = await cli(['cert', 'inspect', join(dir, 'nope.pem')]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /cannot read .*nope\.pem: ENOENT/);
  // A block OpenSSL cannot read as DER is named by its place, and not blamed on a missing BEGIN
  // line (OpenSSL's own message after its PEM fallback, "PEM routines::no start line").
  const [fixture] = decodeCertificates(await readFile(fileURLToPath(new URL('../fixtures/fuzz/leaf.pem', import.meta.url)), 'utf8'));
  const damaged = Buffer.from(fixture as Buffer);
  damaged[10] = 0; // inside the serial number: Rampart's reader takes it, OpenSSL does not
  const bad = join(dir, 'damaged.pem');
  await writeFile(bad, (res.body.certChain as string[])[0] + certificatePem(damaged));
  const refused = await cli(['cert', 'inspect', bad]);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /damaged\.pem: certificate 2 of 2 is not a well-formed X\.509 certificate \(its DER does not decode\) \[RAMPART_ERR_USAGE\]/);
  assert.doesNotMatch(refused.stderr, /no start line/);
  // A block the PEM reader cannot decode at all is named too, not skipped (it read as a leaf alone).
  const intermediatePem = (res.body.certChain as string[])[1] as string;
  const lines = intermediatePem.split('\n');
  const variants = {
    'bad-base64.pem': [lines[0], `!!!!${(lines[1] as string).slice(4)}`, ...lines.slice(2)].join('\n'),
    'no-end.pem': lines.filter((l) => !l.startsWith('-----END')).join('\n'),
  };
  for (const [name, second] of Object.entries(variants)) {
    const path = join(dir, name);
    await writeFile(path, (res.body.certChain as string[])[0] + second);
    const r2 = await cli(['cert', 'inspect', path]);
    assert.equal(r2.code, 2, `${name}: ${r2.stdout}`);
    assert.match(r2.stderr, new RegExp(`${name.replace('.', '\\.')}: certificate 2 of 2 is not a readable PEM block`));
  }
});

test('cert inspect on a certificate with two URI SANs says it is no X.509-SVID instead of showing the first as its SPIFFE ID', async () => {
  const sans = ['spiffe://cluster.local/ns/shop/sa/web', 'spiffe://cluster.local/ns/shop/sa/admin'];
  await ssl.run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'two-uris.key', '-out', 'two-uris.pem', '-subj', '/O=Two URIs', '-days', '1',
    '-addext', `subjectAltName=${sans.map((u) => `URI:${u}`).join(',')}`, '-addext', 'basicConstraints=critical,CA:FALSE', '-addext', 'keyUsage=critical,digitalSignature']);
  const [text, json] = await Promise.all([cli(['cert', 'inspect', ssl.path('two-uris.pem')]), cli(['cert', 'inspect', ssl.path('two-uris.pem'), '--json'])]);
  // As for an expired certificate or a bundle: the file was read, so the verdict is in the output.
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^SPIFFE ID:\s+\(none: not an X\.509-SVID\)$/m);
  assert.match(text.stdout, /^Warning:\s+2 URI SANs \(spiffe:\/\/cluster\.local\/ns\/shop\/sa\/web, spiffe:\/\/cluster\.local\/ns\/shop\/sa\/admin\); an X\.509-SVID must have exactly one, so this is no SVID$/m);
  assert.equal(json.code, 0, json.stderr);
  const [summary] = JSON.parse(json.stdout) as Array<{ spiffeId: string | null; uriSans: string[]; warnings: string[] }>;
  assert.equal(summary?.spiffeId, null);
  assert.deepEqual(summary?.uriSans, sans);
  assert.equal(summary?.warnings.length, 1);
});

test('cert inspect warns of cA=TRUE with a workload SPIFFE ID (no SVID), but not with the trust-domain ID a CA carries', async () => {
  const selfSigned = (name: string, uri: string): Promise<unknown> =>
    ssl.run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`, '-subj', `/O=${name}`, '-days', '1',
      '-addext', `subjectAltName=URI:${uri}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,digitalSignature,keyCertSign']);
  const workloadId = 'spiffe://cluster.local/ns/shop/sa/web';
  await Promise.all([selfSigned('ca-workload', workloadId), selfSigned('ca-domain', 'spiffe://cluster.local')]);
  const [text, json, domain] = await Promise.all([
    cli(['cert', 'inspect', ssl.path('ca-workload.pem')]),
    cli(['cert', 'inspect', ssl.path('ca-workload.pem'), '--json']),
    cli(['cert', 'inspect', ssl.path('ca-domain.pem'), '--json']),
  ]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^SPIFFE ID:\s+\(none: not an X\.509-SVID\)$/m);
  assert.match(text.stdout, /^Warning:\s+basicConstraints cA=TRUE with the workload SPIFFE ID spiffe:\/\/cluster\.local\/ns\/shop\/sa\/web; an X\.509-SVID leaf must have cA=false .*so this is no SVID$/m);
  assert.match(text.stdout, /^CA:\s+yes$/m);
  assert.equal(json.code, 0, json.stderr);
  const [summary] = JSON.parse(json.stdout) as Array<{ spiffeId: string | null; uriSans: string[]; warnings: string[]; isCa: boolean }>;
  assert.equal(summary?.spiffeId, null);
  assert.deepEqual(summary?.uriSans, [workloadId]);
  assert.equal(summary?.isCa, true);
  assert.equal(summary?.warnings.length, 1);
  assert.match(summary?.warnings[0] ?? '', /cA=TRUE with the workload SPIFFE ID/);
  // A signing certificate's SPIFFE ID is the trust domain's, with no path: that is as it should be.
  assert.equal(domain.code, 0, domain.stderr);
  const [ca] = JSON.parse(domain.stdout) as Array<{ spiffeId: string | null; warnings: string[] }>;
  assert.equal(ca?.spiffeId, 'spiffe://cluster.local');
  assert.deepEqual(ca?.warnings, []);
});

test('cert inspect marks a certificate whose notBefore is in the future NOT YET VALID and warns, in text and JSON', async () => {
  // openssl 3.0's x509 and req cannot set a future notBefore; openssl ca -startdate can.
  await ssl.write('future.cnf', '[ca]\ndefault_ca = future\n[future]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\ndefault_md = sha256\npolicy = anything\ncopy_extensions = copy\nunique_subject = no\n[anything]\norganizationName = optional\n');
  await ssl.write('index.txt', '');
  await ssl.write('serial', '01\n');
  await ssl.run(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'future.key', '-out', 'future.csr', '-subj', '/O=Future',
    '-addext', 'subjectAltName=URI:spiffe://cluster.local/ns/shop/sa/web', '-addext', 'basicConstraints=critical,CA:FALSE', '-addext', 'keyUsage=critical,digitalSignature']);
  const day = 86_400_000;
  const asn1Time = (ms: number): string => `${new Date(ms).toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;
  const notBefore = Math.floor((Date.now() + 30 * day) / 1000) * 1000;
  await ssl.run(['ca', '-config', 'future.cnf', '-batch', '-selfsign', '-keyfile', 'future.key', '-in', 'future.csr', '-out', 'future.pem', '-notext', '-startdate', asn1Time(notBefore), '-enddate', asn1Time(notBefore + 30 * day)]);
  const [text, json] = await Promise.all([cli(['cert', 'inspect', ssl.path('future.pem')]), cli(['cert', 'inspect', ssl.path('future.pem'), '--json'])]);
  const iso = new Date(notBefore).toISOString().replace(/\./g, '\\.');
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, new RegExp(`^Not before:\\s+${iso}  \\(NOT YET VALID\\)$`, 'm'));
  assert.match(text.stdout, new RegExp(`^Warning:\\s+not valid before ${iso} \\(in (29|30) days\\); peers refuse it until then`, 'm'));
  // It is an SVID all the same, just not yet.
  assert.match(text.stdout, /^SPIFFE ID:\s+spiffe:\/\/cluster\.local\/ns\/shop\/sa\/web$/m);
  assert.equal(json.code, 0, json.stderr);
  const [summary] = JSON.parse(json.stdout) as Array<{ spiffeId: string | null; notBefore: string; warnings: string[] }>;
  assert.equal(summary?.spiffeId, 'spiffe://cluster.local/ns/shop/sa/web');
  assert.equal(summary?.notBefore, new Date(notBefore).toISOString());
  assert.equal(summary?.warnings.length, 1);
  assert.match(summary?.warnings[0] ?? '', /^not valid before /);
});

test('cert inspect warns of an expired certificate in --json too, and of an expired intermediate under its own chain line', async () => {
  await ssl.write('past.cnf', '[ca]\ndefault_ca = past\n[past]\ndatabase = past-index.txt\nnew_certs_dir = .\nserial = past-serial\ndefault_md = sha256\npolicy = anything\ncopy_extensions = copy\nunique_subject = no\n[anything]\norganizationName = optional\n');
  await ssl.write('past-index.txt', '');
  await ssl.write('past-serial', '01\n');
  await ssl.run(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'past.key', '-out', 'past.csr', '-subj', '/O=Past CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
  const day = 86_400_000;
  const asn1Time = (ms: number): string => `${new Date(ms).toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;
  const notAfter = Math.floor((Date.now() - 3 * day) / 1000) * 1000;
  await ssl.run(['ca', '-config', 'past.cnf', '-batch', '-selfsign', '-keyfile', 'past.key', '-in', 'past.csr', '-out', 'past-ca.pem', '-notext', '-startdate', asn1Time(notAfter - 30 * day), '-enddate', asn1Time(notAfter)]);
  // A leaf valid today under the expired CA: openssl x509 -req does not check its CA's dates.
  await ssl.run(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'fresh.key', '-out', 'fresh.csr', '-subj', '/O=Fresh']);
  await ssl.write('fresh.ext', 'subjectAltName=URI:spiffe://cluster.local/ns/shop/sa/web\nbasicConstraints=critical,CA:FALSE\n');
  await ssl.run(['x509', '-req', '-in', 'fresh.csr', '-CA', 'past-ca.pem', '-CAkey', 'past.key', '-CAcreateserial', '-days', '1', '-extfile', 'fresh.ext', '-out', 'fresh.pem']);
  await ssl.write('fresh-chain.pem', (await readFile(ssl.path('fresh.pem'), 'utf8')) + (await readFile(ssl.path('past-ca.pem'), 'utf8')));
  const iso = new Date(notAfter).toISOString().replace(/\./g, '\\.');

  const [expiredJson, chainText, chainJson] = await Promise.all([
    cli(['cert', 'inspect', ssl.path('past-ca.pem'), '--json']),
    cli(['cert', 'inspect', ssl.path('fresh-chain.pem')]),
    cli(['cert', 'inspect', ssl.path('fresh-chain.pem'), '--json']),
  ]);
  assert.equal(expiredJson.code, 0, expiredJson.stderr);
  const [expired] = JSON.parse(expiredJson.stdout) as Array<{ warnings: string[] }>;
  assert.equal(expired?.warnings.length, 1, JSON.stringify(expired?.warnings));
  assert.match(expired?.warnings[0] ?? '', new RegExp(`^expired at ${iso} \\(3 days ago\\); peers refuse it`));

  assert.equal(chainText.code, 0, chainText.stderr);
  assert.doesNotMatch(chainText.stdout, /^Warning:/m, 'the leaf itself is fine');
  assert.match(chainText.stdout, new RegExp(`^  \\[1\\] O=Past CA .*\\n      Warning: expired at ${iso} `, 'm'));
  const [leaf, ca] = JSON.parse(chainJson.stdout) as Array<{ warnings: string[] }>;
  assert.deepEqual(leaf?.warnings, []);
  assert.equal(ca?.warnings.length, 1);
});

test('cert inspect shows a spiffe:// URI SAN that breaks the SPIFFE-ID spec as no SPIFFE ID, with the reason', async () => {
  const cases: Array<[string, RegExp]> = [
    ['spiffe://Cluster.local/ns/shop/sa/web', /trust domain may contain only lowercase/],
    ['spiffe://cluster.local/ns/../sa/web', /must not be "\." or "\.\."/],
    ['spiffe://cluster.local/ns/shop/sa/web?x=1', /query is not allowed/],
  ];
  await Promise.all(cases.map(([uri], i) => ssl.run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `bad-id-${i}.key`, '-out', `bad-id-${i}.pem`, '-subj', '/O=Bad ID', '-days', '1', '-addext', `subjectAltName=URI:${uri}`])));
  for (const [i, [uri, reason]] of cases.entries()) {
    const r = await cli(['cert', 'inspect', ssl.path(`bad-id-${i}.pem`)]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^SPIFFE ID:\s+\(none: not an X\.509-SVID\)$/m, uri);
    const warning = r.stdout.split('\n').find((l) => l.startsWith('Warning:')) ?? '';
    assert.ok(warning.includes(`URI SAN ${uri} is no valid SPIFFE ID`), warning);
    assert.match(warning, reason);
  }
});

test('rampart bundle --ca-url --ca-bundle --format json|pem|jwks', async () => {
  const base = ['bundle', '--ca-url', ca.apiUrl, '--ca-bundle', `${ca.stateDir}/root-cert.pem`];
  const [json, pem, jwks] = await Promise.all([cli([...base, '--format', 'json']), cli([...base, '--format', 'pem']), cli([...base, '--format', 'jwks'])]);
  assert.equal(json.code, 0, json.stderr);
  const parsed = JSON.parse(json.stdout) as { trustDomain: string; sequence: number; roots: Array<{ pem: string; phase: string }> };
  assert.equal(parsed.trustDomain, 'cluster.local');
  assert.equal(parsed.sequence, 1);
  assert.equal(parsed.roots[0]?.pem, ca.rootCertPem());
  assert.equal(pem.code, 0, pem.stderr);
  assert.equal(pem.stdout, ca.rootCertPem());
  assert.equal(jwks.code, 0, jwks.stderr);
  const set = JSON.parse(jwks.stdout) as { keys: Array<{ use: string; x5c: string[] }>; spiffe_sequence: number };
  assert.equal(set.keys[0]?.use, 'x509-svid');
  assert.equal(set.spiffe_sequence, 1);
});

test('a malformed --ca-url is a config error naming the flag (exit 2) for bundle and every root step, as an http:// one is', async () => {
  const tokenFile = join(dir, 'ca-url-admin.token');
  await writeFile(tokenFile, await ca.token('rampart-system', 'rampart-admin'));
  const files = ['--ca-bundle', `${ca.stateDir}/root-cert.pem`];
  const rootStep = (step: string): string[] => ['root', step, ...files, '--token-file', tokenFile];
  const notAUrl: [string, RegExp] = ['notaurl', /is not a URL; use e\.g\. https:\/\/rampart-ca\.rampart-system\.svc:443/];
  const cases: Array<[string, RegExp]> = [
    notAUrl,
    ['', /is not a URL/],
    ['http://localhost:8443', /must use https:\/\/ \(the CA API is TLS only\)/],
    // The API paths are fixed: a path here would be silently dropped.
    [`${ca.apiUrl}/v1`, /must be just https:\/\/HOST\[:PORT\]/],
  ];
  const runs = await Promise.all([
    ...[['bundle', ...files], rootStep('status')].flatMap((command) => cases.map(([url, why]) => ({ command, url, why }))),
    ...['prepare', 'activate', 'retire'].map((step) => ({ command: rootStep(step), url: notAUrl[0], why: notAUrl[1] })),
  ].map(async (c) => ({ ...c, r: await cli([...c.command, '--ca-url', c.url]) })));
  for (const { command, url, why, r } of runs) {
    const what = `${command.slice(0, 2).join(' ')} --ca-url "${url}"`;
    assert.equal(r.code, 2, `${what}: ${r.stderr}`);
    const shown = url.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    assert.match(r.stderr, new RegExp(`^rampart ${command[0]}: --ca-url "${shown}" .*\\[RAMPART_ERR_CONFIG_INVALID\\]\\n$`), what);
    assert.match(r.stderr, why, what);
    assert.equal(r.stdout, '', what);
  }
  // Nothing was asked of the CA: no root was prepared.
  assert.equal(ca.runtime.status().roots.length, 1);
});

test('cert inspect on a two-root bundle says it is no chain; root and bundle file errors carry their codes without a --help hint', async () => {
  const rotated = await startTestCa({ 'auto-rotate': 'false' });
  try {
    await rotated.runtime.prepare();
    // A CA that runs no schedule must not call the schedule it would follow "automatic".
    const manual = formatStatus(rotated.runtime.status());
    assert.match(manual, /^automatic root rotation is off \(--auto-rotate false; the intermediate still renews itself\); the root schedule it would follow: prepare at /m);
    assert.doesNotMatch(manual, /^automatic schedule:/m);
    assert.match(formatStatus(ca.runtime.status()), /^automatic schedule: prepare at \S+, activate at \S+$/m);
    const bundle = join(dir, 'two-roots.pem');
    await writeFile(bundle, rotated.rootCertPem());
    const inspected = await cli(['cert', 'inspect', bundle]);
    assert.equal(inspected.code, 0, inspected.stderr);
    assert.match(inspected.stdout, /^Chain:\s+\(none: the other certificates in the file do not issue this one; a trust bundle\?\)$/m);
    assert.match(inspected.stdout, /^Also in file:\n\s+\[1\] .*Rampart Root CA G2/m);
    assert.match(inspected.stdout, /\(expires in \d+ days\)/);
  } finally {
    await rotated.close();
  }
  const adminToken = join(dir, 'step-order-admin.token');
  await writeFile(adminToken, await ca.token('rampart-system', 'rampart-admin'));
  const flags = ['--ca-url', ca.apiUrl, '--ca-bundle', `${ca.stateDir}/root-cert.pem`, '--token-file', adminToken];
  const [noToken, noBundle, noStep, flagsFirst, twoSteps] = await Promise.all([
    cli(['root', 'status', '--ca-bundle', `${ca.stateDir}/root-cert.pem`, '--token-file', join(dir, 'absent.token')]),
    cli(['root', 'status', '--ca-bundle', join(dir, 'absent.pem'), '--token-file', join(dir, 'absent.token')]),
    cli(['root', '--ca-url', ca.apiUrl]),
    cli(['root', ...flags, 'status']),
    cli(['root', 'status', ...flags, 'prepare']),
  ]);
  // A key or any multi-line file as token was an internal error from node's header check.
  const keyAsToken = join(dir, 'key-as-token.pem');
  await writeFile(keyAsToken, `-----BEGIN ${'PRIVATE'} KEY-----\nMIGHAgEAMBMG\n-----END ${'PRIVATE'} KEY-----\n`);
  const notAToken = await cli(['root', 'status', '--ca-url', ca.apiUrl, '--ca-bundle', `${ca.stateDir}/root-cert.pem`, '--token-file', keyAsToken]);
  assert.equal(notAToken.code, 2, notAToken.stderr);
  assert.match(notAToken.stderr, /^rampart root: --token-file \S+key-as-token\.pem does not hold a token \(one line, e\.g\. from rampart token or kubectl create token\) \[RAMPART_ERR_TOKEN_FILE\]\n$/);
  assert.doesNotMatch(notAToken.stderr, /MIGHAgEAMBMG/, 'nothing of the file is printed');
  assert.equal(noToken.code, 2);
  assert.match(noToken.stderr, /^rampart root: cannot read --token-file .*absent\.token \(ENOENT\) \[RAMPART_ERR_TOKEN_FILE\]\n$/);
  assert.equal(noBundle.code, 2);
  assert.match(noBundle.stderr, /^rampart root: cannot read --ca-bundle .*absent\.pem \(ENOENT\); .* \[RAMPART_ERR_CONFIG_INVALID\]\n$/);
  assert.equal(noStep.code, 2);
  assert.match(noStep.stderr, /^rampart root: name a step: rampart root status\|prepare\|activate\|retire \[flags\] \[RAMPART_ERR_USAGE\]\n/);
  // Flags pasted before the step work as well as after it (outside QA).
  assert.equal(flagsFirst.code, 0, flagsFirst.stderr);
  assert.match(flagsFirst.stdout, /^automatic schedule: prepare at /m);
  assert.equal(twoSteps.code, 2);
  assert.match(twoSteps.stderr, /one step at a time: "status" was given, then "prepare" \[RAMPART_ERR_USAGE\]/);
  assert.equal(ca.runtime.status().roots.length, 1, 'the refused second step did nothing');
  const forcedStatus = await cli(['root', 'status', ...flags, '--force']);
  assert.equal(forcedStatus.code, 2);
  assert.match(forcedStatus.stderr, /--force applies to prepare, activate and retire; status changes nothing \[RAMPART_ERR_USAGE\]/);
});

test('cert inspect counts the last minute of a certificate in seconds, not as "0 min" (outside QA)', async () => {
  const file = join(dir, 'last-minute.pem');
  await writeFile(file, buildCertificate({ subject: { commonName: 'last minute' }, extensions: [], notAfter: Date.now() + 45_000 }).pem);
  const inspected = await cli(['cert', 'inspect', file]);
  assert.equal(inspected.code, 0, inspected.stderr);
  assert.match(inspected.stdout, /\(expires in (4[0-5]|3\d) s\)/);
});

test('cert inspect warns when a leaf carries no URI SAN, or one that is not spiffe://, as its help promises for "one that is no X.509-SVID" (outside QA)', async () => {
  await ssl.run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'dns-only.key', '-out', 'dns-only.pem', '-subj', '/CN=web.example', '-days', '1',
    '-addext', 'subjectAltName=DNS:web.example', '-addext', 'basicConstraints=critical,CA:FALSE']);
  await ssl.run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'https-uri.key', '-out', 'https-uri.pem', '-subj', '/CN=web', '-days', '1',
    '-addext', 'subjectAltName=URI:https://web.example/id', '-addext', 'basicConstraints=critical,CA:FALSE']);
  const [dnsOnly, httpsUri, root] = await Promise.all(['dns-only.pem', 'https-uri.pem'].map((f) => cli(['cert', 'inspect', ssl.path(f), '--json'])).concat(cli(['cert', 'inspect', `${ca.stateDir}/root-cert.pem`, '--json'])));
  const warnings = (r: Run): string[] => (JSON.parse(r.stdout) as Array<{ warnings: string[] }>)[0]?.warnings ?? [];
  assert.deepEqual(warnings(dnsOnly as Run), ['no URI SAN, so this is no X.509-SVID: a SPIFFE ID travels in exactly one URI SAN']);
  assert.deepEqual(warnings(httpsUri as Run), ['URI SAN https://web.example/id is not a spiffe:// ID, so this is no X.509-SVID']);
  assert.deepEqual(warnings(root as Run), [], 'a CA certificate needs no SPIFFE ID');
  // --json before the subcommand works as after it (outside QA: 'unknown subcommand "cert --json"').
  const flagFirst = await cli(['cert', '--json', 'inspect', `${ca.stateDir}/root-cert.pem`]);
  assert.equal(flagFirst.code, 0, flagFirst.stderr);
  assert.equal(flagFirst.stdout, (root as Run).stdout);
});
