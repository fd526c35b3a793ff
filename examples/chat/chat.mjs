#!/usr/bin/env node
// A tiny chat service: Drover's example workload.
//
// Every node serves a chat page and a server-sent-events stream. A message
// posted to one node reaches the clients of every node because each node
// keeps one persistent connection to every other node's /peer-stream, which
// carries only the messages that originated on that node. Relaying therefore
// never loops: a message travels at most one hop, origin -> each peer.
//
// Each node also keeps the last BACKLOG_LIMIT messages it has seen, whatever
// their origin: a browser that opens /events gets them first, and so does a
// node that opens /peer-stream, so the room's recent history outlives the
// nodes of a rolling update. A backlog only ever moves to a node's own
// browsers and to a peer that asked, never on to further peers, and every
// message is kept once by id, so it cannot loop either.
//
// Node 20, no dependencies: only node: built-ins. See README.md for the
// environment and endpoint contract.

import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';

const BODY_LIMIT = 16 * 1024; // bytes accepted by POST /messages
const TEXT_LIMIT = 2000; // characters in a message's text
const AUTHOR_LIMIT = 100; // characters in a message's author
const PING_MS = 15_000; // SSE comment so idle connections (and proxies) stay open
const PEER_IDLE_MS = 3 * PING_MS + 5_000; // no byte from a peer for this long: assume it is gone
const POLL_MS = 500; // peers file polling period
const BACKOFF_MIN_MS = 200;
const BACKOFF_MAX_MS = 5_000;
const SEEN_LIMIT = 10_000; // message ids remembered for de-duplication
const BACKLOG_LIMIT = 50; // recent messages a new browser or peer is sent first

// ---------------------------------------------------------------- config

const env = process.env;
const problems = [];
const got = (name) => (env[name] === undefined ? 'it is not set' : `got ${JSON.stringify(env[name])}`);
const PORT = Number(env.PORT);
if (!/^\d+$/.test(env.PORT ?? '') || PORT < 1 || PORT > 65535) {
  problems.push(`PORT must be a TCP port 1-65535 (${got('PORT')})`);
}
// The node id travels in an HTTP header (X-Drover-Node), so keep it header-safe.
const NODE_ID = env.DROVER_NODE_ID ?? '';
if (!/^[A-Za-z0-9._:-]{1,128}$/.test(NODE_ID)) {
  problems.push(`DROVER_NODE_ID must be 1-128 chars of [A-Za-z0-9._:-] (${got('DROVER_NODE_ID')})`);
}
const VERSION = env.DROVER_VERSION ?? '';
if (!/^[\x21-\x7e]{1,64}$/.test(VERSION)) {
  problems.push(`DROVER_VERSION must be 1-64 printable ASCII chars, no spaces (${got('DROVER_VERSION')})`);
}
if (problems.length > 0) {
  process.stderr.write(`chat: ${problems.join('; ')}\n`);
  process.exit(2);
}
const HOST = env.HOST || '127.0.0.1';
const GROUP = env.DROVER_GROUP || null;
const PEERS_FILE = env.DROVER_PEERS_FILE || null;

// stdout goes to the node's log file; console.log to a file is synchronous,
// so nothing is lost when we exit.
const log = (line) => console.log(`[${NODE_ID}] ${line}`);

// ---------------------------------------------------------------- messages

const clients = new Set(); // SSE responses of browsers (GET /events)
const peerSubscribers = new Set(); // SSE responses of other nodes (GET /peer-stream)
const seen = new Set(); // recent message ids; a Set iterates in insertion order
let backlog = []; // the last BACKLOG_LIMIT messages seen, oldest first by time

const messageFrame = (msg) => `id: ${msg.id}\ndata: ${JSON.stringify(msg)}\n\n`;

// Hand a message to everyone who should see it, at most once per id.
function broadcast(msg) {
  if (seen.has(msg.id)) return;
  seen.add(msg.id);
  if (seen.size > SEEN_LIMIT) seen.delete(seen.values().next().value); // drop the oldest
  // A peer's backlog may bring an older message after newer ones: keep the newest by time.
  backlog.push(msg);
  backlog.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));
  if (backlog.length > BACKLOG_LIMIT) backlog = backlog.slice(-BACKLOG_LIMIT);
  const frame = messageFrame(msg);
  for (const res of clients) res.write(frame);
  // Peers only get what was posted here; they hear other nodes directly.
  if (msg.origin === NODE_ID) for (const res of peerSubscribers) res.write(frame);
}

// Who a browser is talking to: this node, its version and its connected peers.
// Sent first on every /events stream (a reconnect after a rolling update may
// reach another node on the same port), and again whenever the peer count changes.
function identity() {
  const peers = [...peerConns.values()].filter((c) => c.connected).length;
  return { node: NODE_ID, version: VERSION, group: GROUP, peers };
}
const identityFrame = () => `event: node\ndata: ${JSON.stringify(identity())}\n\n`;
function announceIdentity() {
  const frame = identityFrame();
  for (const res of clients) res.write(frame);
}

function isMessage(m) {
  return m !== null && typeof m === 'object' &&
    ['id', 'origin', 'author', 'text', 'time'].every((k) => typeof m[k] === 'string');
}

// Minimal SSE reader, enough for what our own server sends: `data:` lines
// ending in \n, a blank line ending an event, comments and other fields ignored.
function readSse(stream, onData) {
  let buffer = '';
  let data = [];
  stream.setEncoding('utf8'); // never split a multi-byte character
  stream.on('data', (chunk) => {
    buffer += chunk;
    if (buffer.length > 4 * BODY_LIMIT) return stream.destroy(new Error('SSE line too long'));
    const lines = buffer.split('\n');
    buffer = lines.pop(); // an incomplete last line waits for the next chunk
    for (let line of lines) {
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (line === '') {
        if (data.length > 0) onData(data.join('\n'));
        data = [];
      } else if (line.startsWith('data:')) {
        data.push(line.slice(line.startsWith('data: ') ? 6 : 5));
      }
    }
  });
}

// ---------------------------------------------------------------- HTTP

const server = http.createServer(handle);

function sendJson(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

// ---------------------------------------------------------------- web pages

// A page on any site can make a visitor's browser send requests here: a form or
// no-cors POST (no preflight; the answer is unreadable but the message is
// posted), and, after DNS rebinding (the attacker's name resolving to
// 127.0.0.1), any request at all, with the attacker's name in Host. So, bound
// to loopback, only loopback names (and HOST) are answered, on any port (an
// `ssh -L` forward changes it); a POST must come from no page or from this
// origin, and say it is JSON, which a page cannot without a preflight that is
// never answered. Pages of this node itself send exactly that. GETs stay open
// to links from anywhere: a foreign page cannot read their answers (no CORS).
const LOOPBACK_NAME = /^(localhost|127\.\d{1,3}\.\d{1,3}\.\d{1,3}|\[::1\])$/;
const hostName = (host) =>
  (host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.replace(/:\d*$/, '')).toLowerCase().replace(/\.$/, '');
const HOST_NAME = HOST.includes(':') && !HOST.startsWith('[') ? `[${HOST.toLowerCase()}]` : HOST.toLowerCase(); // as a Host header writes it
const LOOPBACK_BOUND = LOOPBACK_NAME.test(HOST_NAME);

function foreignHost(req) {
  const host = req.headers.host;
  if (!LOOPBACK_BOUND || host === undefined) return null;
  const name = hostName(host);
  if (LOOPBACK_NAME.test(name) || name === HOST_NAME) return null;
  return `Host ${JSON.stringify(host)} is not this node's address: bound to ${HOST}, it answers only localhost, 127.0.0.1 or [::1] (a foreign Host is what a DNS-rebinding page sends)`;
}

function foreignPage(req) {
  const { origin, host } = req.headers;
  if (origin !== undefined) {
    let own = false;
    try {
      own = host !== undefined && new URL(origin).origin === new URL(`http://${host}`).origin;
    } catch {}
    if (!own) return `Origin ${JSON.stringify(origin)} is not this node's: messages are posted from its own page, or without a page (curl)`;
  }
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') {
    return `a ${site} request (Sec-Fetch-Site: ${site}) cannot post: messages are posted from this node's own page`;
  }
  return null;
}

function isJson(req) {
  return (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase() === 'application/json';
}

function handle(req, res) {
  const pathname = (req.url ?? '/').split('?')[0]; // (new URL() throws on some odd request lines)
  const misaddressed = foreignHost(req);
  if (misaddressed) return sendJson(res, 403, { error: misaddressed });
  const route = {
    'GET /healthz': healthz,
    'GET /': page,
    'GET /events': (q, s) => openStream(q, s, clients),
    'GET /peer-stream': (q, s) => openStream(q, s, peerSubscribers),
    'POST /messages': postMessage,
  }[`${req.method} ${pathname}`];
  if (route) return route(req, res);
  const known = ['/healthz', '/', '/events', '/peer-stream', '/messages'].includes(pathname);
  if (known) return sendJson(res, 405, { error: `${req.method} not allowed on ${pathname}` });
  sendJson(res, 404, { error: `no route for ${pathname}` });
}

function healthz(req, res) {
  sendJson(res, 200, { status: 'ok', ...identity(), clients: clients.size });
}

function openStream(req, res, set) {
  if (stopping) return sendJson(res, 503, { error: 'shutting down' });
  // An SSE connection is never reused for another request; saying so up front
  // (Connection: close) also lets server.close() finish as soon as we end it.
  res.shouldKeepAlive = false;
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    'x-accel-buffering': 'no', // in case someone puts nginx in front
    'x-drover-node': NODE_ID, // lets a peer check it reached the node it meant to
  });
  res.write(': connected\n\n'); // get the headers and a first byte out now
  // A browser learns whom it talks to; a browser or a peer gets the recent messages first.
  if (set === clients) res.write(identityFrame());
  for (const msg of backlog) res.write(messageFrame(msg));
  set.add(res);
  res.on('close', () => set.delete(res));
}

async function postMessage(req, res) {
  const foreign = foreignPage(req);
  // Connection: close, because the body is not read.
  if (foreign) return sendJson(res, 403, { error: foreign }, { connection: 'close' });
  if (!isJson(req)) {
    const got = req.headers['content-type'] === undefined ? 'none' : JSON.stringify(req.headers['content-type']);
    return sendJson(res, 415, { error: `send the body as JSON with 'Content-Type: application/json' (got ${got})` }, { connection: 'close' });
  }
  let body;
  try {
    body = await readBody(req);
  } catch (err) {
    // Connection: close, because the rest of an oversized body is not read.
    return sendJson(res, err.status ?? 400, { error: err.message }, { connection: 'close' });
  }
  let input;
  try {
    input = JSON.parse(body);
  } catch {
    return sendJson(res, 400, { error: 'body is not valid JSON' });
  }
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    return sendJson(res, 400, { error: 'body must be a JSON object {"author","text"}' });
  }
  const { text, author = 'anonymous' } = input;
  if (typeof text !== 'string' || text.trim() === '') {
    return sendJson(res, 400, { error: 'text is required (a non-empty string)' });
  }
  if ([...text].length > TEXT_LIMIT) {
    return sendJson(res, 400, { error: `text is longer than ${TEXT_LIMIT} characters` });
  }
  if (typeof author !== 'string' || [...author].length > AUTHOR_LIMIT) {
    return sendJson(res, 400, { error: `author must be a string of at most ${AUTHOR_LIMIT} characters` });
  }
  const msg = {
    id: randomUUID(),
    origin: NODE_ID,
    author: author.trim() || 'anonymous',
    text,
    time: new Date().toISOString(),
  };
  broadcast(msg);
  sendJson(res, 202, { id: msg.id });
}

// Resolves with the body as text; rejects with .status 413 as soon as it is
// known to be too large (without buffering the excess).
function readBody(req) {
  return new Promise((resolve, reject) => {
    const tooLarge = Object.assign(new Error(`body is larger than ${BODY_LIMIT} bytes`), { status: 413 });
    if (Number(req.headers['content-length']) > BODY_LIMIT) return reject(tooLarge);
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size <= BODY_LIMIT) chunks.push(chunk);
      else reject(tooLarge); // later calls are no-ops: a promise settles once
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

// ---------------------------------------------------------------- peers

// One entry per peer id: { id, host, port, req, connected, backoff, timer, stopped, problem }
const peerConns = new Map();

function connectPeer(conn) {
  conn.timer = null;
  const req = http.get({
    host: conn.host,
    port: conn.port,
    path: '/peer-stream',
    agent: false, // a dedicated socket, not one borrowed from the keep-alive pool
    headers: { accept: 'text/event-stream', 'x-drover-node': NODE_ID },
  });
  conn.req = req;
  let finished = false;
  // Called however the attempt ends (refused, dropped, idle, removed); once.
  const gone = (why) => {
    if (finished) return;
    finished = true;
    if (conn.req === req) conn.req = null;
    if (conn.connected) {
      conn.connected = false;
      log(`peer ${conn.id} disconnected (${why})`);
      announceIdentity();
    }
    if (conn.stopped) return;
    conn.timer = setTimeout(() => connectPeer(conn), conn.backoff);
    conn.backoff = Math.min(conn.backoff * 2, BACKOFF_MAX_MS);
  };
  req.setTimeout(PEER_IDLE_MS, () => req.destroy(new Error('idle timeout')));
  req.on('error', (err) => gone(err.code || err.message));
  req.on('close', () => gone('connection closed'));
  req.on('response', (res) => {
    res.on('error', (err) => gone(err.code || err.message));
    res.on('close', () => gone('connection closed'));
    // A port in a stale peers file may now belong to some other node or program.
    if (res.statusCode !== 200 || res.headers['x-drover-node'] !== conn.id) {
      const problem = `answered ${res.statusCode} as ${res.headers['x-drover-node'] ?? 'unknown'}`;
      if (problem !== conn.problem) log(`peer ${conn.id} at ${conn.host}:${conn.port} ${problem}; will retry`);
      conn.problem = problem; // said once, not at every retry
      res.resume();
      return req.destroy();
    }
    conn.connected = true;
    conn.problem = null;
    conn.backoff = BACKOFF_MIN_MS;
    log(`peer ${conn.id} connected (${conn.host}:${conn.port})`);
    announceIdentity();
    readSse(res, (data) => {
      let msg;
      try {
        msg = JSON.parse(data);
      } catch {
        return;
      }
      if (isMessage(msg) && msg.origin !== NODE_ID) broadcast(msg);
    });
  });
}

function stopPeer(conn, why) {
  conn.stopped = why;
  clearTimeout(conn.timer);
  const wasConnected = conn.connected;
  conn.connected = false;
  if (wasConnected) {
    log(`peer ${conn.id} disconnected (${why})`);
    announceIdentity();
  }
  conn.req?.destroy(); // gone() then sees it stopped and does not retry
}

// Make the connections match the peers listed (ourselves excluded).
function syncPeers(list) {
  const wanted = new Map(list.filter((p) => p.id !== NODE_ID).map((p) => [p.id, p]));
  for (const [id, conn] of peerConns) {
    const want = wanted.get(id);
    if (want && want.host === conn.host && want.port === conn.port) continue;
    peerConns.delete(id);
    stopPeer(conn, want ? 'address changed' : 'removed from peers file');
  }
  for (const [id, p] of wanted) {
    if (peerConns.has(id)) continue;
    const conn = { ...p, req: null, connected: false, backoff: BACKOFF_MIN_MS, timer: null, stopped: null, problem: null };
    peerConns.set(id, conn);
    connectPeer(conn);
  }
}

// {"peers":[{"id","host","port"}, ...]}; entries that make no sense are skipped.
function parsePeers(text) {
  const doc = JSON.parse(text);
  if (!Array.isArray(doc?.peers)) throw new Error('no "peers" array');
  return doc.peers
    .filter((p) => typeof p?.id === 'string' && p.id !== '' && Number.isInteger(p.port) && p.port > 0 && p.port < 65536)
    .map((p) => ({ id: p.id, host: typeof p.host === 'string' && p.host ? p.host : '127.0.0.1', port: p.port }));
}

// The driver replaces the file atomically (write temp + rename). fs.watch
// loses track of a file across renames, so poll its identity and mtime instead.
let peersFileSignature = null;
let peersFileProblem = null; // what the log last said is wrong with the file, said once
function pollPeersFile() {
  let signature;
  try {
    const st = fs.statSync(PEERS_FILE);
    signature = `${st.ino}:${st.size}:${st.mtimeMs}`;
  } catch (err) {
    signature = err.code === 'ENOENT' ? 'missing' : `stat failed: ${err.code || err.message}`;
  }
  if (signature === peersFileSignature) return;
  peersFileSignature = signature;
  if (signature === 'missing') {
    // The first node of a group starts before the file is written; a wrong path never sees it.
    peersFileTrouble('does not exist (yet): no peers until it does');
    return syncPeers([]);
  }
  if (signature.startsWith('stat failed')) {
    peersFileTrouble(`cannot be read (${signature.slice('stat failed: '.length)}): no peers until it can`);
    return syncPeers([]);
  }
  try {
    const peers = parsePeers(fs.readFileSync(PEERS_FILE, 'utf8'));
    syncPeers(peers);
    if (peersFileProblem !== null) log(`peers file ${PEERS_FILE} read: ${peers.filter((p) => p.id !== NODE_ID).length} peers listed`);
    peersFileProblem = null;
  } catch (err) {
    // Unreadable, half-written or broken: keep what we have (nothing, at start)
    // and wait for the next version of the file rather than drop every connection.
    peersFileTrouble(`${err.code ? `cannot be read (${err.code})` : `does not parse (${err.message})`}: keeping current peers`);
  }
}

// Says what is wrong with the peers file, once for each new problem.
function peersFileTrouble(problem) {
  if (problem !== peersFileProblem) log(`peers file ${PEERS_FILE} ${problem}`);
  peersFileProblem = problem;
}

// ---------------------------------------------------------------- start and stop

let stopping = false;
let pollTimer = null;

const pingTimer = setInterval(() => {
  for (const res of [...clients, ...peerSubscribers]) res.write(': ping\n\n');
}, PING_MS);

server.on('error', (err) => {
  const what = err.code === 'EADDRINUSE' ? 'is already in use' : `cannot be used (${err.code || err.message})`;
  process.stderr.write(`chat: port ${PORT} on ${HOST} ${what}\n`);
  process.exit(1);
});

server.listen(PORT, HOST, () => {
  log(`started: version ${VERSION}, group ${GROUP ?? '-'}, listening on http://${HOST}:${PORT}` +
    (PEERS_FILE ? `, peers file ${PEERS_FILE}` : ', no peers file'));
  if (PEERS_FILE) {
    pollPeersFile();
    pollTimer = setInterval(pollPeersFile, POLL_MS);
  }
});

function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  log(`received ${signal}, shutting down`);
  clearInterval(pollTimer);
  clearInterval(pingTimer);
  for (const conn of peerConns.values()) stopPeer(conn, 'shutting down');
  // SSE responses never end by themselves; server.close() waits for them.
  for (const res of [...clients, ...peerSubscribers]) res.end();
  server.close(() => {
    log('stopped');
    process.exit(0);
  });
  server.closeIdleConnections();
  // Whatever is still open after a second (a slow POST, say) is not worth waiting for.
  setTimeout(() => {
    log('stopped (forced)');
    process.exit(0);
  }, 1000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

// ---------------------------------------------------------------- the page

const escapeHtml = (s) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(req, res) {
  const title = escapeHtml(`chat · ${NODE_ID} · v${VERSION}`);
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 0; display: flex; flex-direction: column; height: 100vh; }
  header { padding: .6em 1em; background: #234; color: #fff; }
  header small { opacity: .7; }
  #status { float: right; }
  ol { flex: 1; overflow-y: auto; margin: 0; padding: .5em 1em; list-style: none; }
  li { margin: .2em 0; }
  .meta { color: #789; font-size: 85%; }
  form { display: flex; gap: .5em; padding: .6em 1em; border-top: 1px solid #ccc; }
  #text { flex: 1; }
  #error { color: #b00; padding: 0 1em; }
</style>
</head>
<body>
<header><span id="status">connecting…</span><b>chat</b> <small>node <span id="node">${escapeHtml(NODE_ID)}</span> · version <span id="version">${escapeHtml(VERSION)}</span>${GROUP ? ` · group ${escapeHtml(GROUP)}` : ''} · <span id="peers">…</span></small></header>
<ol id="list"></ol>
<div id="error"></div>
<form id="form">
  <input id="author" placeholder="name" size="12" maxlength="${AUTHOR_LIMIT}">
  <input id="text" placeholder="message" maxlength="${TEXT_LIMIT}" autocomplete="off" autofocus>
  <button>send</button>
</form>
<script>
  const $ = (id) => document.getElementById(id);
  // The node behind this port may change (a rolling update replaces it): each
  // (re)connected stream says first whom it reaches, and again when its peers change.
  let here = ${JSON.stringify(NODE_ID).replace(/</g, '\\u003c')};
  const shown = new Set(); // message ids on the page: a reconnect sends the backlog again
  $('author').value = localStorage.getItem('chat-author') || '';
  const events = new EventSource('/events');
  events.onopen = () => { $('status').textContent = 'live'; };
  events.onerror = () => { $('status').textContent = 'reconnecting…'; };
  events.addEventListener('node', (e) => {
    const who = JSON.parse(e.data);
    here = who.node;
    $('node').textContent = who.node;
    $('version').textContent = who.version;
    $('peers').textContent = who.peers === 1 ? '1 peer' : who.peers + ' peers';
    document.title = 'chat · ' + who.node + ' · v' + who.version;
  });
  events.onmessage = (e) => {
    const m = JSON.parse(e.data);
    if (shown.has(m.id)) return;
    shown.add(m.id);
    const li = document.createElement('li');
    li.dataset.time = m.time;
    const meta = document.createElement('span');
    meta.className = 'meta';
    const via = m.origin === here ? '' : ' via ' + m.origin.slice(-6);
    meta.textContent = new Date(m.time).toLocaleTimeString() + via + ' ';
    const who = document.createElement('b');
    who.textContent = m.author + ': ';
    li.append(meta, who, m.text); // text nodes: nothing a user types becomes HTML
    // In time order: a peer's backlog may bring an older message after newer ones.
    const later = [...$('list').children].find((other) => other.dataset.time > m.time);
    $('list').insertBefore(li, later || null);
    if (!later) li.scrollIntoView();
  };
  $('form').onsubmit = async (e) => {
    e.preventDefault();
    const author = $('author').value, text = $('text').value;
    if (!text.trim()) return;
    localStorage.setItem('chat-author', author);
    try {
      const r = await fetch('/messages', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ author, text }),
      });
      if (!r.ok) throw new Error((await r.json()).error);
      $('text').value = '';
      $('error').textContent = '';
    } catch (err) {
      $('error').textContent = 'not sent: ' + err.message;
    }
  };
</script>
</body>
</html>
`;
  res.writeHead(200, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    // Everything is inline and same-origin; forbid anything else.
    'content-security-policy': "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'",
  });
  res.end(html);
}
