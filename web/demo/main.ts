// The demo chat page: everything it knows about the server comes through the SDK (lib/client). No framework: a few
// elements kept in step with the client's events.
import { connect } from '../../lib/client/index.js';
import type { MessageFrame, ParleyClient } from '../../lib/client/index.js';

interface Shown { id: string; seq: number; from: string; body: string }

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;

interface Room {
  list: HTMLOListElement;
  item: HTMLLIElement;
  online: Set<string>;
  /** Seqs shown, so history pages and live messages never show one twice. */
  seqs: Set<number>;
  /** The `before` of the next older page; null when there is none. */
  older: number | null;
  /** A history page is being read (scrolling asks again and again). */
  loading: boolean;
}

const rooms = new Map<string, Room>();
let active: string | undefined;
let client: ParleyClient | undefined;
let me = '';
const typingTimers = new Map<string, ReturnType<typeof setTimeout>>();

async function fetchToken(user: string): Promise<string> {
  const res = await fetch(`/demo/token?user=${encodeURIComponent(user)}`);
  const body = await res.json() as { token?: string; error?: { message: string } };
  if (!res.ok || !body.token) throw new Error(body.error?.message ?? `HTTP ${res.status}`);
  return body.token;
}

function line(m: Shown, pending = false): HTMLLIElement {
  const li = document.createElement('li');
  li.dataset.id = m.id;
  if (!pending) li.dataset.seq = String(m.seq);
  li.className = `${m.from === me ? 'mine' : ''}${pending ? ' pending' : ''}`;
  const from = document.createElement('span');
  from.className = 'from';
  from.textContent = m.from;
  const body = document.createElement('span');
  body.className = 'body';
  body.textContent = m.body;
  const seq = document.createElement('span');
  seq.className = 'seq';
  seq.textContent = pending ? 'sending…' : `#${m.seq}`;
  li.append(from, body, seq);
  return li;
}

function nearBottom(): boolean {
  const log = $('log');
  return log.scrollHeight - log.scrollTop - log.clientHeight < 40;
}

function scrollDown(): void {
  const log = $('log');
  log.scrollTop = log.scrollHeight;
}

function renderOnline(): void {
  const ul = $('online');
  ul.replaceChildren(...[...(active ? rooms.get(active)!.online : [])].sort().map((u) => {
    const li = document.createElement('li');
    li.textContent = u;
    return li;
  }));
}

function show(room: string): void {
  active = room;
  for (const [name, r] of rooms) {
    r.list.hidden = name !== room;
    r.item.classList.toggle('active', name === room);
  }
  ($('older') as HTMLButtonElement).hidden = rooms.get(room)!.older === null;
  $('typing').textContent = '';
  renderOnline();
  scrollDown();
}

function addLive(m: MessageFrame): void {
  const r = rooms.get(m.room);
  if (!r || r.seqs.has(m.seq)) return;
  const stick = nearBottom();
  r.seqs.add(m.seq);
  r.list.querySelector(`li.pending[data-id="${CSS.escape(m.id)}"]`)?.remove();
  r.list.append(line(m));
  if (m.room === active && stick) scrollDown();
}

async function loadOlder(room: string): Promise<void> {
  const r = rooms.get(room);
  if (!r || r.older === null || r.loading || !client) return;
  r.loading = true;
  const page = await client.history(room, { before: r.older, limit: 30 }).finally(() => { r.loading = false; });
  const log = $('log');
  const fromBottom = log.scrollHeight - log.scrollTop;
  // Newest first on the wire; shown oldest first, above what is there.
  const fresh = page.messages.filter((m) => !r.seqs.has(m.seq)).reverse();
  for (const m of fresh) r.seqs.add(m.seq);
  r.list.prepend(...fresh.map((m) => line(m)));
  r.older = page.more ? page.next : null;
  if (room === active) {
    ($('older') as HTMLButtonElement).hidden = r.older === null;
    log.scrollTop = log.scrollHeight - fromBottom; // keep the reader's place
  }
}

async function join(room: string): Promise<void> {
  if (!client || rooms.has(room)) return show(room);
  const list = document.createElement('ol');
  list.className = 'messages';
  list.dataset.room = room;
  $('threads').append(list);
  const item = document.createElement('li');
  item.textContent = `# ${room}`;
  item.onclick = () => show(room);
  $('rooms').append(item);
  const r: Room = { list, item, online: new Set(), seqs: new Set(), older: null, loading: false };
  rooms.set(room, r);
  show(room);
  try {
    const joined = await client.join(room);
    r.older = joined.seq + 1;
    await loadOlder(room);
    if (room === active) scrollDown();
  } catch (err) {
    item.title = (err as Error).message;
    item.classList.add('error');
  }
}

function start(user: string): void {
  me = user;
  $('me').textContent = user;
  const c = connect({
    url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`,
    getToken: () => fetchToken(user),
  });
  client = c;
  const state = $('state');
  c.on('state', (s) => {
    state.dataset.state = s;
    state.textContent = s;
  });
  c.on('message', addLive);
  c.on('joined', (f) => {
    const r = rooms.get(f.room);
    if (!r) return;
    r.online = new Set(f.presence ?? []);
    if (f.room === active) renderOnline();
  });
  c.on('presence', (f) => {
    const r = f.room === undefined ? undefined : rooms.get(f.room);
    if (!r) return;
    if (f.status === 'online') r.online.add(f.user);
    else r.online.delete(f.user);
    if (f.room === active) renderOnline();
  });
  c.on('typing', (f) => {
    if (f.room !== active || f.user === me) return;
    const el = $('typing');
    el.textContent = `${f.user} is typing…`;
    clearTimeout(typingTimers.get(f.room));
    typingTimers.set(f.room, setTimeout(() => { el.textContent = ''; }, 3_000));
  });
  c.on('reset', (e) => {
    const r = rooms.get(e.room);
    if (!r) return;
    const li = document.createElement('li');
    li.className = 'gap';
    li.textContent = `${e.to - e.from} messages were not replayed: scroll up in history to read them`;
    r.list.append(li);
  });
  c.on('error', (e) => console.warn(`parley: ${e.code}: ${e.message}`));
  $('login').hidden = true;
  $('chat').hidden = false;
  void join(new URLSearchParams(location.search).get('room') ?? 'lobby');
  ($('body') as HTMLInputElement).focus();
}

$('login-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const user = ($('user') as HTMLInputElement).value.trim();
  // Asking for a token first tells the user at once when this server hands out none.
  fetchToken(user).then(() => start(user), (err: Error) => { $('login-error').textContent = `Cannot log in: ${err.message}`; });
});

$('join-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = $('room') as HTMLInputElement;
  void join(input.value.trim());
  input.value = '';
});

$('body').addEventListener('input', () => {
  if (active) client?.typing(active);
});

$('send-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = $('body') as HTMLInputElement;
  const body = input.value.trim();
  const room = active;
  if (!body || !room || !client) return;
  input.value = '';
  const r = rooms.get(room)!;
  const id = crypto.getRandomValues(new Uint32Array(4)).join('-');
  // Shown at once, greyed until the server's message replaces it (the SDK resends it across reconnects).
  r.list.append(line({ id, seq: 0, from: me, body }, true));
  scrollDown();
  client.send(room, body, { id }).catch((err: Error) => {
    const li = r.list.querySelector(`li.pending[data-id="${CSS.escape(id)}"]`);
    if (li) li.querySelector('.seq')!.textContent = `not sent: ${err.message}`;
  });
});

$('log').addEventListener('scroll', () => {
  if (active && $('log').scrollTop === 0) void loadOlder(active);
});
$('older').addEventListener('click', () => {
  if (active) void loadOlder(active);
});
