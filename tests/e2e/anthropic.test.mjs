// SPDX-License-Identifier: GPL-3.0-or-later
// Anthropic's Messages API through llm-proxy (issue 13), with the official Anthropic TypeScript
// SDK pointed at the proxy as Claude Code would be (ANTHROPIC_BASE_URL): /v1/messages is
// answered from Message Batches at the fake Anthropic API, streams are replayed from the
// finished message, errors come in Anthropic's shape, a batch that expires half-done is sent
// again while its clients wait, and a proxy killed mid-batch and started again answers the
// SDK's retry from the batch it had made, without making another.

import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';

import Anthropic from '@anthropic-ai/sdk';

import { FakeAnthropic, LlmProxy, eventually } from './harness.mjs';

const TEST = { timeout: 60_000 };
const ANTHROPIC_KEY = 'sk-ant-e2e-server-key-0123456789';
const CLIENT_KEY = 'sk-ant-e2e-client-key-0123456789';
const MODEL = 'claude-sonnet-4-5';

function ask(text, extra = {}) {
  return { model: MODEL, max_tokens: 256, messages: [{ role: 'user', content: text }], ...extra };
}

describe('Anthropic SDK', () => {
  let fake;
  let proxy;
  let client;
  const proxyOptions = () => ({
    upstream: fake.baseURL, // the OpenAI provider: unused here
    env: { ANTHROPIC_API_KEY: ANTHROPIC_KEY },
    extraArgs: ['--provider', `anthropic=anthropic;url=${fake.baseURL}`],
  });
  before(async () => {
    fake = await FakeAnthropic.start(['--processing-delay-ms', '200']);
    proxy = await LlmProxy.start(proxyOptions());
    client = new Anthropic({
      baseURL: proxy.origin, // as ANTHROPIC_BASE_URL: the SDK adds /v1/messages
      apiKey: CLIENT_KEY,
      maxRetries: 0, // a retry would hide a failed answer
      timeout: 30_000,
    });
  });
  after(async () => {
    await proxy?.stop([ANTHROPIC_KEY, CLIENT_KEY]);
    await fake?.stop();
  });

  test('messages.create: text answers from one Message Batch', TEST, async () => {
    await fake.reset();
    const [first, second] = await Promise.all([
      client.messages.create(ask('hello 1')).withResponse(),
      client.messages.create(ask('hello 2')).withResponse(),
    ]);
    assert.equal(first.data.type, 'message');
    assert.equal(first.data.content[0].text, 'echo: hello 1');
    assert.equal(second.data.content[0].text, 'echo: hello 2');
    assert.equal(first.data.usage.service_tier, 'batch');
    assert.match(first.response.headers.get('x-llm-proxy-batch-id') ?? '', /^msgbatch_/);
    const state = await fake.state();
    assert.equal(state.batches.length, 1);
    assert.equal(state.batches[0].custom_ids.length, 2);
    assert.equal(state.batches[0].anthropic_version, '2023-06-01');
  });

  test('messages.create: tool use', TEST, async () => {
    const message = await client.messages.create(
      ask('weather in Paris', {
        tools: [
          {
            name: 'get_weather',
            description: 'The weather somewhere',
            input_schema: { type: 'object', properties: { text: { type: 'string' } } },
          },
        ],
      }),
    );
    assert.equal(message.stop_reason, 'tool_use');
    const call = message.content.find((block) => block.type === 'tool_use');
    assert.ok(call, JSON.stringify(message));
    assert.equal(call.name, 'get_weather');
    assert.deepEqual(call.input, { text: 'weather in Paris' });
  });

  test('messages.stream: events replayed, finalMessage whole (tool use too)', TEST, async () => {
    let text = '';
    const stream = client.messages.stream(
      ask('stream me, please', {
        tools: [{ name: 'lookup', input_schema: { type: 'object' } }],
      }),
    );
    stream.on('text', (delta) => {
      text += delta;
    });
    const message = await stream.finalMessage();
    assert.equal(text, 'echo: stream me, please');
    assert.equal(message.content[0].text, 'echo: stream me, please');
    assert.equal(message.content[1].type, 'tool_use');
    assert.deepEqual(message.content[1].input, { text: 'stream me, please' });
    assert.equal(message.stop_reason, 'tool_use');
    assert.ok(message.usage.output_tokens > 0);
  });

  test('errors are the SDK APIError with their status', TEST, async () => {
    // The proxy's own check, in Anthropic's shape.
    const invalid = await client.messages.create(ask('x', { max_tokens: 0 })).then(
      () => assert.fail('max_tokens 0 was accepted'),
      (error) => error,
    );
    assert.ok(invalid instanceof Anthropic.APIError, String(invalid));
    assert.ok(invalid instanceof Anthropic.BadRequestError);
    assert.equal(invalid.status, 400);
    assert.equal(invalid.error.type, 'error');
    assert.equal(invalid.error.error.type, 'invalid_request_error');
    assert.match(invalid.error.error.message, /max_tokens/);

    // An errored batch result: the provider's error with its status.
    const errored = await client.messages.create(ask('[[error:permission_error]]')).then(
      () => assert.fail('an errored result was answered as a message'),
      (error) => error,
    );
    assert.ok(errored instanceof Anthropic.PermissionDeniedError, String(errored));
    assert.equal(errored.status, 403);

    // An error once a stream's headers are out: the stream's error event.
    const streamed = await client.messages
      .stream(ask('[[error:overloaded_error]]'))
      .finalMessage()
      .then(
        () => assert.fail('an errored stream ended with a message'),
        (error) => error,
      );
    assert.ok(streamed instanceof Anthropic.APIError, String(streamed));
    assert.match(String(streamed.message), /overloaded_error/);
  });

  test('anthropic-beta groups the batch and goes with it', TEST, async () => {
    await fake.reset();
    const message = await client.beta.messages.create({
      ...ask('with a beta'),
      betas: ['token-efficient-tools-2025-02-19'],
    });
    assert.equal(message.content[0].text, 'echo: with a beta');
    const state = await fake.state();
    assert.equal(state.batches.at(-1).anthropic_beta, 'token-efficient-tools-2025-02-19');
  });

  test('a batch that expires half-done: every client still gets its answer', TEST, async () => {
    await proxy.idle();
    await fake.reset();
    // The first batch would take 10 s but expires after 150 ms with half of it done.
    await fake.config({ processing_delay_ms: 10_000, expire_after_ms: 150, expire_fraction_done: 0.5 });
    try {
      const texts = ['exp 1', 'exp 2', 'exp 3', 'exp 4'];
      const pending = Promise.all(texts.map((t) => client.messages.create(ask(t))));
      pending.catch(() => {}); // awaited below
      // Once it has expired, the next batch finishes in time.
      await eventually(async () => {
        const { batches } = await fake.state();
        assert.equal(batches[0]?.processing_status, 'ended');
      });
      await fake.config({ processing_delay_ms: 100, expire_after_ms: -1 });
      const answers = await pending;
      assert.deepEqual(
        answers.map((a) => a.content[0].text),
        texts.map((t) => `echo: ${t}`),
      );
      const state = await fake.state();
      assert.ok(state.batches.length >= 2, JSON.stringify(state.batches));
      assert.ok(state.batches[0].request_counts.expired > 0, JSON.stringify(state.batches[0]));
    } finally {
      await fake.config({ processing_delay_ms: 200, expire_after_ms: -1 });
    }
    await eventually(async () => assert.equal((await proxy.stats()).in_flight, 0));
  });

  test('killed mid-batch and restarted: the SDK retry gets the answer, one batch made', TEST, async () => {
    await proxy.idle();
    await fake.reset();
    await fake.config({ processing_delay_ms: 4_000 }); // time to crash before it ends
    // A proxy of its own, on its own data directory, that this test kills.
    const first = await LlmProxy.start(proxyOptions());
    let second;
    try {
      const retrying = new Anthropic({
        baseURL: first.origin,
        apiKey: CLIENT_KEY,
        maxRetries: 6, // the SDK's own retries carry the call across the restart
        timeout: 30_000,
      });
      const answer = retrying.messages.create(ask('through a crash')).withResponse();
      answer.catch(() => {}); // awaited below
      await eventually(async () => {
        const { batches } = await fake.state();
        assert.equal(batches.length, 1);
        assert.equal(batches[0].processing_status, 'in_progress');
      });
      const killed = await first.kill(); // SIGKILL: the batch is made, its result not yet in
      assert.equal(killed.signal, 'SIGKILL');
      second = await LlmProxy.start({ ...proxyOptions(), restartOf: first });
      const { data, response } = await answer;
      assert.equal(data.content[0].text, 'echo: through a crash');
      const { batches } = await fake.state();
      assert.equal(batches.length, 1, JSON.stringify(batches)); // resumed, not made again
      assert.equal(batches[0].custom_ids.length, 1);
      assert.equal(response.headers.get('x-llm-proxy-batch-id'), batches[0].id);
      // The ledger counted it once, in the restarted proxy's store.
      const usage = await (await second.fetch('/usage')).json();
      assert.equal(usage.totals.requests, 1, JSON.stringify(usage));
    } finally {
      await fake.config({ processing_delay_ms: 200 });
      if (second) {
        await second.stop([ANTHROPIC_KEY, CLIENT_KEY]);
      } else {
        await first.kill();
        rmSync(first.dataDir, { recursive: true, force: true });
      }
    }
  });
});
