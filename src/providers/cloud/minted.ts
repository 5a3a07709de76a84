// Minted-URL cache: one entry per (credential identity, audience, method, TTL, signing
// window, object). Stable signing times make the entries reusable for a whole window.
import { LRUCache } from 'lru-cache';

export interface MintedUrl {
  url: string;
  /** ms epoch */
  expiresAt: number;
}

export class MintedCache {
  private readonly lru: LRUCache<string, MintedUrl> | undefined;

  constructor(maxEntries: number, windowSeconds: number) {
    this.lru = maxEntries > 0 ? new LRUCache({ max: maxEntries, ttl: Math.max(1, windowSeconds) * 1000, ttlAutopurge: false }) : undefined;
  }

  /** false with maxEntries 0: every URL is signed afresh */
  get enabled(): boolean {
    return this.lru !== undefined;
  }

  get(key: string): MintedUrl | undefined {
    return this.lru?.get(key);
  }

  set(key: string, value: MintedUrl): void {
    this.lru?.set(key, value);
  }

  get size(): number {
    return this.lru?.size ?? 0;
  }
}
