// The API client: the same routes any client calls, on this page's origin or the API URL config.json
// names (auth.js). Locally the stack runs keyless; a person signed in through the user pool sends their
// token (Authorization: Bearer); otherwise, where the API needs a key, the one typed into the page is sent
// as x-api-key. Both are kept for this tab only (sessionStorage): the console's files hold no secret.
import { apiBase, token } from "./auth.js";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function storefront() {
  return document.getElementById("storefront").value;
}

export async function call(method, path, { query = {}, json, form, headers = {} } = {}) {
  const url = new URL(path.replace(/^\//, ""), await apiBase());
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  const init = { method, headers: { ...headers } };
  const bearer = token();
  const key = sessionStorage.getItem("apiKey");
  if (bearer) init.headers.Authorization = `Bearer ${bearer}`;
  else if (key) init.headers["x-api-key"] = key;
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (form) {
    init.body = form;
  }
  const response = await fetch(url, init);
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = { error: { message: text } };
  }
  if (!response.ok) {
    const error = (body && body.error) || {};
    throw new ApiError(response.status, error.code || `http_${response.status}`, error.message || response.statusText);
  }
  return { status: response.status, headers: response.headers, body };
}
