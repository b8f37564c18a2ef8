#!/usr/bin/env node
// The agent container's entry: `rampart agent` from one CommonJS bundle (dist/rampart-agent.cjs,
// built by `npm run build`, which `npm ci` runs). Start it through bin/agent-node.
'use strict';
const { existsSync } = require('node:fs');
const { join } = require('node:path');

const bundle = join(__dirname, '..', 'dist', 'rampart-agent.cjs');
if (!existsSync(bundle)) {
  process.stderr.write('rampart agent: dist/rampart-agent.cjs is missing; run `npm run build` (npm ci does it for you) [RAMPART_ERR_CONFIG_INVALID]\n');
  process.exit(2);
}
require(bundle);
