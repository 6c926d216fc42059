// SPDX-License-Identifier: GPL-3.0-or-later
// Proxy tokens (issue 9) with the official SDK: its apiKey is a proxy token, the proxy takes it
// off and the provider sees the configured key; a client's own provider key rides in
// X-Provider-Authorization (the SDK's defaultHeaders) when no key is configured.

import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import OpenAI from 'openai';

import { KEY_A, SERVER_KEY, chat, startPair } from './harness.mjs';

const TEST = { timeout: 60_000 };
const ALICE = 'llmp-alice-0123456789abcdef0123';
const BOB = 'llmp-bob-fedcba9876543210fedcba';

function tokensFile() {
  const dir = mkdtempSync(join(tmpdir(), 'llm-proxy-tokens-'));
  const file = join(dir, 'tokens');
  writeFileSync(file, `# e2e\nalice ${ALICE}\nbob ${BOB}\n`);
  chmodSync(file, 0o600);
  return { dir, file };
}

describe('proxy tokens with a configured key', () => {
  let pair;
  let tokens;
  before(async () => {
    tokens = tokensFile();
    pair = await startPair({ apiKey: SERVER_KEY, extraArgs: ['--tokens-file', tokens.file] });
  });
  after(async () => {
    await pair?.stop([KEY_A, SERVER_KEY, ALICE, BOB]);
    rmSync(tokens.dir, { recursive: true, force: true });
  });

  test('the SDK with a token as its apiKey is served under the configured key', TEST, async () => {
    const { fake, proxy } = pair;
    const [a, b] = await Promise.all([
      proxy.client(ALICE).chat.completions.create(chat('from alice')),
      proxy.client(BOB).chat.completions.create(chat('from bob')),
    ]);
    assert.equal(a.choices[0].message.content, 'echo: from alice');
    assert.equal(b.choices[0].message.content, 'echo: from bob');
    const state = await fake.state();
    assert.equal(state.batches[0].api_key, SERVER_KEY);
    const echo = await proxy.client(ALICE).get('/echo/who');
    assert.equal(echo.headers.authorization, `Bearer ${SERVER_KEY}`);
  });

  test('a wrong token or a provider key is refused with 401', TEST, async () => {
    const { proxy } = pair;
    for (const key of ['not-a-token-000000000000', KEY_A]) {
      await assert.rejects(proxy.client(key).chat.completions.create(chat('x')), (error) => {
        assert.ok(error instanceof OpenAI.AuthenticationError, String(error));
        assert.equal(error.code, 'invalid_api_key');
        return true;
      });
    }
    assert.equal((await proxy.fetch('/healthz')).status, 200);
    assert.equal((await proxy.fetch('/stats')).status, 401);
  });
});

describe('proxy tokens with the client’s own provider key', () => {
  let pair;
  let tokens;
  before(async () => {
    tokens = tokensFile();
    pair = await startPair({ extraArgs: ['--tokens-file', tokens.file] });
  });
  after(async () => {
    await pair?.stop([KEY_A, SERVER_KEY, ALICE, BOB]);
    rmSync(tokens.dir, { recursive: true, force: true });
  });

  test('X-Provider-Authorization carries the key, the token stays here', TEST, async () => {
    const { fake, proxy } = pair;
    const client = proxy.client(ALICE, {
      defaultHeaders: { 'X-Provider-Authorization': `Bearer ${KEY_A}` },
    });
    const answer = await client.chat.completions.create(chat('own key'));
    assert.equal(answer.choices[0].message.content, 'echo: own key');
    assert.equal((await fake.state()).batches[0].api_key, KEY_A);
    const echo = await client.get('/echo/who');
    assert.equal(echo.headers.authorization, `Bearer ${KEY_A}`);
    assert.equal(echo.headers['x-provider-authorization'], undefined);
  });
});
