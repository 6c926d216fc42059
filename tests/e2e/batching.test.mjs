// SPDX-License-Identifier: GPL-3.0-or-later
// Batched endpoints through the official OpenAI SDK: every waiting client gets its own answer
// out of one shared Batch API job, per endpoint, key and model.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { KEY_A, KEY_B, chat, eventually, sharedPair, statsDelta } from './harness.mjs';

const TEST = { timeout: 60_000 };

describe('batched endpoints', () => {
  const pair = sharedPair();

  test('concurrent chat completions share one batch, each gets its own answer', TEST, async () => {
    const { fake, proxy } = pair;
    const client = proxy.client(KEY_A);
    const statsBefore = await proxy.stats();
    const n = 8;
    const answers = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        client.chat.completions.create(chat(`question ${i}`)).withResponse(),
      ),
    );

    const batchIds = new Set();
    answers.forEach(({ data, response }, i) => {
      assert.equal(response.status, 200);
      assert.equal(data.object, 'chat.completion');
      assert.equal(data.model, 'gpt-4o-mini');
      assert.equal(data.choices.length, 1);
      assert.equal(data.choices[0].message.role, 'assistant');
      assert.equal(data.choices[0].message.content, `echo: question ${i}`);
      assert.equal(data.choices[0].finish_reason, 'stop');
      assert.ok(data.usage.prompt_tokens > 0);
      batchIds.add(response.headers.get('x-llm-proxy-batch-id'));
    });
    assert.equal(batchIds.size, 1, `answers came from several batches: ${[...batchIds]}`);

    const state = await fake.state();
    assert.equal(state.batches_created, 1);
    const [batch] = state.batches;
    assert.equal(batch.id, [...batchIds][0]);
    assert.equal(batch.endpoint, '/v1/chat/completions');
    assert.equal(batch.model, 'gpt-4o-mini');
    assert.equal(batch.api_key, KEY_A);
    assert.equal(batch.status, 'completed');
    assert.equal(batch.metadata.created_by, 'llm-proxy');
    assert.equal(batch.custom_ids.length, n);
    assert.equal(new Set(batch.custom_ids).size, n, 'custom_ids are not unique');
    for (const id of batch.custom_ids) assert.match(id, /^[A-Za-z0-9_-]{1,64}$/);
    assert.deepEqual(batch.request_counts, { total: n, completed: n, failed: 0 });
    assert.deepEqual(state.per_endpoint['/v1/chat/completions'], { batches: 1, lines: n });

    await eventually(async () => {
      const delta = statsDelta(statsBefore, await proxy.stats());
      assert.deepEqual(delta.requests, {
        total: n,
        successful: n,
        failed: 0,
        synthesized_error_responses: 0,
      });
      assert.equal(delta.batches.total, 1);
      assert.equal(delta.batches.successful, 1);
      assert.equal(delta.relayed, 0);
    });
    // The input and output files are deleted once everyone has been answered.
    await eventually(async () => {
      const after = await fake.state();
      assert.equal(after.files_live, 0);
      assert.ok(after.files_deleted >= 2, `files_deleted = ${after.files_deleted}`);
    });
  });

  test('embeddings with single and array input are batched', TEST, async () => {
    const { fake, proxy } = pair;
    const client = proxy.client(KEY_A);
    const model = 'text-embedding-3-small';
    // The SDK asks for base64 by default and decodes it; float is asked for explicitly once.
    const [single, many, again, floats] = await Promise.all([
      client.embeddings.create({ model, input: 'hello' }),
      client.embeddings.create({ model, input: ['a', 'b', 'c'] }),
      client.embeddings.create({ model, input: 'b' }),
      client.embeddings.create({ model, input: 'b', encoding_format: 'float' }),
    ]);

    assert.equal(single.object, 'list');
    assert.equal(single.model, model);
    assert.equal(single.data.length, 1);
    assert.equal(single.data[0].embedding.length, 8);
    assert.ok(single.data[0].embedding.every((x) => Number.isFinite(x) && x >= -1 && x <= 1));
    assert.deepEqual(
      many.data.map((d) => d.index),
      [0, 1, 2],
    );
    for (const item of many.data) assert.equal(item.embedding.length, 8);
    // The fake's embeddings depend on the text only: each answer carries its own input's vector.
    assert.deepEqual(many.data[1].embedding, again.data[0].embedding);
    assert.deepEqual(floats.data[0].embedding, again.data[0].embedding);
    assert.notDeepEqual(many.data[0].embedding, many.data[1].embedding);
    assert.notDeepEqual(single.data[0].embedding, many.data[0].embedding);

    const state = await fake.state();
    assert.equal(state.batches_created, 1);
    assert.equal(state.batches[0].endpoint, '/v1/embeddings');
    assert.equal(state.batches[0].model, model);
    assert.equal(state.batches[0].custom_ids.length, 4);
  });

  test('legacy completions are batched', TEST, async () => {
    const { fake, proxy } = pair;
    const client = proxy.client(KEY_A);
    const model = 'gpt-3.5-turbo-instruct';
    const [first, second] = await Promise.all([
      client.completions.create({ model, prompt: 'say hi' }),
      client.completions.create({ model, prompt: 'say bye', max_tokens: 5 }),
    ]);
    assert.equal(first.object, 'text_completion');
    assert.equal(first.choices[0].text, 'echo: say hi');
    assert.equal(second.choices[0].text, 'echo: say bye');
    const state = await fake.state();
    assert.equal(state.batches_created, 1);
    assert.equal(state.batches[0].endpoint, '/v1/completions');
    assert.equal(state.batches[0].custom_ids.length, 2);
  });

  test('moderations without a model are batched', TEST, async () => {
    const { fake, proxy } = pair;
    const client = proxy.client(KEY_A);
    const [{ data: one, response }, many] = await Promise.all([
      client.moderations.create({ input: 'a friendly sentence' }).withResponse(),
      client.moderations.create({ input: ['first', 'second', 'third'] }),
    ]);
    assert.equal(one.results.length, 1);
    assert.equal(one.results[0].flagged, false);
    assert.equal(one.results[0].categories.violence, false);
    assert.equal(one.model, 'omni-moderation-latest');
    assert.equal(many.results.length, 3);
    assert.match(response.headers.get('x-llm-proxy-batch-id') ?? '', /^batch_/);

    const state = await fake.state();
    assert.equal(state.batches_created, 1);
    assert.equal(state.batches[0].endpoint, '/v1/moderations');
    assert.equal(state.batches[0].model, '');
    assert.equal(state.batches[0].custom_ids.length, 2);
  });

  test('the Responses API is batched', TEST, async () => {
    const { fake, proxy } = pair;
    const client = proxy.client(KEY_A);
    const [plain, structured] = await Promise.all([
      client.responses.create({ model: 'gpt-4o-mini', input: 'tell me a story' }),
      client.responses.create({
        model: 'gpt-4o-mini',
        input: [{ role: 'user', content: 'structured input' }],
      }),
    ]);
    assert.equal(plain.object, 'response');
    assert.equal(plain.status, 'completed');
    assert.equal(plain.output_text, 'echo: tell me a story');
    assert.equal(plain.output[0].content[0].text, 'echo: tell me a story');
    assert.equal(structured.output_text, 'echo: structured input');
    const state = await fake.state();
    assert.equal(state.batches_created, 1);
    assert.equal(state.batches[0].endpoint, '/v1/responses');
    assert.equal(state.batches[0].custom_ids.length, 2);
  });

  test('2 keys x 2 models make 4 batches, each created with its own key', TEST, async () => {
    const { fake, proxy } = pair;
    const clients = { [KEY_A]: proxy.client(KEY_A), [KEY_B]: proxy.client(KEY_B) };
    const calls = [];
    for (const key of [KEY_A, KEY_B]) {
      for (const model of ['model-x', 'model-y']) {
        for (let i = 0; i < 2; ++i) {
          const content = `${key.slice(-15)} ${model} ${i}`;
          calls.push({ key, model, content });
        }
      }
    }
    const answers = await Promise.all(
      calls.map(({ key, model, content }) =>
        clients[key].chat.completions.create(chat(content, model)).withResponse(),
      ),
    );

    const state = await fake.state();
    assert.equal(state.batches_created, 4);
    const byId = new Map(state.batches.map((b) => [b.id, b]));
    const combos = new Set(state.batches.map((b) => `${b.api_key}|${b.model}`));
    assert.deepEqual(
      [...combos].sort(),
      [`${KEY_A}|model-x`, `${KEY_A}|model-y`, `${KEY_B}|model-x`, `${KEY_B}|model-y`].sort(),
    );
    for (const batch of state.batches) assert.equal(batch.custom_ids.length, 2);
    answers.forEach(({ data, response }, i) => {
      const { key, model, content } = calls[i];
      assert.equal(data.choices[0].message.content, `echo: ${content}`);
      assert.equal(data.model, model);
      const batch = byId.get(response.headers.get('x-llm-proxy-batch-id'));
      assert.ok(batch, `answer ${i} names an unknown batch`);
      assert.equal(batch.api_key, key, `answer ${i} came from a batch of another key`);
      assert.equal(batch.model, model);
    });
  });

  test('withResponse() shows the request id and the batch id', TEST, async () => {
    const { fake, proxy } = pair;
    const client = proxy.client(KEY_A);
    const { data, response } = await client.chat.completions
      .create(chat('with headers'))
      .withResponse();
    assert.equal(data.choices[0].message.content, 'echo: with headers');
    const requestId = response.headers.get('x-request-id');
    assert.match(requestId ?? '', /^req_/);
    assert.equal(data._request_id, requestId);
    assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
    const batchId = response.headers.get('x-llm-proxy-batch-id');
    const state = await fake.state();
    assert.equal(state.batches_created, 1);
    assert.equal(batchId, state.batches[0].id);
  });
});
