// The one place that reads the environment: typed, defaulted for a laptop, validated at start-up.
import { readFileSync, existsSync } from 'node:fs';
import { formatRedisTarget, parseRedisTarget } from '../redis/target.js';
import { hostname } from 'node:os';

export class ConfigError extends Error {
  constructor(readonly variable: string, message: string, options?: ErrorOptions) {
    super(`${variable}: ${message}`, options);
    this.name = 'ConfigError';
  }
}

export interface JwtConfig {
  /** HS256 shared secret; undefined disables HS tokens. */
  secret: string | undefined;
  /** PEM public key for RS256/ES256; undefined disables asymmetric tokens. */
  publicKey: string | undefined;
  /** Explicit allow-list; never contains `none`. */
  algorithms: string[];
  issuer: string | undefined;
  audience: string | undefined;
  /** Leeway for exp/nbf, in milliseconds. */
  clockToleranceMs: number;
  /** Tokens without `exp` are refused (turn off only for service tokens you can revoke otherwise). */
  requireExp: boolean;
  /** Longest accepted token lifetime from now (`exp` - now), in milliseconds; 0: no cap. */
  maxTtlMs: number;
}

/**
 * What one connection may send and hold (frame and body sizes, rooms, mentions, in-flight sends, send buffer, idle
 * time), enforced by its gateway. Rates (per user and address, cluster-wide) are `rateLimits`, in lib/limits.
 */
export interface ConnectionConfig {
  /** Largest WebSocket frame accepted (uWS maxPayloadLength); larger frames close the socket with 1009. */
  maxFrameBytes: number;
  /** Largest message body in UTF-8 bytes; larger gets TOO_LARGE. */
  maxBodyBytes: number;
  maxRoomsPerConnection: number;
  maxMentions: number;
  /** Publishes awaiting a PubAck per connection; more gets RATE_LIMITED. */
  maxInflightPerConnection: number;
  /** Per-socket send buffer; a reader further behind is disconnected instead of stalling the room. */
  maxBackpressureBytes: number;
  idleTimeoutSec: number;
}

/** Storage reads of one gateway (history, recovery from MongoDB): bounded so that no client can queue unbounded work. */
export interface StorageConfig {
  /** Reads of a separate client and pool (defaults to MONGO_URL): point it at a secondary to keep reads off the primary. */
  readUrl: string;
  /** Reads running at once per gateway; also the read pool's maxPoolSize. */
  maxInflight: number;
  /** Reads waiting for a slot per gateway; beyond it a request gets UNAVAILABLE / HTTP 503 at once. */
  maxQueued: number;
  /** Longest wait for a slot before UNAVAILABLE. */
  queueTimeoutMs: number;
  /** maxTimeMS of every read, and (plus a second) its socket timeout, so a hung server frees the slot. */
  queryTimeoutMs: number;
  /** History requests one connection may have in flight (RATE_LIMITED beyond). */
  maxHistoryInflightPerConnection: number;
}

export interface StreamConfig {
  name: string;
  /** Subject root: events go to `<root>.message.created.<room>`. */
  subjectRoot: string;
  replicas: number;
  duplicateWindowMs: number;
  /** How long a message id is remembered in Redis beyond JetStream's window (0: off; docs/decisions/0015). */
  idempotencyWindowMs: number;
  maxAgeMs: number;
  maxBytes: number;
  publishTimeoutMs: number;
  /** Message count limit of the stream (-1: none); older events are then read from MongoDB. */
  maxMsgs: number;
}

export interface RecoveryConfig {
  /** Largest backlog `join {since}` replays; beyond it `joined.recovered` is false and the client pages history. */
  maxMessages: number;
  historyDefaultLimit: number;
  historyMaxLimit: number;
  /** How long a gateway retries reading a gap from the stream before it tells the room's clients to recover. */
  gapRepairTimeoutMs: number;
  /** Rooms whose newest messages a gateway keeps for history pages (0: every page from MongoDB); docs/decisions/0017. */
  historyCacheRooms: number;
  /** Newest messages kept per room for history pages; older pages come from MongoDB. */
  historyCacheMessages: number;
}

export interface ChatConfig {
  consumer: string;
  batchSize: number;
  ackWaitMs: number;
  /** How long one batch may be held (retried) before it is handed back to the stream for another instance. */
  maxHoldMs: number;
  /** Messages broadcast but not yet stored that one instance holds; beyond it, it pulls nothing (docs/decisions/0014). */
  maxUnstored: number;
  /** MongoDB inserts in flight per instance. */
  storeConcurrency: number;
  /** Periodic reconciliation of MongoDB against the stream (0: only at start-up and by hand). */
  reconcileIntervalMs: number;
  /** How many of the newest stream messages the start-up reconciliation checks. */
  reconcileWindow: number;
}

/** A sustained rate with a burst; `perSec` 0 disables the limit. */
export interface RateConfig {
  perSec: number;
  burst: number;
}

export interface PresenceConfig {
  /** A gateway that has not heartbeated for this long is dead: its sessions are expired and its users go offline. */
  gatewayTtlMs: number;
  /** Offline is announced only after this long without a session (debounces reconnects). */
  graceMs: number;
  /** How often a presence instance looks for dead gateways and due offline announcements. */
  tickMs: number;
  /** At most one `typing` per user and room per this interval, cluster-wide; extra ones are dropped. */
  typingIntervalMs: number;
  /** Concurrent connections, cluster-wide (0: unlimited); the one over the limit is closed with 4008. */
  maxConnectionsPerUser: number;
  maxConnectionsPerIp: number;
}

export interface RateLimitConfig {
  sendPerUser: RateConfig;
  sendBytesPerUser: RateConfig;
  sendPerIp: RateConfig;
  sendBytesPerIp: RateConfig;
  /** Connection attempts (accepted upgrades). */
  connectPerUser: RateConfig;
  connectPerIp: RateConfig;
  /** History pages (WebSocket `history` and HTTP GET /rooms/:room/messages together). */
  historyPerUser: RateConfig;
  historyPerIp: RateConfig;
  /**
   * Rejected frames (any error frame the client caused) a connection may accumulate, refilled at
   * `violationsPerSec`; one more closes it with 4008.
   */
  maxViolations: number;
  violationsPerSec: number;
}

/** The notification service (lib/notify): its consumer, its attempts, its sinks. */
export interface NotifyConfig {
  consumer: string;
  /** Messages one instance holds at once (its work in flight); the consumer's max_ack_pending is 4x this. */
  batchSize: number;
  ackWaitMs: number;
  maxHoldMs: number;
  /** Attempts (sends) running at once per instance. */
  concurrency: number;
  /** Attempts per notification (each one a claim with a lease) before it goes to the dead-letter stream. */
  maxAttempts: number;
  /** How long one attempt owns a notification; an attempt is abandoned before it ends, another may claim after. */
  leaseMs: number;
  /** Delay before attempt 2; doubled per attempt (with jitter) up to retryMaxMs. */
  retryMs: number;
  retryMaxMs: number;
  dlqStream: string;
  dlqSubject: string;
  sinks: Array<'log' | 'webhook' | 'email'>;
  webhook: WebhookConfig;
  email: EmailConfig;
}

export interface WebhookConfig {
  url: string | undefined;
  secret: string | undefined;
  timeoutMs: number;
  /** Retries within one attempt (exponential back-off with jitter, at least Retry-After when the receiver sends one). */
  retries: number;
  backoffMs: number;
  backoffMaxMs: number;
  maxRetryAfterMs: number;
}

export interface EmailSender {
  /** Display name template ({from} {room} {recipient} {reason}); empty: the address alone. */
  name: string;
  address: string;
}

export interface EmailConfig {
  /** smtp://host:port (STARTTLS when offered) or smtps://host:port (TLS from the start); user:pass in the URL. */
  smtpUrl: string | undefined;
  /** Refuse to send unless STARTTLS succeeds. */
  requireTls: boolean;
  /** Verify the server certificate (turn off only for a test server with a self-signed certificate). */
  tlsRejectUnauthorized: boolean;
  /** PEM of the CA that signed the server's certificate (PEM text or a file path). */
  tlsCa: string | undefined;
  timeoutMs: number;
  /** The sender: `name` is a template like `subject`; the address is fixed (emailSenderOf). */
  from: EmailSender;
  /** Templates: {from} {room} {recipient} {reason}. */
  subject: string;
  /** A recipient's address: {user} is replaced; unset: the `email` field of the user's document in `users`. */
  toTemplate: string | undefined;
}

/** The standard OTEL_* variables Parley honours (ADR 0020); the SDK is set up from these in cmd/tracing.ts. */
export type TracesSampler = 'always_on' | 'always_off' | 'traceidratio' | 'parentbased_always_on' | 'parentbased_always_off'
  | 'parentbased_traceidratio';

export interface TracingConfig {
  /**
   * On when an OTLP endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) or
   * OTEL_TRACES_EXPORTER=otlp; off with OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none.
   */
  enabled: boolean;
  /** Where spans go (OTLP/HTTP): the traces endpoint as given, or the base endpoint + /v1/traces. */
  tracesUrl: string;
  sampler: TracesSampler;
  /** OTEL_TRACES_SAMPLER_ARG: the ratio of the traceidratio samplers, 0..1. */
  samplerRatio: number;
  /** OTEL_SERVICE_NAME; default `parley-<command>`. */
  serviceName: string | undefined;
  /** OTEL_BSP_SCHEDULE_DELAY: how long spans wait to be exported in a batch. */
  scheduleDelayMs: number;
}

export interface Config {
  port: number;
  /** How long a gateway retries a port it cannot bind (connections of a killed predecessor in TIME_WAIT). */
  listenRetryMs: number;
  host: string;
  /** /metrics, /healthz, /readyz of every service (never on the public gateway port). */
  metricsPort: number;
  /**
   * PARLEY_BENCH_GC: the ops port answers POST /debug/gc with a full garbage collection (the process must run with
   * --expose-gc), so the bench measures memory per connection without depending on when V8 last collected. Off in
   * production: it lets anyone who reaches the ops port stall the process.
   */
  benchGc: boolean;
  /** How long a rendering of /metrics is reused (scrapes are cheap however often they come). */
  metricsCacheMs: number;
  natsUrl: string;
  /** One Redis, or a Redis Cluster as `redis+cluster://host:port,host:port` (REDIS_CLUSTER=1 turns a list into that). */
  redisUrl: string;
  mongoUrl: string;
  mongoDb: string;
  /** Prefix for every Redis key and channel, so several deployments (or test suites) can share one Redis. */
  redisPrefix: string;
  gatewayId: string;
  /** The `instance` label of this process's metrics and its spans' service.instance.id. */
  instance: string;
  logLevel: string;
  shutdownTimeoutMs: number;
  /** Serve the demo chat page at `/` (PARLEY_DEMO; on by default in `parley all` outside production). */
  demo: boolean;
  tracing: TracingConfig;
  jwt: JwtConfig;
  connection: ConnectionConfig;
  storage: StorageConfig;
  stream: StreamConfig;
  chat: ChatConfig;
  recovery: RecoveryConfig;
  presence: PresenceConfig;
  rateLimits: RateLimitConfig;
  notify: NotifyConfig;
}

type Env = Record<string, string | undefined>;

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const ASYMMETRIC = ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512'];
const SYMMETRIC = ['HS256', 'HS384', 'HS512'];

/** Development secret: accepted only when nothing else is configured, and never in production. */
export const DEV_JWT_SECRET = 'parley-dev-secret-change-me-0123456789abcdef';

export function loadConfig(env: Env = process.env): Config {
  const r = new Reader(env);
  const secret = r.str('JWT_SECRET', '');
  const publicKeyRaw = r.str('JWT_PUBLIC_KEY', '');
  const production = r.str('NODE_ENV', '') === 'production';
  if (production && !secret && !publicKeyRaw) {
    throw new ConfigError('JWT_SECRET', 'set JWT_SECRET or JWT_PUBLIC_KEY in production (NODE_ENV=production)');
  }
  if (secret && secret.length < 32) throw new ConfigError('JWT_SECRET', 'must be at least 32 characters');
  const publicKey = publicKeyRaw ? readPem(publicKeyRaw) : undefined;
  const useSecret = secret || (publicKey ? undefined : DEV_JWT_SECRET);
  const defaultAlgs = [...(useSecret ? ['HS256'] : []), ...(publicKey ? ['RS256', 'ES256'] : [])];
  const algorithms = r.list('PARLEY_JWT_ALGORITHMS', defaultAlgs);
  for (const a of algorithms) {
    if (!ASYMMETRIC.includes(a) && !SYMMETRIC.includes(a)) {
      throw new ConfigError('PARLEY_JWT_ALGORITHMS', `unsupported algorithm ${JSON.stringify(a)}`);
    }
    if (SYMMETRIC.includes(a) && !useSecret) throw new ConfigError('PARLEY_JWT_ALGORITHMS', `${a} needs JWT_SECRET`);
    if (ASYMMETRIC.includes(a) && !publicKey) throw new ConfigError('PARLEY_JWT_ALGORITHMS', `${a} needs JWT_PUBLIC_KEY`);
  }

  const subjectRoot = r.str('PARLEY_SUBJECT_ROOT', 'chat');
  if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(subjectRoot)) {
    throw new ConfigError('PARLEY_SUBJECT_ROOT', `not a literal NATS subject: ${JSON.stringify(subjectRoot)}`);
  }
  const streamName = r.str('PARLEY_STREAM', 'CHAT');
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(streamName)) throw new ConfigError('PARLEY_STREAM', 'must match [A-Za-z0-9_-]{1,64}');
  const redisPrefix = r.str('PARLEY_REDIS_PREFIX', '');
  if (!/^[A-Za-z0-9_:.-]*$/.test(redisPrefix)) throw new ConfigError('PARLEY_REDIS_PREFIX', 'must match [A-Za-z0-9_:.-]*');
  const mongoDb = r.str('PARLEY_MONGO_DB', 'parley');
  if (!/^[A-Za-z0-9_-]{1,63}$/.test(mongoDb)) throw new ConfigError('PARLEY_MONGO_DB', 'must match [A-Za-z0-9_-]{1,63}');

  const cfg: Config = {
    port: r.int('PORT', 8080, 0, 65535),
    listenRetryMs: r.int('PARLEY_LISTEN_RETRY_MS', 90_000, 0, 3_600_000),
    host: r.str('PARLEY_HOST', '0.0.0.0'),
    metricsPort: r.int('PARLEY_METRICS_PORT', 9464, 0, 65535),
    benchGc: r.bool('PARLEY_BENCH_GC', false),
    metricsCacheMs: r.int('PARLEY_METRICS_CACHE_MS', 1_000, 0, 60_000),
    natsUrl: r.url('NATS_URL', 'nats://127.0.0.1:4222', ['nats:', 'tls:']),
    redisUrl: redisUrl(r),
    mongoUrl: r.url('MONGO_URL', 'mongodb://127.0.0.1:27017', ['mongodb:', 'mongodb+srv:']),
    mongoDb,
    redisPrefix,
    gatewayId: r.str('PARLEY_GATEWAY_ID', `gw-${process.pid}-${Math.random().toString(36).slice(2, 8)}`),
    instance: r.str('PARLEY_INSTANCE', `${hostname()}-${process.pid}`),
    logLevel: r.oneOf('LOG_LEVEL', 'info', LEVELS),
    shutdownTimeoutMs: r.int('PARLEY_SHUTDOWN_TIMEOUT_MS', 10_000, 100, 600_000),
    demo: r.bool('PARLEY_DEMO', false),
    tracing: tracingConfig(r),
    jwt: {
      secret: useSecret,
      publicKey,
      algorithms,
      issuer: r.str('PARLEY_JWT_ISSUER', '') || undefined,
      audience: r.str('PARLEY_JWT_AUDIENCE', '') || undefined,
      clockToleranceMs: r.int('PARLEY_JWT_CLOCK_TOLERANCE_MS', 5_000, 0, 300_000),
      requireExp: r.bool('PARLEY_JWT_REQUIRE_EXP', true),
      maxTtlMs: r.int('PARLEY_JWT_MAX_TTL_SEC', 86_400, 0, 10 * 365 * 86_400) * 1000,
    },
    connection: {
      maxFrameBytes: r.int('PARLEY_MAX_FRAME_BYTES', 16 * 1024, 256, 16 * 1024 * 1024),
      maxBodyBytes: r.int('PARLEY_MAX_BODY_BYTES', 4 * 1024, 1, 1024 * 1024),
      maxRoomsPerConnection: r.int('PARLEY_MAX_ROOMS_PER_CONNECTION', 100, 1, 100_000),
      maxMentions: r.int('PARLEY_MAX_MENTIONS', 50, 0, 10_000),
      maxInflightPerConnection: r.int('PARLEY_MAX_INFLIGHT', 256, 1, 1_000_000),
      maxBackpressureBytes: r.int('PARLEY_MAX_BACKPRESSURE_BYTES', 1024 * 1024, 1024, 1024 * 1024 * 1024),
      idleTimeoutSec: r.int('PARLEY_IDLE_TIMEOUT_SEC', 120, 0, 960),
    },
    storage: {
      readUrl: r.url('PARLEY_MONGO_READ_URL', r.str('MONGO_URL', 'mongodb://127.0.0.1:27017'), ['mongodb:', 'mongodb+srv:']),
      maxInflight: r.int('PARLEY_STORAGE_MAX_INFLIGHT', 8, 1, 1_000),
      maxQueued: r.int('PARLEY_STORAGE_MAX_QUEUED', 64, 0, 100_000),
      queueTimeoutMs: r.int('PARLEY_STORAGE_QUEUE_TIMEOUT_MS', 1_000, 10, 60_000),
      queryTimeoutMs: r.int('PARLEY_MONGO_QUERY_TIMEOUT_MS', 2_000, 50, 600_000),
      maxHistoryInflightPerConnection: r.int('PARLEY_HISTORY_MAX_INFLIGHT', 2, 1, 1_000),
    },
    stream: {
      name: streamName,
      subjectRoot,
      replicas: r.int('PARLEY_STREAM_REPLICAS', 1, 1, 5),
      duplicateWindowMs: r.int('PARLEY_DUPLICATE_WINDOW_MS', 10 * 60_000, 1_000, 24 * 3_600_000),
      idempotencyWindowMs: r.int('PARLEY_IDEMPOTENCY_WINDOW_MS', 24 * 3_600_000, 0, 30 * 24 * 3_600_000),
      maxAgeMs: r.int('PARLEY_STREAM_MAX_AGE_MS', 7 * 24 * 3_600_000, 0, Number.MAX_SAFE_INTEGER),
      // -1 (no byte limit) by default: nats-server reserves a stream's max_bytes up front against the account's storage,
      // so a large default would make stream creation fail on a small disk. Age bounds the stream instead.
      maxBytes: r.int('PARLEY_STREAM_MAX_BYTES', -1, -1, Number.MAX_SAFE_INTEGER),
      publishTimeoutMs: r.int('PARLEY_PUBLISH_TIMEOUT_MS', 2_000, 50, 60_000),
      maxMsgs: r.int('PARLEY_STREAM_MAX_MSGS', -1, -1, Number.MAX_SAFE_INTEGER),
    },
    recovery: {
      maxMessages: r.int('PARLEY_RECOVERY_MAX_MESSAGES', 10_000, 0, 1_000_000),
      historyDefaultLimit: r.int('PARLEY_HISTORY_DEFAULT_LIMIT', 50, 1, 1_000),
      historyMaxLimit: r.int('PARLEY_HISTORY_MAX_LIMIT', 200, 1, 10_000),
      gapRepairTimeoutMs: r.int('PARLEY_GAP_REPAIR_TIMEOUT_MS', 10_000, 100, 600_000),
      historyCacheRooms: r.int('PARLEY_HISTORY_CACHE_ROOMS', 1_000, 0, 1_000_000),
      historyCacheMessages: r.int('PARLEY_HISTORY_CACHE_MESSAGES', 256, 1, 10_000),
    },
    chat: {
      consumer: r.str('PARLEY_CHAT_CONSUMER', 'chat-persist'),
      batchSize: r.int('PARLEY_CHAT_BATCH', 256, 1, 10_000),
      ackWaitMs: r.int('PARLEY_CHAT_ACK_WAIT_MS', 10_000, 1_000, 3_600_000),
      maxHoldMs: r.int('PARLEY_CHAT_MAX_HOLD_MS', 30_000, 1_000, 3_600_000),
      maxUnstored: r.int('PARLEY_CHAT_MAX_UNSTORED', 20_000, 1, 1_000_000),
      storeConcurrency: r.int('PARLEY_CHAT_STORE_CONCURRENCY', 4, 1, 64),
      reconcileIntervalMs: r.int('PARLEY_RECONCILE_INTERVAL_MS', 60_000, 0, 86_400_000),
      reconcileWindow: r.int('PARLEY_RECONCILE_WINDOW', 100_000, 0, Number.MAX_SAFE_INTEGER),
    },
    presence: {
      gatewayTtlMs: r.int('PARLEY_GATEWAY_TTL_MS', 15_000, 300, 600_000),
      graceMs: r.int('PARLEY_PRESENCE_GRACE_MS', 5_000, 0, 600_000),
      tickMs: r.int('PARLEY_PRESENCE_TICK_MS', 500, 20, 60_000),
      typingIntervalMs: r.int('PARLEY_TYPING_INTERVAL_MS', 2_000, 100, 60_000),
      maxConnectionsPerUser: r.int('PARLEY_MAX_CONNECTIONS_PER_USER', 20, 0, 1_000_000),
      maxConnectionsPerIp: r.int('PARLEY_MAX_CONNECTIONS_PER_IP', 1_000, 0, 10_000_000),
    },
    rateLimits: {
      sendPerUser: r.rate('PARLEY_RATE_SEND_USER', 10, 30),
      sendBytesPerUser: r.rate('PARLEY_RATE_SEND_BYTES_USER', 64 * 1024, 128 * 1024),
      sendPerIp: r.rate('PARLEY_RATE_SEND_IP', 200, 400),
      sendBytesPerIp: r.rate('PARLEY_RATE_SEND_BYTES_IP', 2 * 1024 * 1024, 4 * 1024 * 1024),
      connectPerUser: r.rate('PARLEY_RATE_CONNECT_USER', 2, 10),
      connectPerIp: r.rate('PARLEY_RATE_CONNECT_IP', 50, 200),
      historyPerUser: r.rate('PARLEY_RATE_HISTORY_USER', 5, 20),
      historyPerIp: r.rate('PARLEY_RATE_HISTORY_IP', 100, 200),
      maxViolations: r.int('PARLEY_RATE_MAX_VIOLATIONS', 20, 1, 1_000_000),
      violationsPerSec: r.num('PARLEY_RATE_VIOLATIONS_PER_SEC', 1, 0.001, 1_000_000),
    },
    notify: notifyConfig(r, streamName, subjectRoot),
  };
  if (cfg.stream.duplicateWindowMs > cfg.stream.maxAgeMs && cfg.stream.maxAgeMs > 0) {
    throw new ConfigError('PARLEY_DUPLICATE_WINDOW_MS', 'must not exceed PARLEY_STREAM_MAX_AGE_MS');
  }
  if (cfg.stream.idempotencyWindowMs > 0 && cfg.stream.idempotencyWindowMs < cfg.stream.duplicateWindowMs) {
    throw new ConfigError('PARLEY_IDEMPOTENCY_WINDOW_MS', `must be 0 (off) or at least PARLEY_DUPLICATE_WINDOW_MS (${cfg.stream.duplicateWindowMs})`);
  }
  // A byte budget whose burst is below the largest body would refuse such a message forever.
  for (const [name, rate] of [['PARLEY_RATE_SEND_BYTES_USER', cfg.rateLimits.sendBytesPerUser], ['PARLEY_RATE_SEND_BYTES_IP', cfg.rateLimits.sendBytesPerIp]] as const) {
    if (rate.perSec > 0 && rate.burst < cfg.connection.maxBodyBytes) {
      throw new ConfigError(`${name}_BURST`, `must be at least PARLEY_MAX_BODY_BYTES (${cfg.connection.maxBodyBytes}), got ${rate.burst}`);
    }
  }
  return cfg;
}

/** REDIS_URL, validated; with REDIS_CLUSTER=1 (or a redis+cluster:// URL) the Redis Cluster form of it. */
function redisUrl(r: Reader): string {
  const raw = r.str('REDIS_URL', 'redis://127.0.0.1:6379');
  const cluster = r.bool('REDIS_CLUSTER', false);
  try {
    return formatRedisTarget(parseRedisTarget(raw, cluster));
  } catch (cause) {
    throw new ConfigError('REDIS_URL', (cause as Error).message, { cause });
  }
}

const SINKS = ['log', 'webhook', 'email'] as const;

function notifyConfig(r: Reader, streamName: string, subjectRoot: string): NotifyConfig {
  const sinks = r.list('PARLEY_NOTIFY_SINKS', ['log']);
  for (const s of sinks) {
    if (!(SINKS as readonly string[]).includes(s)) throw new ConfigError('PARLEY_NOTIFY_SINKS', `unknown sink ${JSON.stringify(s)} (log, webhook, email)`);
  }
  const webhookUrl = r.str('PARLEY_NOTIFY_WEBHOOK_URL', '') || undefined;
  if (webhookUrl) r.url('PARLEY_NOTIFY_WEBHOOK_URL', webhookUrl, ['http:', 'https:']);
  const secret = r.str('PARLEY_NOTIFY_WEBHOOK_SECRET', '') || undefined;
  if (sinks.includes('webhook')) {
    if (!webhookUrl) throw new ConfigError('PARLEY_NOTIFY_WEBHOOK_URL', 'required by the webhook sink');
    if (!secret || secret.length < 32) throw new ConfigError('PARLEY_NOTIFY_WEBHOOK_SECRET', 'required by the webhook sink, at least 32 characters');
  }
  const smtpUrl = r.str('PARLEY_SMTP_URL', '') || undefined;
  if (smtpUrl) r.url('PARLEY_SMTP_URL', smtpUrl, ['smtp:', 'smtps:']);
  if (sinks.includes('email') && !smtpUrl) throw new ConfigError('PARLEY_SMTP_URL', 'required by the email sink');
  const caRaw = r.str('PARLEY_SMTP_TLS_CA', '');
  let tlsCa: string | undefined;
  if (caRaw) {
    if (caRaw.includes('-----BEGIN')) tlsCa = caRaw.replace(/\\n/g, '\n');
    else if (existsSync(caRaw)) tlsCa = readFileSync(caRaw, 'utf8');
    else throw new ConfigError('PARLEY_SMTP_TLS_CA', `neither a PEM certificate nor an existing file: ${caRaw}`);
  }
  // A renamed stream (a second deployment, a test suite) gets its own dead-letter stream and subject.
  const dlqStream = r.str('PARLEY_NOTIFY_DLQ_STREAM', streamName === 'CHAT' ? 'NOTIFY_DLQ' : `${streamName}_NOTIFY_DLQ`);
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(dlqStream)) throw new ConfigError('PARLEY_NOTIFY_DLQ_STREAM', 'must match [A-Za-z0-9_-]{1,64}');
  const webhookTimeoutMs = r.int('PARLEY_NOTIFY_WEBHOOK_TIMEOUT_MS', 5_000, 100, 600_000);
  const n: NotifyConfig = {
    consumer: r.str('PARLEY_NOTIFY_CONSUMER', 'notify'),
    batchSize: r.int('PARLEY_NOTIFY_BATCH', 64, 1, 10_000),
    ackWaitMs: r.int('PARLEY_NOTIFY_ACK_WAIT_MS', 30_000, 1_000, 3_600_000),
    maxHoldMs: r.int('PARLEY_NOTIFY_MAX_HOLD_MS', 60_000, 1_000, 3_600_000),
    concurrency: r.int('PARLEY_NOTIFY_CONCURRENCY', 32, 1, 10_000),
    maxAttempts: r.int('PARLEY_NOTIFY_MAX_ATTEMPTS', 5, 1, 1_000),
    leaseMs: r.int('PARLEY_NOTIFY_LEASE_MS', 60_000, 1_000, 3_600_000),
    retryMs: r.int('PARLEY_NOTIFY_RETRY_MS', 2_000, 10, 3_600_000),
    retryMaxMs: r.int('PARLEY_NOTIFY_RETRY_MAX_MS', 300_000, 10, 86_400_000),
    dlqStream,
    dlqSubject: `${subjectRoot}.notify.dead`,
    sinks: [...new Set(sinks)] as NotifyConfig['sinks'],
    webhook: {
      url: webhookUrl,
      secret,
      timeoutMs: webhookTimeoutMs,
      retries: r.int('PARLEY_NOTIFY_WEBHOOK_RETRIES', 4, 0, 100),
      backoffMs: r.int('PARLEY_NOTIFY_WEBHOOK_BACKOFF_MS', 250, 1, 600_000),
      backoffMaxMs: r.int('PARLEY_NOTIFY_WEBHOOK_BACKOFF_MAX_MS', 10_000, 1, 3_600_000),
      maxRetryAfterMs: r.int('PARLEY_NOTIFY_WEBHOOK_MAX_RETRY_AFTER_MS', 30_000, 0, 3_600_000),
    },
    email: {
      smtpUrl,
      requireTls: r.bool('PARLEY_SMTP_REQUIRE_TLS', false),
      tlsRejectUnauthorized: r.bool('PARLEY_SMTP_TLS_REJECT_UNAUTHORIZED', true),
      tlsCa,
      timeoutMs: r.int('PARLEY_SMTP_TIMEOUT_MS', 10_000, 100, 600_000),
      from: emailSenderOf(r.str('PARLEY_NOTIFY_EMAIL_FROM', 'Parley <notify@localhost>')),
      subject: r.str('PARLEY_NOTIFY_EMAIL_SUBJECT', '{from} in {room}'),
      toTemplate: r.str('PARLEY_NOTIFY_EMAIL_TO', '') || undefined,
    },
  };
  // An attempt must end inside its lease, or a second instance could claim the next attempt while it still sends.
  if (n.sinks.includes('webhook') && n.leaseMs < 2 * n.webhook.timeoutMs) throw new ConfigError('PARLEY_NOTIFY_LEASE_MS', `must be at least twice PARLEY_NOTIFY_WEBHOOK_TIMEOUT_MS (${n.webhook.timeoutMs})`);
  if (n.sinks.includes('email') && n.leaseMs < 2 * n.email.timeoutMs) throw new ConfigError('PARLEY_NOTIFY_LEASE_MS', `must be at least twice PARLEY_SMTP_TIMEOUT_MS (${n.email.timeoutMs})`);
  return n;
}

/**
 * PARLEY_NOTIFY_EMAIL_FROM: `Display name <address>` or a bare address. Only the display name is a template: user
 * ids may hold `<`, `,` and `@`, so a variable in the address could make a sender forge it (the name is quoted by
 * nodemailer, whatever it holds).
 */
export function emailSenderOf(value: string): EmailSender {
  const m = /^\s*(?:(.*?)\s*<([^<>\s]+)>|([^<>\s]+))\s*$/.exec(value);
  const address = m?.[2] ?? m?.[3];
  if (!address || !/^[^@{}]+@[^@{}]+$/.test(address)) {
    throw new ConfigError('PARLEY_NOTIFY_EMAIL_FROM', 'must be an address or "Name <address>"; only the name may hold {variables}');
  }
  return { name: (m![1] ?? '').replace(/^"(.*)"$/, '$1'), address };
}

const SAMPLERS: TracesSampler[] = ['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off',
  'parentbased_traceidratio'];

function tracingConfig(r: Reader): TracingConfig {
  const exporter = r.oneOf('OTEL_TRACES_EXPORTER', '', ['', 'otlp', 'none']);
  const base = r.str('OTEL_EXPORTER_OTLP_ENDPOINT', '');
  const traces = r.str('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', '');
  if (base) r.url('OTEL_EXPORTER_OTLP_ENDPOINT', base, ['http:', 'https:']);
  if (traces) r.url('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', traces, ['http:', 'https:']);
  // Only OTLP over HTTP is wired (JSON encoding); gRPC would need another exporter.
  for (const v of ['OTEL_EXPORTER_OTLP_PROTOCOL', 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL']) r.oneOf(v, 'http/json', ['http/protobuf', 'http/json']);
  const disabled = r.bool('OTEL_SDK_DISABLED', false);
  const sampler = r.oneOf('OTEL_TRACES_SAMPLER', 'parentbased_always_on', SAMPLERS) as TracesSampler;
  const ratio = r.num('OTEL_TRACES_SAMPLER_ARG', 1, 0, 1);
  return {
    enabled: !disabled && exporter !== 'none' && (exporter === 'otlp' || base !== '' || traces !== ''),
    tracesUrl: traces || `${(base || 'http://localhost:4318').replace(/\/+$/, '')}/v1/traces`,
    sampler,
    samplerRatio: ratio,
    serviceName: r.str('OTEL_SERVICE_NAME', '') || undefined,
    scheduleDelayMs: r.int('OTEL_BSP_SCHEDULE_DELAY', 5_000, 0, 600_000),
  };
}

function readPem(value: string): string {
  if (value.includes('-----BEGIN')) return value.replace(/\\n/g, '\n');
  if (!existsSync(value)) throw new ConfigError('JWT_PUBLIC_KEY', `neither a PEM key nor an existing file: ${value}`);
  const pem = readFileSync(value, 'utf8');
  if (!pem.includes('-----BEGIN')) throw new ConfigError('JWT_PUBLIC_KEY', `file ${value} holds no PEM key`);
  return pem;
}

class Reader {
  constructor(private readonly env: Env) {}

  str(name: string, def: string): string {
    const v = this.env[name];
    return v === undefined || v === '' ? def : v.trim();
  }

  int(name: string, def: number, min: number, max: number): number {
    const raw = this.env[name];
    if (raw === undefined || raw === '') return def;
    if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(name, `expected an integer, got ${JSON.stringify(raw)}`);
    const n = Number(raw);
    if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
    return n;
  }

  num(name: string, def: number, min: number, max: number): number {
    const raw = this.env[name];
    if (raw === undefined || raw === '') return def;
    if (!/^\d+(\.\d+)?$/.test(raw.trim())) throw new ConfigError(name, `expected a non-negative number, got ${JSON.stringify(raw)}`);
    const n = Number(raw);
    if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
    return n;
  }

  /** `<NAME>` per second (decimals allowed, 0 disables) and `<NAME>_BURST` (a whole number of units, at least 1). */
  rate(name: string, perSec: number, burst: number): RateConfig {
    return { perSec: this.num(name, perSec, 0, 1e12), burst: this.int(`${name}_BURST`, burst, 1, Number.MAX_SAFE_INTEGER) };
  }

  bool(name: string, def: boolean): boolean {
    const v = this.str(name, def ? 'true' : 'false').toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(v)) return true;
    if (['0', 'false', 'no', 'off'].includes(v)) return false;
    throw new ConfigError(name, `expected true or false, got ${JSON.stringify(v)}`);
  }

  oneOf(name: string, def: string, allowed: string[]): string {
    const v = this.str(name, def);
    if (!allowed.includes(v)) throw new ConfigError(name, `must be one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`);
    return v;
  }

  list(name: string, def: string[]): string[] {
    const raw = this.env[name];
    if (raw === undefined || raw.trim() === '') return def;
    return raw.split(',').map((s) => s.trim()).filter(Boolean);
  }

  url(name: string, def: string, protocols: string[]): string {
    const v = this.str(name, def);
    // A list of servers is allowed for NATS; validate each.
    for (const part of v.split(',')) {
      let u: URL;
      try {
        u = new URL(part.trim());
      } catch (cause) {
        throw new ConfigError(name, `not a URL: ${JSON.stringify(part)}`, { cause });
      }
      if (!protocols.includes(u.protocol)) {
        throw new ConfigError(name, `scheme must be one of ${protocols.join(', ')}, got ${u.protocol}`);
      }
    }
    return v;
  }
}
