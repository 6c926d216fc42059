// SPDX-License-Identifier: GPL-3.0-or-later
// Several providers behind one base URL (issue 12), with the official Node SDK: two fake
// providers of different profiles and keys (OpenAI, and Gemini's compatibility layer under
// /v1beta/openai with its own key), requests for both models in one run. Each batch goes to its
// provider with that provider's key.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { FakeOpenAI, LlmProxy, SERVER_KEY, chat } from './harness.mjs';

const TEST = { timeout: 60_000 };
const GEMINI_KEY = 'gm-e2e-gemini-key-0123456789';

describe('two providers', () => {
  let openai;
  let gemini;
  let proxy;
  before(async () => {
    openai = await FakeOpenAI.start(['--profile', 'openai', '--accept-key', SERVER_KEY]);
    gemini = await FakeOpenAI.start(['--profile', 'gemini', '--accept-key', GEMINI_KEY]);
    proxy = await LlmProxy.start({
      upstream: openai.baseURL,
      apiKey: SERVER_KEY,
      env: { GEMINI_API_KEY: GEMINI_KEY },
      extraArgs: ['--provider', `gemini=gemini;url=${gemini.baseURL}`, '--route', 'gemini-*=gemini'],
    });
  });
  after(async () => {
    await proxy?.stop([SERVER_KEY, GEMINI_KEY]);
    await openai?.stop();
    await gemini?.stop();
  });

  test('each model is batched at its own provider with its own key', TEST, async () => {
    const client = proxy.client('placeholder');
    const answers = await Promise.all([
      client.chat.completions.create(chat('to openai 1')),
      client.chat.completions.create(chat('to openai 2')),
      client.chat.completions.create(chat('to gemini 1', 'gemini-2.5-flash')),
      client.chat.completions.create(chat('to gemini 2', 'gemini-2.5-flash')),
    ]);
    assert.deepEqual(
      answers.map((a) => a.choices[0].message.content),
      ['echo: to openai 1', 'echo: to openai 2', 'echo: to gemini 1', 'echo: to gemini 2'],
    );
    const atOpenAi = await openai.state();
    const atGemini = await gemini.state();
    assert.equal(atGemini.profile, 'gemini');
    assert.equal(atOpenAi.batches_created, 1);
    assert.equal(atOpenAi.batches[0].model, 'gpt-4o-mini');
    assert.equal(atOpenAi.batches[0].api_key, SERVER_KEY);
    assert.equal(atGemini.batches_created, 1);
    assert.equal(atGemini.batches[0].model, 'gemini-2.5-flash');
    assert.equal(atGemini.batches[0].api_key, GEMINI_KEY);
    assert.equal(atGemini.batches[0].custom_ids.length, 2);
  });
});
