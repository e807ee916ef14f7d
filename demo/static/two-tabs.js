// The two-tabs page: sends N requests that each add 1 to the session's counter, all at once,
// then reads the counter back. Nothing lost means it grew by exactly N.
"use strict";

const button = document.getElementById("fire");
const result = document.getElementById("two-tabs-result");
const shown = document.getElementById("count");

async function readCount() {
  const response = await fetch("/api/count", { credentials: "same-origin" });
  return response.json();
}

async function increment(token) {
  const headers = token ? { "x-csrf-token": token } : {};
  const response = await fetch("/api/count", { method: "POST", credentials: "same-origin", headers });
  return response.ok ? response.json() : { failed: response.status };
}

button.addEventListener("click", async () => {
  const n = Math.max(1, Math.min(200, Number(document.getElementById("parallel").value) || 20));
  button.disabled = true;
  result.className = "result";
  result.textContent = `Sending ${n} requests at once…`;
  let token = button.dataset.csrf;
  if (!token) {
    // No session yet: one request creates it (and returns its token), the others share it.
    const first = await increment(undefined);
    token = first.csrf;
  }
  const before = (await readCount()).count;
  const replies = await Promise.all(Array.from({ length: n }, () => increment(token)));
  const after = (await readCount()).count;
  const ok = replies.filter((r) => r.failed === undefined).length;
  const merged = replies.filter((r) => r.merged).length;
  const operations = replies.reduce((sum, r) => sum + (r.operations || 0), 0);
  const lost = before + n - after;
  shown.textContent = String(after);
  result.dataset.before = String(before);
  result.dataset.after = String(after);
  result.dataset.sent = String(n);
  result.dataset.ok = String(ok);
  result.className = lost === 0 && ok === n ? "result ok" : "result lost";
  result.textContent =
    `Sent ${n} requests at once: ${ok} answered 200 OK, ${merged} merged a concurrent change, ` +
    `${operations} store operations in all. Counter ${before} → ${after}: ` +
    (lost === 0 ? "nothing lost." : `${lost} increments LOST.`);
  button.disabled = false;
});
