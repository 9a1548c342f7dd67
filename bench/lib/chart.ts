/**
 * An SVG bar chart of a suite's results (median req/s per case, one group of bars per path and
 * connection count), written beside the table when a suite sets `chart: true`. Plain SVG, no
 * script or external asset: it renders anywhere, GitHub included.
 */
import type { Row } from "./report.ts";

const palette = ["#2b6cd4", "#1a9a6c", "#c98a12", "#d2453b", "#7b4bc4", "#3a8fa3", "#8a8f99"];

const esc = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

export function svgChart(rows: readonly Row[], title: string, baseline: string): string {
  const cases = [...new Set(rows.map((r) => r.case))];
  const groups = [...new Set(rows.map((r) => `${r.path ?? ""}\0${r.connections}`))];
  const max = Math.max(1, ...rows.map((r) => (Number.isFinite(r.rps) ? r.rps : 0)));
  const barW = 26;
  const gap = 8;
  const groupW = cases.length * barW + (cases.length - 1) * 4 + gap * 2;
  const L = 70;
  const T = 40;
  const H = 260;
  // Wide enough for the bars and for the title (about 7.5 px a character at 14 px).
  const W = Math.max(L + groups.length * groupW + 20, L + Math.ceil(title.length * 7.5));
  const legendH = 18 * cases.length + 10;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${T + H + 60 + legendH}" font-family="system-ui, sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="${L}" y="22" font-size="14" font-weight="600">${esc(title)}</text>`,
  );
  for (let i = 0; i <= 4; i++) {
    const v = (max / 4) * i;
    const y = T + H - (H * v) / max;
    out.push(
      `<line x1="${L}" x2="${W - 10}" y1="${y}" y2="${y}" stroke="#e3e6eb"/>`,
      `<text x="${L - 6}" y="${y + 4}" text-anchor="end" fill="#6b7385">${Math.round(v).toLocaleString("en-US")}</text>`,
    );
  }
  out.push(
    `<text x="14" y="${T + H / 2}" transform="rotate(-90 14 ${T + H / 2})" text-anchor="middle" fill="#6b7385">req/s (median)</text>`,
  );
  groups.forEach((g, gi) => {
    const [path, conns] = g.split("\0");
    const x0 = L + gi * groupW + gap;
    cases.forEach((c, ci) => {
      const r = rows.find((x) => x.case === c && `${x.path ?? ""}\0${x.connections}` === g);
      if (!r || !Number.isFinite(r.rps)) return;
      const h = (H * r.rps) / max;
      const x = x0 + ci * (barW + 4);
      out.push(
        `<rect x="${x}" y="${T + H - h}" width="${barW}" height="${h}" fill="${palette[ci % palette.length]}"><title>${esc(`${c} ${path} ${conns} conns: ${Math.round(r.rps)} req/s`)}</title></rect>`,
      );
      if (c !== baseline && Number.isFinite(r.rpsRatio)) {
        out.push(
          `<text x="${x + barW / 2}" y="${T + H - h - 4}" text-anchor="middle" font-size="10">${r.rpsRatio.toFixed(2)}×</text>`,
        );
      }
    });
    out.push(
      `<text x="${x0 + (groupW - 2 * gap) / 2}" y="${T + H + 16}" text-anchor="middle">${esc(path || "/")}</text>`,
      `<text x="${x0 + (groupW - 2 * gap) / 2}" y="${T + H + 30}" text-anchor="middle" fill="#6b7385">${conns} conns</text>`,
    );
  });
  cases.forEach((c, ci) => {
    const y = T + H + 50 + ci * 18;
    out.push(
      `<rect x="${L}" y="${y}" width="12" height="12" fill="${palette[ci % palette.length]}"/>`,
      `<text x="${L + 18}" y="${y + 10}">${esc(c)}${c === baseline ? " (baseline; ratios are to it)" : ""}</text>`,
    );
  });
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}
