// hearth's dashboard: forms sent without leaving the page, and the live feed (/events).
// No libraries: the page must work with the network cut off.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);

function status(text, error) {
  const s = $("#status");
  if (!s) return;
  s.textContent = text;
  s.className = error ? "error" : "";
}

// A form with class "act" posts in the background; "data-reload" reloads the page after.
document.addEventListener("submit", async (e) => {
  const form = e.target;
  if (!form.classList || !form.classList.contains("act")) return;
  e.preventDefault();
  const action = (e.submitter && e.submitter.getAttribute("formaction")) || form.getAttribute("action");
  const body = new URLSearchParams(new FormData(form));
  let r;
  try {
    r = await fetch(action, { method: "POST", body, credentials: "same-origin" });
  } catch (err) {
    status("The hub cannot be reached: " + err, true);
    return;
  }
  const text = await r.text();
  if (r.status === 401) { location.href = "/login"; return; }
  if (!r.ok) { status(text || r.statusText, true); return; }
  if (form.hasAttribute("data-reload")) {
    sessionStorage.setItem("hearth-status", text);
    location.reload();
    return;
  }
  const say = form.querySelector("input.say");
  if (say) say.value = "";
  status(text || "Sent.");
});

addEventListener("DOMContentLoaded", () => {
  const kept = sessionStorage.getItem("hearth-status");
  if (kept) { status(kept); sessionStorage.removeItem("hearth-status"); }
  const page = document.body.dataset.page;
  if (page === "health") {
    // The table comes whole every 2 s over server-sent events, rendered (and escaped) by the hub.
    const feed = new EventSource("/health/events");
    feed.onopen = () => document.body.classList.add("live");
    feed.onmessage = (m) => { $("#health").innerHTML = m.data; };
    feed.onerror = () => loggedOut(feed);
  }
  if (page === "rooms" || page === "emotion") listen(page);
});

async function swap(url, sel) {
  try {
    const r = await fetch(url, { credentials: "same-origin" });
    if (r.status === 401) { location.href = "/login"; return; }
    if (r.ok) $(sel).innerHTML = await r.text();
  } catch (_) { /* the next tick tries again */ }
}

function line(cls, room, who, text, key) {
  const li = document.createElement("li");
  li.className = cls;
  if (key) li.dataset.utterance = key;
  const b = document.createElement("b");
  b.textContent = room ? room + " · " + who + ": " : who + ": ";
  const span = document.createElement("span");
  span.className = "text";
  span.textContent = text;
  li.append(b, span);
  $("#convo").append(li);
  return li;
}

// A feed ends when the session does: back to the login then.
async function loggedOut(feed) {
  document.body.classList.remove("live");
  const r = await fetch("/api/health", { credentials: "same-origin" }).catch(() => null);
  if (r && r.status === 401) { feed.close(); location.href = "/login"; }
}

// The room of each utterance heard, for replies to the dashboard (no terminal, no room).
const asked = {};

function listen(page) {
  const feed = new EventSource("/events");
  feed.onopen = () => document.body.classList.add("live");
  feed.onerror = () => loggedOut(feed);
  feed.onmessage = (m) => {
    const e = JSON.parse(m.data);
    if (page === "emotion") {
      if (e.kind === "emotion") swap("/emotion/plot", "#plot");
      return;
    }
    switch (e.kind) {
      case "heard":
        asked[e.terminal + "-" + e.utterance_id] = e.room;
        line("heard", e.room, e.terminal.startsWith("@dashboard") ? "you (typed)" : "you", e.text);
        break;
      case "reply": {
        const key = "r-" + e.terminal + "-" + e.utterance_id;
        let li = document.querySelector(`li[data-utterance="${CSS.escape(key)}"]`);
        if (!li) li = line("reply", e.room || asked[e.terminal + "-" + e.utterance_id], "hearth", "", key);
        const span = $(".text", li);
        if (e.text) span.textContent = (span.textContent + " " + e.text).trim();
        if (e.last) li.classList.add("done");
        break;
      }
      case "speech":
        line("speech", e.room, "hearth says", e.text);
        break;
      case "error":
        line("error", e.room, "error", e.message);
        break;
      case "presence": {
        const el = document.querySelector(`[data-terminal="${CSS.escape(e.terminal)}"]`);
        if (!el) { location.reload(); break; }
        el.className = "terminal " + (e.online ? "on" : "off");
        $("i", el).textContent = e.online ? "online" : "offline";
        break;
      }
    }
  };
}
