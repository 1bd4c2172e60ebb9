// Opens the demo's app as an xApp in headless Chromium, the way Xumm would: the development
// wallet's launcher issues a one-time token and opens the app with it. Prints one JSON line:
// where the browser landed, what whoami showed, and what reusing the token's URL shows.
// Usage: node xapp.mjs <wallet base URL> <account>
import { launch } from './chromium.mjs';

const [wallet, account] = process.argv.slice(2);
const shots = process.env.SCREENSHOT_DIR;
const browser = await launch();
const context = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 1 });
const page = await context.newPage();
const overflow = (p) => p.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
let code = 0;
try {
  await page.goto(`${wallet}/xapp`);
  await page.fill('#account', account);
  await page.selectOption('#access', 'READONLY');
  await page.selectOption('#style', 'DARK');
  const launcherOverflows = await overflow(page);
  if (shots) await page.screenshot({ path: `${shots}/xapp-launcher.png`, fullPage: true });
  // Every URL the browser is sent to, to find the one carrying the token.
  const visited = [];
  page.on('request', (r) => { if (r.isNavigationRequest()) visited.push(r.url()); });
  await page.click('#open');
  await page.waitForSelector('#account', { timeout: 10000 });
  const identity = await page.textContent('#identity');
  const landed = new URL(page.url());
  if (shots) await page.screenshot({ path: `${shots}/xapp-whoami.png`, fullPage: true });
  const launchUrl = visited.find((u) => u.includes('xAppToken='));
  const reused = await page.goto(launchUrl);
  const reusedText = await page.textContent('body');
  if (shots) await page.screenshot({ path: `${shots}/xapp-link-used.png`, fullPage: true });
  console.log(JSON.stringify({
    landed: landed.pathname + landed.search,
    shown_account: identity.includes(account),
    readonly: identity.includes('READONLY'),
    dark: identity.includes('DARK'),
    launcher_overflows: launcherOverflows,
    reused_status: reused.status(),
    reused_says: reusedText.includes('open it again'),
    reused_overflows: await overflow(page),
  }));
} catch (e) {
  console.error(String(e));
  if (shots) await page.screenshot({ path: `${shots}/xapp-failure.png` });
  code = 1;
} finally {
  await browser.close();
}
process.exit(code);
