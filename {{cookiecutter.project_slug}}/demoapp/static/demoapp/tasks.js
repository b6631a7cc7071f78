// Start tasks from the forms on the page, then poll each one's state until it is done.
"use strict";

const POLL_MS = 500;
const DONE = new Set(["SUCCESS", "FAILURE", "REVOKED"]);

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The JSON a view answered, or an Error carrying its message.
async function fetchJSON(url, options) {
  const response = await fetch(url, { headers: { Accept: "application/json" }, ...options });
  const type = response.headers.get("Content-Type") || "";
  if (!type.startsWith("application/json")) {
    // A login page after the session ended, or a proxy's error page.
    throw new Error(`Unexpected answer: ${response.status} ${response.statusText}`);
  }
  const data = await response.json();
  if (!response.ok) {
    throw new Error(data.error);
  }
  return data;
}

function addRow(started) {
  const tbody = document.querySelector("#started tbody");
  tbody.querySelector(".empty")?.remove();
  const row = document.querySelector("#started-row").content.firstElementChild.cloneNode(true);
  const args = Object.entries(started.kwargs).map(
    ([key, value]) => `${key}=${JSON.stringify(value)}`,
  );
  row.querySelector(".task").textContent = `${started.task}(${args.join(", ")})`;
  const id = row.querySelector(".id");
  id.textContent = started.id.slice(0, 8);
  id.title = started.id;
  tbody.prepend(row);
  return row;
}

function show(row, status) {
  const state = row.querySelector(".state");
  state.textContent = status.state;
  state.dataset.state = status.state;
  state.title = status.known ? "" : "Waiting in the queue (or an id the result backend never saw)";

  const bar = row.querySelector("progress");
  const steps = row.querySelector(".steps");
  if (status.progress) {
    bar.hidden = false;
    bar.max = status.progress.total;
    bar.value = status.progress.current;
    steps.textContent = `${status.progress.current} / ${status.progress.total}`;
  } else if (status.state === "SUCCESS" && !bar.hidden) {
    bar.value = bar.max;
    steps.textContent = `${bar.max} / ${bar.max}`;
  }

  const outcome = row.querySelector(".outcome");
  outcome.textContent =
    status.state === "SUCCESS" ? JSON.stringify(status.result) : status.error || "";
  outcome.classList.toggle("error", Boolean(status.error));
}

async function follow(row, statusUrl) {
  for (;;) {
    try {
      const status = await fetchJSON(statusUrl);
      show(row, status);
      if (DONE.has(status.state)) {
        return;
      }
    } catch (error) {
      // The server may be restarting: keep polling.
      row.querySelector(".outcome").textContent = `${error.message}; retrying`;
    }
    await sleep(POLL_MS);
  }
}

async function start(event) {
  event.preventDefault();
  const form = event.target;
  const message = document.querySelector("#start-error");
  message.hidden = true;
  try {
    const started = await fetchJSON(form.action, { method: "POST", body: new FormData(form) });
    follow(addRow(started), started.status_url);
  } catch (error) {
    message.textContent = error.message;
    message.hidden = false;
  }
}

for (const form of document.querySelectorAll("form.start")) {
  form.addEventListener("submit", start);
}
