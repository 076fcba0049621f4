// Placeholder script of the backend: shows /api/overview as JSON. The page replaces it.
"use strict";
fetch("/api/overview?window=hour")
  .then((r) => r.json())
  .then((o) => {
    document.getElementById("overview").textContent = JSON.stringify(o.totals, null, 2);
  });
