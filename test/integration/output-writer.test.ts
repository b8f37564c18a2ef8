import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { once } from 'node:events';
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, readlink, realpath, rm, stat, symlink, truncate, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { readCredentials, type Credentials } from '../../src/agent/output-reader.js';
import { writeBundle, writeCredentials } from '../../src/agent/output-writer.js';
import { OutputKeeper } from '../../src/agent/output-keeper.js';
import { captureLogs } from './proxy-support.js';
import { eventually } from '../helpers/poll.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const readerModule = join(repoRoot, 'src/agent/output-reader.ts');

let work: string;
/** Self-signed EC pairs from openssl; each pair uses its own cert as the "bundle" too. */
const pairs: Credentials[] = [];

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'rampart-output-'));
  for (let i = 0; i < 3; i++) {
    const key = join(work, `k${i}.pem`);
    const cert = join(work, `c${i}.pem`);
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-subj', `/CN=pair${i}`, '-days', '1'], { stdio: 'ignore' });
    const certPem = await readFile(cert, 'utf8');
    pairs.push({ certChainPem: certPem, keyPem: await readFile(key, 'utf8'), rootCertPem: certPem });
  }
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

async function freshOutDir(): Promise<string> {
  return mkdtemp(join(work, 'out-'));
}

const generations = async (outDir: string): Promise<string[]> => (await readdir(outDir)).filter((n) => /^\.\.\d/.test(n));

test('writes the three files behind ..data with the right modes, readable by openssl', async () => {
  const outDir = join(await freshOutDir(), 'nested', 'out');
  const pair = pairs[0]!;
  const generation = await writeCredentials(outDir, pair);
  assert.equal(await readlink(join(outDir, '..data')), generation);
  for (const name of ['cert-chain.pem', 'key.pem', 'root-cert.pem']) {
    assert.ok((await lstat(join(outDir, name))).isSymbolicLink(), `${name} is a symlink`);
    assert.equal(await readlink(join(outDir, name)), `..data/${name}`);
  }
  assert.equal((await stat(join(outDir, 'key.pem'))).mode & 0o777, 0o600);
  assert.equal((await stat(join(outDir, 'cert-chain.pem'))).mode & 0o777, 0o644);
  assert.equal((await stat(join(outDir, 'root-cert.pem'))).mode & 0o777, 0o644);
  assert.equal(await readFile(join(outDir, 'key.pem'), 'utf8'), pair.keyPem);
  assert.deepEqual((await readdir(join(outDir, generation))).sort(), ['cert-chain.pem', 'key.pem', 'root-cert.pem']);
  const subject = execFileSync('openssl', ['x509', '-in', join(outDir, 'cert-chain.pem'), '-noout', '-subject'], { encoding: 'utf8' });
  assert.match(subject, /CN ?= ?pair0/);
  const read = await readCredentials(outDir);
  assert.deepEqual({ ...read, generation: undefined }, { ...pair, generation: undefined });
  assert.equal(read.generation, generation);
});

test('generations older than the previous one, and stale ones, are removed; a leftover ..data_tmp is replaced', async () => {
  const outDir = await freshOutDir();
  await mkdir(join(outDir, '..2020_01_01_00_00_00.000.abcdef'));
  await writeFile(join(outDir, '..2020_01_01_00_00_00.000.abcdef', 'key.pem'), 'stale');
  await symlink('nowhere', join(outDir, '..data_tmp'));
  await writeFile(join(outDir, 'unrelated.txt'), 'keep');
  const written: string[] = [];
  for (const pair of pairs) written.push(await writeCredentials(outDir, pair));
  const [previous, last] = written.slice(-2) as [string, string];
  assert.deepEqual((await generations(outDir)).sort(), [previous, last].sort());
  assert.deepEqual((await readdir(outDir)).sort(), [previous, last, '..data', 'cert-chain.pem', 'key.pem', 'root-cert.pem', 'unrelated.txt'].sort());
});

test('a reader that resolved ..data just before a swap still reads that whole generation after it (the README pattern; outside QA: ENOENT)', async () => {
  const outDir = await freshOutDir();
  await writeCredentials(outDir, pairs[0]!);
  const resolved = await realpath(join(outDir, '..data'));
  await writeCredentials(outDir, pairs[1]!);
  assert.equal(await readFile(join(resolved, 'key.pem'), 'utf8'), pairs[0]!.keyPem);
  assert.equal(await readFile(join(resolved, 'cert-chain.pem'), 'utf8'), pairs[0]!.certChainPem);
  // One swap later that generation is gone: a reader that slept through two swaps resolves again.
  await writeCredentials(outDir, pairs[2]!);
  await assert.rejects(readFile(join(resolved, 'key.pem'), 'utf8'), { code: 'ENOENT' });
});

test('writeBundle swaps the bundle and keeps the key and certificate', async () => {
  const outDir = await freshOutDir();
  const first = await writeCredentials(outDir, pairs[0]!);
  const bundle = pairs[1]!.certChainPem + pairs[2]!.certChainPem;
  const second = await writeBundle(outDir, bundle, pairs[0]!);
  assert.notEqual(second, first);
  const read = await readCredentials(outDir);
  assert.equal(read.rootCertPem, bundle);
  assert.equal(read.certChainPem, pairs[0]!.certChainPem);
  assert.equal(read.keyPem, pairs[0]!.keyPem);
  assert.equal((await stat(join(outDir, 'key.pem'))).mode & 0o777, 0o600);
  assert.deepEqual((await generations(outDir)).sort(), [first, second].sort());
});

test('writeBundle writes the key and chain it holds, never damaged copies from the current generation', async () => {
  const outDir = await freshOutDir();
  const first = await writeCredentials(outDir, pairs[0]!);
  // Damage both files of the current generation in place: a truncated key, a chain of junk.
  await writeFile(join(outDir, first, 'key.pem'), pairs[0]!.keyPem.slice(0, 40));
  await writeFile(join(outDir, first, 'cert-chain.pem'), 'junk\n');
  const bundle = pairs[1]!.certChainPem + pairs[2]!.certChainPem;
  const second = await writeBundle(outDir, bundle, pairs[0]!);
  const read = await readCredentials(outDir);
  assert.equal(read.generation, second);
  // assert.ok rather than equal: a failed comparison must not print the key.
  assert.ok(read.keyPem === pairs[0]!.keyPem, 'the key held in memory, whole');
  assert.ok(read.certChainPem === pairs[0]!.certChainPem, 'the chain held in memory, whole');
  assert.equal(read.rootCertPem, bundle);
  assert.ok(new X509Certificate(read.certChainPem).checkPrivateKey(createPrivateKey(read.keyPem)), 'key and certificate match');
  assert.deepEqual((await generations(outDir)).sort(), [first, second].sort(), 'the damaged generation stays only as the previous one');
  const third = await writeBundle(outDir, bundle, pairs[0]!);
  assert.deepEqual((await generations(outDir)).sort(), [second, third].sort(), 'and goes with the next swap');
});

test('an entry that is not a regular file (directory, device, socket) is refused with a coded error naming it', async () => {
  const cases: Array<{ kind: string; plant: (path: string) => Promise<() => Promise<void>> }> = [
    { kind: 'a directory', plant: async (path) => (await mkdir(path), async () => undefined) },
    { kind: 'a character device', plant: async (path) => (await symlink('/dev/null', path), async () => undefined) },
    {
      kind: 'a socket',
      plant: async (path) => {
        const server = net.createServer().listen(path);
        await once(server, 'listening');
        return () => new Promise<void>((done) => server.close(() => done()));
      },
    },
  ];
  for (const c of cases) {
    const outDir = await freshOutDir();
    const generation = await writeCredentials(outDir, pairs[0]!);
    await rm(join(outDir, generation, 'key.pem'));
    const cleanup = await c.plant(join(outDir, generation, 'key.pem'));
    try {
      await assert.rejects(readCredentials(outDir), (error: Error & { code?: string }) => {
        assert.equal(error.code, 'RAMPART_ERR_CONFIG_INVALID', `${c.kind}: ${error.message}`);
        assert.ok(error.message.includes(`${generation}/key.pem is ${c.kind}, not a regular file`), error.message);
        return true;
      });
      // Nothing is copied from the generation on disk, so a bundle change writes a whole set.
      await writeBundle(outDir, pairs[1]!.rootCertPem, pairs[0]!);
      assert.ok((await readCredentials(outDir)).keyPem === pairs[0]!.keyPem, `${c.kind}: the key written is the one held`);
    } finally {
      await cleanup();
    }
  }
});

test('a file far larger than any credential (a sparse 5 GiB cert-chain.pem) is refused with a coded error, not read', async () => {
  const outDir = await freshOutDir();
  const generation = await writeCredentials(outDir, pairs[0]!);
  await truncate(join(outDir, generation, 'cert-chain.pem'), 5 * 2 ** 30);
  await assert.rejects(readCredentials(outDir), (error: Error & { code?: string }) => {
    assert.equal(error.code, 'RAMPART_ERR_CONFIG_INVALID', error.message);
    assert.ok(error.message.includes(`${generation}/cert-chain.pem is larger than 1048576 bytes; remove it`), error.message);
    return true;
  });
});

// A read that blocks in open() ties up one of libuv's threads for good, and the process cannot
// even exit: so this runs in a child, which the test kills should it hang (the old behaviour).
const FIFO_CHECK = `
import { execFileSync } from 'node:child_process';
import { readlinkSync, rmSync } from 'node:fs';
import { join } from 'node:path';
const { readCredentials } = await import(${JSON.stringify(readerModule)});
const { writeBundle, writeCredentials } = await import(${JSON.stringify(join(repoRoot, 'src/agent/output-writer.ts'))});
const [outDir, pairJson, bundle] = process.argv.slice(1);
const pair = JSON.parse(pairJson);
const first = await writeCredentials(outDir, pair);
for (const name of ['key.pem', 'cert-chain.pem']) {
  rmSync(join(outDir, first, name));
  execFileSync('mkfifo', [join(outDir, first, name)]);
}
const result = {};
try {
  await readCredentials(outDir);
  result.read = 'no error';
} catch (error) {
  result.read = { code: error.code, message: error.message };
}
const second = await writeBundle(outDir, bundle, pair);
result.written = { second, data: readlinkSync(join(outDir, '..data')), read: await readCredentials(outDir) };
console.log(JSON.stringify(result));
`;

test('a FIFO in the current generation is refused at once, and a bundle change still writes a whole set', { timeout: 120_000 }, async () => {
  const outDir = await freshOutDir();
  const bundle = pairs[1]!.rootCertPem;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', FIFO_CHECK, outDir, JSON.stringify(pairs[0]), bundle], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  // Liveness, not timing: the checks take well under a second; only a hang gets anywhere near this.
  const hung = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const [code, signal] = await exited;
  clearTimeout(hung);
  assert.equal(signal, null, `the reader hung on the FIFO and was killed; it printed: ${stdout}`);
  assert.equal(code, 0);
  const result = JSON.parse(stdout) as { read: { code: string; message: string }; written: { second: string; data: string; read: Credentials } };
  assert.equal(result.read.code, 'RAMPART_ERR_CONFIG_INVALID');
  assert.match(result.read.message, /\/(key|cert-chain)\.pem is a FIFO, not a regular file; remove it/);
  assert.equal(result.written.data, result.written.second);
  assert.ok(result.written.read.keyPem === pairs[0]!.keyPem, 'the key written is the one held');
  assert.ok(result.written.read.certChainPem === pairs[0]!.certChainPem, 'the chain written is the one held');
  assert.equal(result.written.read.rootCertPem, bundle);
});

test('before any certificate: not ready, even after a bundle alone was written', async () => {
  const outDir = await freshOutDir();
  await assert.rejects(readCredentials(outDir), { code: 'RAMPART_ERR_NOT_READY', name: 'UnavailableError' });
  await writeBundle(outDir, pairs[0]!.rootCertPem, null);
  assert.equal(await readFile(join(outDir, 'root-cert.pem'), 'utf8'), pairs[0]!.rootCertPem);
  await assert.rejects(readCredentials(outDir), { code: 'RAMPART_ERR_NOT_READY' });
  await writeCredentials(outDir, pairs[1]!);
  assert.equal((await readCredentials(outDir)).keyPem, pairs[1]!.keyPem);
});

test('non-PEM input is refused without echoing it and without touching the directory', async () => {
  const outDir = await freshOutDir();
  const secret = pairs[0]!.keyPem;
  const attempts = [
    writeCredentials(outDir, { ...pairs[0]!, keyPem: 'not a key' }),
    writeCredentials(outDir, { ...pairs[0]!, certChainPem: secret }),
    writeCredentials(outDir, { ...pairs[0]!, keyPem: secret + secret }),
    writeBundle(outDir, `${pairs[0]!.rootCertPem}trailing junk`, null),
    writeBundle(outDir, pairs[0]!.rootCertPem, { ...pairs[0]!, keyPem: 'not a key' }),
  ];
  for (const attempt of attempts) {
    await assert.rejects(Promise.resolve().then(() => attempt), (error: Error & { code?: string }) => error.code === 'RAMPART_ERR_INTERNAL' && !error.message.includes('-----'));
  }
  assert.deepEqual(await readdir(outDir), []);
});

test('under umask 000 the output directory and the parents it creates are 0755; existing ones keep their mode', async () => {
  const top = await freshOutDir();
  await chmod(top, 0o711);
  const outDir = join(top, 'made', 'out');
  const writer = `
process.umask(0);
const { writeCredentials } = await import(${JSON.stringify(join(repoRoot, 'src/agent/output-writer.ts'))});
await writeCredentials(process.argv[1], JSON.parse(process.argv[2]));
`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', writer, outDir, JSON.stringify(pairs[0])], { cwd: repoRoot, stdio: ['ignore', 'inherit', 'inherit'] });
  const [code] = (await once(child, 'exit')) as [number | null];
  assert.equal(code, 0);
  const mode = async (path: string): Promise<number> => (await stat(path)).mode & 0o777;
  assert.equal(await mode(join(top, 'made')), 0o755);
  assert.equal(await mode(outDir), 0o755);
  assert.equal(await mode(top), 0o711);
  assert.equal(await mode(join(outDir, 'key.pem')), 0o600);
});

test('a directory where a link belongs: the write is refused naming it, and the directory is left as it was', async () => {
  const outDir = await freshOutDir();
  const first = await writeCredentials(outDir, pairs[0]!);
  await rm(join(outDir, 'root-cert.pem'));
  await mkdir(join(outDir, 'root-cert.pem'));
  const before = (await readdir(outDir)).sort();
  for (let i = 0; i < 3; i++) {
    await assert.rejects(writeCredentials(outDir, pairs[1]!), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'RAMPART_ERR_CONFIG_INVALID');
      assert.match(error.message, /root-cert\.pem is a directory where the agent keeps a symlink; remove it/);
      return true;
    });
  }
  assert.deepEqual((await readdir(outDir)).sort(), before, 'no generation directory or temp link left behind');
  assert.equal(await readlink(join(outDir, '..data')), first);
  assert.equal((await readCredentials(outDir)).keyPem, pairs[0]!.keyPem, 'the previous generation is intact');
  await rm(join(outDir, 'root-cert.pem'), { recursive: true });
  await writeCredentials(outDir, pairs[1]!);
  assert.equal(await readFile(join(outDir, 'root-cert.pem'), 'utf8'), pairs[1]!.rootCertPem);
  assert.equal((await generations(outDir)).length, 2);
});

test('an output path that is a file is a coded config error', async () => {
  const outDir = join(await freshOutDir(), 'file');
  await writeFile(outDir, 'x');
  await assert.rejects(writeCredentials(outDir, pairs[0]!), { code: 'RAMPART_ERR_CONFIG_INVALID' });
});

// Reads in a loop in another process until stdin closes, checking that the key matches the
// certificate and that the bundle is from the same generation (every bundle written here starts
// with the certificate it was written alongside).
const READER = `
import { X509Certificate, createPrivateKey } from 'node:crypto';
const { readCredentials } = await import(${JSON.stringify(readerModule)});
let stop = false;
process.stdin.on('data', () => {}).on('end', () => { stop = true; });
const counts = { reads: 0, mismatches: 0, errors: [] };
console.log('ready');
while (!stop) {
  try {
    const c = await readCredentials(process.argv[1]);
    counts.reads++;
    const cert = new X509Certificate(c.certChainPem);
    if (!cert.checkPrivateKey(createPrivateKey(c.keyPem)) || !c.rootCertPem.startsWith(c.certChainPem)) counts.mismatches++;
  } catch (error) {
    counts.errors.push(String(error.code ?? error));
  }
}
console.log(JSON.stringify(counts));
`;

test('a concurrent reader never pairs a key with the wrong certificate across 200 swaps', async () => {
  const outDir = await freshOutDir();
  await writeCredentials(outDir, pairs[0]!);
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', READER, outDir], { cwd: repoRoot });
  try {
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    assert.equal((await lines.next()).value, 'ready');
    for (let i = 1; i <= 200; i++) {
      if (i % 50 === 0) await writeBundle(outDir, pairs[(i + 2) % 3]!.certChainPem + pairs[(i + 1) % 3]!.certChainPem, pairs[(i - 1) % 3]!);
      else await writeCredentials(outDir, pairs[i % 3]!);
    }
    child.stdin.end();
    const counts = JSON.parse(String((await lines.next()).value)) as { reads: number; mismatches: number; errors: string[] };
    assert.ok(counts.reads > 0, 'the reader ran during the swaps');
    assert.equal(counts.mismatches, 0);
    assert.deepEqual(counts.errors, []);
    // The parent's own check, with the same primitives, on the final state.
    const final = await readCredentials(outDir);
    assert.ok(new X509Certificate(final.certChainPem).checkPrivateKey(createPrivateKey(final.keyPem)));
    assert.equal((await generations(outDir)).length, 2);
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    }
  }
});

test('the keeper writes the files again when something removes the directory or changes a file between renewals (outside QA: gone until the next renewal, ready meanwhile)', async () => {
  const outDir = join(await freshOutDir(), 'kept');
  const logs = captureLogs();
  const keeper = new OutputKeeper({ outDir, logger: logs.logger, now: Date.now, random: () => 0.5, checkMs: 50 });
  try {
    await keeper.write(pairs[0]!);
    await rm(outDir, { recursive: true, force: true });
    await eventually('the directory written again', async () => {
      try {
        return (await readCredentials(outDir)).keyPem === pairs[0]!.keyPem;
      } catch {
        return false;
      }
    }, 10_000);
    const restored = logs.lines.find((l) => l['event'] === 'output-restored');
    // Not readCredentials' "no credentials yet", which would send an operator looking at the CA.
    assert.equal(restored?.['reason'], 'the ..data link or the files it names were removed');
    // A changed file (here the bundle) is put back too.
    const current = await readCredentials(outDir);
    await writeFile(join(outDir, current.generation, 'root-cert.pem'), pairs[1]!.rootCertPem);
    await eventually('the bundle put back', async () => (await readCredentials(outDir)).rootCertPem === pairs[0]!.rootCertPem, 10_000);
    assert.ok(logs.lines.some((l) => l['event'] === 'output-restored' && l['reason'] === 'the files differ from those the agent wrote'));
    assert.equal(keeper.staleReason(), null, 'ready again');
  } finally {
    await keeper.stop();
  }
});
