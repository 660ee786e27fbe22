// The demo page (PARLEY_DEMO=1) in real Chromium (Debian's, driven by playwright-core), on the SDK: two browser
// contexts chat both ways with presence and typing; one goes offline while the other sends, comes back, and shows
// the missed messages once each and in order; history scrolls back. Also: no development tokens with a real secret.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { chromium } from 'playwright-core';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { mintToken } from '../../lib/auth/index.js';
import { DEV_JWT_SECRET, loadConfig } from '../../lib/config/index.js';
import { until } from '../harness/index.js';
import { Suite } from '../harness/suite.js';
import type { ParleyProcess } from '../harness/parley.js';

const CHROMIUM = '/usr/bin/chromium';

/** The room's messages as the page shows them (seq and text of each line, top to bottom). */
async function shown(page: Page, room: string): Promise<Array<{ seq: number; body: string }>> {
  return page.$$eval(`ol[data-room="${room}"] li[data-seq]`, (lis) => lis.map((li) => ({
    seq: Number(li.getAttribute('data-seq')), body: li.querySelector('.body')?.textContent ?? '',
  })));
}

async function login(ctx: BrowserContext, base: string, user: string, room: string): Promise<Page> {
  const page = await ctx.newPage();
  await page.goto(`${base}/?room=${room}`);
  await page.fill('#user', user);
  await page.click('#login-form button');
  await page.waitForSelector('#state[data-state="open"]');
  return page;
}

async function say(page: Page, text: string): Promise<void> {
  await page.fill('#body', text);
  await page.press('#body', 'Enter');
}

describe('demo page in Chromium', () => {
  let suite: Suite;
  let gw: ParleyProcess;
  let browser: Browser;

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)`);
    suite = await Suite.open('demo');
    await suite.start('chat');
    // JWT_SECRET empty: the development secret, the only case in which the page gets tokens from the server.
    gw = await suite.start('gateway', { PARLEY_DEMO: '1', JWT_SECRET: '' });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
  });
  after(async () => {
    await browser?.close();
    await suite.close();
  });

  it('two people chat both ways; one goes offline, misses messages, and gets them back once each, in order', async () => {
    const room = 'pw';
    const [ctxA, ctxB] = [await browser.newContext(), await browser.newContext()];
    const ann = await login(ctxA, gw.http, 'ann', room);
    const ben = await login(ctxB, gw.http, 'ben', room);

    await say(ann, 'hi ben');
    await ben.waitForSelector(`ol[data-room="${room}"] li[data-seq] >> text=hi ben`);
    await say(ben, 'hi ann');
    await ann.waitForSelector(`ol[data-room="${room}"] li[data-seq] >> text=hi ann`);
    await ann.waitForSelector('#online li >> text=ben');
    await ben.fill('#body', 'typing...');
    await ann.waitForSelector('#typing >> text=ben is typing');
    await ben.fill('#body', '');

    await ctxA.setOffline(true);
    await ann.waitForSelector('#state:not([data-state="open"])');
    for (let i = 1; i <= 5; i++) await say(ben, `missed ${i}`);
    await say(ann, 'written offline'); // kept by the SDK and sent once the page is back
    await ben.waitForSelector(`ol[data-room="${room}"] li[data-seq] >> text=missed 5`);
    await ctxA.setOffline(false);
    await ann.waitForSelector('#state[data-state="open"]');
    await ben.waitForSelector(`ol[data-room="${room}"] li[data-seq] >> text=written offline`);
    await until(async () => (await shown(ann, room)).length === (await shown(ben, room)).length,
      { timeout: 15_000, message: 'ann has caught up' });

    const a = await shown(ann, room);
    const b = await shown(ben, room);
    assert.deepEqual(a, b, 'both pages show the same messages in the same order');
    assert.deepEqual(a.map((m) => m.body), ['hi ben', 'hi ann', 'missed 1', 'missed 2', 'missed 3', 'missed 4', 'missed 5', 'written offline']);
    for (let i = 1; i < a.length; i++) assert.ok(a[i]!.seq > a[i - 1]!.seq, 'in seq order, none twice');
    assert.equal(await ann.locator('li.pending').count(), 0, 'nothing left pending');

    const shot = process.env.PARLEY_DEMO_SCREENSHOT;
    if (shot) await ann.screenshot({ path: shot });
    await Promise.all([ctxA.close(), ctxB.close()]);
  });

  it('scrolls back through history a page at a time', async () => {
    const room = 'long';
    const seeder = suite.sdk([gw], 'seeder', { getToken: () => mintToken({ secret: DEV_JWT_SECRET, user: 'seeder' }) });
    await seeder.join(room);
    for (let i = 0; i < 45; i++) await seeder.send(room, `old ${i}`);
    await until(async () => (await suite.messages().countDocuments({ room })) === 45, { message: '45 stored' });
    const ctx = await browser.newContext();
    const page = await login(ctx, gw.http, 'cat', room);
    await until(async () => (await shown(page, room)).length === 30, { message: 'the newest page' });
    // Scrolling to the top asks for the page before (the button does the same).
    await page.$eval('#log', (log) => { log.scrollTop = 0; });
    await until(async () => (await shown(page, room)).length === 45, { message: 'the older page' });
    assert.deepEqual((await shown(page, room)).map((m) => m.body), Array.from({ length: 45 }, (_, i) => `old ${i}`));
    assert.equal(await page.isHidden('#older'), true, 'no more pages');
    await ctx.close();
  });

  it('tokens only with the development secret; the page only with PARLEY_DEMO', async () => {
    const ok = await fetch(`${gw.http}/demo/token?user=ann`);
    assert.equal(ok.status, 200);
    assert.equal((await fetch(`${gw.http}/demo/token?user=${encodeURIComponent('a b')}`)).status, 400);
    const real = await suite.start('gateway', { PARLEY_DEMO: '1' }); // the suite's own JWT_SECRET
    const refused = await fetch(`${real.http}/demo/token?user=ann`);
    assert.equal(refused.status, 404);
    assert.equal((await fetch(`${real.http}/`)).status, 200);
    assert.equal(loadConfig({}).demo, false, 'off unless asked for');
    assert.equal(loadConfig({ PARLEY_DEMO: '1' }).demo, true);
  });
});
