// Drives a responsestore server with the official openai Node client; prints one JSON line of what it saw.
// Usage: node client.mjs BASE_URL, from a directory whose node_modules holds the openai package.
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.argv[2], apiKey: "key-a", maxRetries: 0, timeout: 30000 });
const seen = {};

const conversation = await client.conversations.create({
  items: [{ type: "message", role: "user", content: "hello" }],
  metadata: { topic: "node" },
});
seen.conversation = conversation;
seen.retrieved = await client.conversations.retrieve(conversation.id);
seen.updated = await client.conversations.update(conversation.id, { metadata: { topic: "changed" } });
const added = await client.conversations.items.create(conversation.id, {
  items: [1, 2, 3].map((n) => ({ type: "message", role: "user", content: `m${n}` })),
});
seen.added = added.data.length;
const response = await client.responses.create({ model: "m", input: "from node", conversation: conversation.id });
seen.response = { status: response.status, text: response.output_text, conversation: response.conversation };
const listed = [];
for await (const item of client.conversations.items.list(conversation.id, { limit: 2, order: "asc" })) {
  listed.push(item.content.map((part) => part.text).join(""));
}
seen.listed = listed;
const first = await client.conversations.items.retrieve(added.data[0].id, { conversation_id: conversation.id });
seen.item = first.id === added.data[0].id;
await client.conversations.items.delete(added.data[0].id, { conversation_id: conversation.id });
const streamed = [];
const stream = await client.responses.create({ model: "m", input: "streamed", conversation: conversation.id, stream: true });
for await (const event of stream) streamed.push(event.type);
seen.streamed = streamed;
seen.deleted = await client.conversations.delete(conversation.id);
try {
  await client.conversations.retrieve(conversation.id);
  seen.gone = false;
} catch (error) {
  seen.gone = error.status;
}
console.log(JSON.stringify(seen));
