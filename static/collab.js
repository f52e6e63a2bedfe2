// Working together: the inbox's bulk selection. No inline handlers (the CSP forbids them).
"use strict";

(function () {
  const selected = new Set();

  function boxes() {
    return Array.from(document.querySelectorAll("input.bulk-select"));
  }

  function describe() {
    const out = document.getElementById("bulk-count");
    if (!out) return;
    out.textContent = selected.size === 0
      ? "Select conversations in the list to act on several at once."
      : selected.size + (selected.size === 1 ? " conversation selected." : " conversations selected.");
  }

  function syncSelectAll() {
    const all = document.getElementById("bulk-select-all");
    if (!all) return;
    all.hidden = false;
    const list = boxes();
    all.checked = list.length > 0 && list.every((b) => b.checked);
    all.indeterminate = !all.checked && list.some((b) => b.checked);
  }

  // The list is re-rendered whenever a queue changes: put the ticks back on the rows still shown.
  function restore() {
    boxes().forEach((b) => { b.checked = selected.has(b.value); });
    const shown = new Set(boxes().map((b) => b.value));
    Array.from(selected).forEach((id) => { if (!shown.has(id)) selected.delete(id); });
    syncSelectAll();
    describe();
  }

  document.addEventListener("change", (event) => {
    const target = event.target;
    if (target.matches && target.matches("input.bulk-select")) {
      if (target.checked) selected.add(target.value); else selected.delete(target.value);
      syncSelectAll();
      describe();
    } else if (target.id === "bulk-select-all") {
      boxes().forEach((b) => {
        b.checked = target.checked;
        if (target.checked) selected.add(b.value); else selected.delete(b.value);
      });
      describe();
    }
  });

  document.addEventListener("htmx:afterSwap", (event) => {
    if (event.target && event.target.id === "inbox") restore();
  });

  document.addEventListener("DOMContentLoaded", () => {
    boxes().forEach((b) => { if (b.checked) selected.add(b.value); });
    restore();
  });
})();
