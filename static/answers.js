// The standard-answer picker of the reply box. Opens from the "Standard answers" button
// (#answers-open, which the keyboard layer's `/` also presses) or when `/` is typed at the start
// of an empty reply or after a space. Everything from the server is put in with textContent,
// never as HTML. The server fills the placeholders, so the agent sees and edits the final text.
"use strict";

(() => {
  const picker = document.getElementById("answers-picker");
  const reply = document.getElementById("reply-text");
  const opener = document.getElementById("answers-open");
  if (!picker || !reply || !opener) return;
  const search = document.getElementById("answers-search");
  const list = document.getElementById("answers-results");
  const status = document.getElementById("answers-status");
  const note = document.getElementById("answers-note");
  let caret = { start: 0, end: 0 };
  let options = [];
  let active = -1;
  let timer = null;
  let asked = 0;

  function csrfToken() {
    const field = reply.form && reply.form.querySelector("input[name=csrf_token]");
    return field ? field.value : "";
  }

  function open() {
    caret = { start: reply.selectionStart, end: reply.selectionEnd };
    picker.hidden = false;
    opener.setAttribute("aria-expanded", "true");
    search.value = "";
    search.focus();
    load("");
  }

  function close(focusReply) {
    picker.hidden = true;
    opener.setAttribute("aria-expanded", "false");
    if (focusReply) {
      reply.focus();
      reply.setSelectionRange(caret.start, caret.end);
    }
  }

  async function load(query) {
    const ticket = ++asked;
    const url = picker.dataset.searchUrl + "?q=" + encodeURIComponent(query);
    status.textContent = "Searching…";
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error("HTTP " + response.status);
      const data = await response.json();
      if (ticket === asked) show(data);
    } catch (error) {
      if (ticket === asked) status.textContent = "Could not load the answers (" + error.message + ").";
    }
  }

  function option(kind, item, title, details, warning) {
    const li = document.createElement("li");
    li.setAttribute("role", "option");
    li.id = "answers-option-" + kind + "-" + item.id;
    li.dataset.kind = kind;
    li.dataset.id = item.id;
    const head = document.createElement("span");
    head.className = "answers-option-title";
    head.textContent = title;
    const body = document.createElement("span");
    body.className = "answers-option-text";
    body.textContent = details;
    li.append(head, body);
    if (warning) {
      const warn = document.createElement("span");
      warn.className = "answers-option-warning";
      warn.textContent = warning;
      li.append(warn);
    }
    li.addEventListener("mousedown", (event) => event.preventDefault());   // keep focus in the search box
    li.addEventListener("click", () => choose(li));
    return li;
  }

  function answerOption(a) {
    const meta = [a.scope === "personal" ? "yours" : "team " + a.scope, a.language || "any language"]
      .concat(a.tags.length ? [a.tags.join(", ")] : []).join(" · ");
    const warning = a.unknown.length ? "Not filled in automatically: " + a.unknown.join(" ") : "";
    return option("answer", a, a.title, meta + " — " + a.body, warning);
  }

  function show(data) {
    list.replaceChildren(
      ...data.answers.map(answerOption),
      ...data.articles.map((h) => option("article", h, "Help article: " + h.title, h.url + " (a counted short link)", "")));
    options = Array.from(list.children);
    const count = data.answers.length + data.articles.length;
    status.textContent = count ? count + (count === 1 ? " match" : " matches") : "Nothing matches.";
    activate(count ? 0 : -1);
  }

  function activate(index) {
    options.forEach((li, i) => li.setAttribute("aria-selected", i === index ? "true" : "false"));
    active = index;
    if (index >= 0) {
      search.setAttribute("aria-activedescendant", options[index].id);
      options[index].scrollIntoView({ block: "nearest" });
    } else {
      search.removeAttribute("aria-activedescendant");
    }
  }

  async function choose(li) {
    const path = li.dataset.kind === "answer" ? "/answers/" : "/help/";
    status.textContent = "Inserting…";
    try {
      const response = await fetch(picker.dataset.insertUrl + path + li.dataset.id + "/insert", {
        method: "POST", credentials: "same-origin",
        headers: { Accept: "application/json", "X-CSRF-Token": csrfToken() },
      });
      if (!response.ok) throw new Error("HTTP " + response.status);
      insert(await response.json());
    } catch (error) {
      status.textContent = "Could not insert it (" + error.message + ").";
    }
  }

  function insert(filled) {
    const before = reply.value.slice(0, caret.start);
    const after = reply.value.slice(caret.end);
    reply.value = before + filled.text + after;
    caret = { start: before.length + filled.text.length, end: before.length + filled.text.length };
    close(true);
    // The counter (app.js) listens for input: the inserted text counts at once.
    reply.dispatchEvent(new Event("input", { bubbles: true }));
    explain(filled);
  }

  function explain(filled) {
    const lines = [];
    if (filled.unknown.length) lines.push("Replace before sending: " + filled.unknown.join(" ") + " (unknown placeholder).");
    if (filled.missing.length) lines.push("Fill in by hand: " + filled.missing.join(" ") + " (not known for this conversation).");
    if (filled.limit !== null && filled.length > filled.limit) {
      lines.push("This answer alone is " + filled.length + " characters as the platform counts them; the limit is " +
                 filled.limit + ". Shorten it before sending.");
    }
    note.textContent = lines.join(" ");
    note.hidden = lines.length === 0;
  }

  opener.addEventListener("click", open);
  document.getElementById("answers-close").addEventListener("click", () => close(true));

  reply.addEventListener("keydown", (event) => {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    if (reply.selectionStart !== reply.selectionEnd) return;
    const before = reply.value.slice(0, reply.selectionStart);
    if (before === "" || /\s$/.test(before)) {
      event.preventDefault();
      open();
    }
  });

  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => load(search.value), 150);
  });

  search.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown" && options.length) {
      event.preventDefault();
      activate((active + 1) % options.length);
    } else if (event.key === "ArrowUp" && options.length) {
      event.preventDefault();
      activate((active - 1 + options.length) % options.length);
    } else if (event.key === "Enter") {
      event.preventDefault();
      if (active >= 0) choose(options[active]);
    } else if (event.key === "Escape") {
      event.preventDefault();
      close(true);
    }
  });
})();
