// A rippled / Clio node stand-in (JSON-RPC over HTTP, and the WebSocket API on the same port) for
// the ledger-condition tests, written from the rippled
// API reference (https://xrpl.org/docs/references/http-websocket-apis/): account_info,
// account_lines and account_nfts (both paged with `marker`), account_objects (signer_list),
// ledger_entry (FeeSettings by index, credential, mptoken), and the error answers a real node
// gives (actNotFound, entryNotFound, lgrNotFound, slowDown, invalidParams). Its data is built with
// xrpl.js: addresses derived from key pairs, currency codes and credential types hex-encoded the
// way the ledger stores them, NFToken ids laid out (and their taxon scrambled) as the ledger does.
//
// Prints one JSON line on stdout: {"port", "accounts": {name: r-address}, "solo": hex currency,
// "credential_type": hex, "mpt": issuance id}. Control (tests only): POST /_control {"mode":
// "ok" | "down" | "slowDown" | "lgrNotFound" | "timeout" | "unvalidated"} or {"set_line":
// {"account", "currency", "balance"}}; GET /_stats answers {"total", "methods": {...}}.
import http from 'node:http';
import { WebSocketServer } from 'ws';
import * as xrpl from 'xrpl';

const wallet = (n) => xrpl.Wallet.fromEntropy(new Uint8Array(16).fill(n)).classicAddress;
const names = ['issuer', 'rich', 'exact', 'poor', 'frozen', 'paged', 'nft_holder', 'org', 'signer', 'cred_ok', 'cred_expired', 'cred_unaccepted', 'mpt_holder', 'missing', 'nft_issuer', 'nobody', 'mpt_locked', 'reserve'];
const accounts = Object.fromEntries(names.map((name, i) => [name, wallet(i + 1)]));
const A = accounts;

// A non-standard currency code: its ASCII bytes, hex, right-padded to 160 bits.
const currencyHex = (code) => xrpl.convertStringToHex(code).padEnd(40, '0');
const SOLO = currencyHex('SOLO');
const OTHER = ['ALPHA', 'BRAVO', 'CHARLIE', 'DELTA'].map(currencyHex);
const CREDENTIAL_TYPE = xrpl.convertStringToHex('KYC-Basic');

const line = (peer, currency, balance, extra = {}) => ({
  account: peer, balance, currency, limit: '1000000000', limit_peer: '0', quality_in: 0, quality_out: 0, no_ripple: true, no_ripple_peer: false, ...extra,
});
// account -> its trust lines (from its own side: a positive balance is what it holds).
const lines = {
  [A.issuer]: [],
  [A.rich]: [line(A.issuer, SOLO, '1000.5'), line(A.issuer, 'USD', '5')],
  [A.exact]: [line(A.issuer, SOLO, '100')],
  // 16 significant digits just below 100: a float would round some of these up.
  [A.poor]: [line(A.issuer, SOLO, '9999999999999999e-14')],
  [A.frozen]: [line(A.issuer, SOLO, '500', { freeze_peer: true })],
  [A.paged]: [...OTHER.map((c) => line(A.issuer, c, '1')), line(A.issuer, SOLO, '1.5e3')],
  [A.reserve]: [],
};

// NFToken ids as the ledger lays them out: flags, transfer fee, issuer, scrambled taxon, serial.
const nftId = (issuer, taxon, serial, flags = 8) => {
  const scrambled = (BigInt(taxon) ^ ((384160001n * BigInt(serial) + 2459n) % 4294967296n)) & 0xffffffffn;
  const hex = [flags.toString(16).padStart(4, '0'), '0000', Buffer.from(xrpl.decodeAccountID(issuer)).toString('hex'), scrambled.toString(16).padStart(8, '0'), serial.toString(16).padStart(8, '0')].join('').toUpperCase();
  const parsed = xrpl.parseNFTokenID(hex);
  if (parsed.Taxon !== taxon || parsed.Issuer !== issuer || parsed.Sequence !== serial) throw new Error('NFToken id layout');
  return hex;
};
const nft = (issuer, taxon, serial) => ({ Flags: 8, Issuer: issuer, NFTokenID: nftId(issuer, taxon, serial), NFTokenTaxon: taxon, URI: xrpl.convertStringToHex('ipfs://example'), nft_serial: serial });
const nfts = {
  // The one that counts is on the third page.
  [A.nft_holder]: [nft(A.issuer, 1, 1), nft(A.issuer, 1, 2), nft(A.issuer, 7, 3), nft(A.nft_issuer, 1, 4), nft(A.nft_issuer, 7, 5)],
  [A.rich]: [nft(A.issuer, 7, 9)],
};

const root = (account, drops, owners) => ({ Account: account, Balance: drops, Flags: 0, LedgerEntryType: 'AccountRoot', OwnerCount: owners, Sequence: 1 });
const roots = Object.fromEntries(names.filter((n) => n !== 'missing').map((n) => [A[n], root(A[n], '20000000', 0)]));
// 25 XRP with 2 objects: spendable 25 - (1 + 2 * 0.2) = 23.6 XRP at the reserves below.
roots[A.reserve] = root(A.reserve, '25000000', 2);

const RIPPLE_EPOCH = 946684800;
const now = () => Math.floor(Date.now() / 1000) - RIPPLE_EPOCH;
const LSF_ACCEPTED = 0x00010000;
const credential = (subject, flags, expiration) => ({ LedgerEntryType: 'Credential', Subject: subject, Issuer: A.issuer, CredentialType: CREDENTIAL_TYPE, Flags: flags, ...(expiration ? { Expiration: expiration } : {}) });
const credentials = {
  [A.cred_ok]: credential(A.cred_ok, LSF_ACCEPTED, now() + 86400),
  [A.cred_expired]: credential(A.cred_expired, LSF_ACCEPTED, now() - 60),
  [A.cred_unaccepted]: credential(A.cred_unaccepted, 0),
};

// An MPT issuance id: the issuance's sequence (32 bits) then the issuer's account id.
const MPT = ('00000001' + Buffer.from(xrpl.decodeAccountID(A.issuer)).toString('hex')).toUpperCase();
const mptokens = {
  [A.mpt_holder]: { LedgerEntryType: 'MPToken', Account: A.mpt_holder, MPTokenIssuanceID: MPT, MPTAmount: '500', Flags: 0 },
  [A.mpt_locked]: { LedgerEntryType: 'MPToken', Account: A.mpt_locked, MPTokenIssuanceID: MPT, MPTAmount: '900', Flags: 1 },
};

const signerList = { LedgerEntryType: 'SignerList', Flags: 0, SignerListID: 0, SignerQuorum: 2, SignerEntries: [{ SignerEntry: { Account: A.signer, SignerWeight: 1 } }, { SignerEntry: { Account: A.rich, SignerWeight: 1 } }] };
const FEE_SETTINGS = '4BC50C9B0D8515D3EAAE1E74B29A95804346C491EE1A95BF25E4AAB854A6A651';

const LEDGER = 90123456;
const PAGE = 2; // small pages, so the tests page through markers
let mode = 'ok';
const stats = { total: 0, methods: {} };

const error = (name, p) => ({ error: name, status: 'error', request: p });
const page = (items, marker) => {
  const start = marker ? Number(marker.split(',')[1]) : 0;
  const slice = items.slice(start, start + PAGE);
  return { slice, marker: start + PAGE < items.length ? `${LEDGER},${start + PAGE}` : undefined };
};

function answer(method, p) {
  // The validated ledger, or (for the pages after the first) the validated ledger it named.
  if (p.ledger_index !== 'validated' && p.ledger_index !== LEDGER) return error('invalidParams', p);
  if (p.marker && p.ledger_index !== LEDGER) return error('invalidParams', p);
  const base = { ledger_index: LEDGER, validated: mode !== 'unvalidated', status: 'success' };
  const known = (a) => a in roots;
  switch (method) {
    case 'account_info':
      return known(p.account) ? { ...base, account_data: roots[p.account] } : error('actNotFound', p);
    case 'account_lines': {
      if (!known(p.account)) return error('actNotFound', p);
      const all = (lines[p.account] || []).filter((l) => !p.peer || l.account === p.peer);
      const { slice, marker } = page(all, p.marker);
      return { ...base, account: p.account, lines: slice, ...(marker ? { marker } : {}) };
    }
    case 'account_nfts': {
      if (!known(p.account)) return error('actNotFound', p);
      const { slice, marker } = page(nfts[p.account] || [], p.marker);
      return { ...base, account: p.account, account_nfts: slice, ...(marker ? { marker } : {}) };
    }
    case 'account_objects': {
      if (!known(p.account)) return error('actNotFound', p);
      const objects = p.type === 'signer_list' && p.account === A.org ? [signerList] : [];
      return { ...base, account: p.account, account_objects: objects };
    }
    case 'ledger_entry': {
      if (p.index === FEE_SETTINGS) return { ...base, index: FEE_SETTINGS, node: { LedgerEntryType: 'FeeSettings', BaseFeeDrops: '10', ReserveBaseDrops: '1000000', ReserveIncrementDrops: '200000', Flags: 0 } };
      if (p.credential) {
        const c = credentials[p.credential.subject];
        const match = c && c.Issuer === p.credential.issuer && c.CredentialType === p.credential.credential_type;
        return match ? { ...base, node: c } : error('entryNotFound', p);
      }
      if (p.mptoken) {
        const m = mptokens[p.mptoken.account];
        return m && m.MPTokenIssuanceID === p.mptoken.mpt_issuance_id ? { ...base, node: m } : error('entryNotFound', p);
      }
      return error('entryNotFound', p);
    }
    default:
      return error('unknownCmd', p);
  }
}

// What the node does with one call in the current mode: answer it, drop it, or never answer.
function respond(method, p) {
  stats.total += 1;
  stats.methods[method] = (stats.methods[method] || 0) + 1;
  switch (mode) {
    case 'down':
      return { drop: true };
    case 'timeout':
      return { hang: true };
    case 'slowDown':
      return { result: error('slowDown', p) };
    case 'lgrNotFound':
      return { result: { ...error('lgrNotFound', p), error_message: 'ledgerNotFound' } };
  }
  return { result: answer(method, p) };
}

const server = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    const reply = (status, v) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(v));
    };
    if (req.method === 'GET' && req.url === '/_stats') return reply(200, stats);
    if (req.method === 'POST' && req.url === '/_control') {
      const c = JSON.parse(body);
      if (c.mode) mode = c.mode;
      if (c.reset) {
        stats.total = 0;
        stats.methods = {};
      }
      if (c.set_line) {
        const l = lines[c.set_line.account].find((x) => x.currency === c.set_line.currency);
        l.balance = c.set_line.balance;
      }
      return reply(200, { mode });
    }
    let call;
    try {
      call = JSON.parse(body);
    } catch {
      return reply(400, { error: 'not JSON' });
    }
    const r = respond(call.method, (call.params && call.params[0]) || {});
    if (r.hang) return;
    if (r.drop) {
      res.writeHead(502);
      return res.end('bad gateway');
    }
    reply(200, { result: r.result });
  });
});

// The WebSocket API: {"id", "command", ...params} in; {"id", "type": "response", "status",
// "result"} out, or the error fields at the top level.
new WebSocketServer({ server }).on('connection', (ws) => {
  ws.on('message', (data) => {
    const { id, command, ...p } = JSON.parse(data.toString());
    const r = respond(command, p);
    if (r.hang) return;
    if (r.drop) return ws.terminate();
    const out = r.result.status === 'error' ? { id, type: 'response', ...r.result } : { id, type: 'response', status: 'success', result: r.result };
    ws.send(JSON.stringify(out));
  });
});

server.listen(0, '127.0.0.1', () => {
  console.log(JSON.stringify({ port: server.address().port, accounts, solo: SOLO, credential_type: CREDENTIAL_TYPE, mpt: MPT }));
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
