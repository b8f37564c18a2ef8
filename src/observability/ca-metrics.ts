/** Prometheus metrics of the CA (DESIGN section 10). */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface CaMetrics {
  readonly issued: Counter<'result'>;
  readonly issueDuration: Histogram<never>;
  readonly rootExpiry: Gauge<'fingerprint'>;
  readonly intermediateExpiry: Gauge<never>;
  readonly bundleSequence: Gauge<never>;
  readonly propagationRatio: Gauge<never>;
  readonly rotationSteps: Counter<'step'>;
  readonly connectionsShed: Counter<never>;
  readonly connectionsRefused: Counter<never>;
  readonly clientAddressBans: Counter<never>;
  readonly clientCertificateRequestsStopped: Counter<never>;
}

/** Registers the CA metrics on `registry`. */
export function createCaMetrics(registry: Registry): CaMetrics {
  const registers = [registry];
  return {
    issued: new Counter({ name: 'rampart_ca_certificates_issued_total', help: 'Certificate requests by result (ok or the error code).', labelNames: ['result'], registers }),
    issueDuration: new Histogram({
      name: 'rampart_ca_issue_duration_seconds',
      help: 'Time to authenticate, check and sign one certificate request.',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    }),
    rootExpiry: new Gauge({ name: 'rampart_ca_root_expiry_timestamp_seconds', help: 'NotAfter of each root in the trust bundle.', labelNames: ['fingerprint'], registers }),
    intermediateExpiry: new Gauge({ name: 'rampart_ca_intermediate_expiry_timestamp_seconds', help: 'NotAfter of the signing intermediate.', registers }),
    bundleSequence: new Gauge({ name: 'rampart_ca_trust_bundle_sequence', help: 'Current trust bundle sequence.', registers }),
    propagationRatio: new Gauge({ name: 'rampart_ca_bundle_propagation_ratio', help: 'Share of recently seen agents holding the newest bundle sequence.', registers }),
    rotationSteps: new Counter({ name: 'rampart_ca_rotation_steps_total', help: 'Root rotation steps taken.', labelNames: ['step'], registers }),
    connectionsShed: new Counter({
      name: 'rampart_ca_connections_shed_total',
      help: 'Connections reset without a TLS handshake because they waited too long for their turn (a connection flood).',
      registers,
    }),
    connectionsRefused: new Counter({
      name: 'rampart_ca_connections_refused_total',
      help: 'Connections closed on arrival because their address is banned for a TLS client chain costly to check.',
      registers,
    }),
    clientAddressBans: new Counter({
      name: 'rampart_ca_client_address_bans_total',
      help: 'Client addresses banned for presenting a TLS client chain costly to check.',
      registers,
    }),
    clientCertificateRequestsStopped: new Counter({
      name: 'rampart_ca_client_certificate_requests_stopped_total',
      help: 'Times a client address stopped being asked for a TLS client certificate, for a while, after presenting chains that did not verify again and again.',
      registers,
    }),
  };
}
