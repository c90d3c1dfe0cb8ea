/* Starts Swagger UI on /docs from the package's own copy (no CDN, no inline script: the page's CSP
 * allows scripts from this origin only). The schema's URL is a data attribute. Options and the label
 * fix below keep the page free of axe-core violations (with apidocs.css). */
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("swagger-ui");
  if (!root || !window.SwaggerUIBundle) return;
  window.ui = window.SwaggerUIBundle({
    url: root.dataset.openapi,
    dom_id: "#swagger-ui",
    deepLinking: false, // a deep link inside each operation's toggle button would nest one control in another
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    syntaxHighlight: false, // its colours on a dark background fall short of 4.5:1
  });
  // Swagger UI's example pickers carry no label: name them as they appear
  new MutationObserver(() => {
    root.querySelectorAll("select.examples-select-element:not([aria-label])").forEach((select) => select.setAttribute("aria-label", "example"));
  }).observe(root, { childList: true, subtree: true });
});
