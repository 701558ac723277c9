// Formatting and small facts shared by the views.

export const LEVELS = ["fp16", "int8", "int4", "int2"]; // most precise first
export const BANDS = ["comfortable", "moderate", "tight", "critical", "emergency"];

export const isNumber = (v) => typeof v === "number" && Number.isFinite(v);

export function percent(fraction, digits = 1) {
  return isNumber(fraction) ? `${(fraction * 100).toFixed(digits)}%` : "–";
}

export function seconds(value, digits = 2) {
  return isNumber(value) ? `${value.toFixed(digits)} s` : "–";
}

export function clock(epochSeconds) {
  if (!isNumber(epochSeconds)) return "–";
  return new Date(epochSeconds * 1000).toLocaleTimeString([], { hour12: false });
}

export function mb(value) {
  return isNumber(value) ? `${value.toFixed(0)} MB` : "–";
}

export function latency(job) {
  return isNumber(job.finished_at) && isNumber(job.created_at) ? job.finished_at - job.created_at : null;
}

export function text(value, fallback = "–") {
  return value === null || value === undefined || value === "" ? fallback : String(value);
}
