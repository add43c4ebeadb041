"""The web chat page at `/`: one self-contained HTML file, no build step, no extra dependency.

It talks to the same `/v1/chat/completions` endpoint as any client (streaming),
keeps the conversation in the browser and sends it whole each turn, and shows
which model, method and adapter the server loaded. Gradio would bring a large
dependency tree for one upload box and one chat log.

One layout serves phones and desktops: below 720 px the image panel folds
into a strip above the chat. A reply shows a typing indicator until its first
token, then the text as it streams; failures are shown as sentences for the
person at the keyboard (the server's own message for a refused request, the
likely cause for a lost connection), never as a stack or a status code alone.
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
  *, *::before, *::after { box-sizing: border-box; }
  body { font-family: system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #1d2330;
         min-height: 100vh; min-height: 100dvh; display: flex; flex-direction: column; }
  header { background: #1d2330; color: #fff; padding: 10px 18px; }
  header h1 { font-size: 18px; margin: 0 0 4px 0; }
  #model-info { font-size: 13px; color: #c9d1e0; display: flex; flex-wrap: wrap; gap: 2px 14px;
                overflow-wrap: anywhere; }
  #model-info code { color: #fff; }
  main { flex: 1; display: grid; grid-template-columns: 240px minmax(0, 1fr); gap: 18px; padding: 18px;
         width: 100%; max-width: 1000px; margin: 0 auto; }
  #side { min-width: 0; }
  #preview { width: 224px; height: 224px; border: 2px dashed #aab; border-radius: 8px; display: flex;
             align-items: center; justify-content: center; background: #fff; overflow: hidden; color: #889;
             font-size: 13px; text-align: center; padding: 4px; }
  #preview img { width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated; }
  #side label { display: block; margin-top: 10px; font-size: 13px; }
  #image { display: block; max-width: 100%; margin-top: 3px; font-size: 13px; }
  #max-tokens { width: 70px; }
  #talk { min-width: 0; min-height: 360px; display: flex; flex-direction: column; }
  #chat { flex: 1 1 0; min-height: 240px; background: #fff; border-radius: 8px; padding: 12px; overflow-y: auto; }
  .msg { margin: 6px 0; padding: 8px 12px; border-radius: 10px; max-width: 85%; width: fit-content;
         white-space: pre-wrap; overflow-wrap: anywhere; }
  .msg.user { background: #dbe7ff; margin-left: auto; }
  .msg.assistant { background: #eef0f3; }
  .msg.assistant[data-done="true"]:empty::before { content: "(an empty answer)"; color: #889; font-style: italic; }
  .msg.assistant.streaming::after { content: "\\258D"; color: #3056d3; animation: blink 1s steps(1) infinite; }
  .msg.error { background: #ffe1e1; color: #8a1010; }
  .msg.error .detail { display: block; margin-top: 4px; font-size: 12px; color: #8a4040; }
  .typing { display: inline-flex; gap: 4px; align-items: center; height: 1.2em; }
  .typing i { width: 7px; height: 7px; border-radius: 50%; background: #778; animation: bounce 1.2s infinite; }
  .typing i:nth-child(2) { animation-delay: .15s; }
  .typing i:nth-child(3) { animation-delay: .3s; }
  @keyframes bounce { 0%, 60%, 100% { opacity: .35; transform: none; }
                      30% { opacity: 1; transform: translateY(-3px); } }
  @keyframes blink { 50% { opacity: 0; } }
  @media (prefers-reduced-motion: reduce) { .typing i, .msg.assistant.streaming::after { animation: none; } }
  .sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
  form { display: flex; gap: 8px; margin-top: 10px; }
  #question { flex: 1; min-width: 0; padding: 9px; font-size: 16px; border: 1px solid #aab; border-radius: 6px; }
  button { flex: none; padding: 9px 16px; font-size: 15px; border-radius: 6px; border: 0; background: #3056d3;
           color: #fff; cursor: pointer; }
  button:disabled { background: #99a; cursor: default; }
  #reset { background: #667; margin-top: 4px; }
  .hint { font-size: 12px; color: #667; }
  @media (max-width: 720px) {
    header { padding: 8px 12px; }
    #model-info { font-size: 12px; }
    main { grid-template-columns: minmax(0, 1fr); grid-template-rows: auto minmax(0, 1fr); gap: 10px;
           padding: 10px; }
    #side { display: grid; grid-template-columns: 96px minmax(0, 1fr); column-gap: 12px; align-items: start; }
    #preview { width: 96px; height: 96px; grid-row: span 4; }
    #side label { margin-top: 0; }
    #side label + label { margin-top: 6px; }
    .hint { margin: 6px 0; }
    #reset { justify-self: start; padding: 6px 12px; font-size: 14px; }
    #talk { min-height: 0; }
    #chat { min-height: 200px; }
  }
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
    <label>Max new tokens <input type="number" id="max-tokens" min="1"></label>
    <p class="hint">One image per conversation: choosing another starts a new one.</p>
    <button id="reset" type="button">New conversation</button>
  </section>
  <section id="talk">
    <div id="chat" aria-live="polite"></div>
    <form id="ask">
      <input id="question" autocomplete="off" aria-label="Question"
             placeholder="Ask about the image">
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
  span.append(code);
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

function typing(div) {  // three dots until the first token arrives
  div.innerHTML = '<span class="typing" role="status"><i></i><i></i><i></i>' +
                  '<span class="sr-only">The model is writing an answer</span></span>';
}

function showError(div, failure) {  // failure: {text, detail}: a sentence, and the server's words when they differ
  div.className = "msg error";
  div.setAttribute("role", "alert");
  div.textContent = failure.text;
  if (failure.detail && failure.detail !== failure.text) {
    const small = document.createElement("span");
    small.className = "detail";
    small.textContent = failure.detail;
    div.append(small);
  }
  $("chat").scrollTop = $("chat").scrollHeight;
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
    img.onerror = () => { $("preview").textContent = "no preview of " + file.name; };  // the server decides
    img.src = image; img.alt = file.name;
    $("preview").append(img);
  };
  reader.onerror = () => { $("preview").textContent = "could not read " + file.name; };
  reader.readAsDataURL(file);
};

class Failure extends Error {
  constructor(text, detail) { super(text); this.text = text; this.detail = detail || ""; }
}

function sentence(message, param) {  // "messages.0.content.0.image_url: that file ..." -> "That file ..."
  let text = (message || "").trim();
  if (param && text.startsWith(param + ": ")) text = text.slice(param.length + 2);
  return text.charAt(0).toUpperCase() + text.slice(1);
}

async function failureOf(response) {
  let message = "", param = null;
  try {
    const body = await response.json();
    if (body && body.error) { message = body.error.message; param = body.error.param; }
  } catch (e) { /* not JSON: a proxy's page, or a cut connection */ }
  const status = response.status + (response.statusText ? " " + response.statusText : "");
  if (response.status === 401)
    return new Failure("This server needs its API key (the one given to ademvl serve --api-key). " +
                       "Send again to enter it.", message);
  if (response.status === 413)
    return new Failure("That is too much to send to this server at once: choose a smaller image.", message);
  if (response.status >= 500)
    return new Failure("The server failed while answering (" + status + "). Try again; if it keeps failing, " +
                       "its log says why.", message);
  if (message) return new Failure(sentence(message, param));
  return new Failure("The server refused the question (" + status + ").");
}

const LOST = "The connection to the server was lost. Check that ademvl serve is still running, then send again.";

let apiKey = sessionStorage.getItem("ademvl-api-key") || "";
async function post(request) {  // a server started with --api-key answers 401 until the key is given
  for (;;) {
    const headers = {"Content-Type": "application/json"};
    if (apiKey) headers["Authorization"] = "Bearer " + apiKey;
    let response;
    try {
      response = await fetch("/v1/chat/completions", {method: "POST", headers, body: JSON.stringify(request)});
    } catch (error) {  // fetch rejects only when no answer came at all
      throw new Failure("Could not reach the server. Check that ademvl serve is still running, then send again.",
                        error.message);
    }
    if (response.status !== 401) return response;
    const key = window.prompt("This server needs its API key (ademvl serve --api-key):");
    if (!key) return response;
    apiKey = key;
    sessionStorage.setItem("ademvl-api-key", key);
  }
}

async function* events(response) {  // the data of each server-sent event, until [DONE]
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  for (;;) {
    let chunk;
    try { chunk = await reader.read(); } catch (error) { throw new Failure(LOST, error.message); }
    if (chunk.done) throw new Failure(LOST, "the answer stopped before it was complete");
    buffered = (buffered + decoder.decode(chunk.value, {stream: true})).replace(/\\r\\n/g, "\\n");
    let end;
    while ((end = buffered.indexOf("\\n\\n")) >= 0) {
      const line = buffered.slice(0, end).trim();
      buffered = buffered.slice(end + 2);
      if (!line.startsWith("data: ")) continue;
      if (line === "data: [DONE]") return;
      yield JSON.parse(line.slice(6));
    }
  }
}

$("ask").onsubmit = async (event) => {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question || $("send").disabled) return;
  const content = [{type: "text", text: question}];
  if (image && !imageSent) content.unshift({type: "image_url", image_url: {url: image}});
  bubble("user", question);
  $("question").value = "";
  $("send").disabled = true;
  const answer = bubble("assistant", "");
  answer.dataset.done = "false";
  answer.setAttribute("aria-busy", "true");
  typing(answer);
  const request = {model: info.model, messages: [...messages, {role: "user", content}], stream: true};
  const maxTokens = parseInt($("max-tokens").value, 10);
  if (maxTokens > 0) request.max_tokens = maxTokens;
  let text = "";
  try {
    const response = await post(request);
    if (!response.ok) throw await failureOf(response);
    for await (const data of events(response)) {
      if (data.error) throw new Failure("The model failed while answering. Try again; if it keeps failing, " +
                                        "the server's log says why.", data.error.message);
      const delta = data.choices.length ? data.choices[0].delta.content : null;
      if (delta) {
        text += delta;
        answer.classList.add("streaming");
        answer.textContent = text;
        $("chat").scrollTop = $("chat").scrollHeight;
      }
    }
    answer.classList.remove("streaming");
    answer.textContent = text;  // an empty answer clears the dots too
    messages = request.messages.concat([{role: "assistant", content: text}]);
    if (content[0].type === "image_url") imageSent = true;
  } catch (error) {
    const failure = error instanceof Failure ? error : new Failure("Something went wrong in this page.", String(error));
    if (text) {  // keep what streamed before the failure; the error goes below it
      answer.classList.remove("streaming");
      answer.dataset.done = "true";
      const below = bubble("error", "");
      below.dataset.done = "true";
      showError(below, failure);
    } else {
      showError(answer, failure);
    }
  } finally {
    answer.dataset.done = "true";
    answer.removeAttribute("aria-busy");
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
