// The dashboard: polls the status and recent jobs every few seconds, keeps chart history in the page,
// submits texts and clears the cache. Text from the API is only ever set through textContent.
import { api, REDIS_CODES } from "./dq-api.js";
import { levelChart, queueChart } from "./dq-charts.js";
import { el, fill } from "./dq-dom.js";
import { clock } from "./dq-format.js";
import { renderJobs, renderProfiles, renderResult, renderWorkers } from "./dq-views.js";

const $ = (id) => document.getElementById(id);
const POLL_MS = Number(document.body.dataset.pollMs) || 2000;
const WINDOW_MS = (Number(document.body.dataset.historyMinutes) || 10) * 60000;
const JOBS_FETCHED = 50;
const JOBS_SHOWN = 20;
const JOB_POLL_MS = 500;
const JOB_WAIT_MS = 10 * 60000;
const TOKEN_KEY = "dynaquant-token";

const state = {
  queue: [],              // {t, byPriority, depth, running}
  recommended: [],        // {t, level}
  jobPoints: new Map(),   // job id -> {t, level, id}
  lastGood: null,
  banner: "",
  timer: null,
};

function verdictFilter() {
  return $("jobs-verdict").value; // a query string: verdict=...&review_state=...
}

function filterWords() {
  const select = $("jobs-verdict");
  return select.options[select.selectedIndex].textContent;
}

function token() {
  return $("f-token").value.trim() || null;
}

function showBanner(kind, title, message) {
  const key = kind ? `${kind}|${message}` : "";
  if (key === state.banner) return; // unchanged: do not make screen readers announce it again
  state.banner = key;
  const banner = $("banner");
  if (!kind) {
    banner.hidden = true;
    banner.replaceChildren();
    delete banner.dataset.kind;
    return;
  }
  banner.dataset.kind = kind;
  fill(banner, el("strong", { text: title }), " ", el("span", { text: message }));
  banner.hidden = false;
}

function prune(now) {
  const oldest = now - WINDOW_MS - POLL_MS;
  state.queue = state.queue.filter((s) => s.t >= oldest);
  state.recommended = state.recommended.filter((s) => s.t >= oldest);
  for (const [id, point] of state.jobPoints) if (point.t < oldest) state.jobPoints.delete(id);
}

function recordJobs(jobs) {
  for (const job of jobs) {
    const level = job.result && job.result.level;
    if (job.status === "succeeded" && level && typeof job.finished_at === "number") {
      state.jobPoints.set(job.job_id, { t: job.finished_at * 1000, level, id: job.job_id });
    }
  }
}

function renderQueue(now, status) {
  const { node, priorities } = queueChart(state.queue, now, WINDOW_MS);
  fill($("queue-chart"), node);
  fill($("queue-legend"),
    priorities.map((p) => el("li", {}, el("span", { class: `swatch prio-${p}`, "aria-hidden": "true" }), `priority ${p}`)),
    el("li", {}, el("span", { class: "swatch swatch-dash", "aria-hidden": "true" }), "running"));
  if (!status) return;
  const queue = status.queue || {};
  const waiting = Object.entries(queue.by_priority || {}).filter(([, n]) => n > 0);
  const detail = waiting.length ? ` (${waiting.map(([p, n]) => `priority ${p}: ${n}`).join(", ")})` : "";
  $("queue-summary").textContent = `${queue.depth ?? 0} waiting${detail} · ${queue.running ?? 0} running`;
}

function renderLevels(now, status) {
  fill($("level-chart"), levelChart(state.recommended, [...state.jobPoints.values()], now, WINDOW_MS));
  const points = [...state.jobPoints.values()].sort((a, b) => a.t - b.t);
  const last = points[points.length - 1];
  const recommended = status && status.recommended_level ? status.recommended_level : "–";
  $("level-summary").textContent = `Recommended now: ${recommended} · last job: ${last ? `${last.level} at ${clock(last.t / 1000)}` : "–"}`;
}

function sentence(message) {
  const text = String(message || "").trim();
  return /[.!?]$/.test(text) ? text : `${text}.`;
}

function noWorkerHint(message) {
  // The API says "no worker is alive (...): start one with ..."; the banner's title already says the first part.
  const text = String(message || "");
  const hint = text.includes(": ") ? text.slice(text.indexOf(": ") + 2) : "start one with `dynaquant up`";
  return `Jobs wait in the queue until one runs: ${hint}.`;
}

function noteProblem(err) {
  if (err.status === 0) {
    showBanner("api", "The web app does not answer.", err.message);
  } else if (REDIS_CODES.has(err.code) || err.status === 503) {
    showBanner("redis", "Redis is unreachable.", `${sentence(err.message)} Worker state, the queue and jobs are unknown until it is back.`);
    renderWorkers($("workers"), [], "Unknown while Redis is unreachable.");
  } else {
    showBanner("api", "The status API failed.", err.message);
  }
  const since = state.lastGood ? `last good reading at ${clock(state.lastGood / 1000)}` : "no reading yet";
  $("connection").textContent = `Problem · ${since}`;
  $("connection").dataset.state = "problem";
}

async function refresh() {
  const now = Date.now();
  const [statusAnswer, jobsAnswer, profilesAnswer] = await Promise.allSettled([
    api("/api/v1/quantization/status"),
    api(`/api/v1/jobs?limit=${JOBS_FETCHED}${verdictFilter() ? `&${verdictFilter()}` : ""}`),
    api("/api/v1/quantization/profiles"),
  ]);
  const status = statusAnswer.status === "fulfilled" ? statusAnswer.value : null;
  if (status) {
    const workers = Array.isArray(status.workers) ? status.workers : [];
    const service = status.service || {};
    const problems = Array.isArray(service.messages) ? service.messages : [];
    if (!workers.length) showBanner("no-workers", "No worker is alive.", noWorkerHint(status.message));
    else if (service.degraded) showBanner("degraded", "The service runs degraded.", problems.map(sentence).join(" "));
    else showBanner(null);
    renderWorkers($("workers"), workers, "No worker is alive.");
    const queue = status.queue || {};
    state.queue.push({ t: now, byPriority: queue.by_priority || {}, depth: queue.depth || 0, running: queue.running || 0 });
    state.recommended.push({ t: now, level: status.recommended_level || null });
    state.lastGood = now;
    $("connection").textContent = `Live · updated ${clock(now / 1000)}`;
    $("connection").dataset.state = "live";
  } else {
    noteProblem(statusAnswer.reason);
  }
  if (jobsAnswer.status === "fulfilled") {
    const jobs = Array.isArray(jobsAnswer.value.jobs) ? jobsAnswer.value.jobs : [];
    recordJobs(jobs);
    const filtered = verdictFilter();
    renderJobs($("jobs-body"), jobs.slice(0, JOBS_SHOWN), filtered ? `No recent job shown as: ${filterWords()}.` : "No job yet.");
    $("jobs-filter-note").textContent = filtered ? `${jobs.length} recent job${jobs.length === 1 ? "" : "s"}: ${filterWords()}` : "";
  }
  if (profilesAnswer.status === "fulfilled") {
    const profiles = Array.isArray(profilesAnswer.value.profiles) ? profilesAnswer.value.profiles : [];
    renderProfiles($("profiles-body"), profiles, "No profile measured yet.");
  }
  prune(now);
  renderQueue(now, status);
  renderLevels(now, status);
}

async function loop() {
  clearTimeout(state.timer);
  try {
    await refresh();
  } catch (err) {
    console.error("dashboard refresh failed", err);
  } finally {
    state.timer = setTimeout(loop, POLL_MS);
  }
}

function setFormStatus(message, kind = "") {
  const node = $("form-status");
  node.textContent = message;
  node.dataset.kind = kind;
}

function formJob(form) {
  const data = new FormData(form);
  const job = {
    text: String(data.get("text") || ""),
    grade_level: Number(data.get("grade_level")),
    subject: String(data.get("subject") || "").trim(),
    task_priority: String(data.get("task_priority") || "balanced"),
  };
  for (const name of ["min_quantization", "force_quantization"]) if (data.get(name)) job[name] = String(data.get(name));
  for (const name of ["max_tokens", "priority"]) if (data.get(name) !== null && data.get(name) !== "") job[name] = Number(data.get(name));
  return job;
}

function markInvalid(form, field) {
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  const input = field && form.elements.namedItem(field);
  if (input && input.focus) {
    input.setAttribute("aria-invalid", "true");
    if (input.closest("details")) input.closest("details").open = true;
    input.focus();
  }
}

async function waitForJob(jobId) {
  const deadline = Date.now() + JOB_WAIT_MS;
  while (Date.now() < deadline) {
    const job = await api(`/api/v1/jobs/${encodeURIComponent(jobId)}`);
    if (["succeeded", "failed", "cancelled"].includes(job.status)) return job;
    setFormStatus(job.status === "running" ? `Running on ${job.worker || "a worker"}…` : `Queued as job ${jobId}…`);
    await new Promise((resolve) => setTimeout(resolve, JOB_POLL_MS));
  }
  return null;
}

async function onSubmit(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const job = formJob(form);
  if (!job.text.trim()) {
    markInvalid(form, "text");
    setFormStatus("Enter a text to simplify.", "error");
    return;
  }
  markInvalid(form, null);
  $("simplify-submit").disabled = true;
  $("result").hidden = true;
  setFormStatus("Submitting…");
  try {
    const answer = await api("/api/v1/jobs", { method: "POST", body: job, token: token() });
    setFormStatus(`Queued as job ${answer.job_id}…`);
    const done = await waitForJob(answer.job_id);
    if (!done) setFormStatus(`Job ${answer.job_id} is still not done; it stays in the recent jobs below.`, "error");
    else if (done.status === "succeeded") {
      renderResult($("result-text"), $("result-facts"), done);
      $("result").hidden = false;
      setFormStatus("Done.", "ok");
    } else if (done.status === "cancelled") setFormStatus(`Job ${answer.job_id} was cancelled.`, "error");
    else setFormStatus(`Job ${answer.job_id} failed: ${(done.error && done.error.message) || "no reason given"}`, "error");
  } catch (err) {
    if (err.status === 401) {
      markInvalid(form, null);
      $("f-token").closest("details").open = true;
      $("f-token").focus();
      setFormStatus(`${err.message} Enter the API token under More options.`, "error");
    } else {
      markInvalid(form, err.field);
      setFormStatus(err.message, "error");
    }
  } finally {
    $("simplify-submit").disabled = false;
    loop();
  }
}

async function onClearCache() {
  const button = $("clear-cache");
  const message = $("cache-message");
  button.disabled = true;
  message.textContent = "Clearing…";
  try {
    const answer = await api("/api/v1/quantization/cache/clear", { method: "POST", token: token() });
    const freed = Object.values(answer.workers || {}).reduce((sum, w) => sum + (Number(w && w.freed_mb) || 0), 0);
    message.textContent = `${answer.message}${freed ? ` (freed ${freed.toFixed(0)} MB)` : ""}.`;
  } catch (err) {
    message.textContent = err.status === 401 ? `${err.message} Enter the API token under More options.` : err.message;
  } finally {
    button.disabled = false;
    loop();
  }
}

function start() {
  const tokenInput = $("f-token");
  tokenInput.value = sessionStorage.getItem(TOKEN_KEY) || "";
  tokenInput.addEventListener("change", () => sessionStorage.setItem(TOKEN_KEY, tokenInput.value.trim()));
  $("simplify-form").addEventListener("submit", onSubmit);
  $("clear-cache").addEventListener("click", onClearCache);
  $("jobs-verdict").addEventListener("change", loop);
  loop();
}

start();
