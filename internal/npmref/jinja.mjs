// Reference chat-template rendering with @huggingface/jinja (the renderer of
// transformers.js) for ragkv's tests. Reads JSON on stdin:
//   {"template": source, "specials": {"bos_token": ...}, "chats": [{"messages", "add_generation_prompt"}]}
// and writes {"text": [...], "error": [...]} (error: the message where rendering threw).
// @huggingface/jinja defines strftime_now (today's date); ragkv does not (so that the
// prompt prefix, and the chunk caches after it, stay the same from day to day), and
// Llama 3.x templates then print their default date, 26 Jul 2024. To compare the
// engines and not the clocks, the reference renders with the clock set to that day.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import path from "node:path";

const require = createRequire(path.join(process.env.RAGKV_NPM_PREFIX, "node_modules", "x.js"));
const { Template } = require("@huggingface/jinja");

const RealDate = Date;
globalThis.Date = class extends RealDate {
  constructor(...a) { super(...(a.length ? a : [2024, 6, 26, 12])); }
  static now() { return new RealDate(2024, 6, 26, 12).getTime(); }
};
const input = JSON.parse(readFileSync(0, "utf8"));
const template = new Template(input.template);
const out = { text: [], error: [] };
for (const c of input.chats) {
  try {
    out.text.push(template.render({ ...input.specials, messages: c.messages, add_generation_prompt: c.add_generation_prompt }));
    out.error.push("");
  } catch (e) {
    out.text.push("");
    out.error.push(String(e.message ?? e));
  }
}
process.stdout.write(JSON.stringify(out));
