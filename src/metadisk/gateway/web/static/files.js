// MetaDisk's file manager: uploads with progress (picker and drag and drop), text previews by
// range reads, and copying a grant. Everything else works without this script.
const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";

function uploader(section) {
  const { bucket, prefix } = section.dataset;
  const input = section.querySelector("#files");
  const zone = section.querySelector("#dropzone");
  const box = section.querySelector("#uploads");
  const list = section.querySelector("#upload-list");
  const total = section.querySelector("#total");
  const totalText = section.querySelector("#total-text");
  const cancel = section.querySelector("#cancel");
  let running = [];

  function sendAll(files) {
    if (!files.length) return;
    box.classList.remove("hidden");
    list.replaceChildren();
    const sizes = files.map((f) => f.size);
    const sent = files.map(() => 0);
    const all = sizes.reduce((a, b) => a + b, 0) || 1;
    total.max = all;
    const show = () => {
      const done = sent.reduce((a, b) => a + b, 0);
      total.value = done;
      totalText.textContent = `${Math.round((100 * done) / all)}%`;
    };
    running = files.map((file, i) => {
      const item = document.createElement("li");
      const label = document.createElement("span");
      label.textContent = file.name;
      const bar = document.createElement("progress");
      bar.max = file.size || 1;
      bar.value = 0;
      bar.setAttribute("aria-label", `Upload of ${file.name}`);
      const state = document.createElement("span");
      state.className = "state";
      state.textContent = "waiting";
      item.append(label, bar, state);
      list.append(item);
      const xhr = new XMLHttpRequest();
      const query = new URLSearchParams({ bucket, key: prefix + file.name });
      xhr.open("PUT", `/-/upload?${query}`);
      xhr.setRequestHeader("X-CSRF-Token", csrf);
      if (file.type) xhr.setRequestHeader("Content-Type", file.type);
      xhr.upload.onprogress = (e) => {
        bar.value = e.loaded;
        sent[i] = e.loaded;
        state.textContent = `${Math.round((100 * e.loaded) / (file.size || 1))}%`;
        show();
      };
      const finished = new Promise((resolve) => {
        xhr.onload = () => {
          const ok = xhr.status >= 200 && xhr.status < 300;
          sent[i] = file.size;
          bar.value = bar.max;
          state.textContent = ok ? "done" : `failed (${xhr.status})`;
          item.className = ok ? "ok" : "error";
          show();
          resolve(ok);
        };
        xhr.onerror = () => { state.textContent = "failed"; item.className = "error"; resolve(false); };
        xhr.onabort = () => { state.textContent = "cancelled"; item.className = "error"; resolve(false); };
      });
      state.textContent = "0%";
      xhr.send(file);
      return { xhr, finished };
    });
    cancel.disabled = false;
    Promise.all(running.map((r) => r.finished)).then((results) => {
      cancel.disabled = true;
      running = [];
      if (results.some(Boolean)) {
        totalText.textContent = `${results.filter(Boolean).length} of ${results.length} uploaded`;
        setTimeout(() => window.location.reload(), 600);
      }
    });
  }

  input.addEventListener("change", () => { sendAll([...input.files]); input.value = ""; });
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    sendAll([...(e.dataTransfer?.files ?? [])]);
  });
  cancel.addEventListener("click", () => running.forEach((r) => r.xhr.abort()));
}

async function textPreview(pre) {
  const limit = Number(pre.dataset.limit);
  try {
    const answer = await fetch(pre.dataset.src, { headers: { Range: `bytes=0-${limit - 1}` } });
    if (!answer.ok) throw new Error(String(answer.status));
    pre.textContent = await answer.text();
  } catch (error) {
    pre.textContent = `No preview: ${error.message}`;
  }
}

const section = document.getElementById("uploader");
if (section) uploader(section);
const pre = document.getElementById("preview-text");
if (pre) textPreview(pre);
const copy = document.getElementById("copy-grant");
if (copy) {
  copy.addEventListener("click", async () => {
    const area = document.getElementById(copy.dataset.target);
    area.select();
    try { await navigator.clipboard.writeText(area.value); copy.textContent = "Copied"; }
    catch { copy.textContent = "Selected: press Ctrl+C"; }
  });
}
