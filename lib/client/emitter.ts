// A typed event emitter small enough for a browser bundle (EventTarget cannot type its payloads).

export type Unsubscribe = () => void;

export class Emitter<E> {
  private readonly listeners = new Map<keyof E, Set<(v: never) => void>>();

  on<K extends keyof E>(event: K, fn: (v: E[K]) => void): Unsubscribe {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(fn as (v: never) => void);
    return () => this.off(event, fn);
  }

  once<K extends keyof E>(event: K, fn: (v: E[K]) => void): Unsubscribe {
    const off = this.on(event, (v) => {
      off();
      fn(v);
    });
    return off;
  }

  off<K extends keyof E>(event: K, fn: (v: E[K]) => void): void {
    this.listeners.get(event)?.delete(fn as (v: never) => void);
  }

  /**
   * Calls every listener. One that throws does not stop the others nor the client's own bookkeeping: its error is
   * rethrown on its own (an uncaught error in the console or the process), never swallowed.
   */
  protected emit<K extends keyof E>(event: K, v: E[K]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        (fn as (v: E[K]) => void)(v);
      } catch (err) {
        queueMicrotask(() => { throw err; });
      }
    }
  }
}
