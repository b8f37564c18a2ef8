/**
 * The multi-core CA: `rampart ca --workers 2` as a real process tree. Workers sign and serve the
 * API on one port; the primary keeps the single writer, so admin steps sent to any worker land
 * in the one state, /metrics adds up every worker's issuances, and a worker that dies is replaced
 * by one that starts from the current state.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { Agent as HttpsAgent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createKeyAndCsr } from '../../src/agent/csr.js';
import { mintDevToken } from '../../src/authn/dev.js';
import { collectLog, spawnCli } from '../helpers/cli.js';
import { issuedOk, waitForLogEvent, withClusterCa } from '../helpers/cluster-ca.js';
import { httpsJson } from '../helpers/https.js';
import { eventually } from '../helpers/poll.js';
import { freePort } from '../helpers/ports.js';
import { makeKey } from '../unit/authn-jwt-helpers.js';

test('two signing workers share one port, one state and one metrics exposition', { timeout: 180_000 }, () =>
  withClusterCa(async ({ ca, stateDir, ssl, started, apiUrl, monitoringUrl }) => {
    assert.equal(started['workers'], 2);
    // The fast CSR key import proved itself (src/core/pki/ec-point-import.ts); on node 20 it must.
    if (process.versions.node.startsWith('20.')) assert.equal(started['csrKeyImport'], 'node-raw');
    const roots = readFileSync(join(stateDir, 'root-cert.pem'), 'utf8');
    const token = await mintDevToken({ stateDir, namespace: 'shop', serviceAccount: 'cart' });

    const issued = 12;
    const serials = new Set<string>();
    for (let i = 0; i < issued; i++) {
      const { csrPem } = await ssl.keyAndCsr();
      const res = await httpsJson(`${apiUrl}/v1/certificates`, { ca: roots, token, body: { csr: csrPem } });
      assert.equal(res.status, 200, res.text);
      assert.equal(res.body.spiffeId, 'spiffe://cluster.local/ns/shop/sa/cart');
      serials.add(res.body.serial as string);
    }
    assert.equal(serials.size, issued);

    assert.equal(await issuedOk(monitoringUrl), issued, 'the primary sums every worker\'s counter');
    // Process metrics cover the workers too: resident memory is the sum over the process tree.
    const exposed = await fetch(`${monitoringUrl}/metrics`).then((r) => r.text());
    const metric = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(exposed)?.[1]);
    const rssKb = (pid: number): number => Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
    const tree = [ca.pid as number, ...readFileSync(`/proc/${ca.pid}/task/${ca.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number)];
    assert.equal(tree.length, 3, 'the primary and two workers');
    const primaryRss = rssKb(tree[0] as number) * 1024;
    const treeRss = tree.reduce((sum, pid) => sum + rssKb(pid) * 1024, 0);
    const exposedRss = metric('rampart_ca_process_resident_memory_bytes');
    assert.ok(exposedRss > 1.5 * primaryRss, `resident memory ${exposedRss} covers more than the primary's ${primaryRss}`);
    assert.ok(Math.abs(exposedRss - treeRss) < 0.25 * treeRss, `resident memory ${exposedRss} is about the process tree's ${treeRss}`);
    const startTime = metric('rampart_ca_process_start_time_seconds');
    assert.ok(startTime > 1e9 && startTime <= Date.now() / 1000, `start time ${startTime}`);
    assert.match(await fetch(`${monitoringUrl}/metrics`).then((r) => r.text()), /^rampart_ca_trust_bundle_sequence 1$/m);

    // Admin steps reach the primary (the only writer) whichever worker takes the request.
    const admin = await mintDevToken({ stateDir, namespace: 'rampart-system', serviceAccount: 'rampart-admin' });
    const prepared = await httpsJson(`${apiUrl}/v1/admin/roots/prepare`, { ca: roots, token: admin, body: {} });
    assert.equal(prepared.status, 200, prepared.text);
    assert.equal(prepared.body.sequence, 2);
    const again = await httpsJson(`${apiUrl}/v1/admin/roots/prepare`, { ca: roots, token: admin, body: {} });
    assert.equal(again.status, 409);
    assert.equal(again.body.error.code, 'RAMPART_ERR_ROTATION_NOT_ALLOWED');
    for (let i = 0; i < 4; i++) {
      const bundle = await httpsJson(`${apiUrl}/v1/trust-bundle?format=json`, { ca: roots });
      assert.equal(bundle.body.sequence, 2, 'every worker follows the new state');
      assert.equal(bundle.body.roots.length, 2);
    }
    const onDisk = JSON.parse(readFileSync(join(stateDir, 'state.json'), 'utf8')) as { sequence: number; roots: unknown[] };
    assert.equal(onDisk.sequence, 2);
    assert.equal(onDisk.roots.length, 2);

    // A worker that dies is replaced, and the replacement starts from the current state. Then the
    // other original worker is killed too, so the requests right after it are the replacement's.
    const workerPids = (): number[] => readFileSync(`/proc/${ca.pid}/task/${ca.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    const [victim, survivor] = workerPids();
    assert.ok(victim !== undefined && survivor !== undefined);
    // Issued after the last scrape: the primary takes each worker's counts every second, so a
    // worker killed outright loses at most its last second from /metrics (outside QA).
    const unscraped = 4;
    for (let i = 0; i < unscraped; i++) {
      const { csrPem } = await ssl.keyAndCsr();
      const more = await httpsJson(`${apiUrl}/v1/certificates`, { ca: roots, token, body: { csr: csrPem } });
      assert.equal(more.status, 200, more.text);
    }
    await new Promise((r) => setTimeout(r, 2_500));
    const exited = waitForLogEvent(ca, 'worker-exited', 10_000);
    const replacementServing = waitForLogEvent(ca, 'worker-serving', 120_000);
    process.kill(victim, 'SIGKILL');
    assert.equal((await exited)['signal'], 'SIGKILL');
    const replacement = Number((await replacementServing)['pid']);
    assert.deepEqual(new Set(workerPids()), new Set([survivor, replacement]));
    const survivorExited = waitForLogEvent(ca, 'worker-exited', 10_000);
    process.kill(survivor, 'SIGKILL');
    await survivorExited;
    const { csrPem } = await ssl.keyAndCsr();
    const res = await httpsJson(`${apiUrl}/v1/certificates`, { ca: roots, token, body: { csr: csrPem } });
    assert.equal(res.status, 200, res.text);
    const bundle = await httpsJson(`${apiUrl}/v1/trust-bundle?format=json`, { ca: roots });
    assert.equal(bundle.body.sequence, 2, 'the replacement worker serves the current state');
    // Both original workers are gone, but their counts stay: a drop would read as a reset.
    assert.equal(await issuedOk(monitoringUrl), issued + unscraped + 1, 'the exited workers\' issuances are still counted, the unscraped ones too');
  }));

test('a stopped (SIGSTOP) worker is noticed: /readyz says so while none answers, each silent worker is killed and replaced, and the API serves again (outside QA)', { timeout: 180_000 }, async () =>
  withClusterCa(async ({ ca, stateDir, ssl, apiUrl, monitoringUrl, log }) => {
    const roots = readFileSync(join(stateDir, 'root-cert.pem'), 'utf8');
    const token = await mintDevToken({ stateDir, namespace: 'shop', serviceAccount: 'cart' });
    const workerPids = (): number[] => readFileSync(`/proc/${ca.pid}/task/${ca.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    // Only a worker that serves answers the primary's requests; one still starting is not judged.
    await eventually('both workers serve', () => log.filter((l) => l['event'] === 'worker-serving').length === 2, 60_000);
    const stopped = workerPids();
    assert.equal(stopped.length, 2);
    for (const pid of stopped) process.kill(pid, 'SIGSTOP');
    await eventually('/readyz says no worker answers', async () => {
      const r = await fetch(`${monitoringUrl}/readyz`);
      return r.status === 503 && (await r.text()).includes('no signing worker has answered the primary for 5 s');
    }, 15_000);
    await eventually('both silent workers are killed', () => log.filter((l) => l['event'] === 'worker-unresponsive').length === 2, 40_000);
    assert.deepEqual(new Set(log.filter((l) => l['event'] === 'worker-unresponsive').map((l) => l['workerPid'])), new Set(stopped));
    await eventually('replacements serve', async () => (await fetch(`${monitoringUrl}/readyz`)).status === 200, 60_000);
    assert.ok(workerPids().every((pid) => !stopped.includes(pid)), 'the stopped workers are gone');
    const { csrPem } = await ssl.keyAndCsr();
    const res = await httpsJson(`${apiUrl}/v1/certificates`, { ca: roots, token, body: { csr: csrPem } });
    assert.equal(res.status, 200, res.text);
  // A fixed port: once every worker is gone, node's cluster closes the shared listener, and
  // replacements listening on port 0 would get another one.
  }, { apiPort: await freePort() }));

test('root rotation while two workers sign: every leaf links to the bundle served right after it', { timeout: 180_000 }, () =>
  withClusterCa(async ({ stateDir, ssl, apiUrl }) => {
    // The client trusts every root it has seen published: the CA's serving chain moves to the new root at activate.
    const trusted = new Set([readFileSync(join(stateDir, 'root-cert.pem'), 'utf8')]);
    const token = await mintDevToken({ stateDir, namespace: 'shop', serviceAccount: 'cart' });
    const admin = await mintDevToken({ stateDir, namespace: 'rampart-system', serviceAccount: 'rampart-admin' });
    const csrs: string[] = [];
    for (let i = 0; i < 4; i++) csrs.push((await ssl.keyAndCsr()).csrPem);

    let rotating = true;
    let issued = 0;
    const problems: string[] = [];
    const sequences = new Set<number>();
    let last: { leafPem: string; chainPems: string[]; rootPems: string[] } | undefined;
    const issueLoop = async (loop: number): Promise<void> => {
      while (rotating) {
        const res = await httpsJson(`${apiUrl}/v1/certificates`, { ca: [...trusted], token, body: { csr: csrs[(issued + loop) % csrs.length] } });
        if (res.status !== 200) {
          problems.push(`issue answered ${res.status}: ${res.text}`);
          continue;
        }
        const chainPems = res.body.certChain as string[];
        const bundle = await httpsJson(`${apiUrl}/v1/trust-bundle?format=json`, { ca: [...trusted] });
        const rootPems = (bundle.body.roots as Array<{ pem: string }>).map((r) => r.pem);
        sequences.add(bundle.body.sequence as number);
        for (const pem of rootPems) trusted.add(pem);
        const [leaf, intermediate] = chainPems.map((p) => new X509Certificate(p));
        const linked = leaf !== undefined && intermediate !== undefined && leaf.verify(intermediate.publicKey) && rootPems.some((pem) => {
          const root = new X509Certificate(pem);
          return intermediate.checkIssued(root) && intermediate.verify(root.publicKey);
        });
        if (!linked) problems.push(`a leaf does not link to bundle sequence ${String(bundle.body.sequence)}`);
        issued++;
        last = { leafPem: chainPems[0] as string, chainPems, rootPems };
      }
    };
    const loops = [0, 1, 2].map(issueLoop);
    const step = async (name: string, body: object): Promise<void> => {
      await new Promise((r) => setTimeout(r, 300));
      const res = await httpsJson(`${apiUrl}/v1/admin/roots/${name}`, { ca: [...trusted], token: admin, body });
      assert.equal(res.status, 200, `${name}: ${res.text}`);
    };
    try {
      await step('prepare', {});
      await step('activate', { force: true });
      await step('retire', { force: true });
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      rotating = false;
      await Promise.all(loops);
    }

    assert.deepEqual(problems, []);
    assert.ok(issued > 0);
    // prepare, activate and retire each published a bundle, and the loops saw the last one.
    assert.ok(sequences.has(4), `sequences seen: ${[...sequences].join(', ')}`);
    assert.ok(last !== undefined);
    assert.equal(last.rootPems.length, 1, 'only the new root is left');
    const verified = await ssl.verify({ rootsPem: last.rootPems.join(''), leafPem: last.leafPem, untrustedPems: last.chainPems.slice(1) });
    assert.equal(verified.code, 0, verified.stderr);
  }));

/** Established connections to `port` held by each of `pids`, from /proc/net/tcp{,6} and each process's fds. */
function connectionsHeldBy(pids: readonly number[], port: number): number[] {
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').trim().split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[3] === '01' && parseInt((f[1] ?? '').split(':')[1] ?? '', 16) === port) inodes.add(f[9] as string);
    }
  }
  return pids.map(
    (pid) =>
      readdirSync(`/proc/${pid}/fd`).filter((fd) => {
        try {
          return inodes.has(/^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1] ?? '');
        } catch {
          return false; // closed while we looked
        }
      }).length,
  );
}

test('keep-alive connections opened in one burst end up spread over both workers', { timeout: 180_000 }, () =>
  withClusterCa(async ({ ca, stateDir, apiUrl }) => {
    const roots = readFileSync(join(stateDir, 'root-cert.pem'), 'utf8');
    const lanes = 24;
    const agent = new HttpsAgent({ keepAlive: true, maxSockets: lanes, ca: roots });
    const get = async (): Promise<string | undefined> => {
      const res = await httpsJson(`${apiUrl}/v1/trust-bundle`, { agent });
      assert.equal(res.status, 200, res.text);
      return res.headers.connection;
    };
    try {
      // Rounds of one request per lane at once, for long enough that the workers' counts reach
      // each other (they are reported every 250 ms), then until a whole round keeps every connection.
      let closedInRound = lanes;
      let closedInAll = 0;
      const settleBy = Date.now() + 2_000;
      for (let round = 0; round < 100 && (closedInRound > 0 || Date.now() < settleBy); round++) {
        const answers = await Promise.all(Array.from({ length: lanes }, get));
        closedInRound = answers.filter((c) => c === 'close').length;
        closedInAll += closedInRound;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(closedInRound, 0, 'the workers kept closing connections');
      const workerPids = readFileSync(`/proc/${ca.pid}/task/${ca.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
      const held = connectionsHeldBy(workerPids, Number(new URL(apiUrl).port));
      assert.equal(held.reduce((a, b) => a + b, 0), lanes, `connections per worker: ${held.join(', ')}`);
      // A worker's share of 24 is 12, and it closes connections beyond 12 + 2.
      for (const n of held) assert.ok(n <= 14, `connections per worker: ${held.join(', ')} (${closedInAll} closed to balance)`);
    } finally {
      agent.destroy();
    }
  }));

// SIGTERM to the primary is how Kubernetes stops a container; a terminal's Ctrl-C (and systemd's
// stop) signal the whole process group, workers included.
const STOP_SIGNALS = [
  { name: 'SIGTERM to the primary', signal: 'SIGTERM', group: false },
  { name: 'SIGINT to the whole process group', signal: 'SIGINT', group: true },
] as const;

for (const stop of STOP_SIGNALS) test(`${stop.name} of a --workers 2 CA ends a parked long poll with an answer, not a killed worker`, { timeout: 180_000 }, async () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'rampart-cluster-stop-'));
  // A 300 s refresh interval lets a poll wait 300 s: only the workers' own shutdown can end it.
  const ca = spawnCli(['ca', '--state-dir', stateDir, '--listen', '127.0.0.1:0', '--monitoring-listen', '127.0.0.1:0', '--workers', '2', '--bundle-refresh-interval', '300s'], { ownProcessGroup: stop.group });
  let output = '';
  ca.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  try {
    const started = await waitForLogEvent(ca, 'ca-started', 150_000);
    const apiUrl = String(started['apiUrl']);
    const roots = readFileSync(join(stateDir, 'root-cert.pem'), 'utf8');
    const admin = await mintDevToken({ stateDir, namespace: 'rampart-system', serviceAccount: 'rampart-admin' });
    assert.equal((await httpsJson(`${apiUrl}/v1/admin/roots/prepare`, { ca: roots, token: admin, body: {} })).status, 200);
    const { keyPem, csrPem } = createKeyAndCsr();
    const issued = await httpsJson(`${apiUrl}/v1/certificates`, { ca: roots, token: await mintDevToken({ stateDir, namespace: 'shop', serviceAccount: 'poller' }), body: { csr: csrPem } });
    assert.equal(issued.status, 200, issued.text);
    const poll = httpsJson(`${apiUrl}/v1/trust-bundle?after=2&waitSeconds=300`, { ca: roots, cert: (issued.body.certChain as string[]).join(''), key: keyPem, headers: { 'rampart-bundle-sequence': '2' } });
    // The worker records the poller's report just before parking it, then forwards it to the
    // primary: once the status counts the agent, the poll is parked.
    const seen = async (): Promise<number> => {
      const status = await httpsJson(`${apiUrl}/v1/admin/status`, { ca: roots, token: admin });
      return Number((status.body.roots as Array<{ phase: string; propagation?: { agentsSeen: number } }>).find((r) => r.phase === 'prepared')?.propagation?.agentsSeen ?? 0);
    };
    while ((await seen()) === 0) await new Promise((r) => setTimeout(r, 100));
    if (stop.group) process.kill(-(ca.pid as number), stop.signal);
    else ca.kill(stop.signal);
    const answer = await poll;
    assert.equal(answer.status, 200, answer.text);
    assert.equal(answer.body.sequence, 2);
    assert.equal(answer.headers['connection'], 'close');
    const [code] = (await once(ca, 'exit')) as [number | null];
    assert.equal(code, 0);
    assert.doesNotMatch(output, /"event":"worker-exited"/, 'no worker was replaced while the CA stopped');
  } finally {
    if (ca.exitCode === null) {
      if (stop.group) process.kill(-(ca.pid as number), 'SIGKILL');
      else ca.kill('SIGKILL');
    }
    rmSync(stateDir, { recursive: true, force: true });
  }
});

test('a --workers 2 CA answers /readyz 200 only once a worker serves the API', { timeout: 180_000 }, async () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'rampart-cluster-ready-'));
  const [apiPort, monitoringPort] = [await freePort(), await freePort()];
  const ca = spawnCli(['ca', '--state-dir', stateDir, '--listen', `127.0.0.1:${apiPort}`, '--monitoring-listen', `127.0.0.1:${monitoringPort}`, '--workers', '2']);
  const notReady = new Set<string>();
  try {
    // Poll from the moment the process starts; the first 200 must find the API answering.
    for (;;) {
      assert.equal(ca.exitCode, null, 'the CA is still running');
      const answer = await fetch(`http://127.0.0.1:${monitoringPort}/readyz`).then(
        async (r) => ({ status: r.status, text: await r.text() }),
        () => null,
      );
      if (answer?.status === 200) break;
      if (answer) notReady.add(answer.text);
      await new Promise((r) => setTimeout(r, 20));
    }
    const bundle = await httpsJson(`https://127.0.0.1:${apiPort}/v1/trust-bundle`, { ca: readFileSync(join(stateDir, 'root-cert.pem'), 'utf8') });
    assert.equal(bundle.status, 200, 'the API serves once /readyz says ready');
    assert.ok([...notReady].some((t) => t.includes('no signing worker serves the API yet')), `a not-ready answer says why (saw ${[...notReady].join(' | ')})`);
  } finally {
    ca.kill('SIGTERM');
    await once(ca, 'exit');
    rmSync(stateDir, { recursive: true, force: true });
  }
});

test('a --workers 2 CA restarts a worker that cannot start after growing delays, and a worker serves again once the cause is gone', { timeout: 240_000 }, async () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'rampart-cluster-backoff-'));
  const jwksDir = mkdtempSync(join(tmpdir(), 'rampart-cluster-backoff-jwks-'));
  const jwksPath = join(jwksDir, 'keys.json');
  const validJwks = JSON.stringify({ keys: [makeKey('ES256', 'k1').jwk] });
  writeFileSync(jwksPath, validJwks);
  // Each worker reads --jwks-file as it starts, so a file broken after the CA started keeps
  // every replacement from starting while the surviving worker serves on.
  const ca = spawnCli(['ca', '--state-dir', stateDir, '--listen', '127.0.0.1:0', '--monitoring-listen', '127.0.0.1:0', '--workers', '2', '--authn', 'dev,jwks', '--jwks-issuer', 'https://issuer.test.example', '--jwks-file', jwksPath]);
  const log = collectLog(ca);
  const events = (name: string): Array<Record<string, unknown>> => log.filter((l) => l['event'] === name);
  const at = (line: Record<string, unknown> | undefined): number => Date.parse(String(line?.['time']));
  try {
    const started = await eventually('ca-started', () => events('ca-started')[0], 150_000);
    const monitoringUrl = String(started['monitoringUrl']);
    // ca-started comes with the first worker serving. Both must have read the good file before it
    // is broken, or the "survivor" fails its own start and no worker serves.
    await eventually('both workers serving', () => events('worker-serving').length >= 2, 60_000);
    const workerPids = (): number[] => readFileSync(`/proc/${ca.pid}/task/${ca.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    const [victim, survivor] = workerPids();
    assert.ok(victim !== undefined && survivor !== undefined);
    writeFileSync(jwksPath, '{ not json');
    process.kill(victim, 'SIGKILL');

    const killed = await eventually('the killed worker\'s worker-exited', () => events('worker-exited')[0], 10_000);
    assert.equal(killed['signal'], 'SIGKILL');
    await eventually('three failed restarts', () => events('worker-start-failed').length >= 3, 120_000);
    assert.equal((await fetch(`${monitoringUrl}/readyz`)).status, 200, 'the surviving worker keeps the CA ready');
    // With the delays at their shortest (0.8, 1.6, 3.2, 6.4 s), the fourth try comes 12 s after
    // the kill; restarting at once, the primary tried about every second.
    await eventually('10 s after the kill', () => Date.now() >= at(killed) + 10_500, 30_000, 100);
    const tries = events('worker-start-failed');
    assert.match(String(tries[0]?.['reason']), /is not JSON/);
    const early = tries.filter((t) => at(t) - at(killed) <= 10_000).length;
    assert.ok(early <= 3, `${early} failed starts within 10 s of the kill`);

    // Each exit logs the delay before the next try, and the next try comes no sooner.
    const exits = events('worker-exited').slice(0, 3);
    const delays = exits.map((e) => e['restartInMs']);
    assert.ok(delays.every((d) => typeof d === 'number'), `worker-exited carries restartInMs: ${JSON.stringify(exits)}`);
    const [first, second, third] = delays as number[];
    assert.ok(first !== undefined && second !== undefined && third !== undefined);
    assert.ok(first <= 1000, `first restart after ${first} ms`);
    assert.ok(second >= 1.5 * first && third >= 1.5 * second, `the delays grow: ${delays.join(', ')} ms`);
    for (let i = 0; i < 3; i++) {
      const waited = at(tries[i]) - at(exits[i]);
      assert.ok(waited >= (delays[i] as number) - 50, `try ${i + 1} came ${waited} ms after the exit that scheduled it in ${String(delays[i])} ms`);
    }
    for (const e of events('worker-exited').slice(1)) assert.equal(e['code'], 2, 'a worker that cannot start exits 2');

    // Once the file is valid again the next scheduled try serves, at the latest one cap (30 s) on.
    writeFileSync(jwksPath, validJwks);
    const serving = await eventually('a replacement worker-serving', () => events('worker-serving').find((e) => e['pid'] !== victim && e['pid'] !== survivor), 60_000);
    const replacement = Number(serving['pid']);
    assert.deepEqual(new Set(workerPids()), new Set([survivor, replacement]));
    assert.equal((await fetch(`${monitoringUrl}/readyz`)).status, 200);
    ca.kill('SIGTERM');
    const [code] = (await once(ca, 'exit')) as [number | null];
    assert.equal(code, 0);
  } finally {
    if (ca.exitCode === null) ca.kill('SIGKILL');
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(jwksDir, { recursive: true, force: true });
  }
});
