// End-to-end test of the chat example: real processes, real sockets, a real
// peers file. Run from the repository root:
//   node --test examples/chat/chat.test.mjs
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const CHAT = fileURLToPath(new URL('./chat.mjs', import.meta.url));
const VERSION = '7';

const children = new Set(); // every process we spawn, killed in after() whatever happens
const streams = new Set(); // every SSE connection we open

after(() => {
  for (const s of streams) s.destroy();
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
});

// ---------------------------------------------------------------- helpers

// Ask the OS for a free port: listen on 0, note the port, close.
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// The way the driver writes it: to a temporary file, then rename over.
function writePeers(file, nodes) {
  const peers = nodes.map((n) => ({ id: n.id, host: '127.0.0.1', port: n.port }));
  fs.writeFileSync(`${file}.tmp`, JSON.stringify({ peers }));
  fs.renameSync(`${file}.tmp`, file);
}

function startNode(env) {
  const child = spawn(process.execPath, [CHAT], {
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdoutText = '';
  child.stderrText = '';
  child.stdout.on('data', (d) => (child.stdoutText += d));
  child.stderr.on('data', (d) => (child.stderrText += d));
  // 'close' rather than 'exit': by then stdout/stderr have been read to the end.
  child.closed = once(child, 'close').then(([code, signal]) => ({ code, signal }));
  children.add(child);
  return child;
}

function request(port, method, urlPath, { body, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: urlPath, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        let json;
        try {
          json = JSON.parse(text);
        } catch {}
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

const postJson = (port, value) =>
  request(port, 'POST', '/messages', { body: JSON.stringify(value), headers: { 'content-type': 'application/json' } });

async function health(port) {
  try {
    return (await request(port, 'GET', '/healthz')).json ?? null;
  } catch {
    return null; // not listening yet, or gone
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Poll until check() returns something truthy; fail with the last value seen.
async function waitFor(what, check, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await check();
    if (last) return last;
    await sleep(50);
  }
  assert.fail(`timed out waiting for ${what}; last: ${JSON.stringify(last)}\n${logs()}`);
}

function logs() {
  return [...children].map((c) => `--- pid ${c.pid}\n${c.stdoutText}${c.stderrText}`).join('\n');
}

// Open GET /events and collect every message, parsed, and apart from them every
// `event: node` (whom the stream reaches).
function subscribe(port) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/events', agent: false }, (res) => {
      assert.equal(res.statusCode, 200);
      assert.match(res.headers['content-type'], /^text\/event-stream/);
      const client = { messages: [], identities: [], ended: new Promise((r) => res.on('close', r)), destroy: () => req.destroy() };
      streams.add(client);
      let buffer = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        buffer += chunk;
        const events = buffer.split('\n\n');
        buffer = events.pop();
        for (const event of events) {
          const lines = event.split('\n');
          const data = lines.filter((l) => l.startsWith('data: ')).map((l) => l.slice(6));
          if (data.length === 0) continue;
          (lines.includes('event: node') ? client.identities : client.messages).push(JSON.parse(data.join('\n')));
        }
      });
      res.on('error', () => {});
      // The server registers the client before it sends the headers, so from
      // here on every broadcast reaches us.
      resolve(client);
    });
    req.on('error', reject);
  });
}

// ---------------------------------------------------------------- a three-node group

describe('three chat nodes sharing a peers file', { timeout: 20_000 }, () => {
  let dir;
  let peersFile;
  const nodes = [];
  let client3;
  let client1;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-chat-'));
    peersFile = path.join(dir, 'peers.json');
    for (const id of ['node-1', 'node-2', 'node-3']) nodes.push({ id, port: await freePort() });
    writePeers(peersFile, nodes);
    for (const n of nodes) {
      n.proc = startNode({
        PORT: String(n.port),
        DROVER_NODE_ID: n.id,
        DROVER_VERSION: VERSION,
        DROVER_GROUP: 'test-group',
        DROVER_PEERS_FILE: peersFile,
      });
    }
    for (const n of nodes) {
      await waitFor(`${n.id} to report 2 peers`, async () => (await health(n.port))?.peers === 2);
    }
  });

  after(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('/healthz reports node, version, group and counts', async () => {
    for (const n of nodes) {
      const res = await request(n.port, 'GET', '/healthz');
      assert.equal(res.status, 200);
      assert.match(res.headers['content-type'], /^application\/json/);
      assert.deepEqual(res.json, { status: 'ok', node: n.id, version: VERSION, group: 'test-group', peers: 2, clients: 0 });
    }
  });

  test('GET / serves the chat page naming the node and version', async () => {
    const res = await request(nodes[0].port, 'GET', '/');
    assert.equal(res.status, 200);
    assert.match(res.headers['content-type'], /^text\/html/);
    assert.match(res.text, /<title>chat · node-1 · v7<\/title>/);
    assert.match(res.text, /new EventSource\('\/events'\)/);
  });

  test('a message posted to node 1 reaches a client of node 3 exactly once', async () => {
    client3 = await subscribe(nodes[2].port);
    assert.equal((await health(nodes[2].port)).clients, 1);
    const posted = await postJson(nodes[0].port, { author: 'ann', text: 'hello from 1 ✓' });
    assert.equal(posted.status, 202);
    assert.equal(typeof posted.json.id, 'string');
    await waitFor('node 3 client to get the message', () => client3.messages.some((m) => m.id === posted.json.id));
    await sleep(300); // room for a duplicate to show up
    const got = client3.messages.filter((m) => m.id === posted.json.id);
    assert.equal(got.length, 1);
    assert.equal(got[0].origin, 'node-1');
    assert.equal(got[0].author, 'ann');
    assert.equal(got[0].text, 'hello from 1 ✓');
    assert.ok(!Number.isNaN(Date.parse(got[0].time)));
  });

  test('a message posted to node 2 reaches a client of node 1', async () => {
    client1 = await subscribe(nodes[0].port);
    const posted = await postJson(nodes[1].port, { author: 'bob', text: 'hello from 2' });
    assert.equal(posted.status, 202);
    await waitFor('node 1 client to get the message', () => client1.messages.some((m) => m.id === posted.json.id));
    await waitFor('node 3 client to get the message', () => client3.messages.some((m) => m.id === posted.json.id));
    await sleep(300);
    assert.equal(client1.messages.filter((m) => m.id === posted.json.id).length, 1);
    assert.equal(client3.messages.filter((m) => m.id === posted.json.id).length, 1);
  });

  test('bad POST bodies get 400 or 413 with a JSON error', async () => {
    const port = nodes[0].port;
    const cases = [
      [400, '{not json'],
      [400, '[1,2]'],
      [400, JSON.stringify({ author: 'x' })], // no text
      [400, JSON.stringify({ text: '   ' })],
      [400, JSON.stringify({ text: 42 })],
      [400, JSON.stringify({ text: 'x'.repeat(2001) })],
      [413, JSON.stringify({ text: 'x'.repeat(17 * 1024) })],
    ];
    for (const [status, body] of cases) {
      const res = await request(port, 'POST', '/messages', { body, headers: { 'content-type': 'application/json' } });
      assert.equal(res.status, status, `${body.slice(0, 40)} -> ${res.status}`);
      assert.equal(typeof res.json?.error, 'string');
    }
    // The limit is exactly 2000 characters.
    assert.equal((await postJson(port, { text: 'y'.repeat(2000) })).status, 202);
    // And the node still works after all that.
    assert.equal((await health(port)).status, 'ok');
  });

  test('a node removed from the peers file is dropped by the others', async () => {
    writePeers(peersFile, nodes.slice(0, 2));
    for (const n of nodes.slice(0, 2)) {
      await waitFor(`${n.id} to report 1 peer`, async () => (await health(n.port))?.peers === 1, 5_000);
    }
    assert.match(nodes[0].proc.stdoutText, /\[node-1\] peer node-3 disconnected \(removed from peers file\)/);
  });

  test('SIGTERM makes a node exit 0 promptly, ending its streams', async () => {
    // node 1 has a browser client (client1) and peer streams to node 2 and 3 open.
    const { proc } = nodes[0];
    const t0 = Date.now();
    proc.kill('SIGTERM');
    const { code, signal } = await proc.closed;
    const elapsed = Date.now() - t0;
    assert.equal(code, 0, logs());
    assert.equal(signal, null);
    assert.ok(elapsed < 1500, `took ${elapsed} ms`);
    await client1.ended;
    assert.match(proc.stdoutText, /\[node-1\] received SIGTERM, shutting down/);
    // node 2 still lists node 1, but can no longer reach it.
    await waitFor('node 2 to report 0 peers', async () => (await health(nodes[1].port))?.peers === 0, 5_000);
  });
});

// ---------------------------------------------------------------- what a stream sends first

describe('what a stream sends first: the node it reaches, and the recent messages', { timeout: 20_000 }, () => {
  let dir;
  let peersFile;
  const nodes = [];
  const node = (id) => nodes.find((n) => n.id === id);
  const start = (n) => {
    n.proc = startNode({ PORT: String(n.port), DROVER_NODE_ID: n.id, DROVER_VERSION: VERSION, DROVER_GROUP: 'room', DROVER_PEERS_FILE: peersFile });
  };

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-chat-first-'));
    peersFile = path.join(dir, 'peers.json');
    for (const id of ['a', 'b', 'c']) nodes.push({ id, port: await freePort() });
    writePeers(peersFile, nodes.slice(0, 2));
    for (const n of nodes.slice(0, 2)) start(n);
    for (const n of nodes.slice(0, 2)) await waitFor(`${n.id} to report 1 peer`, async () => (await health(n.port))?.peers === 1);
  });

  after(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('a browser stream starts with the node, its version and its peers, and says again when the peer count changes', async () => {
    const client = await subscribe(node('a').port);
    await waitFor('the first event', () => client.identities.length > 0);
    assert.deepEqual(client.identities[0], { node: 'a', version: VERSION, group: 'room', peers: 1 });
    writePeers(peersFile, [node('a')]);
    await waitFor('a to say it has no peer', () => client.identities.at(-1).peers === 0);
    writePeers(peersFile, nodes.slice(0, 2));
    await waitFor('a to say it has its peer again', () => client.identities.at(-1).peers === 1);
    assert.equal(client.messages.length, 0, 'no message was posted');
    client.destroy();
  });

  test('a browser that opens a stream gets the last 50 messages first, oldest first, on every node', async () => {
    const texts = Array.from({ length: 55 }, (_, i) => `message ${i}`);
    for (const text of texts) assert.equal((await postJson(node('a').port, { author: 'ann', text })).status, 202);
    for (const id of ['a', 'b']) {
      const client = await subscribe(node(id).port);
      await waitFor(`${id}'s backlog`, () => client.messages.length >= 50);
      await sleep(200); // room for more than the backlog to show up
      assert.deepEqual(client.messages.map((m) => m.text), texts.slice(5), `${id}'s stream`);
      client.destroy();
    }
  });

  test('a node that joins gets the backlog from its peers, so the recent messages outlive the nodes of a rolling update', async () => {
    writePeers(peersFile, nodes);
    start(node('c'));
    await waitFor('c to report 2 peers', async () => (await health(node('c').port))?.peers === 2);
    // The nodes that had the messages go, as a rolling update replaces them.
    for (const id of ['a', 'b']) node(id).proc.kill('SIGTERM');
    await Promise.all(['a', 'b'].map((id) => node(id).proc.closed));
    const client = await subscribe(node('c').port);
    await waitFor("c's backlog", () => client.messages.length >= 50);
    await sleep(200);
    assert.deepEqual(client.messages.map((m) => m.text), Array.from({ length: 50 }, (_, i) => `message ${i + 5}`));
    assert.equal(new Set(client.messages.map((m) => m.id)).size, 50, 'each message once');
    client.destroy();
  });
});

test('a node whose peers file cannot be read says so in its log, once, and when it can again', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-chat-peers-'));
  try {
    const peersFile = path.join(dir, 'peers.json');
    const port = await freePort();
    const proc = startNode({ PORT: String(port), DROVER_NODE_ID: 'lonely', DROVER_VERSION: '1', DROVER_PEERS_FILE: peersFile });
    await waitFor('the missing file in its log', () => proc.stdoutText.includes(`[lonely] peers file ${peersFile} does not exist (yet): no peers until it does`));
    fs.writeFileSync(peersFile, '{"peers":');
    await waitFor('the broken file in its log', () => /\[lonely\] peers file .* does not parse \(.*\): keeping current peers/.test(proc.stdoutText));
    writePeers(peersFile, [{ id: 'lonely', port }, { id: 'other', port: await freePort() }]);
    await waitFor('the file read in its log', () => proc.stdoutText.includes(`[lonely] peers file ${peersFile} read: 1 peers listed`));
    await sleep(1200); // a few polls: nothing is said twice
    assert.equal(proc.stdoutText.match(/does not exist/g).length, 1, proc.stdoutText);
    proc.kill('SIGTERM');
    await proc.closed;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------- start-up errors

test('a missing required variable exits 2 with one line on stderr', async () => {
  const port = await freePort();
  for (const env of [
    { DROVER_NODE_ID: 'x', DROVER_VERSION: '1' },
    { PORT: String(port), DROVER_VERSION: '1' },
    { PORT: String(port), DROVER_NODE_ID: 'x' },
    { PORT: 'eighty', DROVER_NODE_ID: 'x', DROVER_VERSION: '1' },
  ]) {
    const proc = startNode(env);
    const { code } = await proc.closed;
    assert.equal(code, 2);
    assert.equal(proc.stdoutText, '');
    assert.match(proc.stderrText, /^chat: [^\n]+\n$/);
  }
});

test('a port already in use exits 1 naming the port', async () => {
  const blocker = net.createServer();
  await new Promise((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const { port } = blocker.address();
  try {
    const proc = startNode({ PORT: String(port), DROVER_NODE_ID: 'x', DROVER_VERSION: '1' });
    const { code } = await proc.closed;
    assert.equal(code, 1);
    assert.match(proc.stderrText, new RegExp(`^chat: port ${port} .*in use\\n$`));
  } finally {
    blocker.close();
  }
});
