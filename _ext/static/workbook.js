// The book's own script (no CDN): a click on a figure in a cell's output opens it at full
// size in an overlay; a click anywhere or Escape closes it. Each figure is also a link to
// its image file, so "open in a new tab" works, and without JavaScript the link still does.
(function () {
  "use strict";
  function close() {
    var box = document.querySelector(".workbook-lightbox");
    if (box) box.remove();
  }
  function open(img) {
    close();
    var box = document.createElement("div");
    box.className = "workbook-lightbox";
    box.setAttribute("role", "dialog");
    box.setAttribute("aria-label", img.alt || "figure");
    var big = document.createElement("img");
    big.src = img.currentSrc || img.src;
    big.alt = img.alt;
    box.appendChild(big);
    box.addEventListener("click", close);
    document.body.appendChild(box);
  }
  function setup() {
    document.querySelectorAll(".cell_output img").forEach(function (img) {
      if (img.closest("a")) return;
      var a = document.createElement("a");
      a.href = img.getAttribute("src");
      a.className = "workbook-zoom";
      a.title = "Click to see this figure at full size";
      img.parentNode.insertBefore(a, img);
      a.appendChild(img);
      a.addEventListener("click", function (ev) {
        if (ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return;  // new tab etc.
        ev.preventDefault();
        open(img);
      });
    });
    document.addEventListener("keydown", function (ev) { if (ev.key === "Escape") close(); });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setup);
  else setup();
})();
