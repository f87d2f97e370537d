// Refreshes the page every 2 s: the server renders the changing parts (page.rs `parts`) and
// this script only puts them in place, so there is one renderer and the first (server-side)
// render and later ones are the same markup.
(function () {
  "use strict";
  var IDS = ["version", "listen", "uptime", "alarms", "summary", "events", "nodes-body", "commands-body"];

  function set(id, html) {
    var el = document.getElementById(id);
    if (el && typeof html === "string" && el.innerHTML !== html) el.innerHTML = html;
  }

  function status(text, failed) {
    var el = document.getElementById("status");
    el.textContent = text;
    el.classList.toggle("failed", failed);
  }

  var busy = false;
  function refresh() {
    if (busy) return;
    busy = true;
    fetch("stats/parts", { cache: "no-store" })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (parts) {
        if (typeof parts.title === "string") document.title = parts.title;
        IDS.forEach(function (id) { set(id, parts[id]); });
        status("updated " + new Date().toLocaleTimeString() + " \u00b7 refreshes every 2 s", false);
      })
      .catch(function (e) {
        status("refresh failed: " + e.message + " (retrying every 2 s)", true);
      })
      .then(function () { busy = false; });
  }

  setInterval(refresh, 2000);
})();
