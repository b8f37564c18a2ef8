/** The agent's mTLS proxy: inbound (mTLS in, TCP out) and outbound (TCP in, mTLS or tunnel out). */
export { startInbound, type InboundOptions, type InboundProxy, type ProxyTimeouts } from './inbound.js';
export { startOutbound, type OutboundOptions, type OutboundProxy } from './outbound.js';
export { compileAllowList, type PeerAuthorizer } from './authz.js';
export { peerSpiffeId, type PeerIdResult } from './peer-identity.js';
export type { TlsTuning } from './tls-settings.js';
export type { HostPort } from './errors.js';
