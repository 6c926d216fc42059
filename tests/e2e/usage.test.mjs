// SPDX-License-Identifier: GPL-3.0-or-later
// Tokens and money (issue 10): after a few SDK calls, GET /usage shows the tokens their answers
// reported, batched and relayed alike.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { KEY_A, chat, eventually, sharedPair } from './harness.mjs';

const TEST = { timeout: 60_000 };

describe('usage', () => {
  const pair = sharedPair();

  test('/usage shows the tokens of the SDK calls', TEST, async () => {
    const { proxy } = pair;
    const client = proxy.client(KEY_A);
    const totals = async () => {
      const response = await proxy.fetch('/usage?group_by=route');
      assert.equal(response.status, 200);
      return (await response.json()).totals;
    };
    const before = await totals();
    const answers = await Promise.all([
      client.chat.completions.create(chat('count these words')),
      client.chat.completions.create(chat('and these')),
      client.chat.completions.create(chat('relayed one'), { headers: { 'X-Batch': 'off' } }),
    ]);
    const input = answers.reduce((n, a) => n + a.usage.prompt_tokens, 0);
    const output = answers.reduce((n, a) => n + a.usage.completion_tokens, 0);
    assert.ok(input > 0 && output > 0);
    await eventually(async () => {
      const after = await totals();
      assert.equal(after.requests - before.requests, 3);
      assert.equal(after.input_tokens - before.input_tokens, input);
      assert.equal(after.output_tokens - before.output_tokens, output);
      assert.ok(Number(after.cost_usd) > Number(before.cost_usd));
    });
  });
});
