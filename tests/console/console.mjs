// The console's browser driver (run by test_console.py, which owns the daemon and SIPp): playwright-core drives
// the system's Chromium through the page as an operator would. It asks the Python side for SIP things over
// stdout ({"need": ...}) and reads the answer from stdin. Any failed expectation exits 1 with what went wrong.
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import path from 'node:path';

const env = process.env;
const require = createRequire(path.join(env.CONSOLE_NODE_MODULES, 'x.js'));
const { chromium } = require('playwright-core');

const URL_ = env.CONSOLE_URL;
const TOKEN = env.CONSOLE_TOKEN;
const DOMAIN = env.CONSOLE_DOMAIN;
const SHOTS = env.CONSOLE_SHOTS;

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function need(what, args = {}) {
  process.stdout.write(JSON.stringify({ need: what, ...args }) + '\n');
  const { value, done } = await lines.next();
  if (done) throw new Error(`no answer to ${what}`);
  const r = JSON.parse(value);
  if (!r.ok) throw new Error(`${what} failed: ${value}`);
  return r;
}
function expect(cond, message) {
  if (!cond) throw new Error(message);
}
const log = (m) => console.log(m);
const timings = {};

const args = ['--disable-dev-shm-usage']; // containers often have a small /dev/shm
if (process.getuid && process.getuid() === 0) args.push('--no-sandbox'); // Chromium refuses root otherwise (CI)
const browser = await chromium.launch({ executablePath: env.CONSOLE_CHROMIUM, args, timeout: 30000 });
let failed = false;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(5000);
  const apiRequests = [];
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.pathname.startsWith('/api/')) apiRequests.push({ method: r.method(), path: u.pathname, at: Date.now() });
  });
  page.on('pageerror', (e) => { log(`page error: ${e.message}`); failed = true; });
  page.on('console', (m) => { if (m.type() === 'error' && !m.text().includes('401')) log(`page console: ${m.text()}`); });

  // ---- without the token: the shell loads, the data does not.
  await page.goto(`${URL_}/ui/`);
  await page.getByLabel('Admin token').waitFor();
  const bare = await page.evaluate(async () => {
    const r = await fetch('/api/parked');
    return { status: r.status, body: await r.text() };
  });
  expect(bare.status === 401 && bare.body.includes('missing or wrong bearer token'), `a request without the token got ${bare.status} ${bare.body}`);
  const events = await page.evaluate(async () => (await fetch('/api/events')).status);
  expect(events === 401, `the event stream without the token got ${events}`);
  await page.screenshot({ path: `${SHOTS}/login.png` });

  // ---- a wrong token is refused, the right one signs in and the stream goes live.
  await page.getByLabel('Admin token').fill('not-the-token');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('The token was refused').waitFor();
  await page.getByLabel('Admin token').fill(TOKEN);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('stream-status').getByText('live', { exact: true }).waitFor();
  const stored = await page.evaluate(() => sessionStorage.getItem('parkway.token'));
  expect(stored === TOKEN, 'the token is not kept in session storage');
  const streamReq = apiRequests.filter((r) => r.path === '/api/events');
  expect(streamReq.length >= 1, 'the page did not open the event stream');
  const urls = apiRequests.map((r) => r.path).join(' ');
  expect(!/token=/.test(urls), `the token went into a URL: ${urls}`);
  await page.getByText('No parked calls.').waitFor();
  const parkedLoads = () => apiRequests.filter((r) => r.path === '/api/parked' && r.method === 'GET').length;
  const loadsBefore = parkedLoads();

  // ---- a call parked by SIPp appears within a second, from the event stream (no polling).
  await need('park', { dial: '*68120', user: '2001', display: 'Alice' });
  const t0 = Date.now();
  const row = page.locator('tr[data-call-id]').filter({ hasText: '120' });
  await row.waitFor({ timeout: 1000 });
  timings.park_to_row_ms = Date.now() - t0;
  log(`parked call on the page ${timings.park_to_row_ms} ms after the park was answered`);
  expect(parkedLoads() === loadsBefore, 'the page fetched /api/parked again: it must follow the event stream');
  await row.getByText('Alice').waitFor();
  await row.getByText('1003', { exact: true }).waitFor(); // the parker
  // "For" ticks with the page's clock (seconds under a minute read "Ns").
  const seconds = async () => Number((await row.getByTestId('parked-for').textContent()).replace(/s$/, ''));
  const for1 = await seconds();
  await page.waitForTimeout(2100);
  const for2 = await seconds();
  expect(for1 >= 0 && for2 >= for1 + 1, `"for" does not tick (${for1} s then ${for2} s)`);
  await page.screenshot({ path: `${SHOTS}/parked.png` });

  // ---- Recall now: the parker's phone rings, the row shows recalling.
  await row.getByRole('button', { name: /^Recall call \d+ on 120 now$/ }).click();
  await page.getByText(/Recall of call \d+ started/).waitFor();
  const rang = await need('rang');
  log(`recall INVITE reached the parker's phone (From: ${rang.from})`);
  await row.getByTestId('call-state').getByText('recalling').waitFor();

  // ---- groups: reorder with the keyboard, save, explain *58 gives the new first member.
  await page.getByRole('button', { name: 'Groups' }).click();
  const sales = page.locator('article[data-group="sales"]');
  await sales.locator('li[data-member="1003"]').waitFor();
  const order = async () => sales.locator('li[data-member]').evaluateAll((els) => els.map((e) => e.dataset.member));
  expect((await order()).join() === '1001,1002,1003,1004', `sales starts as ${await order()}`);
  await sales.locator('li[data-member="1003"]').focus();
  await page.keyboard.press('Alt+ArrowUp');
  await page.keyboard.press('Alt+ArrowUp');
  expect((await order()).join() === '1003,1001,1002,1004', `after Alt+Up twice: ${await order()}`);
  const focused = await page.evaluate(() => document.activeElement?.dataset?.member);
  expect(focused === '1003', `keyboard focus left the moved member (${focused})`);
  // Drag and drop reorders too (then undone: the keyboard order is the one saved).
  await sales.locator('li[data-member="1004"]').dragTo(sales.locator('li[data-member="1003"]'));
  expect((await order())[0] === '1004', `drag 1004 onto the first member: ${await order()}`);
  await sales.getByRole('button', { name: 'Undo changes' }).click();
  await sales.locator('li[data-member="1003"]').focus();
  await page.keyboard.press('Alt+ArrowUp');
  await page.keyboard.press('Alt+ArrowUp');
  await sales.getByRole('button', { name: 'Save group' }).click();
  await page.getByText('Group sales saved').waitFor();
  const saved = await (await context.request.get(`${URL_}/api/groups?domain=${DOMAIN}`, { headers: { Authorization: `Bearer ${TOKEN}` } })).json();
  const members = saved.groups.find((g) => g.name === 'sales').members.join();
  expect(members === '1003,1001,1002,1004', `the server has sales = ${members}`);
  await page.getByLabel('Caller', { exact: true }).fill('1001');
  await page.getByLabel('Dial', { exact: true }).fill('*58');
  await page.getByRole('button', { name: 'Explain', exact: true }).click();
  const parkOn = page.getByTestId('gexplain-result').getByTestId('explain-park-on');
  await parkOn.waitFor();
  expect((await parkOn.textContent()) === '1003', `explain *58 would park on ${await parkOn.textContent()}, want 1003`);
  await page.screenshot({ path: `${SHOTS}/groups.png`, fullPage: true });

  // ---- rules: a bad rule is refused with the server's message, and nothing changes.
  await page.getByRole('button', { name: 'Rules' }).click();
  const editor = page.getByLabel(/Stored rules/);
  await editor.waitFor();
  const header = 'id\tdomain\tdpid\tpr\tmatch_op\tmatch_exp\tmatch_len\tsubst_exp\trepl_exp\tattrs\tdisabled\tcontinue\n';
  const bad = `${header}0\t${DOMAIN}\t0\t10\tregex\t^7(0[1-9]\t0\t\t\taction=park;lot=main\n`;
  await editor.fill(bad);
  const server = await (await context.request.post(`${URL_}/api/rules/check`, {
    headers: { Authorization: `Bearer ${TOKEN}` }, data: { text: bad } })).json();
  expect(typeof server.error === 'string' && server.error.length > 0, `the server took the bad rule: ${JSON.stringify(server)}`);
  await page.getByRole('button', { name: 'Validate' }).click();
  const checkText = await page.getByTestId('rules-check').textContent();
  expect(checkText === `400: ${server.error}`, `Validate shows "${checkText}", the server said "${server.error}"`);
  // Apply is refused with rules.import's own message (the server's text, shown as it came).
  const refused = await context.request.post(`${URL_}/api/rules`, {
    headers: { Authorization: `Bearer ${TOKEN}` }, data: { text: bad, replace: true } });
  const importError = (await refused.json()).error;
  expect(refused.status() === 400 && importError.includes('bad regex'), `POST /api/rules took the bad rule: ${importError}`);
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.locator('.notice.error').waitFor();
  const shown = await page.locator('.notice.error .notice-text').textContent();
  expect(shown === `400: ${importError}`, `Apply shows "${shown}", the server said "${importError}"`);
  const after = await (await context.request.get(`${URL_}/api/rules`, { headers: { Authorization: `Bearer ${TOKEN}` } })).json();
  expect(after.rules.length === 0, `a refused rule set changed the rules: ${JSON.stringify(after.rules)}`);
  log(`bad rule refused: ${server.error}`);

  // ---- a good rule: explained against the edited rules before applying, then applied.
  const good = `${header}0\t${DOMAIN}\t0\t10\texact\t700\t0\t\t\taction=park;lot=main\n`;
  await editor.fill(good);
  await page.getByLabel('Caller', { exact: true }).fill('1001');
  await page.getByLabel('Dial', { exact: true }).fill('700');
  await page.getByRole('button', { name: 'Explain', exact: true }).click();
  await page.getByText('With the edited rules (not applied yet)').waitFor();
  const draftAction = await page.getByTestId('explain-action').first().textContent();
  const liveAction = await page.getByTestId('rexplain-result').getByTestId('explain-action').textContent();
  expect(draftAction === 'park' && liveAction !== 'park', `700 explains as ${draftAction} (edited) / ${liveAction} (in force)`);
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.getByText('Rules applied').waitFor();
  await page.screenshot({ path: `${SHOTS}/rules.png`, fullPage: true });

  // ---- the lot grid: a call parked with 700 fills slot 701; move it to 705 from the parked view.
  await page.getByRole('button', { name: 'Lots' }).click();
  await page.locator('.slot').first().waitFor();
  await need('park', { dial: '700', user: '2002', display: 'Bob' });
  await page.getByLabel(/^Slot 701: occupied/).waitFor({ timeout: 1000 });
  await page.screenshot({ path: `${SHOTS}/lots.png`, fullPage: true });
  await page.getByRole('button', { name: /^Parked calls/ }).click();
  const lotRow = page.locator('tr[data-call-id]').filter({ hasText: 'main / 701' });
  await lotRow.getByRole('button', { name: /^Move call/ }).click();
  await lotRow.getByLabel('Move to').selectOption('slot');
  await lotRow.getByLabel(/^Slot/).fill('705');
  await lotRow.getByRole('button', { name: 'Move', exact: true }).click();
  await page.locator('tr[data-call-id]').filter({ hasText: 'main / 705' }).waitFor();
  await page.getByRole('button', { name: 'Dismiss message' }).click();
  await page.screenshot({ path: `${SHOTS}/overview.png` }); // docs/console.png: one call recalling, one in a lot
  // Moving onto an extension that does not exist shows the server's error text.
  const moved = page.locator('tr[data-call-id]').filter({ hasText: 'main / 705' });
  await moved.getByRole('button', { name: /^Move call/ }).click();
  await moved.getByLabel('Move to').selectOption('slot');
  await moved.getByLabel(/^Slot/).fill('999');
  await moved.getByRole('button', { name: 'Move', exact: true }).click();
  await page.locator('.notice.error').waitFor();
  log(`move to slot 999: ${await page.locator('.notice.error .notice-text').textContent()}`);
  await moved.getByRole('button', { name: 'Cancel' }).click();

  // ---- phone width: the parked view still shows each call and its actions.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.getByRole('button', { name: /^Recall call \d+ on main \/ 705 now$/ }).waitFor();
  await page.screenshot({ path: `${SHOTS}/parked-phone.png`, fullPage: true });
  await page.setViewportSize({ width: 1280, height: 800 });

  // ---- hang up (two steps): the row goes away on the abandoned event.
  await moved.getByRole('button', { name: /^Hang up call/ }).click();
  await moved.getByRole('button', { name: /^Confirm: hang up call/ }).click();
  await moved.waitFor({ state: 'detached' });
  await page.getByRole('button', { name: 'Events' }).click();
  await page.locator('.events li').filter({ hasText: 'abandoned' }).first().waitFor();
  await page.screenshot({ path: `${SHOTS}/events.png` });
  expect(!failed, 'the page threw an error (see above)');
  log(JSON.stringify({ timings }));
} catch (e) {
  failed = true;
  log(`FAILED: ${e.stack || e.message}`);
  try {
    const pages = browser.contexts().flatMap((c) => c.pages());
    if (pages[0]) await pages[0].screenshot({ path: `${SHOTS}/failure.png`, fullPage: true });
  } catch {
    /* the failure is reported already */
  }
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
