// The official xumm-sdk (npm), unchanged, talking to xumm-gate's broker instead of Xumm.
// Usage: node sdk.mjs <gateway base URL incl. prefix> <app key> <app secret>
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
