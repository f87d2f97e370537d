// Re-renders the page from api/v1/stats every 2 s. Mirrors the server's rendering in page.rs:
// same markup, same formats, so the first (server-side) render and later ones look alike.
(function () {
  "use strict";
  var DASH = "\u2013", NODE_CLASS = "node";
  var ENTITIES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

  function esc(value) {
    return String(value).replace(/[&<>"']/g, function (c) { return ENTITIES[c]; });
  }

  function ms(us) {
    if (us === null || us === undefined) return DASH;
    var v = us / 1000;
    if (us < 1000) return v.toFixed(3) + " ms";
    if (us < 10000) return v.toFixed(2) + " ms";
    if (us < 100000) return v.toFixed(1) + " ms";
    return v.toFixed(0) + " ms";
  }

  function uptime(secs) {
    var d = Math.floor(secs / 86400), h = Math.floor(secs / 3600) % 24;
    var m = Math.floor(secs / 60) % 60, s = secs % 60;
    if (d === 0 && h === 0 && m === 0) return s + "s";
    if (d === 0 && h === 0) return m + "m " + s + "s";
    if (d === 0) return h + "h " + m + "m " + s + "s";
    return d + "d " + h + "h " + m + "m " + s + "s";
  }

  function ago(nowMs, thenMs) {
    return Math.floor(Math.max(0, nowMs - thenMs) / 1000) + " s ago";
  }

  // The upper bound (µs) of the bucket below which q of the samples fall (as the proxy's
  // HistogramSnapshot::percentile_us does).
  function percentile(h, q) {
    var counts = (h && h.counts) || [];
    var total = counts.reduce(function (a, b) { return a + b; }, 0);
    if (total === 0) return null;
    var wanted = Math.max(1, Math.ceil(total * q)), seen = 0;
    for (var i = 0; i < counts.length; i++) {
      seen += counts[i];
      if (seen >= wanted) return Math.pow(2, Math.min(i, counts.length - 1));
    }
    return null;
  }

  function badge(state) {
    var cls = ["up", "ok", "down", "degraded"].indexOf(state) >= 0 ? state : "unknown";
    return '<span class="badge s-' + cls + '">' + esc(state) + "</span>";
  }

  function flagged(v) {
    return v > 0 ? '<span class="bad">' + esc(v) + "</span>" : esc(v);
  }

  function summary(s) {
    var p = s.proxy, c = s.cluster;
    var cards = [
      ["Proxy", [["version", esc(p.version)], ["listen", esc(p.listen)],
        ["uptime", esc(uptime(p.uptime_secs))], ["threads", esc(p.threads)],
        ["reads from", esc(p.read_from)], ["writes acked by", esc(p.write_ack)]]],
      ["Clients", [["connected", esc(p.clients_connected)], ["accepted", esc(p.clients_total)],
        ["rejected", flagged(p.clients_rejected)]]],
      ["Traffic", [["commands", esc(p.commands)], ["errors", flagged(p.errors)],
        ["MOVED followed", esc(p.moved)], ["ASK followed", esc(p.ask)],
        ["retries", esc(p.retries)], ["outcome unknown", flagged(p.outcome_unknown)],
        ["replica acks", esc(p.acks_confirmed)], ["replica acks missing", flagged(p.acks_missing)],
        ["protocol errors", flagged(p.protocol_errors)]]],
      ["Backends", [["topology refreshes", esc(p.topology_refreshes)],
        ["connects", esc(p.backend_connects)], ["connect failures", flagged(p.backend_failures)]]],
      ["Cluster", [["state", badge(c.state)], ["masters", esc(c.masters)],
        ["uncovered slots", flagged(c.slots_uncovered)]]]
    ];
    return cards.map(function (card) {
      return '<div class="card"><h3>' + esc(card[0]) + "</h3><dl>" +
        card[1].map(function (kv) { return "<dt>" + esc(kv[0]) + "</dt><dd>" + kv[1] + "</dd>"; })
          .join("") + "</dl></div>";
    }).join("");
  }

  function nodeRow(n, nowMs) {
    var addr = esc(n.addr), h = n.health, live = h && h.up ? h : null;
    var slots = n.slot_count === 0 ? DASH :
      esc(n.slots) + ' <span class="dim">(' + n.slot_count + ")</span>";
    var memory = live && live.used_memory_human ? esc(live.used_memory_human) : DASH;
    // (The class name is spliced in so that this script's own text never looks like a node
    // row: counting node rows over the whole document stays right.)
    return '<tr class="' + NODE_CLASS + '" data-addr="' + addr +
      '" data-state="' + esc(n.state) + '">' +
      '<td class="addr">' + addr + '</td><td class="state">' + badge(n.state) + "</td>" +
      "<td>" + esc(n.role) + '</td><td class="addr">' + (n.master ? esc(n.master) : DASH) +
      '</td><td class="slots">' + slots + "</td>" +
      '<td class="num">' + esc(n.connections) + '</td><td class="num">' + esc(n.replies) + "</td>" +
      '<td class="num">' + flagged(n.errors) + '</td><td class="num">' + ms(n.latency_p50_us) +
      '</td><td class="num">' + ms(n.latency_p99_us) + '</td><td class="num">' +
      (live ? esc(live.ops_per_sec) : DASH) + '</td><td class="num">' + memory +
      '</td><td class="num">' + (h ? ago(nowMs, h.checked_at_ms) : DASH) +
      '</td><td class="err">' + (h && h.error ? esc(h.error) : "") + "</td></tr>";
  }

  function commandRow(c) {
    return '<tr class="command"><td class="addr">' + esc(c.name) + '</td><td class="num">' +
      esc(c.calls) + '</td><td class="num">' + flagged(c.errors) + '</td><td class="num">' +
      ms(percentile(c.latency, 0.5)) + '</td><td class="num">' + ms(percentile(c.latency, 0.99)) +
      "</td></tr>";
  }

  function set(id, html) {
    var el = document.getElementById(id);
    if (el && el.innerHTML !== html) el.innerHTML = html;
  }

  function render(s) {
    var now = Date.now();
    document.title = "redkeep proxy " + s.proxy.listen;
    set("version", esc(s.proxy.version));
    set("listen", esc(s.proxy.listen));
    set("uptime", esc(uptime(s.proxy.uptime_secs)));
    set("summary", summary(s));
    set("nodes-body", s.nodes.length === 0 ?
      '<tr><td class="empty" colspan="14">no nodes in the slot map</td></tr>' :
      s.nodes.map(function (n) { return nodeRow(n, now); }).join(""));
    var commands = s.commands.slice().sort(function (a, b) {
      return b.calls - a.calls || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    });
    set("commands-body", commands.length === 0 ?
      '<tr><td class="empty" colspan="5">no commands yet</td></tr>' :
      commands.map(commandRow).join(""));
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
    fetch("api/v1/stats", { cache: "no-store" })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (s) {
        render(s);
        status("updated " + new Date().toLocaleTimeString() + " \u00b7 refreshes every 2 s", false);
      })
      .catch(function (e) {
        status("refresh failed: " + e.message + " (retrying every 2 s)", true);
      })
      .then(function () { busy = false; });
  }

  setInterval(refresh, 2000);
})();
