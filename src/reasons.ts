// Every refusal carries one of these reason codes: in the JSON error body, the audit
// event and the metrics. Each code carries the HTTP status it is answered with and the
// message of its error body; docs/reasons.md explains each with what to do about it.
const CODES = {
  ok: [200, 'the request was served'],
  token_missing: [401, 'no session token in Authorization, the session cookie or ?token='],
  token_malformed: [401, 'the token is not a well-formed compact JWS'],
  token_invalid: [401, 'the token signature does not verify with any configured key'],
  token_alg: [401, 'the token algorithm is not allowed for the key that matched'],
  token_unknown_kid: [401, 'the token names a kid that no configured key has'],
  token_expired: [401, 'the token exp is in the past (beyond the clock tolerance)'],
  token_not_yet_valid: [401, 'the token nbf is in the future (beyond the clock tolerance)'],
  token_claims: [401, 'a required claim (iss, aud, sub, exp) is missing or wrong, or the limits claim is malformed'],
  token_lifetime: [401, 'the token lives longer (exp - iat) than auth.maxTokenLifetime allows'],
  token_revoked: [401, 'the token jti, or every token of its sub issued before now, was revoked'],
  uri_missing: [400, 'the uri query parameter is missing'],
  uri_invalid: [400, 'the URI is not a well-formed absolute URI'],
  uri_forbidden_char: [400, 'the URI contains a control character, backslash or NUL'],
  uri_userinfo: [400, 'the URI carries user information (user:pass@)'],
  uri_traversal: [400, 'the URI has a . or .. segment, in any encoding'],
  uri_double_encoded: [400, 'the URI is percent-encoded twice'],
  uri_empty_segment: [400, 'the URI has an empty path segment (//)'],
  uri_folder: [400, 'the URI ends in / and so names a folder, not an object: no provider serves folders'],
  uri_query: [400, 'the URI has a query or fragment, which no provider accepts'],
  uri_too_long: [400, 'the URI is longer than the configured limit'],
  no_provider: [403, 'no configured provider owns the URI; Keyhole is never an open proxy'],
  scope_denied: [403, "the URI is outside the token's scope or uri claim"],
  org_denied: [403, "the provider is not open to the token's org or project"],
  method_not_allowed: [405, 'the data routes accept GET, HEAD and OPTIONS only'],
  cors_origin: [403, 'the Origin is not in the CORS allowlist'],
  data_destination_refused: [403, 'a browser asked for the data as a script, worker, service worker, worklet, stylesheet, XSLT or manifest (Sec-Fetch-Dest, Service-Worker): data never runs on this origin'],
  not_found: [404, 'the object does not exist upstream'],
  range_not_satisfiable: [416, 'the Range cannot be satisfied for this object'],
  upstream_error: [502, 'the upstream failed or answered garbage; see the request id in the logs'],
  upstream_timeout: [504, 'the upstream did not connect, answer or send body bytes in time'],
  upstream_status: [502, 'the upstream answered an error status'],
  upstream_credential_echo: [502, 'the upstream answer repeated the credential Keyhole injected: refused before the head, or cut mid-body'],
  local_link_refused: [403, 'the local file is a hard link, or a symbolic link into another provider root: refused so no file is read past its provider checks'],
  upstream_address_refused: [502, 'the upstream host resolves to a loopback, private, link-local or metadata address this provider may not reach (allowPrivateNetworks)'],
  revocation_unavailable: [503, 'the revocation store cannot be reached, so Keyhole fails closed'],
  rate_limited: [429, 'too many requests, or too many downloads at once, for a configured limit (or the token\'s own): retry after Retry-After seconds'],
  quota_exceeded: [429, 'a byte or distinct-object quota for this window is used up: retry after Retry-After seconds, when the window ends'],
  limits_unavailable: [503, 'the limits store cannot be reached, so limited requests fail closed'],
  admin_unauthorized: [401, 'the admin credential is missing or wrong'],
  bad_request: [400, 'the request body, parameters or framing are malformed'],
  header_too_large: [431, 'the request head is larger than server.maxHeaderSize'],
  route_not_found: [404, 'no Keyhole route at this path (and no labeling app configured behind Keyhole)'],
  bucket_not_allowed: [403, "the bucket or container is not in the cloud provider's allowlist"],
  key_not_allowed: [403, "the object key is outside the cloud provider's allowed prefixes, or names a folder"],
  ttl_too_long: [400, "the asked presigned-URL lifetime is over the provider's ttl.max"],
  credentials_unavailable: [502, 'the cloud provider could not obtain usable credentials (chain, refresh); see the logs'],
  request_framing: [400, 'ambiguous request framing (Content-Length with Transfer-Encoding, a repeated one, or a Transfer-Encoding other than chunked): refused, never forwarded'],
  body_too_large: [413, 'the request body is larger than this route accepts (app.maxBodyBytes on the app front)'],
  body_type: [415, 'the request body must be application/json'],
  app_method_denied: [405, 'this HTTP method is not allowed on this app path (app.methods / app.defaultMethods)'],
  introspect_denied: [401, 'no Keyhole token, and the app did not recognise the forwarded credentials (auth.introspect)'],
  introspect_unavailable: [503, 'the app introspection endpoint failed or timed out, so Keyhole fails closed'],
  session_logged_out: [401, 'the app session cookie was logged out through Keyhole (auth.introspect.logout): introspection is not asked for it again'],
  introspect_provider: [403, 'a session authorized by app introspection may only read the providers listed in auth.introspect.providers'],
  authorizer_peer: [403, 'only a data plane listed in authorizer.peers may ask /v1/authorize: its answers carry upstream credentials'],
  authorizer_unsupported: [501, "this provider's reads cannot be handed to a data plane (kinds local and redis, an http provider with auth type header): read it through /v1/data"],
  internal: [500, 'an unexpected error; see the request id in the logs'],
} as const satisfies Record<string, readonly [number, string]>;

export type Reason = keyof typeof CODES;

/** The message of each reason's error body. */
export const REASONS = Object.freeze(Object.fromEntries(Object.entries(CODES).map(([code, [, text]]) => [code, text]))) as { readonly [R in Reason]: (typeof CODES)[R][1] };

/** The HTTP status a refusal with this reason is answered with. */
export function statusOf(reason: Reason): number {
  return CODES[reason][0];
}

/**
 * A refusal thrown by a layer that knows why but not how to answer: the route that catches
 * it answers with its reason (and so its status). The message names the rule broken, never
 * a credential.
 */
export class ReasonError extends Error {
  readonly reason: Reason;
  constructor(
    reason: Reason,
    message: string,
  ) {
    super(message);
    this.reason = reason;
  }

  get status(): number {
    return statusOf(this.reason);
  }
}
