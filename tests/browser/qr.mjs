// A payload sign-in in headless Chromium: a protected page leads to the QR page; the "phone"
// (a second tab on the development wallet) signs the request; the QR page must move on by itself
// (Xumm's status socket, relayed by the gateway) and land on the app, signed in. Prints one JSON
// line; screenshots of the QR page at a phone's and a desktop's width go to $SCREENSHOT_DIR.
// Usage: node qr.mjs <gateway base URL> <account>
import { launch } from './chromium.mjs';

const [base, account] = process.argv.slice(2);
const shots = process.env.SCREENSHOT_DIR;
const browser = await launch();
const context = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 1 });
const page = await context.newPage();
let code = 0;
try {
  await page.goto(`${base}/dashboard?tab=2`);
  await page.waitForSelector('#qr svg', { timeout: 10000 });
  const qrPath = new URL(page.url()).pathname;
  const overflows = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  if (shots) await page.screenshot({ path: `${shots}/qr-390.png`, fullPage: true });
  await page.setViewportSize({ width: 1280, height: 800 });
  if (shots) await page.screenshot({ path: `${shots}/qr-1280.png`, fullPage: true });
  // The phone: the deep link opens the request in the (development) wallet.
  const phone = await context.newPage();
  await phone.goto(await page.getAttribute('#open', 'href'));
  await phone.fill('#account', account);
  await phone.click('#approve');
  // No reload, no click: the QR page follows the payload and lands on the app.
  await page.waitForURL((u) => u.pathname === '/dashboard', { timeout: 15000 });
  await page.waitForSelector('#account', { timeout: 10000 });
  console.log(JSON.stringify({
    qr_path: qrPath,
    qr_overflows: overflows,
    landed: new URL(page.url()).pathname + new URL(page.url()).search,
    account: await page.textContent('#account'),
  }));
} catch (e) {
  console.error(String(e));
  if (shots) await page.screenshot({ path: `${shots}/qr-failure.png` });
  code = 1;
} finally {
  await browser.close();
}
process.exit(code);
