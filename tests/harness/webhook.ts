// A local HTTP receiver for the webhook sink: records every request, verifies its signature as a real receiver
// would (lib/notify verifyWebhook), and answers as the test says (a status, headers, a delay).
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { NOTIFICATION_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verifyWebhook } from '../../lib/notify/index.js';

export interface ReceivedRequest {
  id: string;
  body: Record<string, unknown>;
  raw: string;
  verified: boolean;
  status: number;
  /** When the request had arrived in full (epoch ms): what tests measure retry delays by. */
  at: number;
  /** The response was written out (false: the sender went away first). */
  answered: boolean;
}

export interface Answer {
  status: number;
  headers?: Record<string, string>;
  delayMs?: number;
}

export class WebhookReceiver {
  readonly requests: ReceivedRequest[] = [];
  /** How to answer the nth (0-based) request for a notification id. */
  answer: (id: string, nth: number) => Answer = () => ({ status: 200 });
  private readonly seen = new Map<string, number>();

  private constructor(private readonly server: Server, readonly secret: string) {}

  static async start(secret: string): Promise<WebhookReceiver> {
    const server = createServer();
    const self = new WebhookReceiver(server, secret);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => self.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return self;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hook`;
  }

  /** Requests answered with 2xx, per notification id. */
  delivered(): Map<string, number> {
    const m = new Map<string, number>();
    for (const r of this.requests) if (r.status < 300 && r.answered) m.set(r.id, (m.get(r.id) ?? 0) + 1);
    return m;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const at = Date.now();
      const raw = Buffer.concat(chunks).toString('utf8');
      const id = String(req.headers[NOTIFICATION_ID_HEADER] ?? '');
      const verified = verifyWebhook(this.secret, {
        timestamp: req.headers[TIMESTAMP_HEADER] as string | undefined, signature: req.headers[SIGNATURE_HEADER] as string | undefined,
      }, raw).ok;
      const nth = this.seen.get(id) ?? 0;
      this.seen.set(id, nth + 1);
      const a = verified ? this.answer(id, nth) : { status: 401 };
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(raw) as Record<string, unknown>;
      } catch { /* recorded as empty */ }
      const rec: ReceivedRequest = { id, body, raw, verified, status: a.status, at, answered: false };
      this.requests.push(rec);
      const reply = (): void => {
        if (res.destroyed) return; // the sender gave up (its timeout) or the receiver is closing
        res.writeHead(a.status, a.headers ?? {});
        res.end(() => { rec.answered = true; });
      };
      if (a.delayMs) setTimeout(reply, a.delayMs);
      else reply();
    });
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
