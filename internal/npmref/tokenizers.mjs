// Reference tokenization with @lenml/tokenizers (a fork of transformers.js) for ragkv's
// tests. Reads JSON on stdin:
//   {"dir": folder with tokenizer.json and tokenizer_config.json,
//    "texts": [...], "bos_texts": [...], "special_texts": [...],
//    "chats": [{"messages": [...], "add_generation_prompt": bool}]}
// and writes {"plain", "bos", "special", "chat_text", "chat_ids"}:
//   plain: encode(text, {add_special_tokens: false}); bos: encode(text) (the
//   post-processor's BOS); special: encode(text, {add_special_tokens: false}) of texts
//   holding special-token texts; chat_text: the model's chat template rendered with
//   @huggingface/jinja (the renderer of current transformers.js; the one bundled in
//   @lenml/tokenizers predates tests such as `is string` that Gemma 3's template uses)
//   with the variables transformers passes (messages, add_generation_prompt and the
//   special tokens of tokenizer_config.json), and chat_ids: its tokens as
//   apply_chat_template(tokenize=True) takes them (encode without added special tokens).
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import path from "node:path";

const require = createRequire(path.join(process.env.RAGKV_NPM_PREFIX, "node_modules", "x.js"));
const { TokenizerLoader } = require("@lenml/tokenizers");
const { Template } = require("@huggingface/jinja");

const input = JSON.parse(readFileSync(0, "utf8"));
const config = JSON.parse(readFileSync(path.join(input.dir, "tokenizer_config.json"), "utf8"));
const tokenizer = TokenizerLoader.fromPreTrained({
  tokenizerJSON: JSON.parse(readFileSync(path.join(input.dir, "tokenizer.json"), "utf8")),
  tokenizerConfig: config,
});
// transformers' special_tokens_map: the named special tokens as strings.
const specials = {};
for (const k of ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"]) {
  const v = config[k];
  if (v != null) specials[k] = typeof v === "string" ? v : v.content;
}
if (config.additional_special_tokens) specials.additional_special_tokens = config.additional_special_tokens;
let template = null;
const out = { plain: [], bos: [], special: [], chat_text: [], chat_ids: [] };
for (const t of input.texts ?? []) out.plain.push(Array.from(tokenizer.encode(t, { add_special_tokens: false })));
for (const t of input.bos_texts ?? []) out.bos.push(Array.from(tokenizer.encode(t)));
for (const t of input.special_texts ?? []) out.special.push(Array.from(tokenizer.encode(t, { add_special_tokens: false })));
for (const c of input.chats ?? []) {
  template ??= new Template(input.template ?? config.chat_template);
  const text = template.render({ ...specials, messages: c.messages, add_generation_prompt: c.add_generation_prompt });
  out.chat_text.push(text);
  out.chat_ids.push(Array.from(tokenizer.encode(text, { add_special_tokens: false })));
}
process.stdout.write(JSON.stringify(out));
