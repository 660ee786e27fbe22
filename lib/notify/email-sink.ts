// Email sink: SMTP through nodemailer, plain text and HTML, from (its display name)/subject templates, TLS options. The recipient's
// address comes from PARLEY_NOTIFY_EMAIL_TO ({user} replaced) or the user's document in `users`; without one the
// sink skips the recipient. Addresses and bodies are never logged at info.
import nodemailer from 'nodemailer';
import type { Transporter } from 'nodemailer';
import type { EmailConfig } from '../config/index.js';
import type { Logger } from '../observability/index.js';
import { SinkError } from './sink.js';
import type { Notification, Sink } from './sink.js';

/** Replaces `{name}` with vars[name]; unknown names stay as they are. */
export function fillTemplate(template: string, vars: Record<string, string>): string {
  return template.replace(/\{([a-z]+)\}/g, (whole, k: string) => vars[k] ?? whole);
}

/**
 * User ids the address template may put into an address: a plain local part. User ids may hold `,`, `<`, `@` and
 * more, and a mention can name any user id, so anything else in a template could add recipients of the sender's
 * choosing (one mention "a@evil.example,b" would mail a@evil.example).
 */
const LOCAL_PART = /^[A-Za-z0-9._+-]{1,64}$/;

const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function emailContent(n: Notification): { text: string; html: string } {
  const what = n.reason === 'mention' ? 'mentioned you' : 'sent you a message';
  return {
    text: `${n.from} ${what} in ${n.room}:\n\n${n.body}\n`,
    html: `<p><strong>${escapeHtml(n.from)}</strong> ${what} in <strong>${escapeHtml(n.room)}</strong>:</p>\n` +
      `<blockquote>${escapeHtml(n.body).replace(/\n/g, '<br>')}</blockquote>\n`,
  };
}

export function createEmailSink(cfg: EmailConfig, addressOf: (user: string) => Promise<string | undefined>, log: Logger): Sink {
  const u = new URL(cfg.smtpUrl!);
  const transport: Transporter = nodemailer.createTransport({
    host: u.hostname,
    port: u.port ? Number(u.port) : (u.protocol === 'smtps:' ? 465 : 587),
    secure: u.protocol === 'smtps:',
    requireTLS: cfg.requireTls,
    ...(u.username ? { auth: { user: decodeURIComponent(u.username), pass: decodeURIComponent(u.password) } } : {}),
    tls: { rejectUnauthorized: cfg.tlsRejectUnauthorized, ...(cfg.tlsCa ? { ca: cfg.tlsCa } : {}) },
    connectionTimeout: cfg.timeoutMs,
    greetingTimeout: cfg.timeoutMs,
    socketTimeout: cfg.timeoutMs,
  });
  return {
    name: 'email',
    async send(n, signal) {
      const to = !cfg.toTemplate ? await addressOf(n.recipient)
        : LOCAL_PART.test(n.recipient) ? fillTemplate(cfg.toTemplate, { user: n.recipient }) : undefined;
      if (!to) {
        log.debug({ notification: n.id, recipient: n.recipient }, 'no email address; skipped');
        return 'skipped';
      }
      if (signal.aborted) throw new SinkError('attempt deadline reached', false);
      const vars = { from: n.from, room: n.room, recipient: n.recipient, reason: n.reason };
      const { text, html } = emailContent(n);
      try {
        await transport.sendMail({
          // As an object: nodemailer quotes the name, so a sender id holding `<`, `,` or `"` stays in the name.
          from: { name: fillTemplate(cfg.from.name, vars), address: cfg.from.address },
          to,
          subject: fillTemplate(cfg.subject, vars),
          text,
          html,
          // The same notification always has the same Message-ID: a mail client shows a resend as one message.
          messageId: `<${n.id}.${n.round}@parley>`,
          headers: { 'X-Parley-Notification-Id': n.id },
        });
      } catch (err) {
        const e = err as { responseCode?: number; code?: string };
        // 5xx: the server refused this mail for good (bad address, policy); 4xx and network errors may pass later.
        // The server's text may quote the address: only the codes go into the reason (which is stored and logged).
        throw new SinkError(`smtp failed: ${e.responseCode ?? ''} ${e.code ?? 'error'}`.replace(/\s+/g, ' '),
          e.responseCode !== undefined && e.responseCode >= 500, { cause: err });
      }
      return 'sent';
    },
    async close() {
      transport.close();
    },
  };
}
