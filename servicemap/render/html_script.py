"""The script of the HTML page: hover and pinned details, the filter, sortable tables, fit.

Plain ES5 in one closure, no network, no library. It reads the page's JSON island
(`servicemap-data`) and graphviz's SVG groups (`g.node`, `g.edge`, whose `<title>` is the id).
"""

SCRIPT = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("servicemap-data").textContent);
  var byId = {};
  data.nodes.forEach(function (n) { byId[n.id] = n; });
  data.edges.forEach(function (e) { byId[e.id] = e; });
  var details = document.getElementById("details");
  var body = document.getElementById("details-body");
  var pinned = null;

  function row(dl, name, value) {
    var dt = document.createElement("dt"); dt.textContent = name;
    var dd = document.createElement("dd"); dd.textContent = value;
    dl.appendChild(dt); dl.appendChild(dd);
  }
  function overlaps(a, b) {
    return a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
  }
  // The panel docks bottom right, or bottom left when it would cover what it describes.
  function place(anchor) {
    details.classList.remove("left");
    if (!anchor) { return; }
    var target = anchor.getBoundingClientRect();
    if (overlaps(details.getBoundingClientRect(), target)) { details.classList.add("left"); }
  }
  function show(id, anchor) {
    var item = byId[id];
    if (!item) { return; }
    body.textContent = "";
    var h = document.createElement("h2");
    h.textContent = item.source ? item.source + " \u2192 " + item.target : item.id;
    body.appendChild(h);
    var chip = document.createElement("span");
    chip.className = "chip s-" + item.status;
    chip.textContent = data.labels[item.status];
    body.appendChild(chip);
    var dl = document.createElement("dl");
    if (item.kind) { row(dl, "kind", item.kind); }
    if (item.namespace) { row(dl, "namespace", item.namespace); }
    if (item.connection) { row(dl, "connection", item.connection); }
    row(dl, item.source ? "calls" : "requests", String(item.calls));
    row(dl, "errors", String(item.errors));
    row(dl, "error rate", item.error_rate);
    row(dl, "p50", item.p50); row(dl, "p95", item.p95); row(dl, "p99", item.p99);
    row(dl, "reasons", item.reasons.length ? item.reasons.join("; ") : "no rule fired");
    body.appendChild(dl);
    details.hidden = false;
    place(anchor);
  }
  // Shown only while a node or an edge is hovered or pinned: it never hides the page for good.
  function clear() {
    if (pinned) { show(pinned, pinnedAnchor()); return; }
    details.hidden = true;
  }
  function pinnedAnchor() {
    return document.querySelector("#map g.selected") || null;
  }
  function unpin() {
    pinned = null;
    document.querySelectorAll(".selected").forEach(function (el) {
      el.classList.remove("selected");
    });
    details.hidden = true;
  }
  function idOf(g) {
    var t = g.querySelector("title");
    return t ? t.textContent : null;
  }
  function select(id) {
    pinned = id;
    document.querySelectorAll(".selected").forEach(function (el) {
      el.classList.remove("selected");
    });
    document.querySelectorAll("#map g.node, #map g.edge").forEach(function (g) {
      if (idOf(g) === id) { g.classList.add("selected"); }
    });
    document.querySelectorAll("tbody tr").forEach(function (tr) {
      if (tr.getAttribute("data-id") === id) { tr.classList.add("selected"); }
    });
    show(id, pinnedAnchor());
  }
  document.getElementById("details-close").addEventListener("click", unpin);
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") { unpin(); }
  });

  document.querySelectorAll("#map g.node, #map g.edge").forEach(function (g) {
    var id = idOf(g);
    g.setAttribute("data-id", id);
    // Our panel replaces the SVG's own tooltips, which would show the same facts twice.
    g.querySelectorAll("a").forEach(function (a) {
      a.removeAttribute("xlink:title");
      a.removeAttributeNS("http://www.w3.org/1999/xlink", "title");
      a.removeAttribute("title");
    });
    g.addEventListener("mouseenter", function () { show(id, g); });
    g.addEventListener("mouseleave", clear);
    g.addEventListener("click", function (event) { event.preventDefault(); select(id); });
  });
  document.querySelectorAll("tbody tr").forEach(function (tr) {
    tr.addEventListener("click", function () { select(tr.getAttribute("data-id")); });
  });

  var search = document.getElementById("search");
  search.addEventListener("input", function () {
    var q = search.value.trim().toLowerCase();
    document.querySelectorAll("#map g.node").forEach(function (g) {
      g.classList.toggle("dim", q !== "" && g.getAttribute("data-id").toLowerCase().indexOf(q) < 0);
    });
    document.querySelectorAll("#map g.edge").forEach(function (g) {
      var e = byId[g.getAttribute("data-id")];
      var hit = !e || q === "" || e.source.toLowerCase().indexOf(q) >= 0 ||
        e.target.toLowerCase().indexOf(q) >= 0;
      g.classList.toggle("dim", !hit);
    });
    document.querySelectorAll("tbody tr").forEach(function (tr) {
      tr.classList.toggle("hidden", q !== "" && tr.textContent.toLowerCase().indexOf(q) < 0);
    });
  });

  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.querySelectorAll("th");
    heads.forEach(function (th, column) {
      function sort() {
        var asc = !th.classList.contains("asc");
        heads.forEach(function (h) { h.classList.remove("asc", "desc"); });
        th.classList.add(asc ? "asc" : "desc");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[column].getAttribute("data-sort");
          var y = b.cells[column].getAttribute("data-sort");
          var nx = parseFloat(x), ny = parseFloat(y);
          var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
          return asc ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (event) {
        if (event.key === "Enter") { sort(); }
      });
    });
  });

  // Fit to width, but never below MIN_SCALE of the natural size: the labels stay readable
  // (graphviz's 9 pt edge labels ~9.6 px) and a wider map scrolls instead.
  var MIN_SCALE = 0.8;
  var fit = document.getElementById("fit");
  var map = document.getElementById("map");
  var svg = map ? map.querySelector("svg") : null;
  var natural = svg ? svg.getBoundingClientRect().width : 0;
  function size() {
    var fitted = map.classList.contains("fit");
    var width = natural;
    if (fitted) { width = Math.max(Math.min(natural, map.clientWidth - 2), natural * MIN_SCALE); }
    svg.style.width = width + "px";
    svg.style.height = "auto";
    fit.textContent = fitted ? "actual size" : "fit to width";
  }
  if (fit && svg && natural) {
    size();
    fit.addEventListener("click", function () { map.classList.toggle("fit"); size(); });
    window.addEventListener("resize", size);
  }
  clear();
})();
"""
