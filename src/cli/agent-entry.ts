/**
 * Entry of `rampart agent` as the agent container runs it: `npm run build` bundles this file and
 * everything it imports into one CommonJS file, dist/rampart-agent.cjs (scripts/bundle-agent.mjs),
 * started through bin/rampart-agent.cjs. Same flags and behaviour as `rampart agent`; one file
 * loaded by require keeps node's ES module loader, its builtins and libuv's thread pool out of a
 * sidecar that runs in every pod (docs/deploy-kubernetes.md, "Agent runtime settings").
 */
import { runAgent } from './commands/agent.js';
import { runCommand } from './run-command.js';

void runCommand('agent', async () => runAgent, process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
