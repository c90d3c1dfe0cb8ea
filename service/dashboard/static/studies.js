/* Studies list: "Compare selected" sends the ticked studies to /compare?studies=a,b. */
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("compare-form");
  if (!form) return;
  form.addEventListener("submit", (event) => {
    const ids = [...form.querySelectorAll("input[name=pick]:checked")].map((box) => box.value);
    event.preventDefault();
    if (ids.length) window.location.assign("/compare?studies=" + encodeURIComponent(ids.join(",")));
  });
});
