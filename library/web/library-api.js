// The staff API as the library page uses it (docs/library.md): JSON requests with the
// administrator token, errors as ApiError, share links, and the token kept in sessionStorage.

const TOKEN_KEY = "mcu.libraryToken";

/** A refused or failed request: the HTTP status (0: unreachable) and the API's error code. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * Calls the staff API with `token`; resolves with the JSON reply (null for 204) or rejects with
 * an ApiError. `query` values that are empty are left out.
 */
export async function api(token, method, path, { body, query } = {}) {
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null && value !== "") {
      url.searchParams.set(name, value);
    }
  }
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "unreachable", "Cannot reach the server. Check your connection.");
  }
  if (response.status === 204) {
    return null;
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    throw new ApiError(
      response.status,
      data?.error ?? "error",
      data?.message ?? `${response.status} ${response.statusText}`,
    );
  }
  return data;
}

/** A share link for an item, valid `ttl` seconds: `{url, token}` (url absolute). */
export async function shareUrl(token, id, ttl) {
  const share = await api(token, "POST", `/api/library/${encodeURIComponent(id)}/share`, {
    body: { ttl_seconds: ttl },
  });
  return { url: new URL(share.url, location.origin).href, token: share.token };
}

export function storedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function storeToken(token) {
  try {
    if (token) {
      sessionStorage.setItem(TOKEN_KEY, token);
    } else {
      sessionStorage.removeItem(TOKEN_KEY);
    }
  } catch {
    // Storage disabled: the token lives as long as the page.
  }
}
