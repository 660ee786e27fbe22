// Mailpit for the email sink's tests: a real SMTP server (lib/stack, built and cached like the other servers) on
// free ports, and its HTTP API to read what arrived.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchMailpit } from '../../lib/stack/index.js';
import type { Mailpit } from '../../lib/stack/index.js';

export interface MailSummary {
  ID: string;
  MessageID: string;
  From: { Name: string; Address: string };
  To: { Name: string; Address: string }[];
  Subject: string;
}

export interface MailDetail extends MailSummary {
  Text: string;
  HTML: string;
}

export class MailpitHandle {
  private constructor(private readonly server: Mailpit, private readonly dir: string) {}

  static async start(): Promise<MailpitHandle> {
    const dir = await mkdtemp(join(tmpdir(), 'parley-mailpit-'));
    try {
      return new MailpitHandle(await launchMailpit({ dir }), dir);
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  get smtpUrl(): string {
    return this.server.url;
  }

  async messages(): Promise<MailSummary[]> {
    const res = await fetch(`${this.server.httpUrl}/api/v1/messages?limit=1000`);
    if (!res.ok) throw new Error(`mailpit answered ${res.status}`);
    return ((await res.json()) as { messages: MailSummary[] }).messages;
  }

  async message(id: string): Promise<MailDetail> {
    const res = await fetch(`${this.server.httpUrl}/api/v1/message/${encodeURIComponent(id)}`);
    if (!res.ok) throw new Error(`mailpit answered ${res.status}`);
    return (await res.json()) as MailDetail;
  }

  async close(): Promise<void> {
    await this.server.stop();
    await rm(this.dir, { recursive: true, force: true });
  }
}
