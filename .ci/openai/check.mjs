// check.mjs: `bankai-metal serve` checked with the npm `openai` client (run by
// .ci/openai-check.sh).
//
//   node check.mjs write-patches DIR INFO_JSON   write alpha, beta (for this model) and alien
//                                                (for another model) into DIR
//   node check.mjs check URL BIN DIR KEY         the checks and the load test
//
// Every answer is compared with what `BIN generate -m builtin:tiny --patch ... --seed S` prints
// (the reference); exit status 1 on any difference, error or lost answer.
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import OpenAI from "openai";

const [, , mode, ...args] = process.argv;

// Row flips of every projection, below 128 rows (the smallest projection of the tiny model).
function rowFlips(seed, n) {
  const projs = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];
  const seen = new Set();
  const flips = [];
  let x = seed;
  const next = () => (x = (x * 1103515245 + 12345) % 2147483648);
  while (flips.length < n) {
    const f = { layer: next() % 2, proj: projs[next() % projs.length], row: next() % 128 };
    const k = `${f.layer}.${f.proj}.${f.row}`;
    if (!seen.has(k)) {
      seen.add(k);
      flips.push(f);
    }
  }
  return flips;
}

function patchFile(name, flips, fingerprint) {
  return JSON.stringify({
    version: 1, format: "bankai_row_xor_v1", name, description: "openai-check test patch",
    base_model: "bankai-tiny", flips, metadata: {}, bankai_metal: { fingerprint },
  }, null, 2);
}

if (mode === "write-patches") {
  const [dir, info] = args;
  const fp = JSON.parse(info).fingerprint;
  if (!fp) throw new Error(`no fingerprint in ${info}`);
  writeFileSync(join(dir, "alpha.json"), patchFile("alpha", rowFlips(1, 60), fp));
  writeFileSync(join(dir, "beta.json"), patchFile("beta", rowFlips(2, 60), fp));
  writeFileSync(join(dir, "alien.json"), patchFile("alien", rowFlips(3, 5), "gguf:0000000000000000"));
  process.exit(0);
}
if (mode !== "check") {
  console.error("usage: check.mjs write-patches DIR INFO_JSON | check URL BIN DIR KEY");
  process.exit(2);
}

const [url, bin, dir, key] = args;
const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: key, maxRetries: 0, timeout: 60_000 });
let failures = 0;
const fail = (msg) => {
  failures++;
  console.error(`FAIL: ${msg}`);
};

// The stacks: [model name suffix, patch files].
const stacks = [
  ["", []],
  ["+alpha", ["alpha"]],
  ["+beta", ["beta"]],
  ["+alpha+beta", ["alpha", "beta"]],
];

// reference runs generate and returns its text (without the final newline) and token count.
function reference(patches, prompt, seed, n, raw) {
  const argv = ["generate", "-m", "builtin:tiny", "--seed", String(seed), "-n", String(n), "-p", prompt, "--verbose"];
  if (raw) argv.push("--raw");
  for (const p of patches) argv.push("--patch", join(dir, `${p}.json`));
  const r = spawnSync(bin, argv, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`generate failed: ${r.stderr}`);
  const m = /generation: (\d+) tokens/.exec(r.stderr);
  return { text: r.stdout.replace(/\n$/, ""), tokens: Number(m[1]) };
}

async function chat(model, prompt, seed, n, stream) {
  const req = { model, messages: [{ role: "user", content: prompt }], max_tokens: n, seed };
  if (!stream) {
    const r = await client.chat.completions.create(req);
    return { text: r.choices[0].message.content, tokens: r.usage.completion_tokens, finish: r.choices[0].finish_reason };
  }
  const s = await client.chat.completions.create({ ...req, stream: true, stream_options: { include_usage: true } });
  let text = "", tokens = -1, finish = null;
  for await (const c of s) {
    if (c.usage) tokens = c.usage.completion_tokens;
    for (const ch of c.choices) {
      text += ch.delta?.content ?? "";
      finish = ch.finish_reason ?? finish;
    }
  }
  return { text, tokens, finish };
}

async function complete(model, prompt, seed, n, stream) {
  const req = { model, prompt, max_tokens: n, seed };
  if (!stream) {
    const r = await client.completions.create(req);
    return { text: r.choices[0].text, tokens: r.usage.completion_tokens };
  }
  const s = await client.completions.create({ ...req, stream: true, stream_options: { include_usage: true } });
  let text = "", tokens = -1;
  for await (const c of s) {
    if (c.usage) tokens = c.usage.completion_tokens;
    for (const ch of c.choices) text += ch.text ?? "";
  }
  return { text, tokens };
}

function same(what, got, want) {
  if (got.text !== want.text || got.tokens !== want.tokens) {
    fail(`${what}: got ${JSON.stringify(got.text)} (${got.tokens} tokens), want ${JSON.stringify(want.text)} (${want.tokens} tokens)`);
    return false;
  }
  return true;
}

// 1. /v1/models: the base, every patch, the alien one refused.
const models = [];
for await (const m of client.models.list()) models.push(m);
const base = models[0].id;
const ids = models.map((m) => m.id).sort();
const wantIds = [base, `${base}+alien`, `${base}+alpha`, `${base}+beta`].sort();
if (JSON.stringify(ids) !== JSON.stringify(wantIds)) fail(`models: ${ids}, want ${wantIds}`);
const alien = models.find((m) => m.id === `${base}+alien`);
if (!alien || alien.ready !== false || !/made for model/.test(alien.error ?? "")) fail(`alien patch not reported: ${JSON.stringify(alien)}`);
console.log(`models: ${ids.join(", ")}`);

// 2. Every stack, chat and completions, streamed and not, all interleaved and concurrent.
const cases = [];
for (const [suffix, patches] of stacks) {
  for (const seed of [1, 2]) {
    const prompt = `Tell me about XOR number ${seed}.`;
    cases.push({ kind: "chat", model: base + suffix, patches, prompt, seed, n: 24, want: reference(patches, prompt, seed, 24, false) });
    cases.push({ kind: "completion", model: base + suffix, patches, prompt: `Once upon a time ${seed}`, seed, n: 16,
      want: reference(patches, `Once upon a time ${seed}`, seed, 16, true) });
  }
}
const distinct = new Set(cases.filter((c) => c.kind === "chat" && c.seed === 1).map((c) => c.want.text));
if (distinct.size !== stacks.length) fail(`the four stacks should give four different answers, got ${distinct.size}`);
const run = (c, stream) => (c.kind === "chat" ? chat : complete)(c.model, c.prompt, c.seed, c.n, stream);
const interleaved = [];
for (const stream of [false, true]) for (const c of cases) interleaved.push([c, stream]);
const results = await Promise.allSettled(interleaved.map(([c, stream]) => run(c, stream)));
let ok = 0;
results.forEach((r, i) => {
  const [c, stream] = interleaved[i];
  const what = `${c.kind} ${c.model} seed ${c.seed}${stream ? " (stream)" : ""}`;
  if (r.status === "rejected") fail(`${what}: ${r.reason}`);
  else if (same(what, r.value, c.want)) ok++;
});
console.log(`stacks: ${ok}/${interleaved.length} answers identical to generate --patch (token for token)`);

// 3. Errors reach the client with the right status.
async function expectStatus(what, status, re, f) {
  try {
    await f();
    fail(`${what}: no error`);
  } catch (e) {
    if (e.status !== status || !re.test(e.message)) fail(`${what}: got ${e.status} ${e.message}, want ${status} ${re}`);
  }
}
const msg = [{ role: "user", content: "x" }];
await expectStatus("bad patch", 400, /alien/, () => client.chat.completions.create({ model: `${base}+alien`, messages: msg }));
await expectStatus("unknown patch", 404, /gamma/, () => client.chat.completions.create({ model: `${base}+gamma`, messages: msg }));
await expectStatus("unknown model", 404, /unknown model/, () => client.chat.completions.create({ model: "gpt-4o", messages: msg }));
await expectStatus("too long", 400, /context/, () => client.completions.create({ model: base, prompt: "word ".repeat(5000), max_tokens: 1 }));
await expectStatus("wrong key", 401, /API key/, () =>
  new OpenAI({ baseURL: `${url}/v1`, apiKey: "wrong", maxRetries: 0 }).chat.completions.create({ model: base, messages: msg }));
console.log("errors: checked");

// 4. Load: 200 requests, 8 at a time, mixed stacks and kinds, half streamed.
const total = 200, workers = 8;
const lat = [];
let wrong = 0, lost = 0, next = 0;
const t0 = performance.now();
await Promise.all(Array.from({ length: workers }, async () => {
  while (next < total) {
    const i = next++;
    const c = cases[(i * 7) % cases.length];
    const t = performance.now();
    try {
      const got = await run(c, i % 2 === 1);
      lat.push(performance.now() - t);
      if (got.text !== c.want.text || got.tokens !== c.want.tokens) wrong++;
    } catch (e) {
      lost++;
      console.error(`load request ${i}: ${e}`);
    }
  }
}));
const secs = (performance.now() - t0) / 1000;
lat.sort((a, b) => a - b);
const pct = (p) => lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))]?.toFixed(1);
console.log(`load: ${total} requests, ${workers} concurrent, ${(total / secs).toFixed(1)} requests/s, ` +
  `p50 ${pct(50)} ms, p99 ${pct(99)} ms, wrong ${wrong}, lost ${lost}`);
if (wrong + lost > 0) fail(`load: ${wrong} wrong and ${lost} lost answers`);

const health = await (await fetch(`${url}/health`)).json();
const st = health.stats;
console.log(`stack switches: ${st.switches}, mean ${(st.switch_total_ns / Math.max(st.switches, 1) / 1000).toFixed(1)} µs, ` +
  `max ${(st.switch_max_ns / 1000).toFixed(1)} µs`);
process.exit(failures > 0 ? 1 : 0);
