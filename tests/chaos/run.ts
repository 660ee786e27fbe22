// The chaos suite: steady load through 2 gateways, 2 chat instances and 1 presence service while gateways, chat,
// Redis, MongoDB and NATS are killed, stopped and frozen one after another; then exact accounting of every message.
//
//   npm run chaos -- [--runs N] [--seed S] [--rate 120] [--recovery 8] [--duration S] [--settle 60] [--faults a,b]
//
// Prints one Markdown row per run plus the details of every failure, writes bench/results/chaos-<time>.json, and
// exits 1 on any loss, duplicate, hole, recovered=false or unfinished catch-up (2 when a run could not be carried out,
// 130 when interrupted; a first Ctrl-C stops and cleans up, a second one kills everything at once).
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { audit, phaseOf } from './audit.js';
import type { FaultRecord, Sample, Timing } from './audit.js';
import { Receiver, Sender } from './clients.js';
import { Cluster } from './cluster.js';
import type { StoredDoc, StreamEntry } from './cluster.js';
import { parseOptions, rng } from './options.js';
import type { ChaosOptions } from './options.js';
import { details, tableHeader, tableRow, verdictOf } from './report.js';
import type { RunReport } from './report.js';

class Aborted extends Error {
  constructor() {
    super('interrupted');
  }
}

const abort = new AbortController();
let interrupts = 0;
let activeCluster: Cluster | undefined;
const onSignal = (sig: NodeJS.Signals): void => {
  interrupts++;
  if (interrupts === 1) {
    process.stderr.write(`\n${sig}: stopping the run and cleaning up (again to kill everything at once)\n`);
    abort.abort();
    return;
  }
  activeCluster?.killNow();
  process.exit(130);
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

function sleep(ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    if (abort.signal.aborted) return reject(new Aborted());
    const onAbort = (): void => {
      clearTimeout(t);
      reject(new Aborted());
    };
    const t = setTimeout(() => {
      abort.signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    abort.signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Thrown by a waitFor condition: stop waiting, it will never hold. */
class Final extends Error {}

/** Polls `cond` until it holds (returns the time it did) or `deadline` passes (returns null). */
async function waitFor(cond: () => boolean | Promise<boolean>, deadline: number, interval = 100): Promise<number | null> {
  for (;;) {
    try {
      if (await cond()) return Date.now();
    } catch (err) {
      if (err instanceof Final) throw err;
      // otherwise the system is still coming back: try again
    }
    if (Date.now() >= deadline) return null;
    await sleep(Math.min(interval, Math.max(1, deadline - Date.now())));
  }
}

async function withRetry<T>(op: () => Promise<T>, deadline: number, what: string): Promise<T> {
  let last: unknown;
  for (;;) {
    try {
      return await op();
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) throw new Error(`${what}: ${last instanceof Error ? last.message : String(last)}`);
    await sleep(500);
  }
}

async function runOnce(run: number, o: ChaosOptions, seed: number, stamp: string): Promise<RunReport> {
  const random = rng(seed);
  const wallStart = Date.now();
  const events: Array<{ t: number; what: string }> = [];
  let t0 = Date.now();
  const log = (what: string): void => {
    const t = (Date.now() - t0) / 1000;
    events.push({ t, what });
    if (!o.quiet) process.stderr.write(`[chaos run ${run} ${t.toFixed(1).padStart(6)}s] ${what}\n`);
  };
  const report: RunReport = {
    run, seed, verdict: 'ERROR', startedAt: new Date(wallStart).toISOString(), wallS: 0, samples: [], events, loadAvg: [loadavg()[0]!],
  };
  const logDir = resolve(o.out, `chaos-${stamp}-run${run}-logs`);
  mkdirSync(logDir, { recursive: true });
  process.env.PARLEY_TEST_PROC_LOG_DIR = logDir;
  report.logDir = logDir;

  const senders: Sender[] = [];
  const receivers: Receiver[] = [];
  let cluster: Cluster | undefined;
  let monitor: NodeJS.Timeout | undefined;
  let monitoring: Promise<void> | undefined;
  const ackTimes: number[] = [];
  try {
    const rooms = Array.from({ length: o.rooms }, (_, i) => `room${i}`);
    log(o.cluster
      ? 'starting 3 nats-server nodes (stream R3), a Redis Cluster (3 masters + 3 replicas), FerretDB and 2 gateways, 2 chat, 1 presence'
      : 'starting nats-server, redis-server, FerretDB and 2 gateways, 2 chat, 1 presence');
    cluster = await Cluster.open(`chaos${run}`, rooms, { cluster: o.cluster });
    activeCluster = cluster;
    const c = cluster;
    report.pids = c.pids;
    const urls = (): string[] => c.urls;

    // Receivers first: they join empty rooms and must then see every message of them.
    for (const room of rooms) {
      for (let gw = 0; gw < urls().length; gw++) {
        for (let k = 0; k < o.receiversPerGateway; k++) {
          receivers.push(new Receiver({ name: `${room}-${'AB'[gw]}${k}`, room, urls, home: gw, sticky: k % 2 === 0 }));
        }
      }
    }
    await Promise.all(receivers.map((r) => r.open()));
    for (let s = 0; s < o.senders; s++) {
      const mine = Array.from({ length: o.roomsPerSender }, (_, k) => rooms[(s + k) % rooms.length]!);
      senders.push(new Sender({
        user: `snd${s}`, rooms: mine, urls, firstGateway: s % urls().length, rate: o.rate / o.senders,
        maxInflight: o.maxInflight, answerTimeoutMs: o.answerTimeoutMs, idPrefix: `m${run}-`, random,
        onAck: (at) => ackTimes.push(at),
      }));
    }
    await Promise.all(senders.map((s) => s.open()));
    log(`${receivers.length} receivers and ${senders.length} senders connected; gateways ${urls().join(' ')}`);

    // A sample a second: how far the stream, the chat consumer, MongoDB and the receivers are.
    const sample = async (): Promise<void> => {
      const began = Date.now();
      const [st, ci, stored, chats] = await Promise.all([
        c.streamState().catch(() => null), c.consumerInfo().catch(() => null), c.storedCount().catch(() => null), c.chatStored(),
      ]);
      const roomsView: Record<string, [number, number]> = {};
      for (const room of rooms) {
        const lasts = receivers.filter((r) => r.room === room).map((r) => r.last);
        roomsView[room] = [Math.min(...lasts), Math.max(...lasts)];
      }
      report.samples.push({
        t: (Date.now() - t0) / 1000, acked: ackTimes.length, streamMessages: st?.messages ?? null, streamLast: st?.lastSeq ?? null,
        stored, consumerPending: ci?.num_pending ?? null, consumerAckPending: ci?.num_ack_pending ?? null,
        receiversJoined: receivers.filter((r) => r.joined).length, rooms: roomsView, down: c.down(), chatStored: chats,
        sampleMs: Date.now() - began,
      });
    };
    monitor = setInterval(() => {
      monitoring ??= sample().finally(() => { monitoring = undefined; });
    }, 1_000);

    // --- load and faults ---------------------------------------------------------------------------------------------
    const loadStart = Date.now();
    t0 = loadStart;
    for (const s of senders) s.startLoad();
    log(`load started: ${o.rate} msg/s from ${o.senders} senders over ${o.rooms} rooms`);
    await sleep(o.warmupMs);
    const faults: FaultRecord[] = [];
    const slot = o.durationMs === undefined ? undefined : Math.max(0, o.durationMs - o.warmupMs) / Math.max(1, o.faults.length);
    for (const [i, name] of o.faults.entries()) {
      const begin = Date.now();
      const chat = Math.floor(random() * 2);
      log(`fault ${name} begins`);
      const res = await c.fault(name, { downMs: o.downMs, freezeMs: o.freezeMs, chat, room: rooms[0]!, log });
      const rec: FaultRecord = { name, target: res.target, begin, restoredAt: res.restoredAt, windowEnd: 0, errors: res.errors };
      if (faults.length > 0) faults[faults.length - 1]!.windowEnd = begin;
      faults.push(rec);
      log(`fault ${name} (${res.target}) repaired after ${((res.restoredAt - begin) / 1000).toFixed(1)}s${res.errors.length ? `; ${res.errors.join('; ')}` : ''}`);
      const recoverUntil = slot === undefined ? res.restoredAt + o.recoveryMs : Math.max(loadStart + o.warmupMs + (i + 1) * slot, res.restoredAt + 3_000);
      await sleep(Math.max(0, recoverUntil - Date.now()));
    }
    const loadStop = Date.now();
    if (faults.length > 0) faults[faults.length - 1]!.windowEnd = loadStop;
    for (const s of senders) s.stopLoad();
    log(`load stopped; settling (at most ${o.settleMs / 1000}s)`);

    // --- settle: every send acked, then storage and every receiver caught up with the stream ----------------------------
    const deadline = loadStop + o.settleMs;
    const timing: Timing = { loadStart, loadStop, allAckedMs: null, storageCatchUpMs: null, storageLost: 0, deliveryCatchUpMs: null, flush: null };
    report.timing = timing;
    const ackedAt = await waitFor(() => senders.every((s) => s.unackedCount === 0), deadline);
    timing.allAckedMs = ackedAt === null ? null : ackedAt - loadStop;
    log(ackedAt === null ? `not every send acked within the settle time (${senders.reduce((n, s) => n + s.unackedCount, 0)} unacked)` : 'every send acked');
    let stream: StreamEntry[] = await withRetry(() => c.readStream(), Math.max(deadline, Date.now() + 10_000), 'reading the stream');
    const roomLast = new Map<string, number>();
    for (const e of stream) roomLast.set(e.room, Math.max(roomLast.get(e.room) ?? 0, e.seq));
    // Storage: poll MongoDB's count (cheap), and read every stored id (a full scan, expensive on FerretDB) only once
    // the count says everything could be there, or once the chat consumer has nothing pending or unacked: it acks
    // only after the insert, so documents still missing when read after that will never come (no redelivery).
    const expectedIds = new Set(stream.map((e) => e.nsId));
    let missing = expectedIds.size;
    let quiet = 0;
    let lastScan = 0;
    const storage = waitFor(async () => {
      const ci = ackedAt === null ? undefined : await c.consumerInfo().catch(() => undefined);
      const count = await c.storedCount();
      quiet = ci && ci.num_pending === 0 && ci.num_ack_pending === 0 ? quiet + 1 : 0;
      if (count < expectedIds.size && quiet < 4) return false;
      if (Date.now() - lastScan < 3_000) return false;
      lastScan = Date.now();
      const stored = new Set((await c.readStored()).map((d) => d._id));
      missing = [...expectedIds].filter((id) => !stored.has(id)).length;
      if (missing === 0) return true;
      if (quiet >= 4) {
        timing.storageLost = missing;
        throw new Final();
      }
      return false;
    }, deadline, 250).catch((err: unknown) => {
      if (err instanceof Final) return null;
      throw err;
    });
    const delivery = waitFor(() => receivers.every((r) => r.last >= (roomLast.get(r.room) ?? 0)), deadline, 50);
    const [storedAt, deliveredAt] = await Promise.all([storage, delivery]);
    timing.storageCatchUpMs = storedAt === null ? null : storedAt - loadStop;
    timing.deliveryCatchUpMs = deliveredAt === null ? null : deliveredAt - loadStop;
    log(`storage ${storedAt === null ? `NOT caught up (${missing} of ${expectedIds.size} missing${timing.storageLost ? ', and the chat consumer has acked everything: lost' : ''})` : 'caught up'}; `
      + `delivery ${deliveredAt === null ? 'NOT caught up' : 'caught up'}`);

    // --- a last live message per room flushes the pipes: late duplicates show up, and delivery must still work ----------
    if (storedAt !== null && deliveredAt !== null) {
      const marker = new Sender({
        user: 'marker', rooms, urls, firstGateway: 0, rate: 0, maxInflight: rooms.length, answerTimeoutMs: o.answerTimeoutMs,
        idPrefix: 'x', random, onAck: () => undefined,
      });
      senders.push(marker);
      const flushDeadline = Date.now() + 20_000;
      try {
        await marker.open();
        for (const room of rooms) marker.post(room, `end-${room}`, 'end of run');
        const acked = await waitFor(() => marker.unackedCount === 0, flushDeadline);
        const seqOf = new Map([...marker.records.values()].map((r) => [r.room, r.ackSeq ?? Number.MAX_SAFE_INTEGER]));
        const seen = acked !== null && await waitFor(() => receivers.every((r) => r.last >= seqOf.get(r.room)!), flushDeadline, 50);
        const ids = [...marker.records.values()].map((r) => `marker:${r.id}`);
        // The count first (cheap); the ids once it says they can all be there.
        const target = expectedIds.size + ids.length;
        const stored = seen && await waitFor(async () => (await c.storedCount()) >= target && (await c.storedIds(ids)).size === ids.length, flushDeadline, 250);
        if (acked === null) timing.flush = 'end markers were not acked within 20 s';
        else if (!seen) {
          timing.flush = `end markers were not delivered to every receiver within 20 s: ${rooms.map((room) => {
            const rs = receivers.filter((r) => r.room === room);
            return `${room} seq ${seqOf.get(room)} reached ${rs.filter((r) => r.last >= seqOf.get(room)!).length}/${rs.length}`;
          }).join(', ')}`;
        }
        else if (!stored) timing.flush = 'end markers were not stored within 20 s';
      } catch (err) {
        timing.flush = `end markers: ${err instanceof Error ? err.message : String(err)}`;
      }
      log(timing.flush ?? 'end markers acked, delivered everywhere and stored');
    }

    // --- accounting ------------------------------------------------------------------------------------------------------
    clearInterval(monitor);
    monitor = undefined;
    await monitoring;
    await Promise.all([...senders, ...receivers].map((x) => x.close()));
    stream = await withRetry(() => c.readStream(), Date.now() + 15_000, 'reading the stream');
    const stored: StoredDoc[] = await withRetry(() => c.readStored(), Date.now() + 15_000, 'reading MongoDB');
    const markerIds = new Set(senders.filter((x) => x.user === 'marker').flatMap((x) => [...x.records.keys()].map((id) => `marker:${id}`)));
    const a = audit({ markerIds, wiretap: c.wiretap, senders, loadSenders: senders.filter((s) => s.user !== 'marker'), receivers, stream, stored, faults, ackTimes, timing });
    report.audit = a;
    report.verdict = verdictOf(a);
    if (timing.storageCatchUpMs === null) {
      // When did storage stop moving? The last sample whose stored count grew.
      let lastGrowth: Sample | undefined;
      for (let i = 1; i < report.samples.length; i++) {
        const cur = report.samples[i]!;
        const prev = report.samples[i - 1]!;
        if (cur.stored !== null && prev.stored !== null && cur.stored > prev.stored) lastGrowth = cur;
      }
      const end = report.samples.at(-1);
      report.storageStall = lastGrowth
        ? `storage stopped growing at ${lastGrowth.t.toFixed(1)}s (${phaseOf(t0 + lastGrowth.t * 1000, faults, loadStop)}) with ${lastGrowth.stored} stored; `
          + `at the end: stream ${end?.streamMessages ?? '?'}, stored ${end?.stored ?? '?'}, consumer pending ${end?.consumerPending ?? '?'}, ack pending ${end?.consumerAckPending ?? '?'}, processes down ${JSON.stringify(end?.down ?? [])}`
        : 'storage never grew in the samples';
    }
    // Per chat instance: when it last stored something (its counter restarts at 0 with the process).
    report.chatProgress = c.chats.map((_, i) => {
      let last: Sample | undefined;
      for (let k = 1; k < report.samples.length; k++) {
        const cur = report.samples[k]!.chatStored[i];
        const prev = report.samples[k - 1]!.chatStored[i];
        if (cur !== null && cur !== undefined && (prev === null || prev === undefined || cur !== prev)) last = report.samples[k];
      }
      return last ? `chat-${i + 1} last stored something at ${last.t.toFixed(1)}s (${phaseOf(t0 + last.t * 1000, faults, loadStop)})` : `chat-${i + 1} never stored anything in the samples`;
    });
    log(`verdict ${report.verdict}`);
  } catch (err) {
    report.verdict = 'ERROR';
    report.error = err instanceof Aborted ? 'interrupted' : err instanceof Error ? (err.stack ?? err.message) : String(err);
    log(`run failed: ${report.error.split('\n')[0]}`);
  } finally {
    if (monitor) clearInterval(monitor);
    await monitoring;
    await Promise.all([...senders, ...receivers].map((x) => x.close().catch(() => undefined)));
    if (cluster) {
      report.pids = { ...cluster.pids };
      await cluster.close().catch((err: unknown) => log(`cleanup: ${err instanceof Error ? err.message : String(err)}`));
    }
    activeCluster = undefined;
    report.wallS = (Date.now() - wallStart) / 1000;
    report.loadAvg.push(loadavg()[0]!);
    if (report.verdict === 'PASS' && !o.keepLogs) {
      rmSync(logDir, { recursive: true, force: true });
      report.logDir = undefined;
    }
  }
  return report;
}

async function main(): Promise<number> {
  const o = parseOptions(process.argv.slice(2));
  mkdirSync(o.out, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').replace(/Z$/, '');
  const file = join(o.out, `chaos-${stamp}.json`);
  process.stderr.write(`chaos: ${o.runs} run(s), seed ${o.seed}, faults ${o.faults.join(',')}; report ${file}\n`);
  const reports: RunReport[] = [];
  const save = (): void => writeFileSync(file, `${JSON.stringify({ options: o, runs: reports }, null, 1)}\n`);
  for (let run = 1; run <= o.runs && !abort.signal.aborted; run++) {
    const r = await runOnce(run, o, o.seed + run - 1, stamp);
    reports.push(r);
    save();
    process.stdout.write(`\n${tableHeader(o)}\n${tableRow(r, o)}\n\n${details(r)}\n`);
  }
  process.stdout.write(`\n## chaos summary (${reports.length} run(s), seed ${o.seed})\n\n${tableHeader(o)}\n${reports.map((r) => tableRow(r, o)).join('\n')}\n\nreport: ${file}\n`);
  if (abort.signal.aborted) return 130;
  if (reports.some((r) => r.verdict === 'ERROR')) return 2;
  return reports.every((r) => r.verdict === 'PASS') ? 0 : 1;
}

main().then((code) => {
  process.exitCode = code;
  // Everything was closed; should anything still hold the event loop, do not hang.
  setTimeout(() => {
    process.stderr.write('chaos: something was left open; exiting anyway\n');
    process.exit(code);
  }, 5_000).unref();
}, (err: unknown) => {
  process.stderr.write(`chaos: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(2);
});
