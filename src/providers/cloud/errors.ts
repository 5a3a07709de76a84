// A request-time refusal from a cloud provider (bucket not allowed, key outside the
// prefixes, TTL over the maximum, credentials unavailable), carrying its reason code.
// Its message names the rule, never a credential or a signed URL.
import type { Reason } from '../../reasons.js';

export class CloudRefusal extends Error {
  constructor(
    readonly reason: Reason,
    message: string,
    /** HTTP status for the data route */
    readonly status: number,
  ) {
    super(message);
  }
}
