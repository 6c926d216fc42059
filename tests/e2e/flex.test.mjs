// SPDX-License-Identifier: GPL-3.0-or-later
// OpenAI's flex processing as a route (issue 12), with the official Node SDK: the proxy runs
// with --model-route gpt-5-mini=flex-then-batch. A request is answered at once by a flex call
// ("service_tier":"flex", at the batch price); when the fake refuses flex (429 "resource
// unavailable", or a model it does not offer flex for) the same request is answered from a
// batch, and the fake never sees it at the standard (full-price) tier.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { FakeOpenAI, LlmProxy, SERVER_KEY, chat } from './harness.mjs';

const TEST = { timeout: 60_000 };

describe('flex-then-batch', () => {
  let fake;
  let proxy;
  before(async () => {
    fake = await FakeOpenAI.start(['--accept-key', SERVER_KEY]);
    proxy = await LlmProxy.start({
      upstream: fake.baseURL,
      apiKey: SERVER_KEY,
      extraArgs: [
        '--model-route',
        'gpt-5-mini=flex-then-batch',
        '--model-route',
        'gpt-5-nano=flex-then-batch',
        '--flex-timeout',
        '2m',
      ],
    });
  });
  after(async () => {
    await proxy?.stop([SERVER_KEY]);
    await fake?.stop();
  });

  test('a flex request is answered by flex processing', TEST, async () => {
    const client = proxy.client('placeholder');
    const { data, response } = await client.chat.completions
      .create(chat('flex me', 'gpt-5-mini'))
      .withResponse();
    assert.equal(data.choices[0].message.content, 'echo: flex me');
    assert.equal(data.service_tier, 'flex');
    assert.equal(response.headers.get('x-llm-proxy-route'), 'flex');
    const state = await fake.state();
    assert.equal(state.flex_calls, 1);
    assert.equal(state.standard_calls, 0);
    assert.equal(state.batches_created, 0);
  });

  test('refused with 429, it falls back to a batch, never to the standard tier', TEST, async () => {
    await fake.config({ flex_refuse_next: 1 });
    const client = proxy.client('placeholder');
    const { data, response } = await client.chat.completions
      .create(chat('no capacity', 'gpt-5-mini'))
      .withResponse();
    assert.equal(data.choices[0].message.content, 'echo: no capacity');
    assert.notEqual(data.service_tier, 'flex');
    assert.ok(response.headers.get('x-llm-proxy-batch-id'));
    const state = await fake.state();
    assert.equal(state.flex_calls, 2);
    assert.equal(state.standard_calls, 0);
    assert.equal(state.batches_created, 1);
    assert.equal(state.batches[0].model, 'gpt-5-mini');
  });

  test('a model without flex falls back to a batch', TEST, async () => {
    await fake.config({ flex_unsupported_models: ['gpt-5-nano'] });
    const client = proxy.client('placeholder');
    const answer = await client.chat.completions.create(chat('not offered', 'gpt-5-nano'));
    assert.equal(answer.choices[0].message.content, 'echo: not offered');
    const state = await fake.state();
    assert.equal(state.flex_calls, 3);
    assert.equal(state.standard_calls, 0);
    assert.equal(state.batches_created, 2);
  });
});
