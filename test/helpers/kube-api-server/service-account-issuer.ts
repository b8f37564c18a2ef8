/**
 * The API server's service-account token issuer: mints projected tokens (RS256) shaped like the
 * ones kubelet mounts, and reviews them the way the TokenReview API does.
 */
import { generateKeyPairSync, randomUUID, createHash, type KeyObject } from 'node:crypto';
import { SignJWT, jwtVerify, exportJWK, errors as joseErrors } from 'jose';

/** The ServiceAccount objects of the API server's store, as the token issuer and reviewer see them. */
export interface ServiceAccountDirectory {
  /** The uid of the stored object, created if missing; undefined when its namespace does not exist. */
  ensure(namespace: string, name: string): string | undefined;
  /** The uid of the stored object, or undefined when there is none. */
  lookup(namespace: string, name: string): string | undefined;
}

/** What `mintServiceAccountToken` accepts. */
export interface MintOptions {
  readonly namespace: string;
  readonly serviceAccount: string;
  /** Defaults to the API server's own audience (the issuer URL). */
  readonly audiences?: readonly string[];
  /** Lifetime from now; negative values mint an already expired token. Default 3600. */
  readonly expiresInSeconds?: number;
  readonly podName?: string;
  readonly podUid?: string;
  /** Seconds since the epoch; default now. */
  readonly notBefore?: number;
  /** Seconds since the epoch for `iat`; default now. */
  readonly issuedAt?: number;
}

/** The status part of a TokenReview answer. */
export interface TokenReviewStatus {
  authenticated?: boolean;
  user: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> };
  audiences?: string[];
  error?: string;
}

const NBF_LEEWAY_SECONDS = 60;

/** Issuer with its own RSA key; `now` is milliseconds since the epoch. */
export class ServiceAccountIssuer {
  readonly issuer: string;
  readonly apiAudiences: readonly string[];
  private readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly keyId: string;
  private readonly saUids = new Map<string, string>();
  private readonly revokedPods = new Set<string>();
  /** Accounts whose tokens were minted against a stored ServiceAccount object (ns/name). */
  private readonly stored = new Set<string>();

  constructor(
    issuer: string,
    private readonly now: () => number,
    apiAudiences?: readonly string[],
    private readonly accounts?: ServiceAccountDirectory,
  ) {
    this.issuer = issuer;
    this.apiAudiences = apiAudiences ?? [issuer];
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    this.privateKey = privateKey;
    this.publicKey = publicKey;
    this.keyId = createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('base64url');
  }

  /**
   * The uid of a service account. When its namespace exists, that of the stored ServiceAccount
   * object (created on first use, as if an admin had), so deleting or re-creating the object
   * invalidates tokens minted before, as on a real cluster; otherwise a stable uid of its own.
   */
  serviceAccountUid(namespace: string, serviceAccount: string): string {
    const k = `${namespace}/${serviceAccount}`;
    const objectUid = this.accounts?.ensure(namespace, serviceAccount);
    if (objectUid !== undefined) {
      this.stored.add(k);
      return objectUid;
    }
    let uid = this.saUids.get(k);
    if (uid === undefined) {
      uid = randomUUID();
      this.saUids.set(k, uid);
    }
    return uid;
  }

  /** Marks a pod deleted: tokens bound to its uid stop validating, as bound tokens do. */
  revokePod(podUid: string): void {
    this.revokedPods.add(podUid);
  }

  /** Mints a projected service-account token. */
  async mint(o: MintOptions): Promise<string> {
    const nowS = Math.floor(this.now() / 1000);
    const iat = o.issuedAt ?? nowS;
    const kubeClaim: Record<string, unknown> = {
      namespace: o.namespace,
      serviceaccount: { name: o.serviceAccount, uid: this.serviceAccountUid(o.namespace, o.serviceAccount) },
    };
    if (o.podName !== undefined || o.podUid !== undefined) kubeClaim['pod'] = { name: o.podName ?? 'pod', uid: o.podUid ?? randomUUID() };
    return new SignJWT({ 'kubernetes.io': kubeClaim })
      .setProtectedHeader({ alg: 'RS256', kid: this.keyId })
      .setIssuer(this.issuer)
      .setSubject(`system:serviceaccount:${o.namespace}:${o.serviceAccount}`)
      .setAudience([...(o.audiences ?? this.apiAudiences)])
      .setIssuedAt(iat)
      .setNotBefore(o.notBefore ?? iat)
      .setExpirationTime(nowS + (o.expiresInSeconds ?? 3600))
      .setJti(randomUUID())
      .sign(this.privateKey);
  }

  /** Public keys as a JWKS (what `/openid/v1/jwks` serves). */
  async jwks(): Promise<{ keys: object[] }> {
    const jwk = await exportJWK(this.publicKey);
    return { keys: [{ ...jwk, kid: this.keyId, use: 'sig', alg: 'RS256' }] };
  }

  /**
   * Reviews a token like the TokenReview API: signature, issuer, expiry, nbf (60 s leeway),
   * audience intersection (empty `audiences` means the API server's own), bound pod.
   */
  async review(token: string, audiences: readonly string[] | undefined): Promise<TokenReviewStatus> {
    const wanted = audiences === undefined || audiences.length === 0 ? this.apiAudiences : audiences;
    const fail = (why: string): TokenReviewStatus => ({ user: {}, error: `[invalid bearer token, ${why}]` });
    let payload: Record<string, unknown>;
    try {
      // go-jose's 60 s leeway covers nbf; expiry is then checked strictly, as Kubernetes does.
      const res = await jwtVerify(token, this.publicKey, { issuer: this.issuer, algorithms: ['RS256'], currentDate: new Date(this.now()), clockTolerance: NBF_LEEWAY_SECONDS, requiredClaims: ['exp', 'sub'] });
      payload = res.payload as Record<string, unknown>;
    } catch (e) {
      if (e instanceof joseErrors.JWTExpired) return fail('service account token has expired');
      if (e instanceof joseErrors.JWSSignatureVerificationFailed) return fail('square/go-jose: error in cryptographic primitive');
      if (e instanceof joseErrors.JOSEError) return fail(e.message);
      return fail('token could not be validated');
    }
    if (typeof payload['exp'] !== 'number' || payload['exp'] <= Math.floor(this.now() / 1000)) return fail('service account token has expired');
    const aud = Array.isArray(payload['aud']) ? (payload['aud'] as string[]) : typeof payload['aud'] === 'string' ? [payload['aud']] : [];
    const granted = wanted.filter((a) => aud.includes(a));
    if (granted.length === 0) return fail(`token audiences ${JSON.stringify(aud)} is invalid for the target audiences ${JSON.stringify(wanted)}`);
    const kube = payload['kubernetes.io'] as { namespace?: string; serviceaccount?: { name?: string; uid?: string }; pod?: { name?: string; uid?: string } } | undefined;
    const ns = kube?.namespace;
    const sa = kube?.serviceaccount?.name;
    if (ns === undefined || sa === undefined || payload['sub'] !== `system:serviceaccount:${ns}:${sa}`) return fail('service account token claims are malformed');
    if (this.stored.has(`${ns}/${sa}`)) {
      // The API server checks the token against the ServiceAccount object itself.
      const uid = this.accounts?.lookup(ns, sa);
      if (uid === undefined) return fail(`serviceaccounts "${sa}" not found`);
      if (uid !== kube?.serviceaccount?.uid) return fail(`service account UID (${uid}) does not match claim (${kube?.serviceaccount?.uid ?? ''})`);
    }
    if (kube?.pod?.uid !== undefined && this.revokedPods.has(kube.pod.uid)) return fail(`pod "${kube.pod.name ?? ''}" is not found`);
    const extra: Record<string, string[]> = {};
    if (kube?.pod !== undefined) {
      extra['authentication.kubernetes.io/pod-name'] = [kube.pod.name ?? ''];
      extra['authentication.kubernetes.io/pod-uid'] = [kube.pod.uid ?? ''];
    }
    if (typeof payload['jti'] === 'string') extra['authentication.kubernetes.io/credential-id'] = [`JTI=${payload['jti']}`];
    return {
      authenticated: true,
      user: {
        username: `system:serviceaccount:${ns}:${sa}`,
        uid: kube?.serviceaccount?.uid ?? '',
        groups: ['system:serviceaccounts', `system:serviceaccounts:${ns}`, 'system:authenticated'],
        extra,
      },
      audiences: granted,
    };
  }
}
