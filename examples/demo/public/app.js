// Served as a static file by the web tier; asks the app's JSON API which worker answered.
const out = document.getElementById("info");
async function ask() {
  const r = await fetch("/api/info");
  out.textContent = JSON.stringify(await r.json(), null, 2);
}
document.getElementById("again").addEventListener("click", () => void ask());
void ask();
