// Which objects a cloud provider may sign: listed buckets (containers), and within each
// the listed key prefixes. Checked on every request, before anything is signed.
import { CloudRefusal } from './errors.ts';

export interface ObjectRef {
  bucket: string;
  /** the object key, '/'-joined decoded segments */
  key: string;
}

export class Allowlist {
  private readonly buckets: Map<string, readonly string[] | undefined>;

  constructor(entries: readonly { name: string; prefixes?: readonly string[] | undefined }[]) {
    this.buckets = new Map(entries.map((e) => [e.name, e.prefixes]));
  }

  /** Throws a CloudRefusal unless `ref` names an object under an allowed bucket and prefix. */
  check(ref: ObjectRef): ObjectRef {
    if (!this.buckets.has(ref.bucket)) throw new CloudRefusal('bucket_not_allowed', `bucket ${ref.bucket} is not in this provider's allowlist`);
    if (ref.key === '') throw new CloudRefusal('key_not_allowed', 'the URI names a bucket, not an object');
    const prefixes = this.buckets.get(ref.bucket);
    if (prefixes && !prefixes.some((p) => ref.key.startsWith(p))) {
      throw new CloudRefusal('key_not_allowed', "the object key is outside this provider's allowed prefixes");
    }
    return ref;
  }

  names(): string[] {
    return [...this.buckets.keys()];
  }
}
