// SPDX-License-Identifier: GPL-3.0-or-later
// The SSE replay (proxy/api/ssereplay.h, issue 11) read by the official OpenAI Node SDK.
// A tiny node server on 127.0.0.1 answers each call with the bytes ssereplay-dump prints for a
// recorded provider body (tests/data/sse), after a keep-alive and the batch id comment, as a
// waiting stream will send them; the non-streamed call gets the body itself. The SDK's own
// stream readers and helpers must rebuild exactly that body.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import OpenAI from 'openai';

const DATA = join(dirname(fileURLToPath(import.meta.url)), '..', 'data', 'sse');
const TEST = { timeout: 30_000 };

function dumpTool() {
  const path = process.env.SSE_REPLAY_DUMP;
  assert.ok(
    path,
    'SSE_REPLAY_DUMP is not set: run these tests through CTest (ctest -R e2e), or set it to ' +
      'the built tests/ssereplay-dump',
  );
  return path;
}

function body(file) {
  return JSON.parse(readFileSync(join(DATA, file), 'utf8'));
}

// The replay of `file` for `endpoint` (chat, completions, responses), as the proxy will send it.
function replay(endpoint, file, args = []) {
  return execFileSync(
    dumpTool(),
    [endpoint, join(DATA, file), '--batch-id', 'batch_e2e_replay', ...args],
    { maxBuffer: 64 * 1024 * 1024 },
  );
}

describe('SSE replay read by the official SDK', () => {
  let server;
  let client;
  // What the next call is answered with: { file, endpoint, args, status }.
  let answer;
  const seen = [];

  before(async () => {
    server = http.createServer((request, response) => {
      let text = '';
      request.setEncoding('utf8');
      request.on('data', (piece) => {
        text += piece;
      });
      request.on('end', async () => {
        const sent = JSON.parse(text || '{}');
        seen.push({ url: request.url, body: sent });
        if (!sent.stream) {
          response.writeHead(200, { 'content-type': 'application/json' });
          response.end(readFileSync(join(DATA, answer.file)));
          return;
        }
        const bytes = answer.error
          ? execFileSync(dumpTool(), [
              answer.endpoint,
              join(DATA, answer.file),
              '--error',
              String(answer.error),
              '--batch-id',
              'batch_e2e_replay',
            ])
          : replay(answer.endpoint, answer.file, answer.args ?? []);
        response.writeHead(200, {
          'content-type': 'text/event-stream',
          'cache-control': 'no-cache',
          'x-llm-proxy-batch-id': 'batch_e2e_replay',
        });
        // The comments first, the events a little later, as after a wait for the batch.
        const split = bytes.indexOf('\n\n', bytes.indexOf('x-llm-proxy-batch-id')) + 2;
        response.write(bytes.subarray(0, split));
        await sleep(50);
        response.end(bytes.subarray(split));
      });
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address();
    client = new OpenAI({
      apiKey: 'sk-e2e-replay-0000',
      baseURL: `http://127.0.0.1:${port}/v1`,
      maxRetries: 0,
      timeout: 20_000,
    });
  });

  after(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  const chatRequest = (extra = {}) => ({
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: 'Hello' }],
    ...extra,
  });

  for (const [file, args] of [
    ['chat-text.json', []],
    ['chat-utf8.json', ['--min-piece-bytes', '1']],
    ['chat-empty.json', []],
  ]) {
    const name = `create({stream: true}) chunks join to the non-streamed content: ${file} ${args}`;
    test(name, TEST, async () => {
      answer = { endpoint: 'chat', file, args: [...args, '--include-usage'] };
      const whole = await client.chat.completions.create(chatRequest());
      const stream = await client.chat.completions.create(
        chatRequest({ stream: true, stream_options: { include_usage: true } }),
      );
      let content = '';
      let chunks = 0;
      let usage;
      let finish;
      for await (const chunk of stream) {
        chunks += 1;
        assert.equal(chunk.id, whole.id);
        assert.equal(chunk.object, 'chat.completion.chunk');
        assert.equal(chunk.model, whole.model);
        if (chunk.usage) usage = chunk.usage;
        for (const choice of chunk.choices) {
          content += choice.delta.content ?? '';
          if (choice.finish_reason) finish = choice.finish_reason;
        }
      }
      assert.equal(content, whole.choices[0].message.content);
      assert.equal(finish, whole.choices[0].finish_reason);
      assert.deepEqual(usage, whole.usage);
      if (args.length) assert.ok(chunks > 20, `only ${chunks} chunks`);
    });
  }

  for (const file of [
    'chat-tool-calls.json',
    'chat-refusal.json',
    'chat-n2.json',
    'chat-logprobs.json',
    'chat-text.json',
  ]) {
    test(`stream().finalChatCompletion() equals the body: ${file}`, TEST, async () => {
      answer = { endpoint: 'chat', file };
      const expected = body(file);
      const tools = [
        {
          type: 'function',
          function: { name: 'get_weather', parameters: { type: 'object', properties: {} } },
        },
        {
          type: 'function',
          function: { name: 'get_time', parameters: { type: 'object', properties: {} } },
        },
      ];
      const stream = client.chat.completions.stream(chatRequest({ tools }));
      const final = await stream.finalChatCompletion();
      assert.equal(final.id, expected.id);
      assert.equal(final.created, expected.created);
      assert.equal(final.model, expected.model);
      assert.equal(final.system_fingerprint, expected.system_fingerprint);
      assert.equal(final.choices.length, expected.choices.length);
      for (const [i, choice] of expected.choices.entries()) {
        const got = final.choices[i];
        assert.equal(got.index, choice.index);
        assert.equal(got.finish_reason, choice.finish_reason);
        assert.deepEqual(got.logprobs ?? null, choice.logprobs);
        const { message } = choice;
        assert.equal(got.message.role, message.role);
        assert.equal(got.message.content, message.content);
        assert.equal(got.message.refusal, message.refusal);
        if (message.tool_calls) {
          // Only the wire fields: the SDK may add parsed_arguments (for strict tools).
          const calls = got.message.tool_calls.map(({ id, type, function: fn }) => ({
            id,
            type,
            function: { name: fn.name, arguments: fn.arguments },
          }));
          assert.deepEqual(calls, message.tool_calls);
          for (const call of calls) JSON.parse(call.function.arguments);
        } else {
          assert.ok(!got.message.tool_calls?.length);
        }
      }
    });
  }

  test('completions.create({stream: true}) chunks join to each choice text', TEST, async () => {
    answer = { endpoint: 'completions', file: 'completions-text.json', args: ['--include-usage'] };
    const expected = body('completions-text.json');
    const stream = await client.completions.create({
      model: 'gpt-3.5-turbo-instruct',
      prompt: 'Say this is a test',
      n: 2,
      stream: true,
      stream_options: { include_usage: true },
    });
    const texts = {};
    let usage;
    for await (const chunk of stream) {
      assert.equal(chunk.object, 'text_completion');
      if (chunk.usage) usage = chunk.usage;
      for (const choice of chunk.choices) {
        texts[choice.index] = (texts[choice.index] ?? '') + choice.text;
      }
    }
    for (const choice of expected.choices) assert.equal(texts[choice.index], choice.text);
    assert.deepEqual(usage, expected.usage);
  });

  for (const file of [
    'responses-text.json',
    'responses-tool-call.json',
    'responses-refusal.json',
  ]) {
    test(`responses.stream().finalResponse() equals the body: ${file}`, TEST, async () => {
      answer = { endpoint: 'responses', file, args: ['--min-piece-bytes', '7'] };
      const expected = body(file);
      const stream = client.responses.stream({ model: 'gpt-4o-mini', input: 'Tell me a story' });
      const types = [];
      let text = '';
      stream.on('event', (event) => types.push(event.type));
      stream.on('response.output_text.delta', (event) => {
        text += event.delta;
      });
      const final = await stream.finalResponse();
      // The SDK adds output_text (and parsed fields) to what the API sent.
      const outputText = expected.output
        .filter((item) => item.type === 'message')
        .flatMap((item) => item.content)
        .filter((part) => part.type === 'output_text')
        .map((part) => part.text)
        .join('');
      assert.equal(final.output_text, outputText);
      assert.equal(text, outputText);
      assert.deepEqual(final.usage, expected.usage);
      assert.equal(final.id, expected.id);
      assert.equal(final.status, expected.status);
      const { output_text: _ignored, ...wire } = final;
      assert.deepEqual(stripParsed(wire), expected);
      assert.equal(types[0], 'response.created');
      assert.equal(types.at(-1), `response.${expected.status}`);
    });
  }

  test('a chat error event surfaces as the SDK APIError', TEST, async () => {
    answer = { endpoint: 'chat', file: 'error-rate-limit.json', error: 429 };
    const expected = body('error-rate-limit.json').error;
    const stream = await client.chat.completions.create(chatRequest({ stream: true }));
    await assert.rejects(
      async () => {
        for await (const _chunk of stream) assert.fail('no chunk comes before the error');
      },
      (error) => {
        assert.ok(error instanceof OpenAI.APIError, `${error?.constructor?.name}: ${error}`);
        assert.equal(error.code, expected.code);
        assert.equal(error.type, expected.type);
        assert.match(error.message, /Rate limit reached/);
        return true;
      },
    );
  });

  test('a Responses error event surfaces as the SDK APIError', TEST, async () => {
    answer = { endpoint: 'responses', file: 'error-rate-limit.json', error: 429 };
    const expected = body('error-rate-limit.json').error;
    const stream = client.responses.stream({ model: 'gpt-4o-mini', input: 'Hi' });
    await assert.rejects(stream.finalResponse(), (error) => {
      assert.ok(error instanceof OpenAI.APIError, `${error?.constructor?.name}: ${error}`);
      assert.equal(error.code, expected.code);
      assert.match(error.message, /Rate limit reached/);
      return true;
    });
  });

  test('the requests the SDK sent asked for a stream', () => {
    assert.ok(seen.some(({ body: sent }) => sent.stream === true));
  });
});

// finalResponse() adds parsed fields (output_parsed, parsed_arguments) that are not on the wire.
function stripParsed(value) {
  if (Array.isArray(value)) return value.map(stripParsed);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([key]) => !['parsed', 'parsed_arguments', 'output_parsed'].includes(key))
        .map(([key, inner]) => [key, stripParsed(inner)]),
    );
  }
  return value;
}
