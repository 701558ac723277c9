// Views of the API's answers: worker cards, the recent-jobs table and a finished job's result.
import { el, fill } from "./dq-dom.js";
import { memoryGauge } from "./dq-charts.js";
import { clock, isNumber, latency, mb, percent, seconds, text } from "./dq-format.js";

const SNIPPET = 140;
const GIB = 1024 ** 3;

export function levelBadge(level) {
  return level ? el("span", { class: `level level-${level}`, text: level }) : el("span", { class: "muted", text: "–" });
}

function facts(pairs) {
  return el("dl", { class: "facts" }, pairs.map(([term, value]) => [el("dt", { text: term }), el("dd", {}, value)]));
}

function lastJob(job) {
  if (!job || typeof job !== "object") return "none yet";
  const parts = [text(job.status), job.level,
    isNumber(job.generation_seconds) ? `${job.generation_seconds.toFixed(2)} s generation` : null,
    isNumber(job.readability_grade) ? `readability ${job.readability_grade.toFixed(1)}` : null,
    isNumber(job.finished_at) ? clock(job.finished_at) : null];
  return parts.filter(Boolean).join(" · ");
}

function cachedModels(worker) {
  const models = Array.isArray(worker.current_models) ? worker.current_models : [];
  const cache = worker.cache && typeof worker.cache === "object" ? worker.cache : {};
  const used = isNumber(cache.current_size_mb) && isNumber(cache.max_size_mb)
    ? `${mb(cache.current_size_mb)} of ${mb(cache.max_size_mb)} cap` : "";
  const rows = models.length
    ? models.map((m) => el("tr", {},
        el("th", { scope: "row", text: text(m.name) }), el("td", {}, levelBadge(m.level)),
        el("td", { class: "num", text: mb(m.size_mb) }), el("td", { class: "num", text: text(m.access_count) }),
        el("td", { text: text(m.status) })))
    : [el("tr", { class: "empty-row" }, el("td", { colspan: 5, class: "empty", text: "No model is cached." }))];
  return [
    el("h4", {}, "Cached models ", el("span", { class: "muted small", text: used })),
    el("table", { class: "cached-models", "data-worker": text(worker.worker) },
      el("caption", { class: "visually-hidden", text: `Models cached by ${text(worker.worker)}` }),
      el("thead", {}, el("tr", {}, ["Model", "Level", "Size", "Accesses", "Status"].map((h, i) =>
        el("th", { scope: "col", class: i === 2 || i === 3 ? "num" : null, text: h })))),
      el("tbody", {}, rows)),
  ];
}

function choiceWhy(choice) {
  // Why the worker holds the model at this level: the matrix's word, then the measured profile's.
  if (!choice || typeof choice !== "object") return null;
  const reasons = Array.isArray(choice.reasons) ? choice.reasons : [];
  const matrix = choice.matrix_level && choice.matrix_level !== choice.level ? ` (matrix: ${text(choice.matrix_level)})` : "";
  return el("div", { class: "level-choice", "data-model": text(choice.model) },
    matrix ? el("span", { class: "muted small", text: matrix }) : null,
    reasons.length ? el("ul", { class: "reasons" }, reasons.map((r) => el("li", { text: text(r) }))) : null);
}

function currentLevels(worker) {
  const levels = worker.current_levels && typeof worker.current_levels === "object" ? worker.current_levels : {};
  const choices = worker.choices && typeof worker.choices === "object" ? worker.choices : {};
  const names = [...new Set([...Object.keys(levels), ...Object.keys(choices)])].sort();
  const levelOf = (n) => levels[n] || (choices[n] && choices[n].level);
  return [
    el("h4", { text: "Current level per model" }),
    names.length
      ? el("ul", { class: "current-levels" }, names.map((n) =>
          el("li", {}, el("span", { text: n }), " ", levelBadge(levelOf(n)), choiceWhy(choices[n]))))
      : el("p", { class: "empty", text: "No model loaded yet: the first job picks its level." }),
  ];
}

function ceilings(worker) {
  // After a worker died on a model at a level, this host runs that model lower for a while.
  const found = worker.ceilings && typeof worker.ceilings === "object" ? Object.values(worker.ceilings) : [];
  return found.map((c) => [`At most ${text(c.level)}`, `${text(c.model)}: ${text(c.reason)}`]);
}

function workerCard(worker) {
  const name = text(worker.worker, "unknown worker");
  const memory = worker.memory && typeof worker.memory === "object" ? worker.memory : {};
  const fraction = isNumber(memory.used_fraction) ? memory.used_fraction : null;
  const amounts = isNumber(memory.used_bytes) && isNumber(memory.total_bytes)
    ? ` · ${(memory.used_bytes / GIB).toFixed(1)} of ${(memory.total_bytes / GIB).toFixed(1)} GB` : "";
  return el("article", { class: "worker", "data-worker": name },
    el("h3", {}, name, " ", el("span", { class: "muted small", text: `${text(worker.host, "")} · ${text(worker.device)}` })),
    el("div", { class: "gauge-wrap" },
      memoryGauge(fraction, worker.thresholds, `Memory of ${name}`),
      el("p", { class: "gauge-caption" }, `Memory ${percent(fraction)} used${amounts} · band `,
        el("strong", { text: text(worker.memory_status) }))),
    facts([
      ["Recommended level", levelBadge(worker.recommended_level)],
      ["Active requests", text(worker.active_requests, "0")],
      ["Jobs done", text(worker.jobs_done, "0")],
      ["Threads", text(worker.threads)],
      ["Last job", lastJob(worker.last_job)],
      ...ceilings(worker),
    ]),
    currentLevels(worker),
    cachedModels(worker));
}

export function renderWorkers(container, workers, emptyMessage) {
  if (!workers.length) {
    fill(container, el("p", { class: "empty", text: emptyMessage }));
    return;
  }
  fill(container, workers.map(workerCard));
}

const VERDICT_WORDS = { pass: "pass", needs_review: "needs review" };

export function gradeVsTarget(report) {
  if (!report || !isNumber(report.grade)) return "–";
  const error = isNumber(report.grade_error) ? report.grade_error : report.grade - report.target_grade;
  return `${report.grade.toFixed(1)} for ${text(report.target_grade)} (${error >= 0 ? "+" : ""}${error.toFixed(1)})`;
}

export function verdictView(report) {
  if (!report || typeof report !== "object") return el("span", { class: "muted", text: "–" });
  const verdict = text(report.verdict);
  const reasons = Array.isArray(report.reasons) ? report.reasons : [];
  return el("div", { class: "quality", "data-verdict": verdict },
    el("span", { class: `verdict verdict-${verdict}`, text: VERDICT_WORDS[verdict] || verdict }),
    reasons.length ? el("ul", { class: "reasons" }, reasons.map((r) => el("li", { text: text(r) }))) : null);
}

function jobRow(job) {
  const request = job.request && typeof job.request === "object" ? job.request : {};
  const result = job.result && typeof job.result === "object" ? job.result : null;
  const error = job.error && typeof job.error === "object" ? job.error : null;
  const full = result ? text(result.text, "") : error ? `${text(error.code)}: ${text(error.message)}` : text(request.text, "");
  const shown = full.length > SNIPPET ? `${full.slice(0, SNIPPET - 1)}…` : full;
  return el("tr", { "data-job-id": text(job.job_id), "data-status": text(job.status) },
    el("td", { text: clock(job.created_at) }),
    el("td", {}, el("span", { class: `status status-${text(job.status)}`, text: text(job.status) })),
    el("td", { class: "num", text: text(request.grade_level) }),
    el("td", { text: text(request.subject) }),
    el("td", {}, levelBadge(result && result.level)),
    el("td", { class: "num", text: seconds(latency(job)) }),
    el("td", { class: "num grade-vs-target", text: result ? gradeVsTarget(result.quality) : "–" }),
    el("td", {}, verdictView(result && result.quality), reviewLink(job)),
    el("td", { class: "snippet", title: full, text: shown }));
}

const REVIEW_WORDS = { in_review: "in review", accepted: "accepted", edited: "edited" };

function reviewLink(job) {
  // A succeeded job's text can be reviewed paragraph by paragraph; the link says how far its review went.
  if (job.status !== "succeeded" || !job.job_id) return null;
  const reviewState = text(job.review_state, "unreviewed");
  return el("a", { href: `/jobs/${encodeURIComponent(job.job_id)}/review`, class: "review-link", "data-review-state": reviewState },
    "Review", REVIEW_WORDS[reviewState] ? el("span", { class: "review-link-state", text: ` (${REVIEW_WORDS[reviewState]})` }) : null);
}

export function renderJobs(tbody, jobs, emptyMessage = "No job yet.") {
  if (!jobs.length) {
    fill(tbody, el("tr", {}, el("td", { colspan: 9, class: "empty", text: emptyMessage })));
    return;
  }
  fill(tbody, jobs.map(jobRow));
}

export function renderResult(textNode, factsNode, job) {
  const result = job.result || {};
  textNode.textContent = text(result.text, "(the model returned no text)");
  fill(factsNode, [
    ["Level", levelBadge(result.level)],
    ["Model", `${text(result.model)} (${text(result.backend)})`],
    ["Latency", seconds(latency(job))],
    ["Generation", `${text(result.tokens_out)} tokens in ${seconds(result.generation_seconds)}`],
    ["Grade vs target", gradeVsTarget(result.quality)],
    ["Quality", verdictView(result.quality)],
    ["Job", text(job.job_id)],
  ].map(([term, value]) => [el("dt", { text: term }), el("dd", {}, value)]));
}

function number(value, digits) {
  return isNumber(value) ? value.toFixed(digits) : "–";
}

function memoryVsEstimate(p) {
  if (!isNumber(p.resident_mb)) return isNumber(p.estimated_mb) ? `– / ${mb(p.estimated_mb)}` : "–";
  const error = isNumber(p.estimate_error) ? ` (${p.estimate_error >= 0 ? "+" : ""}${percent(p.estimate_error, 0)})` : "";
  return `${mb(p.resident_mb)} / ${mb(p.estimated_mb)}${error}`;
}

export function renderProfiles(tbody, profiles, emptyMessage) {
  // One row per host, device, model and level; jobs split by kind in the cell's title.
  if (!profiles.length) {
    fill(tbody, el("tr", {}, el("td", { colspan: 10, class: "empty", text: emptyMessage })));
    return;
  }
  fill(tbody, profiles.map((p) => el("tr", { "data-model": text(p.model), "data-level": text(p.level), "data-host": text(p.host) },
    el("td", { text: `${text(p.host)} · ${text(p.device)}` }),
    el("td", { text: text(p.model) }),
    el("td", {}, levelBadge(p.level)),
    el("td", { class: "num jobs", title: `${text(p.real_jobs, "0")} real, ${text(p.calibration_jobs, "0")} calibration, ${text(p.shadow_jobs, "0")} shadow`, text: text(p.jobs, "0") }),
    el("td", { class: "num", text: number(p.seconds_per_job, 2) }),
    el("td", { class: "num decode", text: number(p.decode_tokens_per_second, 1) }),
    el("td", { class: "num memory", text: memoryVsEstimate(p) }),
    el("td", { class: "num pass-rate", text: percent(p.pass_rate, 0) }),
    el("td", { class: "num reviewed", title: reviewedTitle(p), text: reviewed(p) }),
    el("td", { class: "num", text: number(p.grade_error, 2) }))));
}

function reviewed(p) {
  return p.reviewed ? `${p.reviewed} · ${percent(p.review_accept_rate, 0)} accepted` : "–";
}

function reviewedTitle(p) {
  if (!p.reviewed) return "No draft of this level has been reviewed yet";
  return `Pass rate corrected by the reviews: ${percent(p.reviewed_pass_rate, 0)} (what the policy weighs)`;
}
