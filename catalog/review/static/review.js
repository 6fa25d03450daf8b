// The review page: decisions are POSTed with the page's token; groups load as the reader scrolls;
// files that vanish meanwhile (catalog watch, a file manager) are shown as gone and never acted on.
"use strict";
const token = document.querySelector('meta[name="catalog-token"]').content;
const main = document.getElementById("groups");
let current = null;

function groups() { return Array.from(main.querySelectorAll("section.group")); }

function toast(text, undoable) {
  const t = document.getElementById("toast");
  t.textContent = text;
  if (undoable) {
    const button = document.createElement("button");
    button.className = "undo";
    button.textContent = "Undo";
    button.addEventListener("click", undo);
    t.append(" ", button);
  }
  t.classList.add("show");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.remove("show"), undoable ? 10000 : 4000);
}

async function undo() {
  try {
    await post("undo");
    location.reload();  // the group is back (what could not be put back is noted on it)
  } catch (error) { toast(`nothing undone: ${error.message}`); }
}

function focusGroup(section) {
  if (!section) return;
  if (current) current.classList.remove("current");
  current = section;
  section.classList.add("current");
  section.scrollIntoView({ block: "nearest", behavior: "smooth" });
}

function move(step) {
  const all = groups();
  const at = all.indexOf(current);
  focusGroup(all[Math.min(all.length - 1, Math.max(0, at + step))] || all[0]);
}

function showCounts(data) {  // the page's counts after a decision, as the server has them
  document.getElementById("remaining").textContent = data.open;
  document.getElementById("redundant").textContent = data.redundant;
}

function checkEmpty() {
  if (!groups().length) document.getElementById("empty").hidden = false;
}

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Catalog-Token": token },
    body: JSON.stringify(body || {}),
    credentials: "same-origin",
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || response.statusText);
  if (typeof data.open === "number") showCounts(data);
  return data;
}

function leave(section) {
  const next = section.nextElementSibling && section.nextElementSibling.matches("section.group")
    ? section.nextElementSibling : null;
  section.classList.add("leaving");
  setTimeout(() => { section.remove(); checkEmpty(); if (next) focusGroup(next); }, 250);
}

async function keep(section) {
  const chosen = section.querySelector('input[type="radio"]:checked');
  if (!chosen) { toast("choose the image to keep first"); return; }
  try {
    const result = await post(`groups/${section.dataset.group}/keep`, { keep: Number(chosen.value) });
    const skipped = result.skipped.length ? `; ${result.skipped.length} skipped: ${result.skipped.map(s => s.reason).join("; ")}` : "";
    toast(`${result.trashed.length} moved to the trash${skipped}`, result.trashed.length > 0);
    if (result.state !== "open") leave(section); else refresh(section);
  } catch (error) { toast(`nothing done: ${error.message}`); }
}

async function notDuplicates(section, imageId) {
  try {
    const result = await post(`groups/${section.dataset.group}/not-duplicates`, imageId ? { image: imageId } : {});
    toast(imageId ? "remembered: not a duplicate of the others" : "remembered: not duplicates", true);
    if (result.state !== "open") leave(section);
    else section.querySelector(`figure[data-image="${imageId}"]`).remove();
  } catch (error) { toast(`nothing done: ${error.message}`); }
}

async function skip(section) {
  try { await post(`groups/${section.dataset.group}/skip`); leave(section); }
  catch (error) { toast(error.message); }
}

function refresh(section) { checkPresence([section]); }

async function checkPresence(sections) {
  const figures = sections.flatMap(s => Array.from(s.querySelectorAll("figure[data-image]")));
  if (!figures.length) return;
  const ids = figures.map(f => f.dataset.image).join(",");
  const response = await fetch(`presence?ids=${ids}`, { credentials: "same-origin" });
  if (!response.ok) return;
  const state = await response.json();
  for (const figure of figures) {
    const problem = state[figure.dataset.image];
    figure.classList.toggle("gone", Boolean(problem));
    figure.querySelector(".gone-badge").textContent = problem || "gone";
    const radio = figure.querySelector('input[type="radio"]');
    radio.disabled = Boolean(problem);
  }
}

function view(img) {
  const viewer = document.getElementById("viewer");
  viewer.querySelector("img").src = img.dataset.view;
  viewer.querySelector(".caption").textContent = img.closest("figure").querySelector(".name").title;
  viewer.hidden = false;
}

main.addEventListener("click", (event) => {
  const section = event.target.closest("section.group");
  if (!section) return;
  focusGroup(section);
  if (event.target.matches(".act-keep")) keep(section);
  else if (event.target.matches(".act-not")) notDuplicates(section);
  else if (event.target.matches(".act-skip")) skip(section);
  else if (event.target.matches(".act-not-one")) notDuplicates(section, Number(event.target.closest("figure").dataset.image));
  else if (event.target.matches("img.thumb")) view(event.target);
});
main.addEventListener("change", (event) => {
  if (!event.target.matches('input[type="radio"]')) return;
  const section = event.target.closest("section.group");
  section.querySelectorAll("figure").forEach(f => f.classList.toggle("keep", f.dataset.image === event.target.value));
});
document.getElementById("viewer").addEventListener("click", () => { document.getElementById("viewer").hidden = true; });

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const viewer = document.getElementById("viewer");
  if (event.key === "Escape") { viewer.hidden = true; return; }
  if (event.key === "u") { undo(); return; }
  if (!current) focusGroup(groups()[0]);
  if (!current) return;
  if (event.key === "j" || event.key === "ArrowDown") { move(1); event.preventDefault(); }
  else if (event.key === "k" || event.key === "ArrowUp") { move(-1); event.preventDefault(); }
  else if (event.key === "t") keep(current);
  else if (event.key === "n") notDuplicates(current);
  else if (event.key === "s") skip(current);
  else if (event.key === "v") { const img = current.querySelector("figure.keep img.thumb"); if (img) view(img); }
  else if (/^[1-9]$/.test(event.key)) {
    const radio = current.querySelectorAll('input[type="radio"]')[Number(event.key) - 1];
    if (radio && !radio.disabled) { radio.checked = true; radio.dispatchEvent(new Event("change", { bubbles: true })); }
  }
});

// Lazy loading: the next groups arrive when the "more" marker scrolls into view.
const more = new IntersectionObserver(async (entries) => {
  for (const entry of entries) {
    if (!entry.isIntersecting || entry.target.dataset.loading) continue;
    entry.target.dataset.loading = "1";
    const response = await fetch(`groups?after=${entry.target.dataset.next}`, { credentials: "same-origin" });
    const html = await response.text();
    more.unobserve(entry.target);
    entry.target.insertAdjacentHTML("afterend", html);
    entry.target.remove();
    const next = main.querySelector(".more");
    if (next) more.observe(next);
  }
}, { rootMargin: "800px" });
const first = main.querySelector(".more");
if (first) more.observe(first);

// Files can vanish while the page is open (catalog watch): look again every 10 s at what is on screen.
setInterval(() => checkPresence(groups().filter(s => {
  const box = s.getBoundingClientRect();
  return box.bottom > -200 && box.top < window.innerHeight + 200;
})), 10000);
focusGroup(groups()[0]);
