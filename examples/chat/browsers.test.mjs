// The chat example against web pages of other sites, with the exact headers a
// browser sends. Run from the repository root:
//   node --test examples/chat/browsers.test.mjs
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const CHAT = fileURLToPath(new URL('./chat.mjs', import.meta.url));

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/** One request with exactly these headers (Host included), to 127.0.0.1. */
function request(port, method, path, { headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode, text, json: text.startsWith('{') ? JSON.parse(text) : undefined }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** The headers Chrome sends for a page at `origin` posting here: a form with enctype text/plain. */
const crossSiteForm = (origin) => ({
  origin,
  'content-type': 'text/plain',
  'sec-fetch-site': 'cross-site',
  'sec-fetch-mode': 'navigate',
  'sec-fetch-dest': 'document',
});

describe('the chat example and web pages of other sites', () => {
  let port;
  let child;
  /** Every message the node's /events stream delivered. */
  const delivered = [];
  let stream;

  before(async () => {
    port = await freePort();
    child = spawn(process.execPath, [CHAT], {
      env: { PATH: process.env.PATH, PORT: String(port), DROVER_NODE_ID: 'solo', DROVER_VERSION: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const [line] = await once(child.stdout, 'data');
    assert.match(String(line), /started/);
    await new Promise((resolve, reject) => {
      stream = http.get({ host: '127.0.0.1', port, path: '/events', agent: false }, (res) => {
        res.setEncoding('utf8');
        let buffer = '';
        res.on('data', (chunk) => {
          buffer += chunk;
          const events = buffer.split('\n\n');
          buffer = events.pop();
          for (const event of events) {
            // Messages only, not whom the stream reaches (`event: node`).
            if (event.split('\n').includes('event: node')) continue;
            for (const data of event.split('\n').filter((l) => l.startsWith('data: '))) delivered.push(JSON.parse(data.slice(6)));
          }
        });
        res.on('error', () => {});
        resolve();
      });
      stream.on('error', reject);
    });
  });
  after(() => {
    stream?.destroy();
    child?.kill('SIGKILL');
  });

  /** Posts a message as the node's own page does, and waits until the stream delivers it. */
  async function postAsOwnPage(text) {
    const res = await request(port, 'POST', '/messages', {
      headers: { host: `127.0.0.1:${port}`, origin: `http://127.0.0.1:${port}`, 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'cors', 'content-type': 'application/json' },
      body: JSON.stringify({ author: 'me', text }),
    });
    assert.equal(res.status, 202, res.text);
    while (!delivered.some((message) => message.text === text)) await new Promise((resolve) => setTimeout(resolve, 10));
  }

  test('refuses posts a foreign page sends without a preflight (a text/plain form, a no-cors fetch), and delivers none of them', async () => {
    const form = await request(port, 'POST', '/messages', { headers: { host: `127.0.0.1:${port}`, ...crossSiteForm('https://evil.example') }, body: '{"text":"from a form"}' });
    assert.equal(form.status, 403);
    assert.match(form.json.error, /^Origin "https:\/\/evil\.example" is not this node's/);
    const noCors = await request(port, 'POST', '/messages', {
      headers: { host: `127.0.0.1:${port}`, origin: 'http://localhost:3000', 'content-type': 'text/plain;charset=UTF-8', 'sec-fetch-site': 'same-site', 'sec-fetch-mode': 'no-cors' },
      body: '{"text":"from another port of localhost"}',
    });
    assert.equal(noCors.status, 403);
    // A sandboxed frame's Origin is "null".
    const sandboxed = await request(port, 'POST', '/messages', { headers: { host: `127.0.0.1:${port}`, ...crossSiteForm('null') }, body: '{"text":"sandboxed"}' });
    assert.equal(sandboxed.status, 403);
    await postAsOwnPage('first legitimate');
    assert.deepEqual(delivered.map((message) => message.text), ['first legitimate']);
  });

  test('refuses a post that does not say it is JSON with 415, even from curl', async () => {
    // What `curl -d '{…}'` sends: a form content type.
    const curl = await request(port, 'POST', '/messages', { headers: { host: `127.0.0.1:${port}`, 'content-type': 'application/x-www-form-urlencoded' }, body: '{"text":"x"}' });
    assert.equal(curl.status, 415);
    assert.match(curl.json.error, /Content-Type: application\/json/);
    const none = await request(port, 'POST', '/messages', { headers: { host: `127.0.0.1:${port}` }, body: '{"text":"x"}' });
    assert.equal(none.status, 415);
  });

  test('refuses a DNS-rebinding page (a foreign Host that the browser calls same-origin) on every path', async () => {
    const rebound = { host: `evil.example:${port}`, origin: `http://evil.example:${port}`, 'sec-fetch-site': 'same-origin' };
    const post = await request(port, 'POST', '/messages', { headers: { ...rebound, 'content-type': 'application/json' }, body: '{"text":"rebound"}' });
    assert.equal(post.status, 403);
    assert.match(post.json.error, /^Host "evil\.example:\d+" is not this node's address/);
    assert.equal((await request(port, 'GET', '/events', { headers: rebound })).status, 403);
    assert.equal((await request(port, 'GET', '/healthz', { headers: { host: `evil.example:${port}` } })).status, 403);
    await postAsOwnPage('second legitimate');
    assert.ok(!delivered.some((message) => message.text === 'rebound'));
  });

  test('answers loopback names on any port (a port forward), and links from anywhere to its page', async () => {
    for (const host of [`localhost:${port}`, `[::1]:${port}`, 'localhost:9999', 'LOCALHOST']) {
      assert.equal((await request(port, 'GET', '/healthz', { headers: { host } })).status, 200, host);
    }
    const link = await request(port, 'GET', '/', { headers: { host: `127.0.0.1:${port}`, 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate' } });
    assert.equal(link.status, 200);
  });
});
