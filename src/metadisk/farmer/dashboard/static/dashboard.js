// Refreshes the dashboard's figures in place: fetches the page again and swaps its #live part.
// Without this script the page is whole all the same; reloading it shows the same figures.
const live = document.getElementById("live");
const seconds = Number(live?.dataset.refresh || 0);

async function refresh() {
  if (document.hidden) return;
  try {
    const answer = await fetch(location.pathname, { headers: { Accept: "text/html" }, cache: "no-store" });
    if (!answer.ok) return;
    const page = new DOMParser().parseFromString(await answer.text(), "text/html");
    const fresh = page.getElementById("live");
    if (!fresh) return;
    // Keep an open details element open across the swap.
    const open = [...live.querySelectorAll("details[open] summary")].map((s) => s.textContent);
    live.replaceChildren(...fresh.childNodes);
    for (const summary of live.querySelectorAll("details summary")) {
      if (open.includes(summary.textContent)) summary.parentElement.open = true;
    }
  } catch {
    // the node is restarting or gone: keep the last figures, try again later
  }
}

if (live && seconds > 0) {
  setInterval(refresh, seconds * 1000);
  document.addEventListener("visibilitychange", refresh);
}
