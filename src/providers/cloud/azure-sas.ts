// Azure Blob service SAS (signed with the account key), versions 2020-12-06 and later:
// the string to sign and the query are built the way Microsoft's @azure/storage-blob
// builds them (checked against SDK-derived cases in test/providers/azure.test.ts).
import { createHmac } from 'node:crypto';

export interface ServiceSasInput {
  account: string;
  /** the account key, decoded from base64 */
  accountKey: Buffer;
  container: string;
  /** blob name as stored; absent: a container SAS */
  blob?: string | undefined;
  /** in Azure's canonical order, e.g. r, rl, cw */
  permissions: string;
  /** ms epoch */
  startsOn?: number | undefined;
  expiresOn: number;
  protocol?: 'https' | 'https,http' | undefined;
  version: string;
  ipRange?: { start: string; end?: string | undefined } | undefined;
  identifier?: string | undefined;
  cacheControl?: string | undefined;
  contentDisposition?: string | undefined;
  contentEncoding?: string | undefined;
  contentLanguage?: string | undefined;
  contentType?: string | undefined;
}

/** 2024-01-01T00:00:00Z: the SAS time format (no milliseconds). */
export function sasTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function serviceSas(input: ServiceSasInput): { query: string; signature: string; stringToSign: string } {
  if (input.version < '2020-12-06') throw new Error('service SAS versions before 2020-12-06 are not supported');
  const resource = input.blob !== undefined ? 'b' : 'c';
  const canonical = `/blob/${input.account}/${input.container}${input.blob !== undefined ? `/${input.blob}` : ''}`;
  const ip = input.ipRange ? (input.ipRange.end ? `${input.ipRange.start}-${input.ipRange.end}` : input.ipRange.start) : undefined;
  const st = input.startsOn !== undefined ? sasTime(input.startsOn) : undefined;
  const se = sasTime(input.expiresOn);
  const stringToSign = [
    input.permissions,
    st ?? '',
    se,
    canonical,
    input.identifier ?? '',
    ip ?? '',
    input.protocol ?? '',
    input.version,
    resource,
    '', // snapshot time
    '', // encryption scope
    input.cacheControl ?? '',
    input.contentDisposition ?? '',
    input.contentEncoding ?? '',
    input.contentLanguage ?? '',
    input.contentType ?? '',
  ].join('\n');
  const signature = createHmac('sha256', input.accountKey).update(stringToSign, 'utf8').digest('base64');
  const params: [string, string | undefined][] = [
    ['sv', input.version],
    ['spr', input.protocol],
    ['st', st],
    ['se', se],
    ['sip', ip],
    ['si', input.identifier],
    ['sr', resource],
    ['sp', input.permissions],
    ['rscc', input.cacheControl],
    ['rscd', input.contentDisposition],
    ['rsce', input.contentEncoding],
    ['rscl', input.contentLanguage],
    ['rsct', input.contentType],
    ['sig', signature],
  ];
  const query = params
    .filter((p): p is [string, string] => p[1] !== undefined && p[1] !== '')
    .map(([k, v]) => `${k}=${encodeURIComponent(v)}`)
    .join('&');
  return { query, signature, stringToSign };
}

/** A user delegation key (Get User Delegation Key), as the Blob service answers it. */
export interface UserDelegationKey {
  signedObjectId: string;
  signedTenantId: string;
  /** ISO 8601, as the service sent them */
  signedStart: string;
  signedExpiry: string;
  signedService: string;
  signedVersion: string;
  /** base64, as sent */
  value: string;
}

export type UserDelegationSasInput = Omit<ServiceSasInput, 'accountKey' | 'identifier'> & { key: UserDelegationKey };

/**
 * Azure Blob user delegation SAS, versions 2020-12-06 and later (before the 2025-07-05
 * fields): signed with a key the service derived for an Entra ID identity, so no account key
 * is needed. Built the way @azure/storage-blob's generateBlobSASQueryParameters does with a
 * user delegation key (compared byte for byte in test/providers/azure-identity.test.ts).
 */
export function userDelegationSas(input: UserDelegationSasInput): { query: string; signature: string; stringToSign: string } {
  if (input.version < '2020-12-06') throw new Error('user delegation SAS versions before 2020-12-06 are not supported');
  const k = input.key;
  const resource = input.blob !== undefined ? 'b' : 'c';
  const canonical = `/blob/${input.account}/${input.container}${input.blob !== undefined ? `/${input.blob}` : ''}`;
  const ip = input.ipRange ? (input.ipRange.end ? `${input.ipRange.start}-${input.ipRange.end}` : input.ipRange.start) : undefined;
  const st = input.startsOn !== undefined ? sasTime(input.startsOn) : undefined;
  const se = sasTime(input.expiresOn);
  const skt = sasTime(Date.parse(k.signedStart));
  const ske = sasTime(Date.parse(k.signedExpiry));
  const stringToSign = [
    input.permissions,
    st ?? '',
    se,
    canonical,
    k.signedObjectId,
    k.signedTenantId,
    skt,
    ske,
    k.signedService,
    k.signedVersion,
    '', // preauthorized agent object id
    '', // agent object id
    '', // correlation id
    ip ?? '',
    input.protocol ?? '',
    input.version,
    resource,
    '', // snapshot time
    '', // encryption scope
    input.cacheControl ?? '',
    input.contentDisposition ?? '',
    input.contentEncoding ?? '',
    input.contentLanguage ?? '',
    input.contentType ?? '',
  ].join('\n');
  const signature = createHmac('sha256', Buffer.from(k.value, 'base64')).update(stringToSign, 'utf8').digest('base64');
  const params: [string, string | undefined][] = [
    ['sv', input.version],
    ['spr', input.protocol],
    ['st', st],
    ['se', se],
    ['sip', ip],
    ['skoid', k.signedObjectId],
    ['sktid', k.signedTenantId],
    ['skt', skt],
    ['ske', ske],
    ['sks', k.signedService],
    ['skv', k.signedVersion],
    ['sr', resource],
    ['sp', input.permissions],
    ['rscc', input.cacheControl],
    ['rscd', input.contentDisposition],
    ['rsce', input.contentEncoding],
    ['rscl', input.contentLanguage],
    ['rsct', input.contentType],
    ['sig', signature],
  ];
  const query = params
    .filter((p): p is [string, string] => p[1] !== undefined && p[1] !== '')
    .map(([k, v]) => `${k}=${encodeURIComponent(v)}`)
    .join('&');
  return { query, signature, stringToSign };
}
