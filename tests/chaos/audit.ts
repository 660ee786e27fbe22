// Exact accounting after a chaos run: what the senders were acked, what JetStream holds, what MongoDB stored and
// what every receiver saw, compared message by message. Nothing here samples or estimates.
import type { Receiver, Sender } from './clients.js';
import type { StoredDoc, StreamEntry, Wiretap } from './cluster.js';

export interface FaultRecord {
  name: string;
  target: string;
  /** Epoch ms. */
  begin: number;
  restoredAt: number;
  /** The next fault's begin, or the end of the load. */
  windowEnd: number;
  errors: string[];
}

export interface FaultMetrics {
  name: string;
  target: string;
  /** Seconds after the load started. */
  beganAtS: number;
  /** Fault begin until repaired (restart finished / thawed), ms. */
  downMs: number;
  /** Longest time without any ack in [begin, windowEnd], ms. */
  gapMs: number;
  /** Longest time one sender went without an ack in the window (it may have been reconnecting), ms. */
  worstSenderGapMs: number;
  /** Until every receiver got a message the gateways accepted after the fault began, ms; null: some never did. */
  resumeMs: number | null;
  receiversNotResumed: string[];
  errors: string[];
}

export interface Sample {
  /** Seconds after the load started. */
  t: number;
  acked: number;
  streamMessages: number | null;
  streamLast: number | null;
  stored: number | null;
  consumerPending: number | null;
  consumerAckPending: number | null;
  /** Receivers currently joined. */
  receiversJoined: number;
  /** Per room: lowest and highest `last` of its receivers. */
  rooms: Record<string, [number, number]>;
  down: string[];
  /** messages_persisted_total{result="stored"} per chat instance since its last start (null: down/not answering). */
  chatStored: Array<number | null>;
  /** How long taking this sample took. */
  sampleMs: number;
}

export interface Timing {
  loadStart: number;
  loadStop: number;
  allAckedMs: number | null;
  storageCatchUpMs: number | null;
  /** > 0: storage stopped early, this many were missing after the chat consumer had acked everything. */
  storageLost: number;
  deliveryCatchUpMs: number | null;
  flush: string | null;
}

export interface ReceiverSummary {
  name: string;
  room: string;
  home: number;
  sticky: boolean;
  start: number;
  last: number;
  expected: number;
  delivered: number;
  undelivered: number;
  missing: string;
  duplicates: number;
  holes: number;
  hiddenHoles: number;
  phantom: number;
  recoveredFalse: number;
  joins: number;
  closeCodes: Record<string, number>;
  joinErrors: Record<string, number>;
}

export interface Failure {
  category: string;
  count: number;
  /** Human readable, capped. */
  details: string[];
}

export interface Audit {
  acked: number;
  sent: number;
  unackedAtEnd: number;
  rejected: number;
  streamCreated: number;
  stored: number;
  lostInStream: number;
  lostInStorage: number;
  undelivered: number;
  undeliveredReceivers: number;
  holes: number;
  hiddenHoles: number;
  duplicates: number;
  recoveredFalse: number;
  faults: FaultMetrics[];
  receivers: ReceiverSummary[];
  failures: Failure[];
  warnings: string[];
  senderErrors: Record<string, number>;
  receiverCloseCodes: Record<string, number>;
  senderCloseCodes: Record<string, number>;
  skippedSlots: number;
  resends: number;
  broadcastsTapped: number;
  wrongPrevHints: number;
}

const CAP = 40;

/** Detail lines that several receivers share, once each with the list of receivers ("<name>@<gateway>"). */
class Grouped {
  private readonly groups = new Map<string, { text: string; who: string[] }>();

  add(key: string, who: string, text: () => string): void {
    const g = this.groups.get(key);
    if (g) g.who.push(who);
    else if (this.groups.size < CAP) this.groups.set(key, { text: text(), who: [who] });
  }

  lines(): string[] {
    return [...this.groups.values()].map((g) => `${g.text} — ${g.who.length} receiver(s): ${g.who.join(', ')}`);
  }
}

/** "3-7,9,12-13" for a sorted list of numbers. */
export function ranges(nums: number[], max = 30): string {
  const parts: string[] = [];
  let i = 0;
  while (i < nums.length && parts.length < max) {
    let j = i;
    while (j + 1 < nums.length && nums[j + 1] === nums[j]! + 1) j++;
    parts.push(i === j ? String(nums[i]) : `${nums[i]}-${nums[j]}`);
    i = j + 1;
  }
  if (i < nums.length) parts.push(`… (${nums.length} in all)`);
  return parts.join(',');
}

/** Names the phase of the run a moment falls in: "warmup", "<fault>+1.2s" or "settle+3.0s". */
export function phaseOf(at: number, faults: FaultRecord[], loadStop: number): string {
  if (at >= loadStop) return `settle+${((at - loadStop) / 1000).toFixed(1)}s`;
  let cur: FaultRecord | undefined;
  for (const f of faults) if (f.begin <= at) cur = f;
  return cur ? `${cur.name}+${((at - cur.begin) / 1000).toFixed(1)}s` : 'warmup';
}

function bump(m: Record<string, number>, k: string, n = 1): void {
  m[k] = (m[k] ?? 0) + n;
}

/** Phase labels with counts, "mongo-kill+0.4s ×3, nats-kill+1.0s" (labels rounded to the second). */
function attribution(times: number[], faults: FaultRecord[], loadStop: number): string {
  const m: Record<string, number> = {};
  for (const t of times) bump(m, phaseOf(t, faults, loadStop).replace(/\.\ds$/, 's'));
  return Object.entries(m).map(([k, n]) => (n > 1 ? `${k} ×${n}` : k)).join(', ');
}

export function faultMetrics(faults: FaultRecord[], ackTimes: number[], senders: Sender[], receivers: Receiver[], loadStart: number): FaultMetrics[] {
  const senderAcks = senders.map((s) => [...s.records.values()].map((r) => r.ackAt).filter((t): t is number => t !== undefined).sort((a, b) => a - b));
  const gapIn = (times: number[], begin: number, end: number): number => {
    let prev = begin;
    let gap = 0;
    for (const t of times) {
      if (t < begin) continue;
      if (t > end) break;
      gap = Math.max(gap, t - prev);
      prev = t;
    }
    return Math.max(gap, end - prev);
  };
  return faults.map((f) => {
    const notResumed: string[] = [];
    let resume = 0;
    for (const r of receivers) {
      const d = r.deliveries.find((x) => x.ts >= f.begin);
      if (!d) notResumed.push(r.name);
      else resume = Math.max(resume, d.at - f.begin);
    }
    return {
      name: f.name,
      target: f.target,
      beganAtS: (f.begin - loadStart) / 1000,
      downMs: f.restoredAt - f.begin,
      gapMs: gapIn(ackTimes, f.begin, f.windowEnd),
      worstSenderGapMs: Math.max(0, ...senderAcks.map((t) => gapIn(t, f.begin, f.windowEnd))),
      resumeMs: notResumed.length > 0 ? null : resume,
      receiversNotResumed: notResumed,
      errors: f.errors,
    };
  });
}

/**
 * Where a skipped message went, from the wiretap: did the chat service broadcast `seq` with the wrong `prev` hint
 * (then gateways cannot notice), or did a gateway deliver it with its own cursor as prev although the hint differed?
 */
function explainSkip(tap: Wiretap | undefined, room: string, seq: number, claimedPrev: number, truePrev: number): string {
  if (!tap) return '';
  const b = tap.get(room, seq);
  const missed = tap.get(room, truePrev);
  const bs = b.length === 0 ? `${seq} never seen on Redis` : `${seq} broadcast with prev ${b.map((x) => (x.prev === null ? 'none' : x.prev)).join('/')}`;
  const first = b[0]?.at;
  const ms = missed.length === 0 ? `${truePrev} never broadcast` : `${truePrev} broadcast ${first === undefined ? '' : `${missed[0]!.at - first} ms after ${seq}`}`;
  const who = b.some((x) => x.prev === claimedPrev) ? 'the chat service\'s prev hint was wrong'
    : b.length > 0 ? 'the gateway delivered it over a gap it did not fill' : 'unknown (not on Redis)';
  return ` [wiretap: ${bs}; ${ms}: ${who}]`;
}

export function audit(input: {
  /** The end-of-run markers: checked by the final live check, not counted as lost or undelivered here. */
  markerIds: Set<string>;
  wiretap?: Wiretap;
  /** Every sender, the end-of-run marker sender included. */
  senders: Sender[];
  /** The senders of the steady load (per-sender ack gaps). */
  loadSenders: Sender[];
  receivers: Receiver[];
  stream: StreamEntry[];
  stored: StoredDoc[];
  faults: FaultRecord[];
  ackTimes: number[];
  timing: Timing;
}): Audit {
  const { senders, receivers, stream, stored, faults, timing } = input;
  const failures: Failure[] = [];
  const warnings: string[] = [];
  const fail = (category: string, details: string[], count = details.length): void => {
    if (count > 0) failures.push({ category, count, details: details.slice(0, CAP) });
  };
  const phase = (t: number): string => phaseOf(t, faults, timing.loadStop);

  // --- what was sent and acked -------------------------------------------------------------------------------------
  interface Sent { user: string; id: string; room: string; created: number; ackSeq?: number; ackAt?: number; conflicting: number[]; attempts: number }
  const sent = new Map<string, Sent>();
  let rejected = 0;
  let unackedAtEnd = 0;
  let resends = 0;
  const senderErrors: Record<string, number> = {};
  const senderCloseCodes: Record<string, number> = {};
  for (const s of senders) {
    for (const r of s.records.values()) {
      sent.set(`${s.user}:${r.id}`, {
        user: s.user, id: r.id, room: r.room, created: r.created, ackSeq: r.ackSeq, ackAt: r.ackAt, conflicting: r.conflictingSeqs, attempts: r.attempts,
      });
      if (r.rejected) rejected++;
      else if (r.ackSeq === undefined) unackedAtEnd++;
      resends += Math.max(0, r.attempts - 1);
    }
    for (const [k, n] of Object.entries(s.errors)) bump(senderErrors, k, n);
    for (const c of s.closes) bump(senderCloseCodes, String(c.code));
    for (const u of s.unexpected) warnings.push(`sender ${s.user}: ${u}`);
  }
  const acked = [...sent.values()].filter((s) => s.ackSeq !== undefined);

  // --- the stream ---------------------------------------------------------------------------------------------------
  const streamById = new Map<string, StreamEntry[]>();
  const roomSeqs = new Map<string, number[]>();
  for (const e of stream) {
    const l = streamById.get(e.nsId);
    if (l) l.push(e);
    else streamById.set(e.nsId, [e]);
    const rs = roomSeqs.get(e.room);
    if (rs) rs.push(e.seq);
    else roomSeqs.set(e.room, [e.seq]);
  }
  for (const l of roomSeqs.values()) l.sort((a, b) => a - b);

  const lostInStream: string[] = [];
  const seqMismatch: string[] = [];
  const conflictingAcks: string[] = [];
  for (const a of acked) {
    const nsId = `${a.user}:${a.id}`;
    const entries = streamById.get(nsId) ?? [];
    if (entries.length === 0) lostInStream.push(`${nsId} acked seq ${a.ackSeq} at ${phase(a.ackAt!)}, not in the stream`);
    else if (!entries.some((e) => e.seq === a.ackSeq)) {
      seqMismatch.push(`${nsId} acked seq ${a.ackSeq}, stream has it at ${entries.map((e) => e.seq).join(',')}`);
    }
    if (a.conflicting.length > 0) conflictingAcks.push(`${nsId} acked with seq ${a.ackSeq} and ${a.conflicting.join(',')}`);
  }
  const streamDup: string[] = [];
  const streamUnknown: string[] = [];
  for (const [nsId, entries] of streamById) {
    if (entries.length > 1) streamDup.push(`${nsId} at seqs ${entries.map((e) => e.seq).join(',')} (${phase(entries[1]!.ts)})`);
    if (!sent.has(nsId)) streamUnknown.push(`${nsId} seq ${entries[0]!.seq}`);
  }
  fail('acked but not in JetStream (lost)', lostInStream);
  fail('acked seq differs from the stream', seqMismatch);
  fail('acked twice with different seqs (duplicate)', conflictingAcks);
  fail('in JetStream more than once (duplicate)', streamDup);
  fail('in JetStream but never sent by the suite', streamUnknown);

  // --- MongoDB ------------------------------------------------------------------------------------------------------
  const storedById = new Map<string, StoredDoc[]>();
  const storedBySeq = new Map<number, StoredDoc[]>();
  for (const d of stored) {
    const a = storedById.get(d._id);
    if (a) a.push(d);
    else storedById.set(d._id, [d]);
    const b = storedBySeq.get(d.seq);
    if (b) b.push(d);
    else storedBySeq.set(d.seq, [d]);
  }
  const lostInStorage: StreamEntry[] = [];
  const storedWrong: string[] = [];
  for (const e of stream) {
    const docs = storedById.get(e.nsId);
    if (!docs) {
      if (!input.markerIds.has(e.nsId)) lostInStorage.push(e);
    }
    else if (!docs.some((d) => d.seq === e.seq && d.room === e.room)) {
      // A second stream entry for the same id (a stream duplicate) legitimately has no document of its own.
      const first = streamById.get(e.nsId)![0]!;
      if (first === e) storedWrong.push(`${e.nsId}: stream seq ${e.seq} room ${e.room}, stored as ${docs.map((d) => `seq ${d.seq} room ${d.room}`).join('; ')}`);
    }
  }
  const storedDup: string[] = [];
  for (const [id, docs] of storedById) if (docs.length > 1) storedDup.push(`${id} stored ${docs.length} times`);
  for (const [seq, docs] of storedBySeq) if (docs.length > 1) storedDup.push(`seq ${seq} stored for ${docs.map((d) => d._id).join(', ')}`);
  const storedExtra: string[] = [];
  for (const d of stored) if (!streamById.has(d._id)) storedExtra.push(`${d._id} seq ${d.seq}`);
  if (lostInStorage.length > 0) {
    const seqs = lostInStorage.map((e) => e.seq);
    const ackedLost = lostInStorage.filter((e) => sent.get(e.nsId)?.ackSeq !== undefined).length;
    fail('in JetStream but not stored in MongoDB', [
      `${lostInStorage.length} messages (${ackedLost} of them acked), seqs ${ranges(seqs)}`,
      `accepted by the gateways during: ${attribution(lostInStorage.map((e) => e.ts), faults, timing.loadStop)}`,
      ...lostInStorage.slice(0, 20).map((e) => `${e.nsId} seq ${e.seq} room ${e.room} ts ${phase(e.ts)}`),
    ], lostInStorage.length);
  }
  fail('stored with another seq or room than the stream', storedWrong);
  fail('stored twice (one id or one seq in two documents)', storedDup);
  fail('stored but not in JetStream', storedExtra);

  // --- receivers ----------------------------------------------------------------------------------------------------
  const receiverSummaries: ReceiverSummary[] = [];
  const receiverCloseCodes: Record<string, number> = {};
  let undelivered = 0;
  let undeliveredReceivers = 0;
  let holes = 0;
  let hidden = 0;
  let dups = 0;
  let recoveredFalse = 0;
  const undeliveredDetails = new Grouped();
  const holeDetails = new Grouped();
  const hiddenDetails = new Grouped();
  const dupDetails = new Grouped();
  const recoveredDetails: string[] = [];
  const phantomDetails: string[] = [];
  const sinceAhead: string[] = [];
  const streamBySeq = new Map(stream.map((e) => [e.seq, e]));
  const markerSeqs = new Set(stream.filter((e) => input.markerIds.has(e.nsId)).map((e) => e.seq));
  for (const r of receivers) {
    const all = roomSeqs.get(r.room) ?? [];
    const truePrev = new Map<number, number>();
    all.forEach((s, i) => truePrev.set(s, i === 0 ? 0 : all[i - 1]!));
    const expected = r.start < 0 ? [] : all.filter((s) => s > r.start && !markerSeqs.has(s));
    const seen = new Map<number, number>();
    for (const d of r.deliveries) seen.set(d.seq, (seen.get(d.seq) ?? 0) + 1);
    const missing = expected.filter((s) => !seen.has(s));
    const phantom = [...seen.keys()].filter((s) => !truePrev.has(s)).sort((a, b) => a - b);
    // Replays the receiver's view to find chains that look unbroken but skip a message the stream has.
    let last = r.start;
    let hiddenHere = 0;
    for (const d of r.deliveries) {
      if (d.seq <= last) continue;
      const tp = truePrev.get(d.seq);
      if (d.prev === last && tp !== undefined && tp !== d.prev) {
        hiddenHere++;
        hiddenDetails.add(`${r.room}|${d.seq}|${d.prev}|${d.replay}`, `${r.name}@${'AB'[d.gateway] ?? '?'}`, () => `room ${r.room}: message ${d.seq} says prev ${d.prev} = the receiver's last, `
          + `the stream has ${tp} before it; ${d.replay ? 'replayed' : 'live'} at ${phase(d.at)}${d.replay ? '' : explainSkip(input.wiretap, r.room, d.seq, d.prev, tp)}`);
      }
      last = d.seq;
    }
    const rHoles = r.anomalies.filter((a) => a.kind !== 'duplicate');
    const rDups = r.anomalies.filter((a) => a.kind === 'duplicate');
    for (const a of rHoles) {
      holeDetails.add(`${r.room}|${a.kind}|${a.seq}|${a.got}|${a.last}|${a.replay}`, `${r.name}@${'AB'[a.gateway]}`, () => (a.kind === 'join-gap'
        ? `room ${r.room}: joined.seq ${a.got} after recovering from ${a.last}: not replayed; at ${phase(a.at)}`
        : `room ${r.room}: message ${a.seq} prev ${a.got}, expected prev ${a.last}; ${a.replay ? 'replayed' : 'live'} at ${phase(a.at)}`
          + `${a.replay ? '' : explainSkip(input.wiretap, r.room, a.seq, a.got, truePrev.get(a.seq) ?? -1)}`));
    }
    for (const a of rDups) {
      dupDetails.add(`${r.room}|${a.seq}|${a.last}|${a.replay}`, `${r.name}@${'AB'[a.gateway]}`,
        () => `room ${r.room}: message ${a.seq} again after ${a.last}; ${a.replay ? 'replayed' : 'live'} at ${phase(a.at)}`);
    }
    for (const j of r.recoveredFalse) recoveredDetails.push(`${r.name}: join since ${j.since} -> recovered=false seq ${j.seq} at ${phase(j.at)}`);
    if (missing.length > 0) {
      undeliveredReceivers++;
      const times = missing.map((s) => streamBySeq.get(s)?.ts ?? 0);
      undeliveredDetails.add(`${r.room}|${missing.join(',')}`, `${r.name}(home ${'AB'[r.home]}, ${r.sticky ? 'sticky' : 'switching'})`,
        () => `room ${r.room}: ${missing.length} missing, seqs ${ranges(missing, 12)}; accepted during ${attribution(times, faults, timing.loadStop)}`);
    }
    if (phantom.length > 0) phantomDetails.push(`${r.name}: seqs not in the stream for room ${r.room}: ${ranges(phantom, 12)}${phantom.some((s) => streamBySeq.has(s)) ? ' (some are another room\'s)' : ''}`);
    for (const e of r.joinErrors) if (e.code === 'TIMEOUT') warnings.push(`receiver ${r.name}: join since ${e.since} got no answer within 15 s at ${phase(e.at)}; reconnected`);
    for (const e of r.joinErrors) if (e.code === 'BAD_FRAME') sinceAhead.push(`${r.name}: join since ${e.since}: ${e.message} at ${phase(e.at)}`);
    const closeCodes: Record<string, number> = {};
    for (const c of r.closes) {
      bump(closeCodes, c.failedConnect ? `${c.code}(connect)` : String(c.code));
      if (!c.failedConnect) bump(receiverCloseCodes, String(c.code));
    }
    const joinErrors: Record<string, number> = {};
    for (const e of r.joinErrors) bump(joinErrors, e.code);
    for (const u of r.unexpected) warnings.push(`receiver ${r.name}: ${u}`);
    undelivered += missing.length;
    holes += rHoles.length;
    hidden += hiddenHere;
    dups += rDups.length;
    recoveredFalse += r.recoveredFalse.length;
    receiverSummaries.push({
      name: r.name, room: r.room, home: r.home, sticky: r.sticky, start: r.start, last: r.last, expected: expected.length,
      delivered: seen.size, undelivered: missing.length, missing: ranges(missing, 12), duplicates: rDups.length, holes: rHoles.length,
      hiddenHoles: hiddenHere, phantom: phantom.length, recoveredFalse: r.recoveredFalse.length, joins: r.joins.length,
      closeCodes, joinErrors,
    });
  }
  // Diagnostics: prev hints the chat service broadcast that contradict the stream (gateways trust a hint that
  // matches their cursor, so such a hint can skip a message without anyone noticing).
  let wrongHints = 0;
  let noHints = 0;
  const wrongHintDetails: string[] = [];
  if (input.wiretap) {
    for (const [room, bySeq] of input.wiretap.byRoom) {
      const all = roomSeqs.get(room) ?? [];
      const tp = new Map<number, number>();
      all.forEach((x, i) => tp.set(x, i === 0 ? 0 : all[i - 1]!));
      for (const [seq, list] of bySeq) {
        for (const b of list) {
          if (b.prev === null) noHints++;
          else if (tp.has(seq) && b.prev !== tp.get(seq)) {
            wrongHints++;
            if (wrongHintDetails.length < 10) wrongHintDetails.push(`room ${room} seq ${seq} broadcast with prev ${b.prev}, the stream has ${tp.get(seq)} at ${phase(b.at)}`);
          }
        }
      }
    }
  }
  if (wrongHints > 0) warnings.push(`the chat service broadcast ${wrongHints} prev hints that contradict the stream: ${wrongHintDetails.join('; ')}`);
  if (noHints > 0) warnings.push(`the chat service broadcast ${noHints} messages without a prev hint (stream lookup failed)`);

  fail('receivers missed messages (undelivered)', undeliveredDetails.lines(), undelivered);
  fail('holes seen by receivers (prev !== last, or joined.seq beyond the replay)', holeDetails.lines(), holes);
  fail('hidden holes (prev === last, but the stream has a message in between)', hiddenDetails.lines(), hidden);
  fail('duplicate deliveries (seq <= last)', dupDetails.lines(), dups);
  fail('joined.recovered === false', recoveredDetails);
  fail('messages delivered that the stream does not have for the room', phantomDetails);
  fail('recovery refused: since ahead of the stream', sinceAhead);

  // --- settle -------------------------------------------------------------------------------------------------------
  if (unackedAtEnd > 0) {
    const left = [...sent.values()].filter((s) => s.ackSeq === undefined).map((s) => `${s.user}:${s.id} (created ${phase(s.created)}, ${s.attempts} attempts)`);
    fail('never acked within the settle time', left, unackedAtEnd);
  }
  if (rejected > 0) fail('sends refused for good (BAD_FRAME/TOO_LARGE)', [`${rejected} sends`], rejected);
  if (timing.storageCatchUpMs === null) {
    fail(timing.storageLost > 0 ? 'storage will never catch up' : 'storage did not catch up within the settle time', [timing.storageLost > 0
      ? `${timing.storageLost} stream messages missing after the chat consumer had acked every message (no redelivery will come)`
      : `${lostInStorage.length} stream messages not stored at the end`], 1);
  }
  if (timing.deliveryCatchUpMs === null) {
    fail('delivery did not catch up within the settle time', receiverSummaries.filter((r) => {
      const all = roomSeqs.get(r.room) ?? [];
      return r.last < (all[all.length - 1] ?? 0);
    }).map((r) => `${r.name} (room ${r.room}) last ${r.last}, room's last ${(roomSeqs.get(r.room) ?? []).at(-1) ?? 0}`), 1);
  }
  if (timing.flush) fail('final live check after the settle failed', [timing.flush], 1);

  const fm = faultMetrics(faults, input.ackTimes, input.loadSenders, receivers, timing.loadStart);
  for (const f of fm) for (const e of f.errors) warnings.push(`${f.name}: ${e}`);
  const skipped = senders.reduce((n, s) => n + s.skipped, 0);
  return {
    acked: acked.length,
    sent: sent.size,
    unackedAtEnd,
    rejected,
    streamCreated: stream.length,
    stored: stored.length,
    lostInStream: lostInStream.length,
    lostInStorage: lostInStorage.length,
    undelivered,
    undeliveredReceivers,
    holes,
    hiddenHoles: hidden,
    duplicates: dups + conflictingAcks.length + streamDup.length + storedDup.length,
    recoveredFalse,
    faults: fm,
    receivers: receiverSummaries,
    failures,
    warnings,
    senderErrors,
    receiverCloseCodes,
    senderCloseCodes,
    skippedSlots: skipped,
    resends,
    broadcastsTapped: input.wiretap?.count ?? 0,
    wrongPrevHints: wrongHints,
  };
}
