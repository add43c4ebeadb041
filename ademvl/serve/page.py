"""The web chat page at `/`: one self-contained HTML file, no build step, no extra dependency.

It talks to the same `/v1/chat/completions` endpoint as any client (streaming),
keeps the conversation in the browser and sends it whole each turn, and shows
which model, method and adapter the server loaded. Gradio would bring a large
dependency tree for one upload box and one chat log.
"""
from __future__ import annotations

import html
import json

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ademvl chat: __TITLE__</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #1d2330; }
  header { background: #1d2330; color: #fff; padding: 10px 18px; }
  header h1 { font-size: 18px; margin: 0 0 4px 0; }
  #model-info { font-size: 13px; color: #c9d1e0; }
  #model-info code { color: #fff; }
  main { display: flex; gap: 18px; padding: 18px; max-width: 1000px; margin: auto; }
  #side { width: 240px; flex: none; }
  #preview { width: 224px; height: 224px; border: 2px dashed #aab; border-radius: 8px; display: flex;
             align-items: center; justify-content: center; background: #fff; overflow: hidden; color: #889; }
  #preview img { width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated; }
  #side label { display: block; margin-top: 10px; font-size: 13px; }
  #talk { flex: 1; display: flex; flex-direction: column; min-height: 420px; }
  #chat { flex: 1; background: #fff; border-radius: 8px; padding: 12px; overflow-y: auto; min-height: 320px; }
  .msg { margin: 6px 0; padding: 8px 12px; border-radius: 10px; max-width: 80%; white-space: pre-wrap; }
  .msg.user { background: #dbe7ff; margin-left: auto; }
  .msg.assistant { background: #eef0f3; }
  .msg.error { background: #ffe1e1; color: #8a1010; }
  form { display: flex; gap: 8px; margin-top: 10px; }
  #question { flex: 1; padding: 9px; font-size: 15px; border: 1px solid #aab; border-radius: 6px; }
  button { padding: 9px 16px; font-size: 15px; border-radius: 6px; border: 0; background: #3056d3; color: #fff; }
  button:disabled { background: #99a; }
  #reset { background: #667; }
  .hint { font-size: 12px; color: #667; }
</style>
</head>
<body>
<header>
  <h1>ademvl chat</h1>
  <div id="model-info"></div>
</header>
<main>
  <section id="side">
    <div id="preview">no image</div>
    <label>Image <input type="file" id="image" accept="image/*"></label>
    <label>Max new tokens <input type="number" id="max-tokens" min="1" style="width:70px"></label>
    <p class="hint">One image per conversation: choosing another starts a new one.</p>
    <button id="reset" type="button">New conversation</button>
  </section>
  <section id="talk">
    <div id="chat" aria-live="polite"></div>
    <form id="ask">
      <input id="question" autocomplete="off" placeholder="Ask about the image, e.g. what shape is in the image?">
      <button id="send" type="submit">Send</button>
    </form>
  </section>
</main>
<script id="server-info" type="application/json">__INFO__</script>
<script>
const info = JSON.parse(document.getElementById("server-info").textContent);
const $ = (id) => document.getElementById(id);
$("model-info").innerHTML = "";
for (const [label, value] of [["model", info.model], ["method", info.method], ["adapter", info.checkpoint],
                              ["prompt", info.prompt_template]]) {
  const span = document.createElement("span");
  span.append(label + " ");
  const code = document.createElement("code");
  code.textContent = value === null ? "-" : JSON.stringify(value).replace(/^"|"$/g, "");
  span.append(code, "   ");
  $("model-info").append(span);
}
$("max-tokens").value = info.default_max_tokens;

let messages = [];     // the conversation so far, in OpenAI's format
let image = null;      // data: URL of the chosen image, sent with the first question
let imageSent = false;

function bubble(role, text) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  div.textContent = text;
  $("chat").append(div);
  $("chat").scrollTop = $("chat").scrollHeight;
  return div;
}

function reset() {
  messages = []; imageSent = false;
  $("chat").innerHTML = "";
}

$("reset").onclick = () => { reset(); image = null; $("image").value = ""; $("preview").textContent = "no image"; };

$("image").onchange = () => {
  const file = $("image").files[0];
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => {
    image = reader.result;
    reset();
    $("preview").innerHTML = "";
    const img = document.createElement("img");
    img.src = image; img.alt = file.name;
    $("preview").append(img);
  };
  reader.readAsDataURL(file);
};

async function errorText(response) {
  try { const body = await response.json(); return body.error ? body.error.message : JSON.stringify(body); }
  catch (e) { return response.status + " " + response.statusText; }
}

let apiKey = sessionStorage.getItem("ademvl-api-key") || "";
async function post(request) {  // a server started with --api-key answers 401 until the key is given
  for (;;) {
    const headers = {"Content-Type": "application/json"};
    if (apiKey) headers["Authorization"] = "Bearer " + apiKey;
    const response = await fetch("/v1/chat/completions", {method: "POST", headers, body: JSON.stringify(request)});
    if (response.status !== 401) return response;
    const key = window.prompt("This server needs its API key (ademvl serve --api-key):");
    if (!key) return response;
    apiKey = key;
    sessionStorage.setItem("ademvl-api-key", key);
  }
}

$("ask").onsubmit = async (event) => {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question) return;
  const content = [{type: "text", text: question}];
  if (image && !imageSent) content.unshift({type: "image_url", image_url: {url: image}});
  bubble("user", question);
  $("question").value = "";
  $("send").disabled = true;
  const answer = bubble("assistant", "");
  answer.dataset.done = "false";
  const request = {model: info.model, messages: [...messages, {role: "user", content}], stream: true};
  const maxTokens = parseInt($("max-tokens").value, 10);
  if (maxTokens > 0) request.max_tokens = maxTokens;
  let text = "";
  try {
    const response = await post(request);
    if (!response.ok) throw new Error(await errorText(response));
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffered = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, {stream: true});
      let end;
      while ((end = buffered.indexOf("\\n\\n")) >= 0) {
        const line = buffered.slice(0, end).trim();
        buffered = buffered.slice(end + 2);
        if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
        const data = JSON.parse(line.slice(6));
        if (data.error) throw new Error(data.error.message);
        const delta = data.choices.length ? data.choices[0].delta.content : null;
        if (delta) { text += delta; answer.textContent = text; }
      }
    }
    messages = request.messages.concat([{role: "assistant", content: text}]);
    if (content[0].type === "image_url") imageSent = true;
  } catch (error) {
    answer.className = "msg error";
    answer.textContent = "Error: " + error.message;
  } finally {
    answer.dataset.done = "true";
    $("send").disabled = false;
    $("question").focus();
  }
};
</script>
</body>
</html>
"""


def render_page(info: dict) -> str:
    """The page with the server's info embedded (escaped so no value can close the script tag)."""
    embedded = json.dumps(info).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return _PAGE.replace("__TITLE__", html.escape(str(info.get("model")))).replace("__INFO__", embedded)
