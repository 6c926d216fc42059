// SPDX-License-Identifier: GPL-3.0-or-later
// The configured-key mode: llm-proxy started with OPENAI_API_KEY uses that key for every
// upstream call, whatever key (or none) its clients send.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import { SERVER_KEY, chat, startPair } from './harness.mjs';

const TEST = { timeout: 60_000 };

describe('configured key', () => {
  let pair;
  before(async () => {
    pair = await startPair({ apiKey: SERVER_KEY });
  });
  after(async () => {
    await pair?.stop(); // also checks that the server key never reached the proxy's output
  });
  afterEach(() => pair.assertAlive());

  test('clients with placeholder keys are batched under the server key', TEST, async () => {
    const { fake, proxy } = pair;
    const first = proxy.client('placeholder-one');
    const second = proxy.client('placeholder-two');
    const [a, b, c] = await Promise.all([
      first.chat.completions.create(chat('from one')),
      second.chat.completions.create(chat('from two')),
      // No Authorization header at all is fine too when the proxy has its own key.
      first.chat.completions.create(chat('from nobody'), { headers: { Authorization: null } }),
    ]);
    assert.equal(a.choices[0].message.content, 'echo: from one');
    assert.equal(b.choices[0].message.content, 'echo: from two');
    assert.equal(c.choices[0].message.content, 'echo: from nobody');

    const state = await fake.state();
    assert.equal(state.batches_created, 1, 'one upstream key makes one group');
    assert.equal(state.batches[0].api_key, SERVER_KEY);
    assert.equal(state.batches[0].custom_ids.length, 3);
  });

  test('relayed calls use the server key too', TEST, async () => {
    const { fake, proxy } = pair;
    await proxy.idle();
    await fake.reset();
    const client = proxy.client('placeholder-one');
    // The fake's echo endpoint answers with the headers it received.
    const echo = await client.get('/echo/who-am-i');
    assert.equal(echo.method, 'GET');
    assert.equal(echo.path, '/v1/echo/who-am-i');
    assert.equal(echo.headers.authorization, `Bearer ${SERVER_KEY}`);
    const anonymous = await proxy.fetch('/v1/echo/anonymous');
    assert.equal(anonymous.status, 200);
    assert.equal((await anonymous.json()).headers.authorization, `Bearer ${SERVER_KEY}`);
    const models = await client.models.list();
    assert.ok(models.data.some((m) => m.id === 'gpt-4o-mini'));
    assert.equal((await fake.state()).batches_created, 0);
  });
});
