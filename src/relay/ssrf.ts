// Server-side request forgery guard for upstreams named by ops (the http provider).
// An upstream host that resolves to loopback, a private or link-local range, CGNAT,
// unique-local IPv6, an IPv4 address hidden in IPv6 (mapped, NAT64, 6to4) or a cloud
// metadata address is refused unless the provider explicitly allows it. The check runs on
// the address actually connected: the DNS answer is checked inside the socket's own
// lookup (so a name that rebinds between two lookups is checked each time), an IP literal
// before connecting, and the socket's remote address once more after connecting.
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { isIP, type LookupFunction, type Socket } from 'node:net';
import type { buildConnector } from 'undici';

export type AddressCategory =
  | 'unspecified'
  | 'loopback'
  | 'private'
  | 'link-local'
  | 'cgnat'
  | 'metadata'
  | 'unique-local'
  | 'multicast'
  | 'reserved'
  | 'documentation';

interface Ip {
  family: 4 | 6;
  value: bigint;
}

export interface Cidr extends Ip {
  bits: number;
}

/** What a provider may reach beyond the public internet. */
export interface AddressPolicy {
  /** every non-public range except cloud metadata */
  allowPrivate: boolean;
  /** exact ranges allowed whatever their category (metadata only this way) */
  allowed: readonly Cidr[];
}

export const REFUSE_NON_PUBLIC: AddressPolicy = { allowPrivate: false, allowed: [] };

function parseIpv4(text: string): bigint | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let v = 0n;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return undefined;
    v = (v << 8n) | BigInt(Number(p));
  }
  return v;
}

function parseIpv6(text: string): bigint | undefined {
  let s = text;
  const zone = s.indexOf('%');
  if (zone !== -1) s = s.slice(0, zone);
  // A trailing dotted quad (::ffff:1.2.3.4) stands for the last two groups.
  const lastColon = s.lastIndexOf(':');
  if (s.includes('.', lastColon)) {
    const v4 = parseIpv4(s.slice(lastColon + 1));
    if (v4 === undefined) return undefined;
    s = `${s.slice(0, lastColon + 1)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(':') : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...tail];
  let v = 0n;
  for (const g of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    v = (v << 16n) | BigInt(parseInt(g, 16));
  }
  return v;
}

export function parseIp(text: string): Ip | undefined {
  const bare = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  const family = isIP(bare.split('%')[0]!);
  if (family === 4) {
    const v = parseIpv4(bare);
    return v === undefined ? undefined : { family: 4, value: v };
  }
  if (family === 6) {
    const v = parseIpv6(bare);
    return v === undefined ? undefined : { family: 6, value: v };
  }
  return undefined;
}

/** `10.0.0.0/8`, `fd00::/8`, or a single address (a /32 or /128). */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf('/');
  const ip = parseIp(slash === -1 ? text : text.slice(0, slash));
  if (!ip) return undefined;
  const width = ip.family === 4 ? 32 : 128;
  const bitsText = slash === -1 ? String(width) : text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(bitsText) || Number(bitsText) > width) return undefined;
  return { ...ip, bits: Number(bitsText) };
}

function contains(range: Cidr, ip: Ip): boolean {
  if (range.family !== ip.family) return false;
  const shift = BigInt((ip.family === 4 ? 32 : 128) - range.bits);
  return range.value >> shift === ip.value >> shift;
}

const table = (rows: [string, AddressCategory][]) => rows.map(([cidr, category]) => ({ range: parseCidr(cidr)!, category }));

// Checked first: the metadata endpoints of AWS, GCP, Azure, Oracle, Alibaba and others.
const METADATA = table([
  ['169.254.169.254/32', 'metadata'],
  ['169.254.170.2/32', 'metadata'], // ECS task credentials
  ['168.63.129.16/32', 'metadata'], // Azure wireserver (a public address)
  ['100.100.100.200/32', 'metadata'], // Alibaba
  ['192.0.0.192/32', 'metadata'], // Oracle
  ['fd00:ec2::254/128', 'metadata'],
]);

// IANA special-purpose registries: anything not globally reachable.
const SPECIAL = table([
  ['0.0.0.0/8', 'unspecified'],
  ['10.0.0.0/8', 'private'],
  ['100.64.0.0/10', 'cgnat'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local'],
  ['172.16.0.0/12', 'private'],
  ['192.0.0.0/24', 'reserved'],
  ['192.0.2.0/24', 'documentation'],
  ['192.88.99.0/24', 'reserved'],
  ['192.168.0.0/16', 'private'],
  ['198.18.0.0/15', 'reserved'],
  ['198.51.100.0/24', 'documentation'],
  ['203.0.113.0/24', 'documentation'],
  ['224.0.0.0/4', 'multicast'],
  ['240.0.0.0/4', 'reserved'],
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['64:ff9b:1::/48', 'private'],
  ['100::/64', 'reserved'],
  ['2001::/23', 'reserved'],
  ['2001:db8::/32', 'documentation'],
  ['fc00::/7', 'unique-local'],
  ['fe80::/10', 'link-local'],
  ['fec0::/10', 'link-local'],
  ['ff00::/8', 'multicast'],
]);

/** The IPv4 address an IPv6 one carries (mapped, compatible, NAT64, 6to4), if any. */
function embeddedIpv4(ip: Ip): Ip | undefined {
  if (ip.family !== 6) return undefined;
  const v = ip.value;
  const low32 = v & 0xffffffffn;
  if (v >> 32n === 0xffffn) return { family: 4, value: low32 }; // ::ffff:a.b.c.d
  if (v >> 32n === 0n && low32 > 1n) return { family: 4, value: low32 }; // ::a.b.c.d (deprecated)
  if (v >> 32n === 0x64ff9b0000000000000000n) return { family: 4, value: low32 }; // 64:ff9b::/96
  if (v >> 112n === 0x2002n) return { family: 4, value: (v >> 80n) & 0xffffffffn }; // 2002:aabb:ccdd::/48
  return undefined;
}

/** The category of a non-public address; undefined for a public one or a non-address. */
export function classifyAddress(address: string): AddressCategory | undefined {
  const ip = parseIp(address);
  if (!ip) return undefined;
  return categoryOf(ip);
}

function categoryOf(ip: Ip): AddressCategory | undefined {
  for (const { range, category } of METADATA) if (contains(range, ip)) return category;
  const inner = embeddedIpv4(ip);
  if (inner) return categoryOf(inner);
  for (const { range, category } of SPECIAL) if (contains(range, ip)) return category;
  return undefined;
}

/** Why `address` may not be reached under `policy`, or undefined when it may. */
export function refusal(address: string, policy: AddressPolicy): string | undefined {
  const ip = parseIp(address);
  if (!ip) return `${JSON.stringify(address)} is not an IP address`;
  const inner = embeddedIpv4(ip);
  if (policy.allowed.some((r) => contains(r, ip) || (inner !== undefined && contains(r, inner)))) return undefined;
  const category = categoryOf(ip);
  if (category === undefined) return undefined;
  if (policy.allowPrivate && category !== 'metadata') return undefined;
  return `${address} is a ${category} address`;
}

/** The error a refused connection fails with; relay maps it to its own reason code. */
export class AddressRefused extends Error {
  readonly code = 'E_KEYHOLE_ADDRESS_REFUSED';
  readonly address: string;
  constructor(
    address: string,
    why: string,
  ) {
    super(`upstream address refused: ${why} (allowPrivateNetworks is not set for it)`);
    this.address = address;
  }
}

/** A `lookup` for net/tls.connect that fails when any resolved address is refused. */
export function guardedLookup(policy: AddressPolicy, base: LookupFunction = dnsLookup as LookupFunction): LookupFunction {
  return (hostname, options, callback) => {
    base(hostname, options, (err, address, family) => {
      if (err) return callback(err, address, family);
      const list: LookupAddress[] = Array.isArray(address) ? address : [{ address, family: family ?? 4 }];
      // One bad answer refuses the name: a mixed answer is a rebinding attempt or a mistake.
      for (const a of list) {
        const why = refusal(a.address, policy);
        if (why) return callback(new AddressRefused(a.address, `${hostname} resolves to ${why}`) as NodeJS.ErrnoException, '', 0);
      }
      callback(null, address, family);
    });
  };
}

/**
 * Wraps an undici connector: an IP-literal host is checked before connecting, and the
 * connected socket's remote address after (the address actually connected, whatever
 * resolved it). The connector itself should use `guardedLookup` so a refused name is
 * never connected at all.
 */
export function guardedConnector(connect: buildConnector.connector, policy: AddressPolicy): buildConnector.connector {
  return (options, callback) => {
    const host = options.hostname;
    if (parseIp(host)) {
      const why = refusal(host.replace(/^\[|\]$/g, ''), policy);
      if (why) {
        process.nextTick(callback, new AddressRefused(host, why), null);
        return;
      }
    }
    connect(options, (...args) => {
      const [err, socket] = args;
      if (err) return callback(err, null);
      const remote = (socket as Socket).remoteAddress;
      const why = remote === undefined ? 'the socket has no remote address' : refusal(remote, policy);
      if (why) {
        socket.destroy();
        return callback(new AddressRefused(remote ?? '?', why), null);
      }
      callback(null, socket);
    });
  };
}
