// SPDX-License-Identifier: GPL-3.0-or-later
// Calls the proxy relays to the upstream unchanged: other endpoints, streaming, the X-Batch
// opt-out, upstream error statuses, and an unreachable upstream.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import OpenAI from 'openai';

import {
  KEY_A,
  LlmProxy,
  chat,
  closedPort,
  eventually,
  rejectsWith,
  sharedPair,
  statsDelta,
} from './harness.mjs';

const TEST = { timeout: 60_000 };

describe('relayed calls', () => {
  const pair = sharedPair();

  test('models.list() and models.retrieve() are relayed', TEST, async () => {
    const { fake, proxy } = pair;
    const client = proxy.client(KEY_A);
    const statsBefore = await proxy.stats();
    const ids = [];
    for await (const model of client.models.list()) ids.push(model.id);
    assert.deepEqual(ids.sort(), [
      'gpt-4o',
      'gpt-4o-mini',
      'omni-moderation-latest',
      'text-embedding-3-small',
    ]);
    const one = await client.models.retrieve('gpt-4o');
    assert.equal(one.id, 'gpt-4o');
    assert.equal(one.owned_by, 'openai');
    // The upstream's own error status and body come back as they are.
    const error = await rejectsWith(client.models.retrieve('no-such-model'), OpenAI.NotFoundError);
    assert.equal(error.status, 404);
    assert.equal(error.code, 'model_not_found');
    assert.match(error.message, /no-such-model/);

    const state = await fake.state();
    assert.equal(state.requests_total, 3);
    assert.equal(state.batches_created, 0);
    await eventually(async () => {
      assert.equal(statsDelta(statsBefore, await proxy.stats()).relayed, 3);
    });
  });

  // Streams are batched by default (streaming.test.mjs); X-Batch: off relays one.
  test('a streaming chat completion with X-Batch: off is relayed chunk by chunk', TEST, async () => {
    const { fake, proxy } = pair;
    await fake.config({ stream_chunk_delay_ms: 60 });
    const client = proxy.client(KEY_A);
    const stream = await client.chat.completions.create(
      {
        ...chat('one two three four'),
        stream: true,
        stream_options: { include_usage: true },
      },
      { headers: { 'X-Batch': 'off' } },
    );
    let text = '';
    let chunks = 0;
    let usage = null;
    const arrivals = [];
    let finishReason = null;
    for await (const chunk of stream) {
      ++chunks;
      arrivals.push(Date.now());
      assert.equal(chunk.object, 'chat.completion.chunk');
      const choice = chunk.choices[0];
      if (choice?.delta?.content) text += choice.delta.content;
      if (choice?.finish_reason) finishReason = choice.finish_reason;
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(text, 'echo: one two three four');
    assert.equal(finishReason, 'stop');
    // Role chunk, five words, the stop chunk and the usage chunk.
    assert.equal(chunks, 8);
    assert.ok(usage && usage.completion_tokens === 5, `usage: ${JSON.stringify(usage)}`);
    // The fake sends a chunk every 60 ms: if the proxy buffered the whole stream, all chunks
    // would arrive at once.
    const spread = arrivals.at(-1) - arrivals[0];
    assert.ok(spread >= 200, `chunks arrived within ${spread} ms: the stream was buffered`);
    const state = await fake.state();
    assert.equal(state.batches_created, 0);
    assert.equal(state.requests_total, 1);
  });

  test('X-Batch: off sends a chat completion straight through', TEST, async () => {
    const { fake, proxy } = pair;
    const client = proxy.client(KEY_A);
    const statsBefore = await proxy.stats();
    const { data, response } = await client.chat.completions
      .create(chat('right now'), { headers: { 'X-Batch': 'off' } })
      .withResponse();
    assert.equal(data.choices[0].message.content, 'echo: right now');
    assert.equal(response.headers.get('x-llm-proxy-batch-id'), null);
    assert.match(response.headers.get('x-request-id') ?? '', /^req_/);
    const state = await fake.state();
    assert.equal(state.batches_created, 0);
    assert.equal(state.requests_total, 1);
    assert.deepEqual(state.per_endpoint, {});
    await eventually(async () => {
      const delta = statsDelta(statsBefore, await proxy.stats());
      assert.equal(delta.relayed, 1);
      assert.equal(delta.batches.total, 0);
    });
  });

  test('an unreachable upstream gives 502', TEST, async () => {
    const port = await closedPort();
    const dead = await LlmProxy.start({ upstream: `http://127.0.0.1:${port}/v1` });
    try {
      const client = dead.client(KEY_A);
      const error = await rejectsWith(client.models.list(), OpenAI.InternalServerError);
      assert.equal(error.status, 502);
      assert.equal(error.type, 'server_error');
      assert.ok(error.error?.message, 'the 502 has no error message');
      assert.ok(!error.message.includes(KEY_A));
      // The proxy is still there.
      const health = await dead.fetch('/healthz');
      assert.equal(health.status, 200);
    } finally {
      await dead.stop();
    }
  });
});
