// The review page of one finished job: each paragraph beside its source with the checker's findings marked,
// and the reviewer's actions (accept, edit, ask again, take the new draft). Everything goes through the JSON API;
// text from it is only ever set through textContent.
import { api } from "./dq-api.js";
import { el, fill, svg } from "./dq-dom.js";
import { LEVELS, clock, isNumber, seconds, text } from "./dq-format.js";
import { gradeVsTarget, levelBadge, verdictView } from "./dq-views.js";

const $ = (id) => document.getElementById(id);
const JOB_ID = document.body.dataset.jobId || "";
const BASE = `/api/v1/jobs/${encodeURIComponent(JOB_ID)}`;
const TOKEN_KEY = "dynaquant-token"; // shared with the dashboard
const REVIEWER_KEY = "dynaquant-reviewer";
const REDRAFT_POLL_MS = 1500;
const WAIT_POLL_MS = 3000;
const SETTLED = new Set(["accepted", "edited", "redrafted"]);
const STATE_WORDS = {
  unreviewed: "unreviewed", in_review: "in review", accepted: "accepted", edited: "edited",
  redrafting: "new draft asked", redrafted: "new draft taken",
};
const JOB_STATE_WORDS = { unreviewed: "not reviewed yet", in_review: "in review", accepted: "accepted", edited: "edited" };
const MARK_ORDER = ["invented", "rare", "dropped", "missing", "long_sentence"]; // the most specific kind first
const LOST_WORDS = { dropped: "left out", missing: "lost" };

const state = {
  view: null,
  editing: new Map(),   // paragraph index -> the text in its edit box
  redrafts: new Map(),  // redraft job id -> {job, error, polling}
  busy: false,
};

// ---- small pieces ------------------------------------------------------------------------------------------

function token() {
  return $("api-token").value.trim() || sessionStorage.getItem(TOKEN_KEY) || null;
}

function reviewer() {
  return $("reviewer").value.trim() || null;
}

function stateBadge(value, attrs = {}) {
  return el("span", { ...attrs, class: `state-badge state-${text(value)}`, "data-state": text(value) },
    STATE_WORDS[value] || text(value));
}

function showError(message, title = "The action was refused.") {
  const node = $("review-error");
  if (!message) {
    node.hidden = true;
    node.replaceChildren();
    return;
  }
  fill(node, el("strong", { text: title }), " ", el("span", { "data-role": "message", text: message }));
  node.hidden = false;
}

function sentence(message) {
  const words = String(message || "").trim();
  return /[.!?]$/.test(words) ? words : `${words}.`;
}

function problemTitle(err, otherwise) {
  return err.status === 0 ? "The web app does not answer." : otherwise;
}

function setStatus(message, kind = "") {
  const node = $("review-status");
  node.textContent = message;
  node.dataset.kind = kind;
}

/** The text cut at every mark boundary; each piece covered by marks is a <mark> with the classes of them all. */
export function marked(value, marks) {
  const chars = Array.from(String(value || "")); // offsets count code points, as Python's do
  const found = (Array.isArray(marks) ? marks : [])
    .filter((m) => m && isNumber(m.start) && isNumber(m.end) && m.end > m.start)
    .map((m) => ({ ...m, start: Math.max(0, m.start), end: Math.min(chars.length, m.end) }))
    .filter((m) => m.end > m.start);
  const cuts = [...new Set([0, chars.length, ...found.flatMap((m) => [m.start, m.end])])].sort((a, b) => a - b);
  const nodes = [];
  for (let i = 0; i < cuts.length - 1; i += 1) {
    const [a, b] = [cuts[i], cuts[i + 1]];
    const piece = chars.slice(a, b).join("");
    const covering = found.filter((m) => m.start <= a && m.end >= b);
    if (!covering.length) {
      nodes.push(piece);
      continue;
    }
    const kinds = [...new Set(covering.map((m) => m.kind))]
      .sort((x, y) => MARK_ORDER.indexOf(x) - MARK_ORDER.indexOf(y));
    const notes = [...new Set(covering.map((m) => text(m.note, "")).filter(Boolean))];
    nodes.push(el("mark", {
      class: ["mk", ...kinds.map((k) => `mk-${k}`)].join(" "),
      "data-kind": kinds[0],
      "data-kinds": kinds.join(" "),
      title: notes.join("\n") || null,
    }, piece));
  }
  return nodes;
}

/** A small gauge: the target grade, its tolerance and where the paragraph's grade falls. */
export function gradeGauge(report, tolerance) {
  const target = report && isNumber(report.target_grade) ? report.target_grade : null;
  const grade = report && isNumber(report.grade) ? report.grade : null;
  if (target === null) return el("span", { class: "muted", text: "no grade" });
  const low = target - tolerance.below, high = target + tolerance.above;
  const lo = Math.max(0, Math.floor(Math.min(low, grade ?? target) - 1));
  const hi = Math.ceil(Math.max(high, grade ?? target) + 1);
  const W = 240, X0 = 8, SPAN = W - 16;
  const x = (g) => X0 + SPAN * ((Math.min(Math.max(g, lo), hi) - lo) / (hi - lo));
  const inside = grade !== null && (typeof report.grade_ok === "boolean" ? report.grade_ok : grade >= low && grade <= high);
  const words = grade === null ? "no grade (empty text)" : `grade ${gradeVsTarget(report)}`;
  const label = `${words}; grades ${low.toFixed(1)} to ${high.toFixed(1)} suit grade ${target}`;
  const picture = svg("svg", { viewBox: `0 0 ${W} 40`, class: "grade-gauge", role: "img", "aria-label": label },
    svg("title", { text: label }),
    svg("rect", { x: X0, y: 12, width: SPAN, height: 12, rx: 2, fill: "#edf0f5", stroke: "#c5ccd8" }),
    svg("rect", { x: x(low), y: 12, width: x(high) - x(low), height: 12, fill: "#cfe9d6", class: "tolerance" }),
    svg("line", { x1: x(target), x2: x(target), y1: 8, y2: 28, stroke: "#1a202c", "stroke-width": 2, class: "target" }),
    grade === null ? null : svg("circle", {
      cx: x(grade), cy: 18, r: 5.5, fill: inside ? "#276749" : "#b42318", stroke: "#fff", "stroke-width": 1.5,
      class: "grade-point", "data-inside": String(inside),
    }),
    svg("text", { x: X0, y: 38, class: "tick", text: String(lo) }),
    svg("text", { x: x(target), y: 38, "text-anchor": "middle", class: "tick tick-target", text: `target ${target}` }),
    svg("text", { x: X0 + SPAN, y: 38, "text-anchor": "end", class: "tick", text: String(hi) }));
  return el("div", { class: "gauge-box" }, picture,
    el("p", { class: `gauge-text ${inside ? "ok" : "off"}`, "data-role": "grade", text: words }));
}

function drafts(p) {
  const n = Array.isArray(p.attempts) ? p.attempts.length : 0;
  if (!n) return "–";
  const spent = p.attempts.reduce((sum, a) => sum + (isNumber(a.seconds) ? a.seconds : 0), 0);
  return `${n} draft${n === 1 ? "" : "s"} · ${seconds(spent, 1)}`;
}

function moreExact(level) {
  const i = LEVELS.indexOf(level);
  return LEVELS[Math.max(i - 1, 0)] || LEVELS[0];
}

// ---- one paragraph -----------------------------------------------------------------------------------------

function lostTerms(p) {
  const seen = new Map();
  for (const m of Array.isArray(p.source_marks) ? p.source_marks : []) {
    const term = Array.from(p.source || "").slice(m.start, m.end).join("");
    const key = `${m.kind}|${term.toLowerCase()}`;
    if (term && !seen.has(key)) seen.set(key, { term, kind: m.kind, note: m.note });
  }
  if (!seen.size) return el("p", { class: "lost none muted small", text: "Nothing of the source is lost." });
  return el("div", { class: "lost" },
    el("span", { class: "small muted", text: "Lost in the result: " }),
    el("ul", { class: "lost-terms" }, [...seen.values()].map((t) =>
      el("li", { class: `lost-term mk-${t.kind}`, "data-kind": t.kind, title: text(t.note, "") },
        t.term, el("span", { class: "lost-kind", text: ` ${LOST_WORDS[t.kind] || t.kind}` })))));
}

function earlierDraft(p) {
  if (p.state !== "edited" && p.state !== "redrafted") return null;
  if (p.draft === p.text) return null;
  return el("details", { class: "earlier" },
    el("summary", {}, "The model's first draft (", text(p.draft_level), ", ", text(p.draft_verdict).replace("_", " "), ")"),
    el("p", { class: "para-text draft-text", text: text(p.draft, "") }));
}

function editBox(p) {
  const area = el("textarea", {
    "data-role": "edit-text", rows: Math.min(12, Math.max(4, Math.ceil(text(p.text, "").length / 70) + 1)),
    "aria-label": `New text of paragraph ${p.index}`,
  });
  area.value = state.editing.get(p.index);
  area.addEventListener("input", () => state.editing.set(p.index, area.value));
  return el("div", { class: "edit-box" }, area,
    el("div", { class: "row-buttons" },
      el("button", { type: "button", "data-action": "save", "data-paragraph": p.index, text: "Save" }),
      el("button", { type: "button", class: "secondary", "data-action": "cancel", "data-paragraph": p.index, text: "Cancel" }),
      el("span", { class: "muted small", text: "Saving re-checks the text against the source." })));
}

function redraftBox(p) {
  const box = el("div", { class: "redraft", "data-role": "redraft", "data-job": p.redraft_job || null });
  if (!p.redraft_job) {
    box.hidden = true;
    return box;
  }
  const known = state.redrafts.get(p.redraft_job) || {};
  const job = known.job;
  if (known.error) {
    fill(box, el("p", { class: "redraft-status error", text: `The new draft cannot be read: ${known.error}` }));
  } else if (!job || job.status === "queued" || job.status === "running") {
    const where = job && job.status === "running" ? `running on ${text(job.worker, "a worker")}` : "queued";
    fill(box, el("p", { class: "redraft-status", "data-status": job ? job.status : "queued" },
      el("span", { class: "spinner", "aria-hidden": "true" }), `Asking the model again (job ${p.redraft_job}, ${where})…`));
  } else if (job.status === "succeeded") {
    const result = job.result || {};
    fill(box,
      el("h4", {}, "New draft ", levelBadge(result.output_level || result.level),
        el("span", { class: "muted small", text: ` · grade ${gradeVsTarget(result.quality)}` })),
      el("p", { class: "para-text redraft-text", "data-role": "redraft-text", text: text(result.text, "") }),
      verdictView(result.quality),
      el("div", { class: "row-buttons" },
        el("button", { type: "button", "data-action": "use-redraft", "data-paragraph": p.index, text: "Use this draft" }),
        el("span", { class: "muted small", text: "or keep the text above: Accept or Edit it." })));
    box.dataset.status = "succeeded";
  } else {
    const why = job.error ? `${text(job.error.code)}: ${text(job.error.message)}` : "no reason given";
    fill(box, el("p", { class: "redraft-status error", "data-status": job.status,
      text: `The new draft ${job.status === "cancelled" ? "was cancelled" : "failed"} (${why}). Accept or edit the paragraph instead.` }));
    box.dataset.status = job.status;
  }
  return box;
}

function actions(p) {
  const settled = SETTLED.has(p.state);
  const select = el("select", { "data-role": "redraft-level", "aria-label": `Level for a new draft of paragraph ${p.index}` },
    LEVELS.map((l) => el("option", { value: l, selected: l === moreExact(p.level) ? true : null, text: l })));
  const pending = Boolean(p.redraft_job);
  return el("div", { class: "para-actions" },
    settled ? null : el("button", { type: "button", "data-action": "accept", "data-paragraph": p.index,
      title: "The text stands as it is", text: "Accept" }),
    el("button", { type: "button", class: "secondary", "data-action": "edit", "data-paragraph": p.index,
      disabled: state.editing.has(p.index) || null, text: "Edit" }),
    el("span", { class: "redraft-ask" },
      el("button", { type: "button", class: "secondary", "data-action": "redraft", "data-paragraph": p.index,
        disabled: pending || null, title: pending ? "A new draft is on its way" : "Ask the model again at the level chosen",
        text: "Ask again" }),
      el("label", { class: "small muted" }, "at ", select)));
}

function paragraphSection(p, view) {
  const report = p.quality || {};
  return el("section", { class: "panel para", id: `para-${p.index}`, "data-index": p.index, "data-state": text(p.state),
    "data-verdict": text(report.verdict), "aria-labelledby": `para-${p.index}-h` },
    el("div", { class: "para-head" },
      el("h2", { id: `para-${p.index}-h` }, `Paragraph ${p.index}`, el("span", { class: "muted small", text: ` of ${view.paragraphs.length}` })),
      stateBadge(p.state, { "data-role": "state" }),
      el("span", { class: "para-meta" }, p.state === "edited" ? "edited from a draft at " : "written at ", levelBadge(p.level)),
      el("span", { class: "para-meta muted", "data-role": "drafts", title: "Drafts the quality gate made for it",
        text: drafts(p) })),
    el("div", { class: "para-cols" },
      el("div", { class: "col col-source" },
        el("h3", { text: "Source" }),
        el("p", { class: "para-text source-text", "data-role": "source" }, marked(p.source, p.source_marks)),
        lostTerms(p)),
      el("div", { class: "col col-result" },
        el("h3", {}, p.state === "edited" ? "Result, as edited" : p.state === "redrafted" ? "Result, new draft" : "Result"),
        state.editing.has(p.index)
          ? editBox(p)
          : el("p", { class: "para-text result-text", "data-role": "text" }, marked(p.text, p.marks)),
        el("div", { class: "checks" },
          gradeGauge(report, view.grade_tolerance),
          el("div", { class: "check-verdict" }, verdictView(report))),
        earlierDraft(p))),
    redraftBox(p),
    actions(p));
}

// ---- the page ----------------------------------------------------------------------------------------------

function renderFacts(view) {
  const decided = view.paragraphs.filter((p) => SETTLED.has(p.state)).length;
  const last = view.actions.length ? view.actions[view.actions.length - 1] : null;
  const lastWords = last
    ? `${last.action.replace("_", " ")}${last.paragraph ? ` of paragraph ${last.paragraph}` : " (whole job)"}`
      + `${last.reviewer ? ` by ${last.reviewer}` : ""} at ${clock(last.at)}`
    : "none yet";
  fill($("job-facts"), [
    ["Subject", text(view.subject)],
    ["Target grade", el("span", { id: "target-grade", text: text(view.grade_level) })],
    ["Model", text(view.model)],
    ["Job's level", levelBadge(view.level)],
    ["Decided", el("span", { id: "decided", text: `${decided} of ${view.paragraphs.length} paragraphs` })],
    ["Last action", lastWords],
  ].map(([term, value]) => el("div", { class: "job-fact" }, el("dt", { text: term }), el("dd", {}, value))));
  const badge = $("review-state");
  badge.dataset.state = text(view.review_state);
  fill(badge, el("span", { class: "small muted", text: "Review state " }), JOB_STATE_WORDS[view.review_state] || text(view.review_state));
  $("review-title").textContent = `Review: ${text(view.subject)} for grade ${text(view.grade_level)}`;
  document.title = `Review: ${text(view.subject)}, grade ${text(view.grade_level)} · dynaquant`;
  $("accept-all").disabled = decided === view.paragraphs.length;
}

function renderHistory(view) {
  const items = [...view.actions].reverse().map((a) => el("li", {},
    el("span", { class: "muted", text: clock(a.at) }), " ",
    el("strong", { text: a.action.replace("_", " ") }),
    a.paragraph ? ` paragraph ${a.paragraph}` : " every paragraph left",
    a.level ? [" ", levelBadge(a.level)] : null,
    a.reviewer ? el("span", { class: "muted", text: ` by ${a.reviewer}` }) : null));
  fill($("history-list"), items.length ? items : el("li", { class: "empty", text: "No action yet." }));
  $("history").querySelector("summary").textContent = `Review history (${view.actions.length})`;
}

function render(view, focus = null) {
  state.view = view;
  renderFacts(view);
  fill($("paragraphs"), view.paragraphs.map((p) => paragraphSection(p, view)));
  renderHistory(view);
  for (const p of view.paragraphs) if (p.redraft_job) watchRedraft(p.redraft_job);
  if (focus) {
    const section = document.querySelector(`section.para[data-index="${focus.index}"]`);
    const target = section && (section.querySelector(`[data-action="${focus.action}"]:not([disabled])`)
      || section.querySelector(focus.action === "edit-text" ? "[data-role=edit-text]" : "h2"));
    if (target) {
      if (target.tagName === "H2") target.setAttribute("tabindex", "-1");
      target.focus({ preventScroll: false });
    }
  }
}

function rerenderRedraft(jobId) {
  if (!state.view) return;
  for (const p of state.view.paragraphs) {
    if (p.redraft_job !== jobId) continue;
    const old = document.querySelector(`section.para[data-index="${p.index}"] [data-role="redraft"]`);
    if (old) old.replaceWith(redraftBox(p));
  }
}

function watchRedraft(jobId) {
  // Poll a redraft job until it ends; one loop per job however often the page re-renders.
  const entry = state.redrafts.get(jobId) || { job: null, error: null, polling: false };
  state.redrafts.set(jobId, entry);
  const ended = entry.job && !["queued", "running"].includes(entry.job.status);
  if (entry.polling || ended) return;
  entry.polling = true;
  const poll = async () => {
    try {
      entry.job = await api(`/api/v1/jobs/${encodeURIComponent(jobId)}`);
      entry.error = null;
    } catch (err) {
      entry.error = err.status === 0 ? null : err.message; // nothing answered: a passing outage, try again
    }
    rerenderRedraft(jobId);
    const going = !entry.job || ["queued", "running"].includes(entry.job.status);
    if (going && entry.error === null) {
      setTimeout(poll, REDRAFT_POLL_MS);
      return;
    }
    entry.polling = false;
    if (entry.job && entry.job.status === "succeeded") setStatus("A new draft is ready: read it and take it with “Use this draft”.", "ok");
  };
  poll();
}

async function load(focus = null) {
  const view = await api(`${BASE}/review`);
  render(view, focus);
  return view;
}

async function waitUntilReviewable() {
  // Opened before the job finished: say so and look again until it has a text to review.
  try {
    await load();
    showError(null);
  } catch (err) {
    if (err.status === 409 && err.code === "not_succeeded") {
      let job = null;
      try {
        job = await api(BASE);
      } catch {
        job = null;
      }
      const going = job && ["queued", "running"].includes(job.status);
      fill($("paragraphs"), el("p", { class: "empty", text: going
        ? `Job ${JOB_ID} is ${job.status}: its paragraphs show here once it succeeded.`
        : `Nothing to review: ${err.message}` }));
      $("review-state").textContent = going ? `Job ${job.status}` : "Nothing to review";
      if (going) setTimeout(waitUntilReviewable, WAIT_POLL_MS);
      return;
    }
    fill($("paragraphs"), el("p", { class: "empty", text: "The review cannot be shown." }));
    $("review-state").textContent = "Unavailable";
    showError(err.message, problemTitle(err, "The review cannot be read."));
  }
}

// ---- actions -----------------------------------------------------------------------------------------------

const DONE_WORDS = {
  accept: (n) => `Paragraph ${n} accepted.`,
  edit: (n, answer) => `Paragraph ${n} saved and re-checked: ${text(answer.paragraph && answer.paragraph.quality.verdict).replace("_", " ")}.`,
  redraft: (n) => `A new draft of paragraph ${n} is asked for; it shows below the paragraph when it is written.`,
  use_redraft: (n) => `Paragraph ${n} now has the new draft.`,
};

async function post(body, focus) {
  if (state.busy) return;
  state.busy = true;
  document.body.classList.add("busy");
  for (const b of document.querySelectorAll("button")) b.setAttribute("aria-busy", "true");
  setStatus("Saving…");
  const name = reviewer();
  const sent = { ...body, ...(name ? { reviewer: name } : {}) };
  try {
    const answer = await api(`${BASE}/review`, { method: "POST", body: sent, token: token() });
    showError(null);
    if (body.action === "edit") state.editing.delete(body.paragraph);
    const words = body.paragraph ? DONE_WORDS[body.action](body.paragraph, answer) : "Every paragraph left is accepted.";
    await load(focus);
    setStatus(words, "ok");
  } catch (err) {
    if (err.status === 401) {
      $("token-field").hidden = false;
      $("api-token").focus();
      showError(`${sentence(err.message)} Enter the API token above, then try again.`, "The service asks for its API token.");
    } else {
      showError(err.message, problemTitle(err, "The action was refused."));
    }
    setStatus("");
    try {
      await load(); // the server's state wins: show it as it is now
    } catch {
      /* the error above is what the reviewer needs to read */
    }
  } finally {
    state.busy = false;
    document.body.classList.remove("busy");
    for (const b of document.querySelectorAll("button")) b.removeAttribute("aria-busy");
  }
}

function onClick(event) {
  const button = event.target.closest("button[data-action]");
  if (!button || button.disabled) return;
  const action = button.dataset.action;
  if (action === "accept-all") {
    post({ action: "accept" }, null);
    return;
  }
  const index = Number(button.dataset.paragraph);
  const p = state.view && state.view.paragraphs.find((q) => q.index === index);
  if (!p) return;
  const section = button.closest("section.para");
  if (action === "accept") post({ action: "accept", paragraph: index }, { index, action: "edit" });
  else if (action === "edit") {
    state.editing.set(index, p.text);
    render(state.view, { index, action: "edit-text" });
  } else if (action === "cancel") {
    state.editing.delete(index);
    render(state.view, { index, action: "edit" });
  } else if (action === "save") {
    const value = state.editing.get(index) || "";
    if (!value.trim()) {
      showError("Write the paragraph's new text, or Cancel.", "The new text is blank.");
      return;
    }
    post({ action: "edit", paragraph: index, text: value }, { index, action: "edit" });
  } else if (action === "redraft") {
    const level = section.querySelector("[data-role=redraft-level]").value;
    post({ action: "redraft", paragraph: index, level }, { index, action: "edit" });
  } else if (action === "use-redraft") {
    post({ action: "use_redraft", paragraph: index }, { index, action: "edit" });
  }
}

function start() {
  const name = $("reviewer");
  name.value = sessionStorage.getItem(REVIEWER_KEY) || "";
  name.addEventListener("change", () => sessionStorage.setItem(REVIEWER_KEY, name.value.trim()));
  const tokenInput = $("api-token");
  tokenInput.value = token() || "";
  tokenInput.addEventListener("change", () => sessionStorage.setItem(TOKEN_KEY, tokenInput.value.trim()));
  document.addEventListener("click", onClick);
  waitUntilReviewable();
}

start();
