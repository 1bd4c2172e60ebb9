// Signs in through xumm-gate in headless Chromium and prints what the whoami page shows.
// Usage: node signin.mjs <gateway base URL> <account>
// Exits non-zero (with a screenshot in $SCREENSHOT_DIR if set) when any step fails.
import { launch } from './chromium.mjs';

const [base, account] = process.argv.slice(2);
const browser = await launch();
const page = await browser.newPage();
let code = 0;
try {
  // 1. A protected page sends the browser to sign in; the user picks "Sign in with Xumm" and
  // goes on to the (development) provider.
  await page.goto(`${base}/dashboard?tab=1`);
  await page.click('#oauth2');
  await page.waitForSelector('#account', { timeout: 10000 });
  if (!page.url().includes('/auth')) throw new Error(`expected the provider's page, got ${page.url()}`);
  // 2. The user picks an account and approves, as they would in Xumm.
  await page.fill('#account', account);
  await page.selectOption('#network', 'TESTNET');
  await page.click('#approve');
  // 3. Back at the original URL, the upstream sees the identity headers.
  await page.waitForSelector('#account', { timeout: 10000 });
  const shown = await page.textContent('#account');
  const url = new URL(page.url());
  console.log(JSON.stringify({ path: url.pathname + url.search, account: shown,
                               network: await page.evaluate(() => document.body.innerText.includes('TESTNET')) }));
  // 4. The whoami page asks the gateway's broker for a sign request; the user approves it in the
  //    (development) wallet; the page learns the outcome from the broker.
  await page.click('#sign');
  await page.waitForSelector('#sign-link', { timeout: 10000 });
  const wallet = await browser.newPage();
  await wallet.goto(await page.getAttribute('#sign-link', 'href'));
  await wallet.fill('#account', account);
  await wallet.click('#approve');
  await wallet.waitForSelector('#done', { timeout: 10000 });
  await page.waitForSelector('#sign-outcome', { timeout: 10000 });
  console.log(JSON.stringify({ sign_outcome: await page.textContent('#sign-outcome') }));
  // 5. Sign-out ends it: the next visit goes back to the provider.
  await page.goto(`${base}/.xumm/sign_out`);
  await page.goto(`${base}/dashboard`);
  await page.click('#oauth2');
  await page.waitForSelector('#approve', { timeout: 10000 });
  console.log(JSON.stringify({ after_sign_out: new URL(page.url()).pathname }));
} catch (e) {
  console.error(String(e));
  if (process.env.SCREENSHOT_DIR) await page.screenshot({ path: `${process.env.SCREENSHOT_DIR}/failure.png` });
  code = 1;
} finally {
  await browser.close();
}
process.exit(code);
