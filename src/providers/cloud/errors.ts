// A request-time refusal from a cloud provider (bucket not allowed, key outside the
// prefixes, TTL over the maximum, credentials unavailable), carrying its reason code.
// Its message names the rule, never a credential or a signed URL.
import { ReasonError } from '../../reasons.ts';

export class CloudRefusal extends ReasonError {}
