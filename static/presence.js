// Presence (issue 7): who else has this conversation open, and who is typing.
// The page keeps ONE event stream (browsers allow few connections per host): before htmx opens
// it, this script points it at /events?conversation=<id>, which also tells the others we are
// here; htmx then hands each `presence` event to #presence as a DOM event "sse:presence".
// Typing is announced at most once every 3 seconds and never carries the text itself.
"use strict";

(function () {
  const bar = document.getElementById("presence");
  if (!bar) return;
  const conversationId = bar.dataset.conversationId;
  const TYPING_THROTTLE_MS = 3000;
  const TYPING_FIELDS = "#reply-text, #private-reply-text, #note-text";
  let lastTyping = 0;

  // Deferred scripts run before htmx processes the page (on DOMContentLoaded), so this is in time.
  const stream = document.querySelector("[sse-connect='/events']");
  if (stream) stream.setAttribute("sse-connect", "/events?conversation=" + encodeURIComponent(conversationId));

  bar.addEventListener("sse:presence", (event) => {
    let data;
    try { data = JSON.parse(event.detail.data); } catch (err) { return; }
    bar.textContent = data.text || "";
    bar.hidden = !data.text;
    bar.classList.toggle("presence-typing", (data.people || []).some((p) => p.typing));
  });

  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRF-Token"] || "";
    } catch (err) {
      return "";
    }
  }

  document.addEventListener("input", (event) => {
    const field = event.target;
    if (!field.matches || !field.matches(TYPING_FIELDS)) return;
    const now = Date.now();
    if (now - lastTyping < TYPING_THROTTLE_MS) return;
    lastTyping = now;
    fetch("/conversations/" + encodeURIComponent(conversationId) + "/typing", {
      method: "POST", credentials: "same-origin", headers: {"X-CSRF-Token": csrfToken()},
    }).catch(() => {});
  });
})();
