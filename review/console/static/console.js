// Vigil review console: live updates over server-sent events. Elements
// marked data-live are refreshed from the server-rendered page when an
// alert changes, so every value stays escaped by the server's templates.
(function () {
  "use strict";
  if (!window.EventSource || !document.querySelector("[data-live]")) return;
  var timer = null, pending = 0;
  function refresh() {
    timer = null;
    var n = pending; pending = 0;
    fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (el) {
          if (!el.id) return;
          var fresh = doc.getElementById(el.id);
          if (!fresh) return;
          // Keep the reviewer's bulk selection across refreshes.
          var checked = {};
          el.querySelectorAll("input[type=checkbox]:checked").forEach(function (c) { checked[c.value] = true; });
          el.replaceWith(fresh);
          fresh.querySelectorAll("input[type=checkbox]").forEach(function (c) { if (checked[c.value]) c.checked = true; });
        });
        var live = document.getElementById("live");
        if (live) live.textContent = n === 1 ? "1 alert changed." : n + " alerts changed.";
        document.body.setAttribute("data-refreshed", String(Date.now()));
      })
      .catch(function () {});
  }
  var es = new EventSource("/console/events");
  es.addEventListener("alert", function () {
    pending++;
    if (!timer) timer = setTimeout(refresh, 250);
  });
  es.addEventListener("open", function () { document.body.setAttribute("data-live-connected", "1"); });
})();
