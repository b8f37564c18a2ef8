/** The `rampart ca` start banner offers only what the configured authenticators accept. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { caStartBanner } from '../../src/cli/commands/ca-banner.js';
import { loadCaConfig } from '../../src/config/ca-config.js';

const facts = { apiUrl: 'https://localhost:8443', monitoringUrl: 'http://127.0.0.1:9090', rootFingerprint: 'ab:cd', command: 'node /opt/rampart/bin/rampart.js' };

test('with the dev issuer the banner mints a dev token; without it, it never does', () => {
  assert.match(caStartBanner(loadCaConfig({}, {}), facts), new RegExp(`TOKEN=\\$\\(node /opt/rampart/bin/rampart\\.js token --namespace default --service-account demo --state-dir ${process.cwd().replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}/certs\\)`));
  assert.match(caStartBanner(loadCaConfig({ authn: 'svid,dev' }, {}), facts), /node \/opt\/rampart\/bin\/rampart\.js token/);
  const kube = caStartBanner(loadCaConfig({ authn: 'kubernetes' }, {}), facts);
  assert.doesNotMatch(kube, /rampart token/);
  assert.match(kube, /kubernetes: +a projected service-account token for audience rampart-ca, reviewed by the API server\n/);
  assert.match(kube, /TOKEN=\$\(cat /);
  const svidOnly = caStartBanner(loadCaConfig({ authn: 'svid' }, {}), facts);
  assert.doesNotMatch(svidOnly, /rampart token|TOKEN=/);
  assert.match(svidOnly, /svid: +a valid SVID of cluster\.local as TLS client certificate/);
  assert.match(svidOnly, /A first certificate needs a token authenticator; add dev, jwks or kubernetes to --authn\.\n\n$/);
});

test('the banner quotes a state dir that is not one shell word, so its commands paste as printed', () => {
  const banner = caStartBanner(loadCaConfig({ 'state-dir': "/tmp/my state/it's" }, {}), facts);
  const quoted = `'/tmp/my state/it'\\''s'`;
  assert.ok(banner.includes(`--state-dir ${quoted})`), banner);
  assert.ok(banner.includes(`--cacert '/tmp/my state/it'\\''s/root-cert.pem'`), banner);
  assert.match(caStartBanner(loadCaConfig({ 'state-dir': '/var/lib/rampart-ca' }, {}), facts), /--state-dir \/var\/lib\/rampart-ca\)/);
});
