// Where Redis is: one server (`redis://host:port`), or a Redis Cluster, named by its seed nodes
// (`redis+cluster://[user:pass@]host:port,host:port`, `rediss+cluster://` for TLS, or any plain URL list with
// REDIS_CLUSTER=1). Pure parsing, shared by lib/config (validation) and lib/redis (connecting).

export interface RedisTarget {
  cluster: boolean;
  /** One `redis://` / `rediss://` URL per seed node (the first one carries the credentials, if any). */
  nodes: string[];
}

const CLUSTER_SCHEMES: Record<string, string> = { 'redis+cluster:': 'redis:', 'rediss+cluster:': 'rediss:' };

/** Throws an Error that says what is wrong with `raw`; lib/config wraps it in a ConfigError naming the variable. */
export function parseRedisTarget(raw: string, clusterFlag = false): RedisTarget {
  const parts = raw.split(',').map((s) => s.trim()).filter(Boolean);
  if (parts.length === 0) throw new Error('no Redis URL');
  const first = /^([a-z+]+:)\/\//i.exec(parts[0]!)?.[1]?.toLowerCase();
  const clusterScheme = first === undefined ? undefined : CLUSTER_SCHEMES[first];
  const cluster = clusterScheme !== undefined || clusterFlag;
  if (!cluster && parts.length > 1) throw new Error('a list of Redis servers needs REDIS_CLUSTER=1 or a redis+cluster:// URL');
  const scheme = clusterScheme ?? first ?? 'redis:';
  const nodes = parts.map((p, i) => {
    // `redis+cluster://a:1,b:2`: the nodes after the first are bare host:port.
    const text = i === 0 && clusterScheme ? `${scheme}//${p.slice(first!.length + 2)}` : /^[a-z+]+:\/\//i.test(p) ? p : `${scheme}//${p}`;
    let u: URL;
    try {
      u = new URL(text);
    } catch (cause) {
      throw new Error(`not a URL: ${JSON.stringify(p)}`, { cause });
    }
    if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
      throw new Error(`scheme must be redis:, rediss:, redis+cluster: or rediss+cluster:, got ${u.protocol}`);
    }
    if (!u.hostname) throw new Error(`no host in ${JSON.stringify(p)}`);
    return u.toString().replace(/\/$/, '');
  });
  return { cluster, nodes };
}

/** The canonical REDIS_URL of a target: the single URL, or `redis+cluster://` with every node. */
export function formatRedisTarget(t: RedisTarget): string {
  if (!t.cluster) return t.nodes[0]!;
  const [first, ...rest] = t.nodes.map((n) => new URL(n));
  const scheme = first!.protocol === 'rediss:' ? 'rediss+cluster:' : 'redis+cluster:';
  const auth = first!.username || first!.password ? `${first!.username}${first!.password ? `:${first!.password}` : ''}@` : '';
  return `${scheme}//${auth}${[first!, ...rest].map((u) => u.host).join(',')}`;
}
