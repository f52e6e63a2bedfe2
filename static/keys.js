// Keyboard shortcuts (issue 7): j/k next/previous conversation, r reply, n note, a assign to me,
// e resolve, / standard answers, ? this list. Every key only presses a control that is also on
// the page (button, link or field), so mouse and screen-reader users can do the same.
// Keys are ignored while typing in a field; Esc leaves the field.
"use strict";

(function () {
  const ORDER_KEY = "socialcrm.inboxOrder";
  const dialog = document.getElementById("keys-help");
  const opener = document.getElementById("keys-open");
  const conversationMatch = window.location.pathname.match(/^\/conversations\/(\d+)$/);
  const currentConversation = conversationMatch ? conversationMatch[1] : null;

  // -- the inbox order, remembered so the conversation page knows what is next -------------
  function queueRows() {
    return Array.from(document.querySelectorAll("tr.queue-row[data-conversation-id]"));
  }

  function rememberOrder() {
    const rows = queueRows();
    if (!rows.length && !document.getElementById("inbox")) return;
    const ids = rows.map((row) => row.dataset.conversationId);
    try { sessionStorage.setItem(ORDER_KEY, JSON.stringify(ids)); } catch (err) { /* private mode */ }
  }

  function rememberedOrder() {
    try { return JSON.parse(sessionStorage.getItem(ORDER_KEY) || "[]"); } catch (err) { return []; }
  }

  function neighbour(step) {
    const ids = rememberedOrder();
    const at = ids.indexOf(currentConversation);
    if (at < 0) return step > 0 ? ids[0] : undefined;
    return ids[at + step];
  }

  function showConversationNav() {
    const nav = document.getElementById("conversation-nav");
    if (!nav || !currentConversation) return;
    const links = {"conversation-prev": neighbour(-1), "conversation-next": neighbour(1)};
    let any = false;
    Object.entries(links).forEach(([id, target]) => {
      const link = document.getElementById(id);
      if (!link) return;
      link.hidden = !target;
      if (target) { link.href = "/conversations/" + target; any = true; }
    });
    nav.hidden = !any;
  }

  // -- inbox: a selected row, moved with j/k ------------------------------------------------
  let selectedId = null;   // kept across live refreshes of the list, which replace the rows

  function reselect() {
    queueRows().forEach((row) => row.classList.toggle("queue-row-selected", row.dataset.conversationId === selectedId));
  }

  function selectRow(step) {
    const rows = queueRows();
    if (!rows.length) return;
    const current = rows.findIndex((row) => row.classList.contains("queue-row-selected"));
    const next = current < 0 ? (step > 0 ? 0 : rows.length - 1)
                             : Math.min(rows.length - 1, Math.max(0, current + step));
    // The row's link takes the focus, so screen readers announce the customer; the class is for sight.
    rows.forEach((row, i) => row.classList.toggle("queue-row-selected", i === next));
    selectedId = rows[next].dataset.conversationId;
    const link = rows[next].querySelector("a");
    if (link) link.focus();
  }

  function moveConversation(step) {
    if (queueRows().length) { selectRow(step); return; }
    if (!currentConversation) return;
    const target = neighbour(step);
    if (target) window.location.assign("/conversations/" + target);
  }

  // -- actions: each one presses the control the page already shows -------------------------
  function focusField(selector) {
    const field = document.querySelector(selector);
    if (!field || field.disabled) return false;
    const closed = field.closest("details:not([open])");
    if (closed) closed.open = true;
    field.focus();
    return true;
  }

  function press(selector) {
    const control = document.querySelector(selector);
    if (!control || control.disabled) return false;
    control.click();
    return true;
  }

  function assignToMe() {
    const choice = document.querySelector('form[action$="/assign"] input[name="assignee"][value="me"]');
    if (choice && choice.form) { choice.form.requestSubmit(); return true; }
    return false;
  }

  function resolve() {
    return press("#resolve-button") || press('form[action$="/resolve"] button[type="submit"]');
  }

  // -- the help dialog: modal, focus kept inside, Esc closes, focus returns to the opener ----
  let returnFocusTo = null;

  function openHelp() {
    if (!dialog || dialog.open) return;
    returnFocusTo = document.activeElement;
    dialog.showModal();
    const close = document.getElementById("keys-close");
    if (close) close.focus();
  }

  function focusables() {
    return Array.from(dialog.querySelectorAll("button, [href], input, select, textarea, [tabindex]:not([tabindex='-1'])"))
      .filter((el) => !el.disabled);
  }

  if (dialog) {
    dialog.addEventListener("keydown", (event) => {
      if (event.key !== "Tab") return;
      const items = focusables();
      if (!items.length) return;
      const first = items[0], last = items[items.length - 1];
      if (event.shiftKey && document.activeElement === first) { last.focus(); event.preventDefault(); }
      else if (!event.shiftKey && document.activeElement === last) { first.focus(); event.preventDefault(); }
    });
    dialog.addEventListener("close", () => {
      // "close" fires a task later: by then a key may have moved focus on (e.g. `/` into the
      // answer search). Only give focus back if it is still lost, never take it from there.
      const active = document.activeElement;
      const lost = !active || active === document.body || dialog.contains(active);
      if (lost && returnFocusTo && typeof returnFocusTo.focus === "function") returnFocusTo.focus();
    });
  }
  if (opener) opener.addEventListener("click", openHelp);

  const ACTIONS = {
    j: () => moveConversation(1),
    k: () => moveConversation(-1),
    r: () => focusField("#reply-text"),
    n: () => focusField("#note-text"),
    a: assignToMe,
    e: resolve,
    "/": () => press("#answers-open"),
    "?": openHelp,
  };

  function typingInField(target) {
    return target && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
  }

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    if (typingInField(event.target)) {
      if (event.key === "Escape" && !(dialog && dialog.open)) event.target.blur();
      return;
    }
    if (dialog && dialog.open) return;   // the dialog handles its own keys (Tab, Esc)
    const action = ACTIONS[event.key];
    if (!action) return;
    event.preventDefault();   // e.g. "/" must not also type into a field it focuses
    action();
  });

  rememberOrder();
  // A live refresh replaces the rows: keep the selection, and the focus if a row had it, so an
  // agent moving with j/k is not thrown back to the top of the page by a new message.
  let listHadFocus = false;
  document.body.addEventListener("htmx:beforeSwap", (event) => {
    if (event.target && event.target.id === "inbox") listHadFocus = event.target.contains(document.activeElement);
  });
  document.body.addEventListener("htmx:afterSwap", (event) => {
    if (!event.target || event.target.id !== "inbox") return;
    rememberOrder();
    reselect();
    const row = queueRows().find((r) => r.dataset.conversationId === selectedId);
    const link = row && row.querySelector("a");
    if (listHadFocus && link) link.focus();
  });
  showConversationNav();
})();
