// A sender that follows the client contract under faults: a new id at a steady pace, the same id again after
// `UNAVAILABLE` (or no answer within a timeout) until it is acked. It records every attempt and answer, so a test can
// say exactly when sends were refused and that every acked message is in the stream once. Bounded in count and time.
import { TestClient } from './client.js';
import type { Frame } from './client.js';

export interface Attempt {
  id: string;
  sentAt: number;
  answeredAt?: number;
  /** 'ack', an error code, or 'timeout' when no answer came within the answer timeout. */
  result?: string;
  seq?: number;
  duplicate?: boolean;
}

export interface ContractSenderOptions {
  room: string;
  /** Messages per second. */
  rate: number;
  /** Hard bound on distinct messages; the load stops there. */
  maxMessages: number;
  idPrefix: string;
  /** Most unacked messages at once; a slot is skipped while this many wait. */
  maxInflight?: number;
  /** Resend after this long without an answer (the gateway answers UNAVAILABLE after PARLEY_PUBLISH_TIMEOUT_MS). */
  answerTimeoutMs?: number;
  /** Wait before resending after UNAVAILABLE. */
  retryDelayMs?: number;
}

export class ContractSender {
  readonly attempts: Attempt[] = [];
  /** id -> acked seq (the first ack; a later duplicate ack must carry the same seq). */
  readonly acked = new Map<string, number>();
  /** Acks whose seq differed from the first ack of that id (must stay empty). */
  readonly conflicts: string[] = [];
  private readonly open = new Map<string, Attempt>();
  private next = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly retries = new Set<NodeJS.Timeout>();
  private scanned = 0;
  private stopped = true;

  constructor(readonly client: TestClient, private readonly o: ContractSenderOptions) {}

  get unacked(): number {
    return this.open.size;
  }

  get sent(): number {
    return this.next;
  }

  start(): void {
    this.stopped = false;
    const every = Math.max(1, Math.round(1000 / this.o.rate));
    this.timer = setInterval(() => this.tick(), every);
  }

  /** Stops new messages; unacked ones keep being resent until acked (call close() to stop that too). */
  stopNew(): void {
    this.stopped = true;
  }

  close(): void {
    this.stopNew();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const t of this.retries) clearTimeout(t);
    this.retries.clear();
    this.open.clear();
  }

  /** Attempts answered with `code` (an error code, 'ack' or 'timeout'). */
  answered(code: string): Attempt[] {
    return this.attempts.filter((a) => a.result === code);
  }

  private tick(): void {
    this.drainFrames();
    const now = Date.now();
    for (const a of [...this.open.values()]) {
      if (a.result === undefined && now - a.sentAt > (this.o.answerTimeoutMs ?? 5_000)) {
        a.result = 'timeout';
        a.answeredAt = now;
        this.resend(a.id, 0);
      }
    }
    if (this.stopped || this.next >= this.o.maxMessages || this.open.size >= (this.o.maxInflight ?? 64)) return;
    this.attempt(`${this.o.idPrefix}${this.next++}`);
  }

  private attempt(id: string): void {
    const a: Attempt = { id, sentAt: Date.now() };
    this.attempts.push(a);
    this.open.set(id, a);
    this.client.send({ type: 'send', room: this.o.room, id, body: `body of ${id}` });
  }

  private resend(id: string, delayMs: number): void {
    const t = setTimeout(() => {
      this.retries.delete(t);
      if (this.open.has(id)) this.attempt(id);
    }, delayMs);
    this.retries.add(t);
  }

  private drainFrames(): void {
    const frames = this.client.frames;
    for (; this.scanned < frames.length; this.scanned++) this.onFrame(frames[this.scanned]!);
  }

  private onFrame(f: Frame): void {
    const id = (f.type === 'ack' ? f.id : f.type === 'error' ? f.ref : undefined) as string | undefined;
    if (id === undefined) return;
    const a = this.open.get(id);
    if (!a || a.result !== undefined) return; // an answer to an attempt already given up on (timeout): ignore
    a.answeredAt = Date.now();
    if (f.type === 'ack') {
      a.result = 'ack';
      a.seq = f.seq as number;
      a.duplicate = f.duplicate === true;
      const first = this.acked.get(id);
      if (first === undefined) this.acked.set(id, a.seq);
      else if (first !== a.seq) this.conflicts.push(`${id}: acked as ${first} and as ${a.seq}`);
      this.open.delete(id);
    } else {
      a.result = String(f.code);
      this.resend(id, this.o.retryDelayMs ?? 100);
    }
  }
}
