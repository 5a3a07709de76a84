// Keyhole's metrics (docs/metrics.md). One registry per Keyhole instance (tests run several in
// a process). Written as the Prometheus text format by ./exposition.ts, with no client library:
// docs/metrics.md says why.
import type { Sample } from './exposition.ts';
import { Counter, Gauge, Registry, type MetricSource } from './instruments.ts';
import { buildInfo } from './build-info.ts';
import { processMetrics } from './process-metrics.ts';
import { flushTallies, ProviderTally, TalliedHistogram } from './tally.ts';

const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60];

/** What the metrics read of a cloud provider's credentials (providers/types.ts CredentialState). */
export interface CloudCredentialState {
  up: boolean | undefined;
  fetches: { ok: number; failed: number };
}

export class Metrics {
  readonly registry = new Registry();

  /** A counter in this registry; `collect` brings values counted elsewhere up to date before a read. */
  private counter<L extends string = never>(name: string, help: string, labelNames: readonly L[] = [], collect?: () => void): Counter<L> {
    return new Counter<L>({ name, help, labelNames, registry: this.registry, ...(collect ? { collect } : {}) });
  }

  /**
   * A 1/0 gauge read from a probe at scrape time, absent while there is no probe; over a
   * cluster the worst process counts (min).
   */
  private upGauge(name: string, help: string, probe: () => (() => boolean) | undefined): Gauge {
    const gauge: Gauge = new Gauge({
      name,
      help,
      registry: this.registry,
      aggregator: 'min',
      collect: (): void => {
        const up = probe();
        if (up) gauge.set(up() ? 1 : 0);
        else gauge.clear();
      },
    });
    return gauge;
  }

  // The data route's own counts live in per-provider tallies (./tally.ts) and reach these
  // counters when they are read.
  /** tallies by provider name */
  private readonly tallies = new Map<string, ProviderTally>();
  private readonly flush = (): void => flushTallies(this.tallies.values(), this);
  readonly requests = this.counter('keyhole_requests_total', 'Data requests by provider, HTTP status and decision (allow, deny, error)', ['provider', 'status', 'decision'] as const, this.flush);
  readonly duration = new TalliedHistogram(
    'keyhole_request_duration_seconds',
    'Data request duration until the response ended or was aborted',
    () => this.tallies.values(),
    this.registry,
  );
  readonly bytes = this.counter('keyhole_bytes_sent_total', 'Body bytes relayed to clients', ['provider'] as const, this.flush);
  readonly authorizeDecisions = this.counter('keyhole_authorize_decisions_total', 'Decisions answered to a data plane on /v1/authorize, by provider, HTTP status and decision (allow, deny, error)', ['provider', 'status', 'decision'] as const);
  readonly upstreamErrors = this.counter('keyhole_upstream_errors_total', 'Upstream failures by provider and reason code', ['provider', 'reason'] as const);
  readonly tokenFailures = this.counter('keyhole_token_failures_total', 'Refused tokens by reason code', ['reason'] as const);
  readonly tokenCache = this.counter('keyhole_token_cache_total', 'Verified-token cache lookups (hit: no signature check needed)', ['result'] as const);
  /** set by the runtime: is the revocation store answering? read at scrape time */
  revocationProbe: () => boolean = () => true;
  readonly revocationUp = this.upGauge('keyhole_revocation_store_up', '1 when the revocation store answers, 0 when Keyhole fails closed', () => this.revocationProbe);
  readonly aborted = this.counter('keyhole_aborted_responses_total', 'Data responses that ended before completion (client left or upstream died)', ['provider'] as const, this.flush);

  // Shared state over Redis (src/redis, src/auth/revocation-redis.ts, src/observe/audit-stream.ts).
  readonly revocationLookups = this.counter('keyhole_revocation_lookups_total', 'Revocation checks by result: hit (answered from the replica cache), miss (asked Redis)', ['result'] as const);
  readonly revocationUnavailable = this.counter('keyhole_revocation_unavailable_total', 'Revocation checks Redis could not answer, by action: denied (fail closed, 503) or allowed (onRedisError: allow)', ['action'] as const);
  readonly revocationInvalidations = this.counter('keyhole_revocation_invalidations_total', 'Revocations received over Redis pub/sub from any replica');
  /** set by the Redis revocation store: are its connections (commands + pub/sub) up? */
  redisProbe: (() => boolean) | undefined;
  readonly redisUp = this.upGauge('keyhole_redis_up', '1 while the Redis connections for revocation are up, 0 while they are not (absent without Redis)', () => this.redisProbe);
  readonly auditStreamWritten = this.counter('keyhole_audit_stream_written_total', 'Audit events written to the Redis stream');
  readonly auditStreamDropped = this.counter('keyhole_audit_stream_dropped_total', 'Audit events dropped because the in-process buffer for the Redis stream was full');

  /**
   * set by the runtime: the cloud providers whose credentials come from a remote identity
   * (a role, a user delegation key, IAM signBlob), by name, read at scrape time
   */
  credentialsProbe: (() => Iterable<[string, CloudCredentialState]>) | undefined;
  private readonly credentialFamilies: MetricSource = {
    names: ['keyhole_cloud_credentials_up', 'keyhole_cloud_credential_fetches_total'],
    collect: () => {
      const up: Sample[] = [];
      const fetches: Sample[] = [];
      for (const [provider, state] of this.credentialsProbe?.() ?? []) {
        if (state.up !== undefined) up.push({ labels: { provider }, value: state.up ? 1 : 0 });
        fetches.push({ labels: { provider, result: 'ok' }, value: state.fetches.ok }, { labels: { provider, result: 'failed' }, value: state.fetches.failed });
      }
      return [
        { name: 'keyhole_cloud_credentials_up', help: '1 while a cloud provider has usable credentials from its identity (role, delegation key, signBlob), 0 while it has none (absent before the first attempt)', type: 'gauge', aggregator: 'min', values: up },
        { name: 'keyhole_cloud_credential_fetches_total', help: 'Credentials fetched from a cloud identity service (STS sessions, user delegation keys, signBlob signatures), by result', type: 'counter', aggregator: 'sum', values: fetches },
      ];
    },
  };

  // What ops watch the process itself by: what runs, its certificate, its reloads, its load.
  readonly configReloads = this.counter('keyhole_config_reloads_total', 'Configuration reloads (SIGHUP, POST /admin/reload) by result: ok (applied) or refused (the running configuration stayed)', ['result'] as const);
  /** set by the server: the certificates it serves (by listener) and their notAfter, Unix seconds */
  certificateProbe: (() => Iterable<[string, number]>) | undefined;
  /** set by the server: requests being answered now on the data listener */
  inFlightProbe: (() => number) | undefined;
  private readonly processFamilies: MetricSource = {
    names: ['keyhole_build_info', 'keyhole_tls_certificate_not_after_seconds', 'keyhole_requests_in_flight'],
    collect: () => {
      const { version, node, commit } = buildInfo();
      const inFlight = this.inFlightProbe?.();
      return [
        { name: 'keyhole_build_info', help: 'Always 1: the Keyhole version, the Node.js that runs it and the git commit it was built from', type: 'gauge', aggregator: 'first', values: [{ labels: { version, node, commit }, value: 1 }] },
        {
          name: 'keyhole_tls_certificate_not_after_seconds',
          help: 'When the certificate a listener serves stops being valid (notAfter), Unix seconds: alert well before it (a renewed file is picked up without a restart)',
          type: 'gauge',
          aggregator: 'min',
          values: [...(this.certificateProbe?.() ?? [])].map(([listener, notAfter]) => ({ labels: { listener }, value: notAfter })),
        },
        { name: 'keyhole_requests_in_flight', help: 'Requests on the data listener being answered now (a stream counts until its last byte)', type: 'gauge', aggregator: 'sum', values: inFlight === undefined ? [] : [{ labels: {}, value: inFlight }] },
      ];
    },
  };

  /** set by the limiter: can its store answer (or is it `onRedisError: allow`)? read at scrape time */
  limitsProbe: (() => boolean) | undefined;
  private limitSet: LimitMetrics | undefined;

  /**
   * The limits' metrics (src/limits, docs/limits.md), registered on first use: only a Keyhole
   * with a `limits:` section shows them, and a reload keeps counting in the same ones.
   */
  limits(): LimitMetrics {
    if (this.limitSet) return this.limitSet;
    const up = this.upGauge('keyhole_limits_store_up', '1 while the limits store answers (or onRedisError is allow), 0 while limited requests fail closed', () => this.limitsProbe);
    this.limitSet = {
      refusals: this.counter('keyhole_limit_refusals_total', 'Requests refused by a limit (429), by rule and limit (rate, concurrent, bytes, objects)', ['rule', 'limit'] as const),
      cut: this.counter('keyhole_limit_cut_total', 'Responses cut mid-body at a byte quota (midBody: cut), by rule', ['rule'] as const),
      checks: this.counter('keyhole_limit_checks_total', 'Limited requests by how they were decided: local (from this replica\'s own share and views) or store (after asking the store)', ['path'] as const),
      unavailable: this.counter('keyhole_limits_unavailable_total', 'Limited requests the store could not decide, by action: denied (503 limits_unavailable) or allowed (onRedisError: allow)', ['action'] as const),
      alerts: this.counter('keyhole_limit_alerts_total', 'Alerts emitted, by kind (quota, refusals)', ['alert'] as const),
      webhook: this.counter('keyhole_limit_webhook_total', 'Alerts for the webhook by result: sent, failed, timeout, dropped (queue full)', ['result'] as const),
      up,
    };
    return this.limitSet;
  }

  /** Everything one finished (or aborted) data request counts. */
  recordRequest(provider: string, status: number, decision: 'allow' | 'deny' | 'error', seconds: number, bytes: number, aborted: boolean): void {
    let t = this.tallies.get(provider);
    if (t === undefined) {
      t = new ProviderTally(provider, DURATION_BUCKETS);
      this.tallies.set(provider, t);
    }
    const key = status * 4 + (decision === 'allow' ? 0 : decision === 'deny' ? 1 : 2);
    t.requests.set(key, (t.requests.get(key) ?? 0) + 1);
    t.observe(seconds);
    t.bytes += bytes;
    if (aborted) t.aborted++;
  }

  private readonly cacheHit = this.tokenCache.labels('hit');
  private readonly cacheMiss = this.tokenCache.labels('miss');

  constructor(defaultMetrics = true) {
    this.registry.register(this.credentialFamilies);
    this.registry.register(this.processFamilies);
    // Both results from the start at 0, so a rate() or an alert on refused works before the first reload.
    this.configReloads.labels('ok');
    this.configReloads.labels('refused');
    if (defaultMetrics) this.registry.register(processMetrics('keyhole_'));
  }

  countCache(hit: boolean): void {
    (hit ? this.cacheHit : this.cacheMiss).inc();
  }
}

/** The limits' counters (Metrics.limits()). */
export interface LimitMetrics {
  readonly refusals: Counter<'rule' | 'limit'>;
  readonly cut: Counter<'rule'>;
  readonly checks: Counter<'path'>;
  readonly unavailable: Counter<'action'>;
  readonly alerts: Counter<'alert'>;
  readonly webhook: Counter<'result'>;
  readonly up: Gauge;
}
