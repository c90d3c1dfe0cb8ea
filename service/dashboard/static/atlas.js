// The atlas page: while its studies run, reload the report's content every few seconds.
(function () {
  "use strict";
  var live = document.getElementById("atlas-live");
  if (!live) return;
  var key = live.getAttribute("data-key");
  var EVERY_MS = 4000;

  function running() {
    var atlas = document.getElementById("atlas");
    var status = atlas ? atlas.getAttribute("data-status") : "done";
    return status === "running" || status === "missing";
  }

  function refresh() {
    if (!running()) return;
    fetch("/atlases/" + encodeURIComponent(key) + "/fragment", { headers: { Accept: "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html !== null) live.innerHTML = html;
      })
      .catch(function () { /* the server went away: try again at the next tick */ })
      .then(function () { if (running()) window.setTimeout(refresh, EVERY_MS); });
  }

  if (running()) window.setTimeout(refresh, EVERY_MS);
})();
