// Every page the gateway shows people, in headless Chromium at the narrowest phone (320 px), a common one (390) and a desktop (1280),
// light and dark: a screenshot of each, whether it overflows, and an accessibility check with
// axe-core (run in the page). Prints one JSON line per page and mode.
// Usage: node a11y.mjs <gateway base URL> <wallet base URL> <account allowed on /admin> <another account>
import { createRequire } from 'node:module';
import { launch } from './chromium.mjs';

const require = createRequire(import.meta.url);
const axePath = require.resolve('axe-core/axe.min.js');
const [base, wallet, admin, other] = process.argv.slice(2);
const shots = process.env.SCREENSHOT_DIR;
const browser = await launch();
let code = 0;
let visitor = 0;

// Each page: its name and how to reach it in a fresh context (returns the page, showing it).
const pages = [
  // First: the test makes Xumm fail exactly this page's six calls (three widths, light and dark).
  ['temporarily-unavailable', async (p) => { await p.goto(`${base}/?xAppToken=0c4d4b52-7fd6-4f0e-9b0e-5a3b1f2c3d4e`); }],
  ['sign-in', async (p) => { await p.goto(`${base}/.xumm/start?rd=%2F`); }],
  ['qr', async (p) => { await p.goto(`${base}/.xumm/start?rd=%2F&via=payload`); await p.waitForSelector('#qr svg'); }],
  ['rejected', async (p, ctx) => {
    await p.goto(`${base}/.xumm/start?rd=%2F&via=payload`);
    await p.waitForSelector('#qr svg');
    const phone = await ctx.newPage();
    await phone.goto(await p.getAttribute('#open', 'href'));
    await phone.click('#reject');
    await p.waitForSelector('#retry', { timeout: 10000 });
  }],
  ['not-allowed', async (p) => {
    await p.goto(`${base}/admin`);
    await p.click('#oauth2');
    await p.fill('#account', other);
    await p.click('#approve');
    await p.waitForSelector('#account', { timeout: 10000 });
  }],
  ['signed-out', async (p) => { await p.goto(`${base}/.xumm/sign_out`); }],
  ['xapp-link-unusable', async (p) => { await p.goto(`${base}/?xAppToken=00000000-0000-4000-8000-000000000000`); }],
  ['not-found', async (p) => { await p.goto(`${base}/.xumm/nothing-here`); }],
];

for (const [name, reach] of pages) {
  for (const scheme of ['light', 'dark']) {
    for (const width of [320, 390, 1280]) {
      // Each context is another visitor (the gateway trusts loopback's X-Forwarded-For): 48 page
      // visits from one address within a minute would meet the sign-in rate limit, which is
      // not what this test is about.
      visitor += 1;
      const ctx = await browser.newContext({ viewport: { width, height: 844 }, colorScheme: scheme, deviceScaleFactor: 1, extraHTTPHeaders: { 'x-forwarded-for': `198.51.100.${visitor}` } });
      const p = await ctx.newPage();
      try {
        let status = 200;
        p.on('response', (r) => { if (r.request().isNavigationRequest() && r.frame() === p.mainFrame()) status = r.status(); });
        await reach(p, ctx);
        const overflow = await p.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
        if (shots) await p.screenshot({ path: `${shots}/${name}-${width}-${scheme}.png`, fullPage: true });
        await p.addScriptTag({ path: axePath });
        const result = await p.evaluate(async () => {
          const r = await window.axe.run(document, { resultTypes: ['violations'] });
          return r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id}: ${v.nodes.length}`);
        });
        const lang = await p.evaluate(() => document.documentElement.lang);
        console.log(JSON.stringify({ page: name, scheme, width, overflow, serious: result, lang, status }));
      } catch (e) {
        console.error(`${name} ${scheme} ${width}: ${e}`);
        code = 1;
      } finally {
        await ctx.close();
      }
    }
  }
}
await browser.close();
process.exit(code);
