// socialcrm's own script: small on purpose. No inline scripts anywhere (the CSP forbids them).
"use strict";

// Characters as most platforms count them: code points, not UTF-16 units. The server checks
// the exact rule of each platform (X weighs links, Bluesky counts graphemes) before sending.
function countCharacters(text) {
  return Array.from(text).length;
}

function updateCounter(textarea) {
  const output = document.getElementById(textarea.getAttribute("aria-describedby"));
  if (!output) return;
  const used = countCharacters(textarea.value);
  const max = parseInt(textarea.dataset.maxLength || "", 10);
  if (Number.isNaN(max)) {
    output.textContent = used + (used === 1 ? " character" : " characters");
    return;
  }
  const over = used - max;
  output.textContent = used + " / " + max + (over > 0 ? " (" + over + " too many)" : "");
  output.classList.toggle("counter-over", over > 0);
}

document.addEventListener("input", (event) => {
  if (event.target.matches && event.target.matches("textarea[aria-describedby]")) {
    updateCounter(event.target);
  }
});

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("textarea[aria-describedby]").forEach(updateCounter);
});
