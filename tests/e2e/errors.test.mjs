// SPDX-License-Identifier: GPL-3.0-or-later
// Errors as the official SDK sees them: per-line upstream errors inside a batch, failed batch
// submissions, and bad input refused by the proxy itself.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import OpenAI from 'openai';

import { KEY_A, chat, eventually, rejectsWith, sharedPair, statsDelta } from './harness.mjs';

const TEST = { timeout: 60_000 };

// A proxy-made error body: OpenAI's shape, with all four fields present.
function assertOpenAiError(body, status) {
  assert.ok(body && typeof body.error === 'object', `not an OpenAI error: ${JSON.stringify(body)}`);
  for (const field of ['message', 'type', 'param', 'code'])
    assert.ok(field in body.error, `error.${field} is missing: ${JSON.stringify(body)}`);
  assert.equal(typeof body.error.message, 'string');
  assert.ok(body.error.message.length > 0, 'empty error message');
  assert.ok(body.error.type.length > 0, 'empty error type');
  assert.ok(!body.error.message.includes(KEY_A), `status ${status} message shows the key`);
  return body.error;
}

describe('errors', () => {
  const pair = sharedPair();

  test('per-line outcomes of one batch reach their own clients', TEST, async () => {
    const { fake, proxy } = pair;
    const client = proxy.client(KEY_A);
    const statsBefore = await proxy.stats();
    const [ok, bad, expired, missing] = await Promise.allSettled([
      client.chat.completions.create(chat('fine')),
      client.chat.completions.create(chat('too long [[status:400]]')),
      client.chat.completions.create(chat('slow [[error:request_timeout]]')),
      client.chat.completions.create(chat('gone [[omit]]')),
    ]);

    assert.equal(ok.status, 'fulfilled', String(ok.reason));
    assert.equal(ok.value.choices[0].message.content, 'echo: fine');

    // The provider's own 400 passes through with its message.
    assert.equal(bad.status, 'rejected');
    assert.ok(bad.reason instanceof OpenAI.BadRequestError, String(bad.reason));
    assert.equal(bad.reason.status, 400);
    assert.equal(bad.reason.error.message, 'Scripted HTTP 400 from the fake provider.');
    assert.equal(bad.reason.type, 'invalid_request_error');
    assert.match(bad.reason.message, /^400 Scripted HTTP 400 from the fake provider\./);
    assert.match(bad.reason.requestID ?? '', /^req_/);

    // A line whose model call timed out: 504, OpenAI error shape, the provider's code.
    // (batch_expired and batch_cancelled lines never ran: they are sent again instead.)
    assert.equal(expired.status, 'rejected');
    assert.ok(expired.reason instanceof OpenAI.APIError, String(expired.reason));
    assert.equal(expired.reason.status, 504);
    assert.equal(expired.reason.code, 'request_timeout');
    assert.match(expired.reason.error.message, /timed out/);

    // A line missing from both result files: 502.
    assert.equal(missing.status, 'rejected');
    assert.ok(missing.reason instanceof OpenAI.InternalServerError, String(missing.reason));
    assert.equal(missing.reason.status, 502);
    assert.equal(missing.reason.code, 'missing_from_batch_results');

    // All four were one batch, and each error names it.
    const state = await fake.state();
    assert.equal(state.batches_created, 1);
    const batchId = state.batches[0].id;
    for (const settled of [bad, expired, missing])
      assert.equal(settled.reason.headers.get('x-llm-proxy-batch-id'), batchId);

    await eventually(async () => {
      const delta = statsDelta(statsBefore, await proxy.stats());
      assert.deepEqual(delta.requests, {
        total: 4,
        successful: 1,
        failed: 3,
        synthesized_error_responses: 2, // timeout and missing; the 400 is the provider's
      });
    });
  });

  test('transient upload failures are retried, not passed on', TEST, async () => {
    const { fake, proxy } = pair;
    await fake.config({ fail_next: { op: 'upload', status: 503, count: 2, retry_after: 0 } });
    const client = proxy.client(KEY_A);
    const [first, second] = await Promise.all([
      client.chat.completions.create(chat('first')),
      client.chat.completions.create(chat('second')),
    ]);
    assert.equal(first.choices[0].message.content, 'echo: first');
    assert.equal(second.choices[0].message.content, 'echo: second');
    const state = await fake.state();
    assert.equal(state.batches_created, 1);
  });

  test('an upload the provider refuses gives its error to every waiting client', TEST, async () => {
    const { fake, proxy } = pair;
    await fake.config({ fail_next: { op: 'upload', status: 400, count: 1 } });
    const client = proxy.client(KEY_A);
    const results = await Promise.allSettled([
      client.chat.completions.create(chat('first')),
      client.chat.completions.create(chat('second')),
    ]);
    for (const result of results) {
      assert.equal(result.status, 'rejected');
      assert.ok(result.reason instanceof OpenAI.BadRequestError, String(result.reason));
      assert.equal(result.reason.status, 400);
      assert.ok(result.reason.error?.message, 'the 400 has no error message');
      assert.ok(!result.reason.message.includes(KEY_A), result.reason.message);
    }
    const state = await fake.state();
    assert.equal(state.batches_created, 0);
    // The proxy keeps serving: the next request goes through.
    const next = await client.chat.completions.create(chat('again'));
    assert.equal(next.choices[0].message.content, 'echo: again');
  });

  test('a failed batch carries the provider message', TEST, async () => {
    const { fake, proxy } = pair;
    await fake.config({
      fail_batches: {
        count: 1,
        code: 'model_not_found', // (token_limit_exceeded is submitted again instead)
        message: 'The model gpt-4o-mini does not exist',
      },
    });
    const client = proxy.client(KEY_A);
    const error = await rejectsWith(
      client.chat.completions.create(chat('too much')),
      OpenAI.InternalServerError,
    );
    assert.equal(error.status, 502);
    assert.equal(error.code, 'batch_failed');
    assert.match(error.error.message, /does not exist/);
  });

  test('invalid JSON is refused with 400 in OpenAI error shape', TEST, async () => {
    const { fake, proxy } = pair;
    for (const body of ['{"model":', '[1,2]', '']) {
      const response = await proxy.fetch('/v1/chat/completions', {
        method: 'POST',
        headers: { authorization: `Bearer ${KEY_A}`, 'content-type': 'application/json' },
        body,
      });
      assert.equal(response.status, 400, `body ${JSON.stringify(body)}`);
      assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
      const error = assertOpenAiError(await response.json(), 400);
      assert.equal(error.type, 'invalid_request_error');
    }
    assert.equal((await fake.state()).requests_total, 0);
  });

  test('a missing model is a BadRequestError', TEST, async () => {
    const { fake, proxy } = pair;
    const client = proxy.client(KEY_A);
    const error = await rejectsWith(
      client.chat.completions.create(/** @type {any} */ ({ messages: chat('x').messages })),
      OpenAI.BadRequestError,
    );
    assert.equal(error.status, 400);
    assert.equal(error.param, 'model');
    assert.match(error.error.message, /model/);
    const numeric = await rejectsWith(
      client.embeddings.create(/** @type {any} */ ({ model: 4, input: 'x' })),
      OpenAI.BadRequestError,
    );
    assert.equal(numeric.param, 'model');
    assert.equal((await fake.state()).requests_total, 0);
  });

  test('no API key at all is 401', TEST, async () => {
    const { fake, proxy } = pair;
    for (const [method, path, body] of [
      ['POST', '/v1/chat/completions', JSON.stringify(chat('x'))], // batched
      ['GET', '/v1/models', undefined], // relayed
    ]) {
      const response = await proxy.fetch(path, {
        method,
        headers: body ? { 'content-type': 'application/json' } : {},
        body,
      });
      assert.equal(response.status, 401, `${method} ${path}`);
      const error = assertOpenAiError(await response.json(), 401);
      assert.equal(error.code, 'invalid_api_key');
    }
    // The SDK refuses an empty key, but lets a call drop its Authorization header.
    const client = proxy.client(KEY_A);
    const error = await rejectsWith(
      client.chat.completions.create(chat('x'), { headers: { Authorization: null } }),
      OpenAI.AuthenticationError,
    );
    assert.equal(error.status, 401);
    assert.equal((await fake.state()).requests_total, 0);
  });

  test('wrong method, unknown path, and the proxy still serves', TEST, async () => {
    const { fake, proxy } = pair;
    const headers = { authorization: `Bearer ${KEY_A}`, 'content-type': 'application/json' };

    const put = await proxy.fetch('/v1/chat/completions', { method: 'PUT', headers, body: '{}' });
    assert.equal(put.status, 405);
    assert.match(put.headers.get('allow') ?? '', /POST/);
    assertOpenAiError(await put.json(), 405);

    const getEmbeddings = await proxy.fetch('/v1/embeddings', { headers });
    assert.equal(getEmbeddings.status, 405);
    assert.equal(getEmbeddings.headers.get('allow'), 'POST');

    const outside = await proxy.fetch('/chat/completions', {
      method: 'POST',
      headers,
      body: JSON.stringify(chat('x')),
    });
    assert.equal(outside.status, 404);
    const error = assertOpenAiError(await outside.json(), 404);
    assert.match(error.message, /\/v1/);

    // An SDK pointed at the proxy without /v1 gets a NotFoundError that says what to fix.
    const misconfigured = new OpenAI({
      baseURL: proxy.origin,
      apiKey: KEY_A,
      organization: null,
      project: null,
      maxRetries: 0,
    });
    const notFound = await rejectsWith(
      misconfigured.chat.completions.create(chat('x')),
      OpenAI.NotFoundError,
    );
    assert.match(notFound.message, /\/v1/);

    const health = await proxy.fetch('/healthz');
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: 'ok' });
    const next = await proxy.client(KEY_A).chat.completions.create(chat('still here'));
    assert.equal(next.choices[0].message.content, 'echo: still here');
    const state = await fake.state();
    assert.equal(state.batches_created, 1);
    assert.equal(state.batches[0].custom_ids.length, 1);
  });
});
