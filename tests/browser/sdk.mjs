// The official xumm-sdk (npm), unchanged, talking to xumm-gate's broker instead of Xumm.
// Usage: node sdk.mjs <gateway base URL incl. prefix> <app key> <app secret>
// Prints {"subscribed": uuid} once it listens on a payload's status socket (the test then has the
// wallet sign it), and the results as the last line.
import { XummSdk } from 'xumm-sdk';

const [endpoint, key, secret] = process.argv.slice(2);
const sdk = new XummSdk(key, secret);
sdk.setEndpoint(endpoint);
const out = {};
try {
  out.ping = (await sdk.ping()).application.name;
  const created = await sdk.payload.create({ txjson: { TransactionType: 'Payment', Destination: 'r9DvujRNfGrZr4nBjudEJJWFBNfkDfcwNA', Amount: '1000000' } }, true);
  out.uuid = created.uuid;
  out.next = created.next.always;
  const got = await sdk.payload.get(created.uuid, true);
  out.get_uuid = got.meta.uuid;
  out.resolved = got.meta.resolved;
  const cancelled = await sdk.payload.cancel(created.uuid, true);
  out.cancelled = cancelled.result.cancelled;
  // a value that is no handle of this app's: inactive, answered without asking Xumm
  out.verified = await sdk.verifyUserTokens(['0e1c1a8e-0000-4000-8000-000000000000']);
  // subscribe: the SDK derives ws(s)://<endpoint>/sign/<uuid>, the gateway's relay to Xumm
  const watched = await sdk.payload.create({ txjson: { TransactionType: 'Payment', Destination: 'r9DvujRNfGrZr4nBjudEJJWFBNfkDfcwNA', Amount: '1' } }, true);
  const sub = await sdk.payload.subscribe(watched.uuid, (event) => {
    if (typeof event.data.signed !== 'undefined') return event.data;
  });
  console.log(JSON.stringify({ subscribed: watched.uuid }));
  const outcome = await Promise.race([sub.resolved, new Promise((r) => setTimeout(() => r({ timeout: true }), 30000))]);
  out.subscribed_uuid = watched.uuid;
  out.subscribed_signed = outcome.signed;
  out.subscribed_txid = outcome.txid;
  out.subscribed_payload_signed = sub.payload.meta.signed;
  try {
    // a transaction type the app may not ask for: the SDK reports the gateway's Xumm-shaped error
    await sdk.payload.create({ txjson: { TransactionType: 'TrustSet' } }, true);
    out.refused = 'not refused';
  } catch (e) {
    out.refused = String(e);
  }
} catch (e) {
  out.exception = String(e);
}
console.log(JSON.stringify(out));
// the SDK keeps timers for closed sockets; nothing else is left to wait for
process.exit(0);
