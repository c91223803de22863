// Drives a ragkv server with the official `openai` npm client for ragkv's tests. Reads
// {"base_url", "model", "collection", "messages", "documents", "max_tokens"} on stdin and
// writes what the client returned for: a chat completion (temperature 0), the same
// streamed (with include_usage), a completion, embeddings, the model list, an error
// (unknown model), and the same chat with documents twice at blend.ratio 1 and once with
// method full.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import path from "node:path";

const require = createRequire(path.join(process.env.RAGKV_NPM_PREFIX, "node_modules", "x.js"));
const OpenAI = require("openai").default ?? require("openai");

const input = JSON.parse(readFileSync(0, "utf8"));
const client = new OpenAI({ baseURL: input.base_url, apiKey: "unused", maxRetries: 0 });
const out = {};
const base = { model: input.model, messages: input.messages, max_tokens: input.max_tokens, temperature: 0 };

const chat = await client.chat.completions.create(base);
out.chat = { text: chat.choices[0].message.content, finish: chat.choices[0].finish_reason, usage: chat.usage, ragkv: chat.ragkv };

const stream = await client.chat.completions.create({ ...base, stream: true, stream_options: { include_usage: true } });
let text = "", finish = null, usage = null, chunks = 0;
for await (const c of stream) {
  chunks++;
  for (const ch of c.choices) {
    text += ch.delta?.content ?? "";
    if (ch.finish_reason) finish = ch.finish_reason;
  }
  if (c.usage) usage = c.usage;
}
out.stream = { text, finish, usage, chunks };

const cmpl = await client.completions.create({ model: input.model, prompt: "Once upon a time", max_tokens: 8, temperature: 0 });
out.completion = { text: cmpl.choices[0].text, finish: cmpl.choices[0].finish_reason, usage: cmpl.usage };

const emb = await client.embeddings.create({ model: input.collection, input: ["the cat sat", "a fast boat"] });
out.embeddings = { count: emb.data.length, dim: emb.data[0].embedding.length, model: emb.model };

const models = await client.models.list();
out.models = models.data.map((m) => m.id);

try {
  await client.chat.completions.create({ ...base, model: "gpt-nonexistent" });
  out.error = { status: 0 };
} catch (e) {
  out.error = { status: e.status, type: e.type ?? e.error?.type, code: e.code ?? e.error?.code, message: e.message };
}

const rag = (method, ratio) => client.chat.completions.create({ ...base, documents: input.documents, blend: { method, ratio } });
const first = await rag("cacheblend", 1);
const second = await rag("cacheblend", 1);
const full = await rag("full", 0);
const pick = (r) => ({ text: r.choices[0].message.content, usage: r.usage, ragkv: r.ragkv });
out.rag = { first: pick(first), second: pick(second), full: pick(full) };
process.stdout.write(JSON.stringify(out));
