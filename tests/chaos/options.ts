// Command-line options of the chaos suite (`npm run chaos -- --runs 2 --seed 7 ...`).
import { parseArgs } from 'node:util';

export const FAULT_NAMES = ['gw-a-kill', 'gw-b-term', 'chat-kill', 'redis-kill', 'mongo-freeze', 'mongo-kill', 'nats-kill'] as const;
/** Faults of one node of a clustered engine (`--cluster`: 3 NATS nodes with the stream R3, a 3+3 Redis Cluster). */
export const CLUSTER_FAULT_NAMES = ['nats-leader-kill', 'nats-follower-kill', 'redis-master-kill'] as const;
export type FaultName = (typeof FAULT_NAMES)[number] | (typeof CLUSTER_FAULT_NAMES)[number];

export interface ChaosOptions {
  runs: number;
  seed: number;
  /** Total send rate of all senders together, messages per second. */
  rate: number;
  senders: number;
  rooms: number;
  /** Rooms each sender posts to (round robin over the rooms by sender index). */
  roomsPerSender: number;
  /** Receivers per room on each gateway. */
  receiversPerGateway: number;
  /** Most unacknowledged messages a sender holds; a send slot is skipped while it has this many. */
  maxInflight: number;
  /** A send without an answer this long is sent again (same id). */
  answerTimeoutMs: number;
  /** Load before the first fault. */
  warmupMs: number;
  /** Load after a fault was repaired before the next one begins. */
  recoveryMs: number;
  /** When set: length of the whole load phase; the faults are spread evenly over it (overrides recoveryMs). */
  durationMs: number | undefined;
  /** How long a killed process or server stays down before it is started again. */
  downMs: number;
  /** How long MongoDB stays frozen (SIGSTOP) before SIGCONT. */
  freezeMs: number;
  /** After the load stopped: the longest wait for acks, storage and every receiver to catch up. */
  settleMs: number;
  faults: FaultName[];
  /** Clustered engines: a 3-node NATS JetStream cluster (stream R3) and a Redis Cluster (3 masters + 3 replicas). */
  cluster: boolean;
  /** Where the JSON report (and the Parley process logs) go. */
  out: string;
  /** Keep the Parley process logs of passing runs too (failing runs always keep them). */
  keepLogs: boolean;
  quiet: boolean;
}

const HELP = `npm run chaos -- [options]

  --runs N              runs, one after another (default 1)
  --seed S              seed of run 1; run i uses S+i-1 (default: random, printed)
  --rate N              total messages per second of all senders (default 120)
  --senders N           sending users (default 6)
  --rooms N             rooms (default 4)
  --rooms-per-sender N  rooms each sender posts to (default 2)
  --receivers N         receivers per room on each of the 2 gateways (default 2)
  --inflight N          max unacked messages per sender (default 32)
  --answer-timeout MS   resend a send that got no answer within this (default 5000)
  --warmup S            seconds of load before the first fault (default 5)
  --recovery S          seconds of load after each fault was repaired (default 8)
  --duration S          total seconds of load; spreads the faults evenly (overrides --recovery)
  --down S              seconds a killed process/server stays down (default 1)
  --freeze S            seconds MongoDB stays frozen (default 5)
  --settle S            longest wait after the load stops for acks/storage/delivery (default 60)
  --faults a,b,...      faults in order (default: all: ${FAULT_NAMES.join(',')}); none: load only
  --cluster             clustered engines: 3 nats-server nodes (stream R3) and a Redis Cluster (3 masters + 3
                        replicas); default faults then: ${CLUSTER_FAULT_NAMES.join(',')}
                        (a node of the cluster SIGKILLed; a Redis master is restarted only after its replica took over)
  --out DIR             report folder (default bench/results)
  --keep-logs           keep Parley process logs of passing runs too
  --quiet               no progress lines on stderr
`;

export function parseOptions(argv: string[]): ChaosOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      runs: { type: 'string' }, seed: { type: 'string' }, rate: { type: 'string' }, senders: { type: 'string' },
      rooms: { type: 'string' }, 'rooms-per-sender': { type: 'string' }, receivers: { type: 'string' },
      inflight: { type: 'string' }, 'answer-timeout': { type: 'string' }, warmup: { type: 'string' },
      recovery: { type: 'string' }, duration: { type: 'string' }, down: { type: 'string' }, freeze: { type: 'string' },
      settle: { type: 'string' }, faults: { type: 'string' }, out: { type: 'string' }, 'keep-logs': { type: 'boolean' },
      quiet: { type: 'boolean' }, cluster: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  const num = (name: string, v: string | undefined, def: number, min = 0): number => {
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number >= ${min}, got ${v}`);
    return n;
  };
  const int = (name: string, v: string | undefined, def: number, min = 1): number => {
    const n = num(name, v, def, min);
    if (!Number.isInteger(n)) throw new Error(`--${name} must be an integer, got ${v}`);
    return n;
  };
  const sec = (name: string, v: string | undefined, def: number): number => Math.round(num(name, v, def) * 1000);
  const cluster = values.cluster ?? false;
  const known: readonly string[] = cluster ? [...FAULT_NAMES, ...CLUSTER_FAULT_NAMES] : FAULT_NAMES;
  const defaults = cluster ? CLUSTER_FAULT_NAMES : FAULT_NAMES;
  const faults = values.faults === 'none' ? [] : (values.faults ?? defaults.join(',')).split(',').map((s) => s.trim()).filter(Boolean);
  for (const f of faults) {
    if (!known.includes(f)) throw new Error(`unknown fault ${f}; known${cluster ? '' : ' (without --cluster)'}: ${known.join(', ')}`);
  }
  const rooms = int('rooms', values.rooms, 4);
  const o: ChaosOptions = {
    runs: int('runs', values.runs, 1),
    seed: int('seed', values.seed, Math.floor(Math.random() * 1_000_000), 0),
    rate: num('rate', values.rate, 120, 1),
    senders: int('senders', values.senders, 6),
    rooms,
    roomsPerSender: Math.min(rooms, int('rooms-per-sender', values['rooms-per-sender'], 2)),
    receiversPerGateway: int('receivers', values.receivers, 2),
    maxInflight: int('inflight', values.inflight, 32),
    answerTimeoutMs: int('answer-timeout', values['answer-timeout'], 5000, 100),
    warmupMs: sec('warmup', values.warmup, 5),
    recoveryMs: sec('recovery', values.recovery, 8),
    durationMs: values.duration === undefined ? undefined : sec('duration', values.duration, 0),
    downMs: sec('down', values.down, 1),
    freezeMs: sec('freeze', values.freeze, 5),
    settleMs: sec('settle', values.settle, 60),
    faults: faults as FaultName[],
    cluster,
    out: values.out ?? 'bench/results',
    keepLogs: values['keep-logs'] ?? false,
    quiet: values.quiet ?? false,
  };
  return o;
}

/** A small seeded PRNG (mulberry32): the same seed gives the same rooms, bodies and fault targets. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
