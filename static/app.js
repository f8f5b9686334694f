// agentgate dashboard: the only script. Copy buttons, the workspace switch submitting on
// change, and an endpoint's event list updating live. Everything works without it (the key
// stays selectable, the switch has a button, a reload shows new events).
"use strict";
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source || !navigator.clipboard) return;
  navigator.clipboard.writeText(source.textContent.trim()).then(() => {
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = label; }, 1500);
  });
});
document.addEventListener("change", (event) => {
  if (event.target.matches("select[data-autosubmit]")) event.target.form.submit();
});
// An endpoint's events, live: the server streams each new event (Server-Sent Events, JSON
// of text fields); each becomes a row on top, built with textContent (never markup), with
// the same Replay form the server renders.
(() => {
  const rows = document.querySelector("tbody[data-live]");
  if (!rows || !window.EventSource) return;
  const csrf = document.querySelector("input[name=csrf]");
  const url = rows.dataset.live + "?after=" + encodeURIComponent(rows.dataset.after || "0");
  const source = new EventSource(url);
  const cell = (row, text, code) => {
    const td = row.insertCell();
    const holder = code ? td.appendChild(document.createElement("code")) : td;
    holder.textContent = text;
    return td;
  };
  source.addEventListener("message", (message) => {
    const item = JSON.parse(message.data);
    const row = document.createElement("tr");
    cell(row, item.received);
    cell(row, item.event_type);
    const link = cell(row, "").appendChild(document.createElement("a"));
    link.href = rows.dataset.events + encodeURIComponent(item.event_id);
    link.appendChild(document.createElement("code")).textContent = item.event_id;
    cell(row, String(item.seq));
    const form = document.createElement("form");
    form.className = "inline";
    form.method = "post";
    form.action = rows.dataset.replay;
    for (const [name, value] of [["csrf", csrf ? csrf.value : ""], ["event_id", item.event_id]]) {
      const input = form.appendChild(document.createElement("input"));
      input.type = "hidden"; input.name = name; input.value = value;
    }
    const button = form.appendChild(document.createElement("button"));
    button.type = "submit"; button.className = "small"; button.textContent = "Replay";
    row.insertCell().appendChild(form);
    rows.prepend(row);
    const table = document.getElementById("events-table");
    const empty = document.getElementById("events-empty");
    if (table) table.hidden = false;
    if (empty) empty.hidden = true;
  });
})();
