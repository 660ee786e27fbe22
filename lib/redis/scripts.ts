// Lua scripts, loaded once per connection (SCRIPT LOAD) and called by SHA. A Redis that lost its script cache
// (restarted, SCRIPT FLUSH) answers NOSCRIPT: the scripts are loaded again and the call is retried once.
// On a Redis Cluster they are loaded on every master (a call runs where its keys' slot is; a promoted replica has an
// empty script cache, which NOSCRIPT then repairs), and every call must name its keys, which share one slot.
import { createHash } from 'node:crypto';
import { ErrorReply } from 'redis';
import type { RedisClusterType } from 'redis';
import type { RedisClient } from './connection.js';

export type ScriptArg = string | number;

/** What `multi()` and `multi().evalSha()` return, reduced to what the scripts need. */
export interface ScriptBatch {
  evalSha(sha: string, options: { keys: string[]; arguments: string[] }): ScriptBatch;
}

export interface Scripts<N extends string> {
  /** Loads every script (again); resolves once Redis holds them all. */
  load(): Promise<void>;
  run<T>(name: N, keys: readonly string[], args: readonly ScriptArg[]): Promise<T>;
  /** Queues a call on a MULTI or a pipeline; call load() before building a batch that may follow a Redis restart. */
  queue<B extends ScriptBatch>(batch: B, name: N, keys: readonly string[], args: readonly ScriptArg[]): B;
}

function isNoScript(err: unknown): boolean {
  return err instanceof ErrorReply && err.message.startsWith('NOSCRIPT');
}

export function loadScripts<N extends string>(client: RedisClient, sources: Readonly<Record<N, string>>): Scripts<N> {
  const names = Object.keys(sources) as N[];
  const shas = new Map<N, string>();
  const cluster = 'masters' in client ? client as unknown as RedisClusterType : undefined;
  const load = async (): Promise<void> => {
    if (cluster) {
      await Promise.all(cluster.masters.map(async (m) => {
        const node = await cluster.nodeClient(m);
        await Promise.all(names.map((n) => node.scriptLoad(sources[n])));
      }));
      for (const n of names) shas.set(n, createHash('sha1').update(sources[n]).digest('hex'));
      return;
    }
    const loaded = await Promise.all(names.map((n) => client.scriptLoad(sources[n])));
    names.forEach((n, i) => shas.set(n, loaded[i]!));
  };
  const sha = (name: N): string => {
    const s = shas.get(name);
    if (s === undefined) throw new Error(`redis script ${name} used before load()`);
    return s;
  };
  const opts = (keys: readonly string[], args: readonly ScriptArg[]) => ({ keys: [...keys], arguments: args.map(String) });
  return {
    load,
    async run<T>(name: N, keys: readonly string[], args: readonly ScriptArg[]): Promise<T> {
      try {
        return await client.evalSha(sha(name), opts(keys, args)) as T;
      } catch (err) {
        if (!isNoScript(err)) throw err;
        await load();
        return await client.evalSha(sha(name), opts(keys, args)) as T;
      }
    },
    queue: (batch, name, keys, args) => {
      batch.evalSha(sha(name), opts(keys, args));
      return batch;
    },
  };
}
