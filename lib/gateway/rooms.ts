// Which rooms have local members, the Redis subscriptions that follow from that, and per-room seq de-duplication.
import type { FanoutSubscriber } from '../fanout/index.js';
import type { RoomId } from '../protocol/index.js';

/**
 * Remembers recently delivered seqs of one room. The chat service may publish an event twice (a redelivery after a
 * crash between publish and ack); this window drops the second copy without assuming arrival in seq order.
 */
export class SeqWindow {
  private readonly seen = new Set<number>();
  private readonly order: number[] = [];
  private head = 0;
  private floor = 0;

  constructor(private readonly capacity = 4096) {}

  /** True the first time a seq is offered, false for a repeat (or one too old to tell). */
  accept(seq: number): boolean {
    if (seq <= this.floor || this.seen.has(seq)) return false;
    this.seen.add(seq);
    this.order.push(seq);
    if (this.order.length - this.head > this.capacity) {
      const evicted = this.order[this.head++]!;
      this.seen.delete(evicted);
      if (evicted > this.floor) this.floor = evicted;
      if (this.head > this.capacity) {
        this.order.splice(0, this.head);
        this.head = 0;
      }
    }
    return true;
  }
}

export class RoomRegistry {
  private readonly members = new Map<RoomId, number>();
  private readonly pending = new Map<RoomId, Promise<void>>();
  private readonly windows = new Map<RoomId, SeqWindow>();

  constructor(private readonly sub: FanoutSubscriber) {}

  /** Counts a local member in; resolves once this gateway receives the room's broadcasts. */
  async join(room: RoomId): Promise<void> {
    const n = (this.members.get(room) ?? 0) + 1;
    this.members.set(room, n);
    if (n === 1) this.windows.set(room, new SeqWindow());
    try {
      await this.chain(room, n === 1 ? () => this.sub.subscribe(room) : undefined);
    } catch (err) {
      this.leave(room);
      throw err;
    }
  }

  leave(room: RoomId): void {
    const n = (this.members.get(room) ?? 0) - 1;
    if (n > 0) {
      this.members.set(room, n);
      return;
    }
    this.members.delete(room);
    this.windows.delete(room);
    this.chain(room, () => (this.members.has(room) ? Promise.resolve() : this.sub.unsubscribe(room))).catch(() => {
      // An unsubscribe that fails leaves an extra subscription; its messages are ignored (no local members).
    });
  }

  /** Whether a broadcast of (room, seq) should reach local clients: the room has members and it is not a repeat. */
  accept(room: RoomId, seq: number): boolean {
    const w = this.windows.get(room);
    return w !== undefined && w.accept(seq);
  }

  rooms(): number {
    return this.members.size;
  }

  /** Runs Redis (un)subscribes of one room strictly in order, so join-leave-join cannot end unsubscribed. */
  private chain(room: RoomId, op: (() => Promise<void>) | undefined): Promise<void> {
    const prev = this.pending.get(room) ?? Promise.resolve();
    const next = op ? prev.catch(() => undefined).then(op) : prev;
    const settled = next.catch(() => undefined);
    this.pending.set(room, settled);
    void settled.then(() => {
      if (this.pending.get(room) === settled) this.pending.delete(room);
    });
    return next;
  }
}
