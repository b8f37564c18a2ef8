#!/usr/bin/env node
// Bundles the agent (src/cli/agent-entry.ts and all it imports, dependencies included) into one
// CommonJS file, dist/rampart-agent.cjs, for the agent container (bin/rampart-agent.cjs).
// `node scripts/bundle-agent.mjs ENTRY OUTFILE` bundles another entry the same way: the proxy
// benchmark bundles bench/proxy-entry.ts with it, so it measures the form that ships.
// Any esbuild warning fails the build: an import.meta or a dynamic require that a bundle cannot
// carry would otherwise surface only when a pod starts.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const [entry = 'src/cli/agent-entry.ts', outfile = 'dist/rampart-agent.cjs'] = process.argv.slice(2);

/**
 * What the bundle leaves out of pino: its worker-thread transports, which the agent never uses.
 * pino loads them when it loads, and with them node's worker_threads, module and url: about
 * 520 KiB of resident memory in every agent (an idle bench agent read 48,640 kB with them and
 * 48,110 kB without). Each substitution names the exact file it replaces, and the build fails if
 * pino no longer has that file or no longer imports it the way replaced here.
 */
/** pino's lib/tools.js, which imports both the transport module and worker_threads. */
const PINO_TOOLS = /[\\/]node_modules[\\/]pino[\\/]lib[\\/]tools\.js$/;
const PINO_TRIMS = [
  { importer: PINO_TOOLS, request: './transport', with: 'pino-transport-left-out.cjs' },
  { importer: /[\\/]node_modules[\\/]pino[\\/]pino\.js$/, request: './lib/transport', with: 'pino-transport-left-out.cjs' },
  { importer: PINO_TOOLS, request: 'worker_threads', with: 'pino-main-thread.cjs' },
];

/** The import paths PINO_TRIMS replaces, as the one filter esbuild runs the plugin for. */
const REQUESTS = new RegExp(`^(${[...new Set(PINO_TRIMS.map((t) => t.request))].map((r) => r.replace(/[./]/g, '\\$&')).join('|')})$`);

const pinoTrims = {
  name: 'agent-pino-trims',
  setup(b) {
    const used = new Set();
    b.onResolve({ filter: REQUESTS }, (args) => {
      const trim = PINO_TRIMS.find((t) => t.request === args.path && t.importer.test(args.importer));
      if (trim === undefined) return undefined;
      used.add(trim);
      return { path: join(here, 'agent-bundle', trim.with) };
    });
    // tools.js must read nothing from worker_threads but isMainThread, or the stand-in would lie.
    b.onLoad({ filter: PINO_TOOLS }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      const reads = [...text.matchAll(/require\('worker_threads'\)/g)].length;
      if (reads !== 1 || !text.includes("const { isMainThread } = require('worker_threads')")) {
        return { errors: [{ text: `pino/lib/tools.js no longer reads only isMainThread from worker_threads: review scripts/agent-bundle/pino-main-thread.cjs` }] };
      }
      // Handed on as read, so esbuild does not read the file a second time.
      return { contents: text, loader: 'js' };
    });
    b.onEnd((result) => {
      if (result.errors.length > 0) return;
      const missing = PINO_TRIMS.filter((t) => !used.has(t));
      if (missing.length > 0) {
        result.errors.push({ text: `pino no longer imports ${missing.map((t) => t.request).join(', ')} where scripts/bundle-agent.mjs expects it: review its PINO_TRIMS` });
      }
    });
  },
};

const result = await build({
  entryPoints: [entry],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  logLevel: 'silent',
  legalComments: 'eof',
  plugins: [pinoTrims],
}).catch((err) => ({ errors: err.errors ?? [{ text: err.message }], warnings: err.warnings ?? [] }));
for (const m of [...result.errors, ...result.warnings]) console.error(`bundle-agent: ${m.text}${m.location ? ` (${m.location.file}:${m.location.line})` : ''}`);
if (result.errors.length > 0 || result.warnings.length > 0) process.exit(1);
