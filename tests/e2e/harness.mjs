// SPDX-License-Identifier: GPL-3.0-or-later
// The end-to-end harness: starts the fake OpenAI server (FAKE_OPENAI) and the built llm-proxy
// (LLM_PROXY) as real processes on ephemeral loopback ports, gives tests an OpenAI SDK client
// pointed at the proxy, and stops both with SIGTERM afterwards.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { after, afterEach, before, beforeEach } from 'node:test';

import OpenAI from 'openai';

// Sanitizer builds start and answer more slowly; these are upper bounds, not expectations.
const STARTUP_TIMEOUT_MS = 30_000;
const EXIT_TIMEOUT_MS = 15_000;
const REQUEST_TIMEOUT_MS = 30_000;

// Keys the tests use. They look like real keys so a leak into the logs would be visible.
export const KEY_A = 'sk-e2e-key-aaaa-0123456789';
export const KEY_B = 'sk-e2e-key-bbbb-0123456789';
export const SERVER_KEY = 'sk-server-e2e-zzzz-0123456789';

function executable(variable) {
  const path = process.env[variable];
  assert.ok(
    path,
    `${variable} is not set: run these tests through CTest (ctest -R e2e), or set ` +
      `${variable} to the built executable`,
  );
  return path;
}

// Thrown when a server process has died: no point in waiting or retrying after that.
class ProcessDied extends Error {}

// A child process whose stdout and stderr are collected, with a wait for a "listening" line.
class Child {
  constructor(name, file, args, env) {
    this.name = name;
    this.stdout = '';
    this.stderr = '';
    this.exited = new Promise((resolve) => {
      this.process = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
      this.process.on('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
      this.process.on('error', (error) => {
        this.exit = { code: null, signal: null, error };
        resolve(this.exit);
      });
    });
    this.process.stdout.setEncoding('utf8');
    this.process.stderr.setEncoding('utf8');
    this.process.stdout.on('data', (text) => {
      this.stdout += text;
    });
    this.process.stderr.on('data', (text) => {
      this.stderr += text;
    });
  }

  // Resolves with the first match of `pattern` in stdout; rejects if the process exits first.
  async waitForLine(pattern) {
    const deadline = Date.now() + STARTUP_TIMEOUT_MS;
    while (Date.now() < deadline) {
      const match = this.stdout.match(pattern);
      if (match) return match;
      if (this.exit) {
        throw new Error(
          `${this.name} exited (${JSON.stringify(this.exit)}) before it was ready\n` +
            `stdout:\n${this.stdout}\nstderr:\n${this.stderr}`,
        );
      }
      await sleep(20);
    }
    throw new Error(
      `${this.name} printed no line matching ${pattern} within ${STARTUP_TIMEOUT_MS} ms\n` +
        `stdout:\n${this.stdout}\nstderr:\n${this.stderr}`,
    );
  }

  // SIGTERM, then the exit status; SIGKILL (and a failure) if it does not exit in time.
  async stop() {
    if (this.process.exitCode !== null || this.process.signalCode !== null) return this.exited;
    this.process.kill('SIGTERM');
    const timedOut = Symbol('timeout');
    let timer;
    const result = await Promise.race([
      this.exited,
      new Promise((resolve) => {
        timer = setTimeout(resolve, EXIT_TIMEOUT_MS, timedOut);
      }),
    ]);
    clearTimeout(timer); // a pending timer would keep the test process alive
    if (result === timedOut) {
      this.process.kill('SIGKILL');
      await this.exited;
      throw new Error(`${this.name} did not exit within ${EXIT_TIMEOUT_MS} ms of SIGTERM`);
    }
    return result;
  }

  get output() {
    return this.stdout + this.stderr;
  }

  // Its output for an error message: in full the first time, then a pointer to it.
  report() {
    if (this.reported) return `(${this.name}'s output is shown with the first failure above)`;
    this.reported = true;
    return `${this.name}'s output:\n${this.output}`;
  }

  // Throws, with the process's output (a sanitizer report, say), if it has exited.
  assertAlive() {
    if (this.exit)
      throw new ProcessDied(`${this.name} died (${JSON.stringify(this.exit)}); ${this.report()}`);
  }
}

// The fake OpenAI provider with its /_fake control endpoints.
export class FakeOpenAI {
  // `extraArgs`: e.g. ['--profile', 'gemini', '--accept-key', KEY] to play another provider.
  static start(extraArgs = []) {
    return launchFake(new FakeOpenAI(), 'fake-openai', 'FAKE_OPENAI', extraArgs);
  }

  async control(method, path, body) {
    const response = await fetch(`${this.origin}/_fake/${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    assert.equal(response.status, 200, `/_fake/${path} answered ${response.status}: ${text}`);
    return JSON.parse(text);
  }

  state() {
    return this.control('GET', 'state');
  }
  reset() {
    return this.control('POST', 'reset');
  }
  config(settings) {
    return this.control('POST', 'config', settings);
  }

  async stop() {
    const { code, signal } = await this.child.stop();
    assert.equal(
      code,
      0,
      `${this.child.name} exited with ${code} (signal ${signal}); ${this.child.report()}`,
    );
  }
}

// The fake Anthropic API (fake-anthropic) with the same /_fake control endpoints.
export class FakeAnthropic extends FakeOpenAI {
  static start(extraArgs = []) {
    return launchFake(new FakeAnthropic(), 'fake-anthropic', 'FAKE_ANTHROPIC', extraArgs);
  }
}

// Starts a fake server (`variable`: the environment variable naming its binary) on a free port
// and fills in `fake.child`, `fake.baseURL` and `fake.origin` from the line it prints.
async function launchFake(fake, name, variable, extraArgs) {
  fake.child = new Child(name, executable(variable), ['--port', '0', ...extraArgs], {
    ...process.env,
  });
  let match;
  try {
    match = await fake.child.waitForLine(/listening on (http:\/\/127\.0\.0\.1:\d+\/\S*)/);
  } catch (error) {
    await fake.child.stop().catch(() => {});
    throw error;
  }
  fake.baseURL = match[1];
  fake.origin = new URL(fake.baseURL).origin;
  return fake;
}

// One llm-proxy process. Without `apiKey` its environment has no OPENAI_API_KEY, so each
// client's bearer key is passed through. `restartOf`: a proxy killed before, whose data
// directory and port this one takes over (a restart after a crash).
export class LlmProxy {
  static async start({
    upstream,
    apiKey,
    batchWindow = '0.5',
    extraArgs = [],
    env: extraEnv = {},
    restartOf,
  } = {}) {
    const proxy = new LlmProxy();
    proxy.dataDir = restartOf?.dataDir ?? mkdtempSync(join(tmpdir(), 'llm-proxy-e2e-'));
    const env = { ...process.env };
    delete env.OPENAI_API_KEY;
    if (apiKey !== undefined) env.OPENAI_API_KEY = apiKey;
    Object.assign(env, extraEnv);
    const args = [
      '--no-gui',
      '--verbose', // the most log text, so the key-leak check below sees everything
      '--listen',
      restartOf ? `127.0.0.1:${new URL(restartOf.origin).port}` : '127.0.0.1:0',
      '--upstream',
      upstream,
      '--batch-window',
      batchWindow,
      '--poll-interval',
      '0.1', // the shortest the proxy accepts
      '--data-dir',
      proxy.dataDir,
      ...extraArgs,
    ];
    let match;
    try {
      proxy.child = new Child('llm-proxy', executable('LLM_PROXY'), args, env);
      match = await proxy.child.waitForLine(
        /llm-proxy listening on (http:\/\/127\.0\.0\.1:\d+\/v1)/,
      );
    } catch (error) {
      await proxy.child?.stop().catch(() => {});
      rmSync(proxy.dataDir, { recursive: true, force: true });
      throw error;
    }
    proxy.baseURL = match[1];
    proxy.origin = new URL(proxy.baseURL).origin;
    return proxy;
  }

  // An OpenAI SDK client for this proxy. maxRetries 0: a retry would hide a failed answer.
  client(apiKey = KEY_A, options = {}) {
    return new OpenAI({
      baseURL: this.baseURL,
      apiKey,
      // Explicit, so OPENAI_ORG_ID / OPENAI_PROJECT_ID in the environment cannot add headers.
      organization: null,
      project: null,
      maxRetries: 0,
      timeout: REQUEST_TIMEOUT_MS,
      ...options,
    });
  }

  fetch(path, init = {}) {
    this.child.assertAlive();
    return fetch(`${this.origin}${path}`, {
      ...init,
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  }

  assertAlive() {
    this.child.assertAlive();
  }

  async stats() {
    const response = await this.fetch('/stats');
    assert.equal(response.status, 200);
    return response.json();
  }

  // Waits until nothing is queued or in flight, so the fake can be reset safely.
  // Waits until nothing is queued or in flight and, given the fake, until the proxy has deleted
  // every provider file it made (it deletes them just after answering).
  async idle(fake) {
    this.child.assertAlive(); // fail at once, not after eventually()'s timeout
    await eventually(async () => {
      this.child.assertAlive();
      const stats = await this.stats();
      assert.equal(stats.queued, 0, 'requests still queued');
      assert.equal(stats.in_flight, 0, 'requests still in flight');
      if (fake) assert.equal((await fake.state()).files_live, 0, 'provider files not deleted yet');
    });
  }


  // SIGKILL, as a crash: nothing is shut down cleanly, and the data directory stays for the
  // proxy started again with `restartOf`.
  async kill() {
    this.child.process.kill('SIGKILL');
    return this.child.exited;
  }

  // Stops the proxy, checks it exited 0, and that no key reached its output.
  async stop(secrets = [KEY_A, KEY_B, SERVER_KEY]) {
    try {
      const { code, signal } = await this.child.stop();
      assert.equal(
        code,
        0,
        `llm-proxy exited with ${code} (signal ${signal}); ${this.child.report()}`,
      );
      for (const secret of secrets) {
        assert.ok(
          !this.child.output.includes(secret) && !this.child.output.includes(secret.slice(-16)),
          `an API key appears in llm-proxy's output:\n${this.child.output}`,
        );
      }
    } finally {
      rmSync(this.dataDir, { recursive: true, force: true });
    }
  }
}

// Retries `check` until it stops throwing or `timeoutMs` passes (then rethrows its error).
export async function eventually(check, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (error instanceof ProcessDied || Date.now() > deadline) throw error;
      await sleep(50);
    }
  }
}

// A loopback port nothing listens on (bound, then released).
export async function closedPort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

// Asserts that `promise` rejects with an instance of `type` and returns the error.
export async function rejectsWith(promise, type) {
  try {
    await promise;
  } catch (error) {
    assert.ok(
      error instanceof type,
      `expected ${type.name}, got ${error?.constructor?.name}: ${error?.message}`,
    );
    return error;
  }
  assert.fail(`expected ${type.name}, but the call succeeded`);
}

// Counters of `after` minus those of `before` ({requests: {...}, batches: {...}, relayed}).
export function statsDelta(before, after) {
  const counts = (group) =>
    Object.fromEntries(
      ['total', 'successful', 'failed', 'synthesized_error_responses']
        .filter((key) => key in after[group])
        .map((key) => [key, after[group][key] - before[group][key]]),
    );
  return {
    requests: counts('requests'),
    batches: counts('batches'),
    relayed: after.relayed - before.relayed,
  };
}

// The body of a chat completion request with one user message.
export function chat(content, model = 'gpt-4o-mini') {
  return { model, messages: [{ role: 'user', content }] };
}

// Starts a fake and a proxy in front of it for one test file; `fixture.stop()` ends both.
export async function startPair(proxyOptions = {}) {
  const fake = await FakeOpenAI.start();
  let proxy;
  try {
    proxy = await LlmProxy.start({ upstream: fake.baseURL, ...proxyOptions });
  } catch (error) {
    await fake.stop().catch(() => {});
    throw error;
  }
  return {
    fake,
    proxy,
    // For afterEach(): a crash shows up in the test that caused it, with the proxy's output.
    assertAlive() {
      fake.child.assertAlive();
      proxy.child.assertAlive();
    },
    async stop() {
      try {
        await proxy.stop();
      } finally {
        await fake.stop();
      }
    },
  };
}

// The hooks every suite shares: one fake + proxy pair for the whole suite (stopped, and checked
// to exit cleanly, at the end), a quiet proxy and a reset fake before each test, and a check
// after each that neither process died. Call inside describe(); the object returned stands for
// the pair once the suite has started.
export function sharedPair(proxyOptions = {}) {
  const pair = {};
  before(async () => {
    Object.setPrototypeOf(pair, await startPair(proxyOptions));
  });
  after(async () => {
    if (pair.stop) await pair.stop();
  });
  beforeEach(async () => {
    await pair.proxy.idle(pair.fake);
    await pair.fake.reset();
  });
  afterEach(() => pair.assertAlive());
  return pair;
}
