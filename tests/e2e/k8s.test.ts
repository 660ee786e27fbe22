// deploy/k8s as kustomize renders it (`kustomize build deploy/k8s`, the pinned kustomize built by `parley stack
// install`): the objects a production deployment needs are there and fit together (selectors match pod labels, the
// HPA targets the gateway Deployment, scrape annotations name the ops port, only the gateways are open to the outside).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, it, before } from 'node:test';
import { pino } from 'pino';
import { parseAllDocuments } from 'yaml';
import { ensureKustomize } from '../../lib/stack/index.js';

interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: Record<string, unknown> & { template?: PodTemplate };
  data?: Record<string, string>;
}
interface Container {
  name: string;
  args?: string[];
  ports?: Array<{ name?: string; containerPort: number }>;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
}
interface PodTemplate {
  metadata: { labels: Record<string, string>; annotations?: Record<string, string> };
  spec: { containers: Container[]; topologySpreadConstraints?: Array<{ topologyKey: string; labelSelector?: { matchLabels?: Record<string, string> } }> };
}
interface Selector { matchLabels?: Record<string, string>; matchExpressions?: Array<{ key: string; operator: string; values: string[] }> }

const K8S_DIR = fileURLToPath(new URL('../../../deploy/k8s', import.meta.url));

/** Whether a label selector selects pods with these labels. */
function selects(sel: Selector | undefined, labels: Record<string, string>): boolean {
  if (!sel) return false;
  const byLabels = Object.entries(sel.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
  const byExpr = (sel.matchExpressions ?? []).every((e) => (e.operator === 'In' ? e.values.includes(labels[e.key] ?? '') : true));
  return byLabels && byExpr;
}

describe('Kubernetes manifests (kustomize build deploy/k8s)', { timeout: 600_000 }, () => {
  let objs: Obj[];
  const get = (kind: string, name: string): Obj => {
    const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
    assert.ok(o, `${kind}/${name} is rendered`);
    return o;
  };
  const workloads = (): Obj[] => objs.filter((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet');

  before(async () => {
    // Built once with Go and cached (`parley stack install` does it up front).
    const kustomize = await ensureKustomize(pino({ level: 'warn' }, pino.destination(2)));
    const { stdout } = await promisify(execFile)(kustomize, ['build', K8S_DIR], { maxBuffer: 16 * 1024 * 1024 });
    objs = parseAllDocuments(stdout).map((d) => {
      assert.deepEqual(d.errors, [], 'valid YAML');
      return d.toJS() as Obj;
    });
  });

  it('renders the services: NATS StatefulSet (3 nodes, JetStream, a cluster), gateway, chat, presence and notify', () => {
    const nats = get('StatefulSet', 'nats');
    assert.equal(nats.spec!.replicas, 3);
    const conf = get('ConfigMap', 'nats-config').data!['nats.conf']!;
    assert.match(conf, /jetstream\s*\{/);
    assert.match(conf, /cluster\s*\{[^}]*routes/s);
    for (const [name, cmd] of [['gateway', 'gateway'], ['chat', 'chat'], ['presence', 'presence'], ['notify', 'notify']]) {
      assert.deepEqual(get('Deployment', name!).spec!.template!.spec.containers[0]!.args, [cmd], `${name} runs parley ${cmd}`);
    }
    const cfg = get('ConfigMap', 'parley').data!;
    assert.equal(cfg.PARLEY_STREAM_REPLICAS, '3', 'the stream is R3');
    assert.equal(cfg.NATS_URL!.split(',').length, 3, 'clients know every NATS node');
    for (const o of objs.filter((x) => x.kind !== 'Namespace')) assert.equal(o.metadata.namespace, 'parley', `${o.kind}/${o.metadata.name}`);
  });

  it('the gateway Deployment is scaled by a HorizontalPodAutoscaler (and does not pin its own replica count)', () => {
    const hpa = get('HorizontalPodAutoscaler', 'gateway');
    assert.equal(hpa.apiVersion, 'autoscaling/v2');
    assert.deepEqual(hpa.spec!.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: 'gateway' });
    assert.ok((hpa.spec!.minReplicas as number) >= 2 && (hpa.spec!.maxReplicas as number) > (hpa.spec!.minReplicas as number));
    assert.ok((hpa.spec!.metrics as unknown[]).length > 0);
    assert.equal(get('Deployment', 'gateway').spec!.replicas, undefined, 'no spec.replicas to fight the HPA on every apply');
  });

  it('PodDisruptionBudgets cover gateway, chat, notify and NATS (each selects its pods)', () => {
    const pdbs = objs.filter((o) => o.kind === 'PodDisruptionBudget');
    for (const [kind, name] of [['Deployment', 'gateway'], ['Deployment', 'chat'], ['Deployment', 'notify'], ['StatefulSet', 'nats']] as const) {
      const labels = get(kind, name).spec!.template!.metadata.labels;
      const pdb = pdbs.find((p) => selects(p.spec!.selector as Selector, labels));
      assert.ok(pdb, `a PDB selects ${name}'s pods`);
      assert.ok(pdb.spec!.minAvailable !== undefined || pdb.spec!.maxUnavailable !== undefined, `${pdb.metadata.name} bounds disruptions`);
      assert.equal(pdb.apiVersion, 'policy/v1');
    }
  });

  it('every container has CPU and memory requests and limits; every workload spreads over nodes', () => {
    for (const w of workloads()) {
      for (const c of w.spec!.template!.spec.containers) {
        for (const k of ['requests', 'limits'] as const) {
          for (const r of ['cpu', 'memory']) assert.ok(c.resources?.[k]?.[r], `${w.metadata.name}/${c.name}: resources.${k}.${r}`);
        }
      }
      const spread = w.spec!.template!.spec.topologySpreadConstraints ?? [];
      assert.ok(spread.some((t) => t.topologyKey === 'kubernetes.io/hostname' && selects(t.labelSelector, w.spec!.template!.metadata.labels)),
        `${w.metadata.name} spreads its own pods over nodes`);
    }
  });

  it('Parley pods carry Prometheus scrape annotations naming their ops (metrics) port', () => {
    for (const name of ['gateway', 'chat', 'presence', 'notify']) {
      const t = get('Deployment', name).spec!.template!;
      const a = t.metadata.annotations ?? {};
      assert.equal(a['prometheus.io/scrape'], 'true', name);
      const ops = t.spec.containers[0]!.ports!.find((p) => p.name === 'ops');
      assert.ok(ops, `${name} names its ops port`);
      assert.equal(a['prometheus.io/port'], String(ops.containerPort), `${name}: the annotation names the ops port`);
    }
    // The public Service exposes the gateway's http port only, never the metrics port.
    const svc = get('Service', 'gateway');
    assert.deepEqual((svc.spec!.ports as Array<{ targetPort: string }>).map((p) => p.targetPort), ['http']);
  });

  it('NetworkPolicies: ingress denied by default; only the gateways\' http port is open to the outside', () => {
    const nps = objs.filter((o) => o.kind === 'NetworkPolicy');
    interface Rule { from?: Array<Record<string, unknown>>; ports?: Array<{ port: string | number }> }
    const deny = nps.find((n) => Object.keys((n.spec!.podSelector as object) ?? {}).length === 0
      && (n.spec!.policyTypes as string[]).includes('Ingress') && n.spec!.ingress === undefined);
    assert.ok(deny, 'a default-deny ingress policy for every pod of the namespace');
    // A rule is open to the outside when it has no `from`, or an ipBlock, or a namespaceSelector that is empty.
    const outside = (r: Rule): boolean => r.from === undefined || r.from.some((f) => 'ipBlock' in f
      || ('namespaceSelector' in f && Object.keys(f.namespaceSelector as object).length === 0));
    const open = nps.flatMap((n) => ((n.spec!.ingress as Rule[] | undefined) ?? []).filter(outside).map((r) => ({ n, r })));
    assert.ok(open.length > 0, 'something is reachable from outside');
    const gwLabels = get('Deployment', 'gateway').spec!.template!.metadata.labels;
    for (const { n, r } of open) {
      const sel = n.spec!.podSelector as Selector;
      for (const w of workloads().filter((x) => x.metadata.name !== 'gateway')) {
        assert.ok(!selects(sel, w.spec!.template!.metadata.labels), `${n.metadata.name} opens ${w.metadata.name} to the outside`);
      }
      assert.ok(selects(sel, gwLabels), `${n.metadata.name} selects the gateways`);
      assert.deepEqual(r.ports?.map((p) => p.port), ['http'], `${n.metadata.name}: only the gateway's http port`);
    }
  });
});
