// Opens every page of the demo a person sees at a phone's width (390 px) in headless Chromium:
// the development provider's sign-in, whoami (protected and public), the development wallet,
// and the gateway's own error pages. Prints one JSON line per page: its name, whether it
// overflows horizontally, and what it must show; screenshots go to $SCREENSHOT_DIR.
// Usage: node pages.mjs <gateway base URL>
import { launch } from './chromium.mjs';

const [base] = process.argv.slice(2);
const shots = process.env.SCREENSHOT_DIR;
const browser = await launch();
const context = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 1 });
const page = await context.newPage();
let code = 0;

async function check(p, name, extra = {}) {
  const overflow = await p.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  const viewport = await p.evaluate(() => !!document.querySelector('meta[name=viewport]'));
  if (shots) await p.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
  console.log(JSON.stringify({ page: name, overflow, viewport, ...extra }));
}

try {
  await page.goto(`${base}/dashboard`);
  await page.waitForSelector('#payload', { timeout: 10000 });
  await check(page, 'sign-in-choice');
  await page.click('#oauth2');
  await page.waitForSelector('#approve', { timeout: 10000 });
  await check(page, 'provider-sign-in');
  await page.click('#approve');
  await page.waitForSelector('#account', { timeout: 10000 });
  await check(page, 'whoami', { identity_first: await page.evaluate(() => {
    const t = document.getElementById('identity');
    return !!t && t.innerText.toLowerCase().includes('x-xumm-account');
  }) });
  await page.click('#sign');
  await page.waitForSelector('#sign-link', { timeout: 10000 });
  const wallet = await context.newPage();
  await wallet.goto(await page.getAttribute('#sign-link', 'href'));
  await wallet.waitForSelector('#approve', { timeout: 10000 });
  await check(wallet, 'wallet', { instruction: await wallet.textContent('#instruction') });
  await page.goto(`${base}/public/x`);
  await check(page, 'whoami-public', { explains: (await page.textContent('#anonymous')).includes('public route') });
  const notFound = await page.goto(`${base}/.xumm/nothing-here`);
  await check(page, 'error-404', { status: notFound.status(), html: (notFound.headers()['content-type'] || '').includes('text/html') });
  const bad = await page.goto(`${base}/a%2Fb`);
  await check(page, 'error-400', { status: bad.status(), html: (bad.headers()['content-type'] || '').includes('text/html') });
} catch (e) {
  console.error(String(e));
  if (shots) await page.screenshot({ path: `${shots}/failure.png` });
  code = 1;
} finally {
  await browser.close();
}
process.exit(code);
