// SPDX-License-Identifier: GPL-3.0-or-later
// Streaming clients answered from batches (issue 11): the official Node SDK's stream readers
// and helpers against the built llm-proxy, whose streams wait for a batch of the fake provider
// and then replay its result. What the SDK rebuilds must equal the non-streamed answer.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import OpenAI from 'openai';
import { Agent, fetch as undiciFetch } from 'undici';

import { KEY_A, chat, rejectsWith, sharedPair } from './harness.mjs';

const TEST = { timeout: 60_000 };

// The text of a Responses API answer's output messages.
function outputText(response) {
  let text = '';
  for (const item of response.output ?? []) {
    if (item.type !== 'message') continue;
    for (const part of item.content ?? []) if (part.type === 'output_text') text += part.text;
  }
  return text;
}

describe('streams answered from batches', () => {
  const pair = sharedPair();

  test('chat.completions.create({stream: true}) chunks join to the non-streamed text', TEST, async () => {
    const { fake, proxy } = pair;
    const client = proxy.client(KEY_A);
    const before = await proxy.stats();
    const stream = await client.chat.completions.create({
      ...chat('a streamed hello that is long enough to be cut into several deltas'),
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let usage;
    let chunks = 0;
    for await (const chunk of stream) {
      assert.equal(chunk.object, 'chat.completion.chunk');
      chunks += 1;
      if (chunk.usage) usage = chunk.usage;
      for (const choice of chunk.choices) text += choice.delta?.content ?? '';
    }
    assert.ok(chunks >= 3, `only ${chunks} chunks`);
    assert.ok(usage && usage.total_tokens > 0, 'no usage chunk');
    const state = await fake.state();
    assert.equal(state.batches.length, 1, 'the stream was not batched');

    const plain = await client.chat.completions.create(
      chat('a streamed hello that is long enough to be cut into several deltas'),
    );
    assert.equal(text, plain.choices[0].message.content);
    const after = await proxy.stats();
    assert.equal(after.streamed - before.streamed, 1);
    assert.equal(after.relayed - before.relayed, 0);
    assert.equal(after.waiting_streams, 0);
  });

  test('chat.completions.stream().finalChatCompletion() rebuilds a tool call', TEST, async () => {
    const { proxy } = pair;
    const client = proxy.client(KEY_A);
    const request = {
      ...chat('Paris'),
      tools: [
        {
          type: 'function',
          function: {
            name: 'get_weather',
            parameters: { type: 'object', properties: { text: { type: 'string' } } },
          },
        },
      ],
      tool_choice: 'required',
    };
    const stream = client.chat.completions.stream(request);
    const final = await stream.finalChatCompletion();
    const plain = await client.chat.completions.create(request);
    const expected = plain.choices[0];
    const got = final.choices[0];
    assert.equal(got.finish_reason, 'tool_calls');
    assert.equal(got.finish_reason, expected.finish_reason);
    assert.equal(got.message.tool_calls.length, 1);
    const call = got.message.tool_calls[0];
    assert.equal(call.type, 'function');
    assert.equal(call.function.name, 'get_weather');
    assert.ok(call.id.startsWith('call_'));
    assert.deepEqual(JSON.parse(call.function.arguments), { text: 'echo: Paris' });
    assert.equal(call.function.arguments, expected.message.tool_calls[0].function.arguments);
  });

  test('responses.stream().finalResponse() equals the non-streamed response', TEST, async () => {
    const { proxy } = pair;
    const client = proxy.client(KEY_A);
    const request = { model: 'gpt-4o-mini', input: 'Tell me a story about a batch' };
    const stream = client.responses.stream(request);
    let deltas = '';
    const types = [];
    stream.on('event', (event) => types.push(event.type));
    stream.on('response.output_text.delta', (event) => {
      deltas += event.delta;
    });
    const final = await stream.finalResponse();
    const plain = await client.responses.create(request);
    assert.equal(types[0], 'response.created');
    assert.equal(types.at(-1), 'response.completed');
    assert.equal(final.status, 'completed');
    assert.ok(outputText(plain).length > 0);
    assert.equal(outputText(final), outputText(plain));
    assert.equal(deltas, outputText(plain));
    assert.ok(final.usage && final.usage.total_tokens > 0);
  });

  test('an error while the stream waits surfaces as the SDK error', TEST, async () => {
    const { proxy } = pair;
    const client = proxy.client(KEY_A);
    const stream = await client.chat.completions.create({
      ...chat('too long [[status:400]]'),
      stream: true,
    });
    const error = await rejectsWith(
      (async () => {
        for await (const chunk of stream) assert.fail(`a chunk came: ${JSON.stringify(chunk)}`);
      })(),
      OpenAI.APIError,
    );
    assert.match(error.message, /\S/);

    const responses = client.responses.stream({
      model: 'gpt-4o-mini',
      input: 'refused [[status:400]]',
    });
    await rejectsWith(responses.finalResponse(), OpenAI.OpenAIError);
  });

  test('a failed batch surfaces as the SDK error with its code', TEST, async () => {
    const { fake, proxy } = pair;
    await fake.config({ fail_batches: { count: 1, code: 'invalid_request', message: 'nope' } });
    const client = proxy.client(KEY_A);
    const stream = await client.chat.completions.create({ ...chat('doomed'), stream: true });
    const error = await rejectsWith(
      (async () => {
        for await (const chunk of stream) void chunk;
      })(),
      OpenAI.APIError,
    );
    assert.equal(error.code ?? error.error?.code, 'batch_failed');
  });
});

// Node's fetch cuts a wait for headers (and a silent body) at 300 s. With headersTimeout 2 s and
// bodyTimeout 3 s, a 6 s batch can only be waited for because the headers come at once and a
// keep-alive comment comes every second: a non-streamed call with the same client times out.
describe('strict client timeouts', () => {
  const pair = sharedPair({ extraArgs: ['--stream-keepalive', '1'] });

  test('a stream outlasts headersTimeout and bodyTimeout with no client changes', TEST, async () => {
    const { fake, proxy } = pair;
    await fake.config({ processing_delay_ms: 6000 });
    const dispatcher = new Agent({ headersTimeout: 2000, bodyTimeout: 3000 });
    try {
      const client = proxy.client(KEY_A, {
        timeout: 60_000,
        fetch: undiciFetch,
        fetchOptions: { dispatcher },
      });
      const started = Date.now();
      const stream = await client.chat.completions.create({ ...chat('patience'), stream: true });
      let text = '';
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
      assert.equal(text, 'echo: patience');
      assert.ok(Date.now() - started >= 6000, 'the batch was faster than the timeouts');

      // The control: the same client, not streaming, is cut by headersTimeout.
      await rejectsWith(client.chat.completions.create(chat('impatient')), OpenAI.APIError);
    } finally {
      await dispatcher.close();
    }
  });
});
