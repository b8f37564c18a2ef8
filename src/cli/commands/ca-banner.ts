/**
 * The start banner `rampart ca` prints on stderr: where the CA listens, where its state and trust
 * bundle live, and, with a file store, how to get a first certificate with the authenticators it
 * runs, and only with those.
 */
import { resolve } from 'node:path';
import type { CaConfig } from '../../config/ca-config.js';

/** What the banner reports about the running CA. */
export interface BannerFacts {
  readonly apiUrl: string;
  readonly monitoringUrl: string;
  readonly rootFingerprint: string | undefined;
  /**
   * How to run `rampart` from any directory, e.g. `node /opt/rampart/bin/rampart.js`: `npx rampart`
   * works only inside the checkout, and elsewhere asks the npm registry for a package of that name.
   */
  readonly command: string;
  /** Set under `--store kubernetes`: the objects that hold the state and the published bundle. */
  readonly kubernetes?: KubernetesBannerFacts | undefined;
}

export interface KubernetesBannerFacts {
  readonly namespace: string;
  readonly stateSecret: string;
  readonly rootCertConfigMap: string;
}

/** `text` as one shell word, so a pasted command works with a state dir like "my state". */
export function shellWord(text: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}

function requestLines(config: CaConfig, facts: BannerFacts, tokenLine: string): string {
  return (
    `  ${tokenLine}\n` +
    `  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout demo.key -subj / -out demo.csr\n` +
    `  curl --cacert ${shellWord(resolve(config.stateDir, 'root-cert.pem'))} -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \\\n` +
    `       --data "{\\"csr\\":\\"$(awk '{printf "%s\\\\n", $0}' demo.csr)\\"}" ${facts.apiUrl}/v1/certificates\n` +
    `  (or let the agent do it: ${facts.command} agent --help)\n`
  );
}

/** How a caller gets a certificate: a dev token when `dev` runs, else the credentials accepted. */
function howToGetACertificate(config: CaConfig, facts: BannerFacts): string {
  if (config.authn.includes('dev')) {
    return `Get a token and a certificate (in another shell):\n` + requestLines(config, facts, `TOKEN=$(${facts.command} token --namespace default --service-account demo --state-dir ${shellWord(resolve(config.stateDir))})`);
  }
  const accepted: string[] = [];
  for (const name of config.authn) {
    if (name === 'jwks' && config.jwks !== undefined) accepted.push(`  jwks:        a service-account token issued by ${config.jwks.issuer} for audience ${config.jwks.audience}`);
    if (name === 'kubernetes') accepted.push(`  kubernetes:  a projected service-account token for audience ${config.kubernetes.audience}, reviewed by the API server`);
    if (name === 'svid') accepted.push(`  svid:        a valid SVID of ${config.trustDomain} as TLS client certificate (renews its own identity)`);
  }
  const header = `Accepted callers (--authn ${config.authn.join(',')}):\n${accepted.join('\n')}\n\n`;
  if (!config.authn.includes('jwks') && !config.authn.includes('kubernetes')) {
    return header + `A first certificate needs a token authenticator; add dev, jwks or kubernetes to --authn.\n`;
  }
  return header + `Get a certificate with such a token (in another shell):\n` + requestLines(config, facts, 'TOKEN=$(cat /path/to/service-account.token)');
}

/** The whole banner, ending in a blank line. */
export function caStartBanner(config: CaConfig, facts: BannerFacts): string {
  const head = `\nRampart CA listening on ${facts.apiUrl}  (monitoring ${facts.monitoringUrl})\n  trust domain: ${config.trustDomain}\n`;
  const k8s = facts.kubernetes;
  if (k8s !== undefined) {
    return (
      head +
      `  root:         ${facts.rootFingerprint ?? '?'}  (state in Secret ${k8s.namespace}/${k8s.stateSecret})\n` +
      `  trust bundle: ConfigMap ${k8s.rootCertConfigMap} (key root-cert.pem) in every namespace, kept by the leader,\n` +
      `                or ${facts.apiUrl}/v1/trust-bundle?format=pem\n\n`
    );
  }
  return (
    head +
    `  root:         ${facts.rootFingerprint ?? '?'}  (state in ${config.stateDir}/)\n` +
    `  trust bundle: ${config.stateDir}/root-cert.pem\n\n` +
    howToGetACertificate(config, facts) +
    '\n'
  );
}
