// Calls to the dynaquant JSON API; every failure becomes an ApiError with the service's code and message.

const TIMEOUT_MS = 8000;

export class ApiError extends Error {
  constructor(status, code, message, field = null) {
    super(message);
    this.status = status; // 0: nothing answered
    this.code = code;
    this.field = field;
  }
}

export const REDIS_CODES = new Set(["redis_unavailable", "redis_auth_failed", "redis_error"]);

export async function api(path, { method = "GET", body, token } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
  let response;
  try {
    response = await fetch(path, {
      method, headers, cache: "no-store", signal: controller.signal,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    const why = err && err.name === "AbortError" ? `no answer within ${TIMEOUT_MS / 1000} s` : "the connection failed";
    throw new ApiError(0, "unreachable", `The dynaquant web app at ${location.origin} does not answer (${why}).`);
  } finally {
    clearTimeout(timer);
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiError(response.status, error.code || `http_${response.status}`,
      error.message || `${method} ${path} answered ${response.status} ${response.statusText}`, error.field || null);
  }
  return data;
}
