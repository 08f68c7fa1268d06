// Drives the Responses API routes of a responsestore server with the official openai Node client.
// Usage: node responses.mjs BASE_URL, from a directory whose node_modules holds the openai package.
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.argv[2], apiKey: "key-a", maxRetries: 0, timeout: 30000 });
const seen = {};

seen.models = (await client.models.list()).data.map((model) => model.id);
seen.model = await client.models.retrieve("echo");
const first = await client.responses.create({ model: "echo", input: "hello from node", metadata: { k: "v" } });
seen.first = { status: first.status, text: first.output_text, metadata: first.metadata };
const second = await client.responses.create({ model: "echo", input: "and again", previous_response_id: first.id });
seen.retrieved = (await client.responses.retrieve(second.id)).output_text;
const replayed = [];
for await (const event of await client.responses.retrieve(second.id, { stream: true })) replayed.push(event.type);
seen.replayed = replayed;
const items = [];
for await (const item of client.responses.inputItems.list(second.id, { limit: 1 })) items.push(item.type);
seen.inputItems = items;
const compacted = await client.responses.compact({ model: "echo", previous_response_id: second.id, input: "more" });
seen.compacted = { object: compacted.object, kinds: compacted.output.map((item) => item.type) };
const later = await client.responses.create({ model: "echo", input: [...compacted.output, { role: "user", content: "next" }] });
seen.afterCompaction = later.status;
seen.tokens = await client.responses.inputTokens.count({ model: "echo", input: "one two three" });
const background = await client.responses.create({ model: "echo", input: "in the background", background: true });
seen.background = background.status;
await client.responses.delete(first.id);
try {
  await client.responses.retrieve(first.id);
  seen.gone = false;
} catch (error) {
  seen.gone = error.status;
}
try {
  await client.responses.create({ model: "nobody", input: "x" });
  seen.unknownModel = false;
} catch (error) {
  seen.unknownModel = [error.status, error.code, error.param];
}
console.log(JSON.stringify(seen));
